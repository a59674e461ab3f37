import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePorts } from '../support/ports.js';
import { REPO_ROOT } from '../support/ca-process.js';
import { httpGet } from '../support/http.js';

/*
 * Starts the servers under test as separate processes (so /proc shows their own CPU and memory)
 * and stops them by the PID we spawned, never by name. Output goes to a log file, not through a
 * pipe into the load generator, so reading it costs the load generator nothing.
 */

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

export interface ServerHandle {
  name: 'ours' | 'pebble';
  pid: number;
  directoryUrl: string;
  /** PEM the client must trust for the server's TLS certificate. */
  tlsCaPem: string;
  logFile: string;
  /** Wall-clock time (Date.now()) the process was spawned. */
  spawnedAt: number;
  /** SIGTERM, wait, SIGKILL after a timeout. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

interface Spawned {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  // Last resort if the benchmark dies: only processes this module spawned.
  for (const c of live) {
    try { if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

function spawnLogged(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, logFile: string): Spawned {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  live.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => { live.delete(child); resolve({ code, signal }); });
    child.once('error', () => { live.delete(child); resolve({ code: null, signal: null }); });
  });
  const stop = async (): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    if (child.exitCode !== null || child.signalCode !== null) return exited;
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), STOP_TIMEOUT_MS); });
    const first = await Promise.race([exited, t]);
    clearTimeout(timer);
    if (first !== 'timeout') return first;
    child.kill('SIGKILL');
    return exited;
  };
  return { child, exited, stop };
}

/** One probe on its own connection: the status alone, whatever it is. */
async function getStatus(url: string, ca: string | Buffer, timeoutMs: number): Promise<number> {
  return (await httpGet(url, { ca, agent: false, timeoutMs: Math.max(timeoutMs, 100) })).status;
}

async function waitReady(url: string, caFile: string, s: Spawned, logFile: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exited = false;
  void s.exited.then(() => { exited = true; });
  let last = 'no attempt';
  while (Date.now() < deadline) {
    if (exited) break;
    if (fs.existsSync(caFile)) {
      try {
        const status = await getStatus(url, fs.readFileSync(caFile), 2000);
        if (status === 200) return;
        last = `GET ${url} answered ${status}`;
      } catch (e) {
        last = (e as Error).message;
      }
    } else {
      last = `${caFile} not written yet`;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await s.stop();
  const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-4000) : '';
  throw new Error(`${url} not ready (${exited ? 'process exited' : last})\n--- log tail ---\n${tail}`);
}

export interface OursOptions {
  dataDir: string;
  http01Port: number;
  dnsResolver: string;
  logLevel: string;
  logFile: string;
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
  nodeArgs?: string[];
}

export async function startOurs(o: OursOptions): Promise<ServerHandle> {
  const entry = path.join(REPO_ROOT, 'dist', 'server', 'main.js');
  if (!fs.existsSync(entry)) throw new Error(`${entry} does not exist; build first (npx tsc -p tsconfig.json)`);
  const [port, tlsAlpn] = await freePorts(2);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ACME_CA_DATA_DIR: o.dataDir,
    ACME_CA_LISTEN: `https://127.0.0.1:${port}`,
    ACME_CA_HTTP01_PORT: String(o.http01Port),
    ACME_CA_TLSALPN01_PORT: String(tlsAlpn),
    ACME_CA_DNS_RESOLVER: o.dnsResolver,
    ACME_CA_LOG_LEVEL: o.logLevel,
  };
  delete env.ACME_CA_CONFIG;
  delete env.NODE_OPTIONS;
  const spawnedAt = Date.now();
  const s = spawnLogged(process.execPath, [...(o.nodeArgs ?? []), entry], env, REPO_ROOT, o.logFile);
  const directoryUrl = `https://127.0.0.1:${port}/directory`;
  const rootFile = path.join(o.dataDir, 'root.pem');
  await waitReady(directoryUrl, rootFile, s, o.logFile);
  return {
    name: 'ours', pid: s.child.pid!, directoryUrl, tlsCaPem: fs.readFileSync(rootFile, 'utf8'), logFile: o.logFile, spawnedAt, stop: s.stop,
  };
}

export const PEBBLE_BIN = '/usr/bin/pebble';

export function pebbleInstalled(): boolean {
  try {
    fs.accessSync(PEBBLE_BIN, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, _out, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve()));
  });
}

export interface PebbleOptions {
  workDir: string;
  http01Port: number;
  dnsResolver: string;
  logFile: string;
}

/** Debian's Pebble 2.4 with sleeps, nonce rejection and authorization reuse off. */
export async function startPebble(o: PebbleOptions): Promise<ServerHandle> {
  fs.mkdirSync(o.workDir, { recursive: true });
  const cert = path.join(o.workDir, 'pebble-tls.pem');
  const key = path.join(o.workDir, 'pebble-tls.key');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  const [port, mgmt, tlsPort] = await freePorts(3);
  const config = path.join(o.workDir, 'pebble-config.json');
  fs.writeFileSync(config, JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${port}`, managementListenAddress: `127.0.0.1:${mgmt}`, certificate: cert, privateKey: key,
      httpPort: o.http01Port, tlsPort, ocspResponderURL: '', externalAccountBindingRequired: false,
    },
  }, null, 2));
  const env: NodeJS.ProcessEnv = { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' };
  const spawnedAt = Date.now();
  const s = spawnLogged(PEBBLE_BIN, ['-config', config, '-dnsserver', o.dnsResolver, '-strict=false'], env, o.workDir, o.logFile);
  const directoryUrl = `https://127.0.0.1:${port}/dir`;
  await waitReady(directoryUrl, cert, s, o.logFile);
  return { name: 'pebble', pid: s.child.pid!, directoryUrl, tlsCaPem: fs.readFileSync(cert, 'utf8'), logFile: o.logFile, spawnedAt, stop: s.stop };
}
