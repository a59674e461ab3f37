import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from './ports.js';
import { TestDnsServer } from './dns-server.js';
import { httpGet } from './http.js';

/*
 * Runs the CA as a separate process exactly as an operator would (`node dist/server/main.js`),
 * so end-to-end tests exercise the real startup, configuration and shutdown paths.
 */

/** Compiled location is dist/test/support/, so the repository root is three levels up. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SERVER_ENTRY = path.join('dist', 'server', 'main.js');
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
/** Enough for any startup failure or a few hundred request logs; the tail is what matters. */
const LOG_CAP_BYTES = 4 * 1024 * 1024;

export interface CaPorts {
  /** HTTPS port of the ACME API. */
  https: number;
  /** Port the CA dials for http-01; the client's standalone HTTP server must listen here. */
  http01: number;
  /** Port the CA dials for tls-alpn-01; the client's TLS server must listen here. */
  tlsAlpn01: number;
  /** UDP+TCP port of the test DNS server the CA resolves through. */
  dns: number;
}

export interface StartCaOptions {
  /** Reuse an existing data dir (e.g. to test restarts); default is a fresh temp dir. */
  dataDir?: string;
  /** Extra environment for the server; wins over the defaults below. */
  env?: Record<string, string>;
  /** Use this started DNS server (built with `txtDir`) instead of starting one; the caller closes it. */
  dns?: TestDnsServer;
  /** Zones the self-started DNS server answers; default `['test']`. */
  dnsSuffixes?: readonly string[];
  readyTimeoutMs?: number;
  /** Server script relative to the repo root (or absolute); default dist/server/main.js. */
  serverEntry?: string;
}

export interface CaProcess {
  directoryUrl: string;
  /** Path of the root certificate the CA wrote on first start. */
  rootPem: string;
  dataDir: string;
  ports: CaPorts;
  dns: TestDnsServer;
  /** Directory the DNS server reads hook-written TXT records from (`<dir>/<name>/<value>`). */
  txtDir: string;
  /** PID of the current server process; changes on `restart()`. */
  readonly pid: number | undefined;
  /** SIGTERM, wait for exit, SIGKILL after a timeout. Returns the exit code or signal. */
  stop(): Promise<ExitInfo>;
  /** SIGKILL without giving the server a chance to clean up (crash tests). */
  kill9(): Promise<ExitInfo>;
  /** Stop (if running) and start again with the same data dir, ports and environment. */
  restart(): Promise<void>;
  /** Everything the server wrote to stdout and stderr, across restarts. */
  logs(): string;
  /** Stop the server, close a self-started DNS server and remove temp dirs this CA created. */
  cleanup(): Promise<void>;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const tempDirs = new Set<string>();
const liveCas = new Set<CaProcess>();
/** PIDs of servers we spawned that may still run; killed if the test process exits abruptly. */
const livePids = new Set<number>();

process.once('exit', () => {
  // Last resort only: normal runs stop every server in `after` hooks. Never touches other PIDs.
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

/** A fresh directory under os.tmpdir(), removed by `cleanup()`. */
export async function makeTempDir(prefix = 'acme-ca-e2e-'): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Stops every CA started through this module and removes every temp dir from `makeTempDir`. */
export async function cleanup(): Promise<void> {
  const errors: unknown[] = [];
  for (const ca of [...liveCas]) {
    try {
      await ca.cleanup();
    } catch (err) {
      errors.push(err);
    }
  }
  for (const dir of [...tempDirs]) {
    await fsp.rm(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
  if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
}

class LogBuffer {
  private chunks: string[] = [];
  private size = 0;

  push(s: string): void {
    this.chunks.push(s);
    this.size += s.length;
    while (this.size > LOG_CAP_BYTES && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
  }

  text(): string {
    return this.chunks.join('');
  }
}

export async function startCa(opts: StartCaOptions = {}): Promise<CaProcess> {
  const entry = path.resolve(REPO_ROOT, opts.serverEntry ?? SERVER_ENTRY);
  if (!fs.existsSync(entry)) throw new Error(`${entry} does not exist; build the server first (npx tsc)`);

  if (opts.dns !== undefined && opts.dns.txtDir === undefined) {
    // Hooks would write records into a directory that server never reads: fail loudly instead.
    throw new Error('startCa: a caller-provided TestDnsServer must be constructed with txtDir');
  }
  const dataDir = opts.dataDir ?? (await makeTempDir('acme-ca-data-'));
  const txtDir = opts.dns?.txtDir ?? (await makeTempDir('acme-ca-txt-'));
  const ownsDns = opts.dns === undefined;
  const dns = opts.dns ?? new TestDnsServer({ suffixes: opts.dnsSuffixes ?? ['test'], txtDir });
  if (ownsDns) await dns.start();

  const [httpsPort, http01, tlsAlpn01] = await freePorts(3);
  const ports: CaPorts = { https: httpsPort, http01, tlsAlpn01, dns: dns.port };
  const rootPem = path.join(dataDir, 'root.pem');
  const directoryUrl = `https://127.0.0.1:${httpsPort}/directory`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ACME_CA_DATA_DIR: dataDir,
    ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`,
    ACME_CA_HTTP01_PORT: String(http01),
    ACME_CA_TLSALPN01_PORT: String(tlsAlpn01),
    ACME_CA_DNS_RESOLVER: `127.0.0.1:${dns.port}`,
    ACME_CA_LOG_LEVEL: 'warn',
    ...opts.env,
  };
  const readyTimeoutMs = opts.readyTimeoutMs ?? READY_TIMEOUT_MS;
  const logs = new LogBuffer();

  let child: ChildProcess | undefined;
  let exited: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });

  const spawnServer = async (): Promise<void> => {
    logs.push(`--- spawn ${new Date().toISOString()} ---\n`);
    const c = spawn(process.execPath, [entry], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    if (c.pid !== undefined) livePids.add(c.pid);
    c.stdout!.setEncoding('utf8').on('data', (s: string) => logs.push(s));
    c.stderr!.setEncoding('utf8').on('data', (s: string) => logs.push(s));
    exited = new Promise<ExitInfo>((resolve) => {
      // 'close' (not 'exit') so the log buffer has the last bytes before we report.
      c.once('close', (code, signal) => {
        if (c.pid !== undefined) livePids.delete(c.pid);
        logs.push(`--- exit code=${code} signal=${signal} ---\n`);
        resolve({ code, signal });
      });
      c.once('error', (err) => {
        logs.push(`--- spawn error: ${err.message} ---\n`);
        resolve({ code: null, signal: null });
      });
    });
    try {
      await waitReady(directoryUrl, rootPem, exited, readyTimeoutMs);
    } catch (err) {
      await terminate('SIGKILL');
      throw new Error(`${(err as Error).message}\n--- server output (tail) ---\n${tail(logs.text(), 8000)}`);
    }
  };

  const running = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;

  const terminate = async (signal: NodeJS.Signals): Promise<ExitInfo> => {
    const c = child;
    if (c === undefined || !running()) return exited;
    c.kill(signal);
    const timer = new Promise<'timeout'>((resolve) => {
      const t = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
      t.unref();
    });
    const first = await Promise.race([exited, timer]);
    if (first !== 'timeout') return first;
    logs.push(`--- did not exit ${STOP_TIMEOUT_MS} ms after ${signal}; sending SIGKILL ---\n`);
    c.kill('SIGKILL');
    return exited;
  };

  const ca: CaProcess = {
    directoryUrl,
    rootPem,
    dataDir,
    ports,
    dns,
    txtDir,
    get pid() {
      return running() ? child?.pid : undefined;
    },
    stop: () => terminate('SIGTERM'),
    kill9: () => terminate('SIGKILL'),
    restart: async () => {
      await terminate('SIGTERM');
      await spawnServer();
    },
    logs: () => logs.text(),
    cleanup: async () => {
      liveCas.delete(ca);
      await terminate('SIGTERM');
      if (ownsDns) await dns.close();
    },
  };
  liveCas.add(ca);
  try {
    await spawnServer();
  } catch (err) {
    liveCas.delete(ca);
    if (ownsDns) await dns.close();
    throw err;
  }
  return ca;
}

/** Last `max` characters, so error messages stay readable but keep the failure. */
export function tail(s: string, max: number): string {
  return s.length <= max ? s : `…${s.slice(s.length - max)}`;
}

async function waitReady(directoryUrl: string, rootPem: string, exited: Promise<ExitInfo>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitInfo: ExitInfo | undefined;
  void exited.then((e) => {
    exitInfo = e;
  });
  let lastError = 'no attempt made';
  while (Date.now() < deadline) {
    if (exitInfo !== undefined) {
      throw new Error(`CA exited before becoming ready (code=${exitInfo.code} signal=${exitInfo.signal})`);
    }
    // root.pem appears on first start before the listener is up; without it we cannot trust TLS.
    if (fs.existsSync(rootPem)) {
      try {
        const status = await getStatus(directoryUrl, fs.readFileSync(rootPem), Math.min(2000, deadline - Date.now()));
        if (status === 200) return;
        lastError = `GET /directory answered ${status}`;
      } catch (err) {
        lastError = (err as Error).message;
      }
    } else {
      lastError = `${rootPem} not written yet`;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`CA not ready after ${timeoutMs} ms: ${lastError}`);
}

/** One probe on its own connection: the status alone, whatever it is. */
async function getStatus(url: string, ca: string | Buffer, timeoutMs: number): Promise<number> {
  return (await httpGet(url, { ca, agent: false, timeoutMs: Math.max(timeoutMs, 100) })).status;
}
