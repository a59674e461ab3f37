import fs from 'node:fs';
import path from 'node:path';
import { round } from './stats.js';

/*
 * Reads a V8 .cpuprofile (node --cpu-prof) and ranks functions by self time inside a time window,
 * so that server start-up does not dilute the load being profiled.
 */

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

export interface HotFunction {
  function: string;
  location: string;
  selfMs: number;
  selfPct: number;
  /** Time with this function anywhere on the stack (each sample counted once). */
  totalMs: number;
  totalPct: number;
}

export interface HotModule { module: string; selfMs: number; selfPct: number }

export interface ProfileSummary {
  file: string;
  windowMs: number;
  sampledMs: number;
  idleMs: number;
  gcMs: number;
  top: HotFunction[];
  modules: HotModule[];
}

function isProfile(v: unknown): v is CpuProfile {
  if (v === null || typeof v !== 'object') return false;
  const p = v as Record<string, unknown>;
  return Array.isArray(p.nodes) && Array.isArray(p.samples) && Array.isArray(p.timeDeltas) && typeof p.startTime === 'number';
}

function shortUrl(url: string, repoRoot: string): string {
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) return u.slice(nm + '/node_modules/'.length);
  if (u.startsWith(repoRoot)) u = u.slice(repoRoot.length).replace(/^\/+/, '');
  return u.replace(/^dist\//, '');
}

function moduleOf(location: string): string {
  if (location === '') return '(native/V8)';
  if (location.startsWith('node:')) return location.split(':')[1].split('/').slice(0, 2).join('/').replace(/^internal\//, 'node:internal/');
  const parts = location.split('/');
  if (parts[0].startsWith('@')) return parts.slice(0, 2).join('/');
  if (parts[0] === 'server' || parts[0] === 'storage' || parts[0] === 'test') return parts.slice(0, Math.min(parts.length - 1, 2)).join('/') || parts[0];
  return parts[0];
}

/**
 * Summarizes samples taken between `fromMs` and `toMs` after the profile started (pass 0 and
 * Infinity for the whole profile).
 */
export function summarizeProfile(file: string, repoRoot: string, fromMs: number, toMs: number, topN = 15): ProfileSummary {
  const raw: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!isProfile(raw)) throw new Error(`${file} is not a V8 CPU profile`);
  const byId = new Map<number, ProfileNode>(raw.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of raw.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'}\u0000${shortUrl(n.callFrame.url, repoRoot)}:${n.callFrame.lineNumber + 1}`;

  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let t = 0;
  let sampled = 0;
  let idle = 0;
  let gc = 0;
  for (let i = 0; i < raw.samples.length; i++) {
    t += raw.timeDeltas[i] ?? 0;
    const tMs = t / 1000;
    if (tMs < fromMs || tMs > toMs) continue;
    // The sample's weight is the time until the next sample.
    const w = (raw.timeDeltas[i + 1] ?? 0) / 1000;
    const node = byId.get(raw.samples[i]);
    if (!node) continue;
    const name = node.callFrame.functionName;
    if (name === '(idle)') { idle += w; continue; }
    sampled += w;
    if (name === '(garbage collector)') gc += w;
    const k = key(node);
    self.set(k, (self.get(k) ?? 0) + w);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id);
      if (!n || n.callFrame.functionName === '(root)') continue;
      const nk = key(n);
      if (seen.has(nk)) continue;
      seen.add(nk);
      total.set(nk, (total.get(nk) ?? 0) + w);
    }
  }
  const pct = (v: number): number => round(sampled > 0 ? (100 * v) / sampled : 0, 1);
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, topN).map(([k, v]): HotFunction => {
    const [fn, location] = k.split('\u0000');
    const tot = total.get(k) ?? v;
    return { function: fn, location, selfMs: round(v, 1), selfPct: pct(v), totalMs: round(tot, 1), totalPct: pct(tot) };
  });
  const modules = new Map<string, number>();
  for (const [k, v] of self) {
    const location = k.split('\u0000')[1].replace(/:\d+$/, '');
    const m = moduleOf(location);
    modules.set(m, (modules.get(m) ?? 0) + v);
  }
  return {
    file: path.resolve(file),
    windowMs: round(Math.min(toMs, (raw.endTime - raw.startTime) / 1000) - fromMs, 0),
    sampledMs: round(sampled, 0),
    idleMs: round(idle, 0),
    gcMs: round(gc, 0),
    top,
    modules: [...modules].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([m, v]) => ({ module: m, selfMs: round(v, 1), selfPct: pct(v) })),
  };
}

/** Inclusive time of the named functions (anywhere on the stack), for the report's hot paths. */
export function inclusiveTimes(file: string, names: readonly string[], fromMs: number, toMs: number): Record<string, number> {
  const raw: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!isProfile(raw)) throw new Error(`${file} is not a V8 CPU profile`);
  const byId = new Map<number, ProfileNode>(raw.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of raw.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  let t = 0;
  for (let i = 0; i < raw.samples.length; i++) {
    t += raw.timeDeltas[i] ?? 0;
    const tMs = t / 1000;
    if (tMs < fromMs || tMs > toMs) continue;
    const w = (raw.timeDeltas[i + 1] ?? 0) / 1000;
    const seen = new Set<string>();
    for (let id: number | undefined = raw.samples[i]; id !== undefined; id = parent.get(id)) {
      const fn = byId.get(id)?.callFrame.functionName ?? '';
      if (fn in out && !seen.has(fn)) { seen.add(fn); out[fn] += w; }
    }
  }
  for (const k of Object.keys(out)) out[k] = round(out[k], 1);
  return out;
}
