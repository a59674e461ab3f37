import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

/*
 * Per-process CPU time and memory from Linux /proc. CPU is user+system of every thread of the
 * process (utime+stime of /proc/<pid>/stat), so Go's and libuv's worker threads count too.
 */

let clockTicks: number | null = null;

/** Kernel clock ticks per second (USER_HZ), usually 100. */
export function clockTicksPerSecond(): number {
  if (clockTicks !== null) return clockTicks;
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    clockTicks = 100;
  }
  return clockTicks;
}

export interface CpuTimes {
  userMs: number;
  systemMs: number;
  totalMs: number;
}

/** user+system CPU of a process so far; throws if it is gone. */
export function processCpu(pid: number): CpuTimes {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: split after its last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  const tick = 1000 / clockTicksPerSecond();
  const userMs = Number(rest[11]) * tick;
  const systemMs = Number(rest[12]) * tick;
  return { userMs, systemMs, totalMs: userMs + systemMs };
}

export function cpuDelta(before: CpuTimes, after: CpuTimes): CpuTimes {
  return {
    userMs: after.userMs - before.userMs,
    systemMs: after.systemMs - before.systemMs,
    totalMs: after.totalMs - before.totalMs,
  };
}

export interface MemoryInfo {
  /** Current resident set, MiB. */
  rssMb: number;
  /** Peak resident set (VmHWM) since start or the last `resetPeakRss`, MiB. */
  peakRssMb: number;
}

export function processMemory(pid: number): MemoryInfo {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
    return m ? Number(m[1]) : NaN;
  };
  return { rssMb: kb('VmRSS') / 1024, peakRssMb: kb('VmHWM') / 1024 };
}

/**
 * Resets VmHWM to the current RSS (`echo 5 > /proc/<pid>/clear_refs`, Linux >= 4.0), so a peak
 * can be attributed to one load level. Returns false where that is not permitted.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** CPU time of this process (the load generator), ms. */
export function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
