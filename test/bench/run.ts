import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { buildCsr, generateCsrKey } from '../support/acme-test-client.js';
import { REPO_ROOT } from '../support/ca-process.js';
import { TestDnsServer } from '../support/dns-server.js';
import { prefillCertificates, type PrefillResult } from './cert-scale.js';
import { cryptoCeiling, type CryptoCeiling } from './crypto-ceiling.js';
import { createAccounts, keepAliveProbe, runLevel, type KeepAliveProbe, type LevelResult, type OrderWork } from './load.js';
import { logScale, type LogScaleResult } from './log-scale.js';
import { inclusiveTimes, summarizeProfile, type ProfileSummary } from './profile.js';
import { BenchHttp01Responder } from './responder.js';
import { pebbleInstalled, startOurs, startPebble, type ServerHandle } from './servers.js';
import { fmt, ratio, round, table } from './stats.js';

/*
 * `npm run bench`: our server and (when Debian's pebble is installed) Pebble under the same ACME
 * load, plus the crypto floor, the issuance log at 1M entries and CPU per order with 10k vs 1M
 * certificates stored. A benchmark, never a test: nothing is asserted, targets are printed.
 *
 *   node dist/test/bench/run.js [--orders N] [--accounts K] [--concurrency 1,8,32] [--quick]
 *     [--no-pebble] [--skip-log-scale] [--skip-cert-scale] [--cpu-prof] [--poll-default-ms MS]
 *     [--log-level LEVEL] [--log-entries N] [--scale-certs A,B] [--scale-orders N] [--scale-concurrency C]
 */

interface Args {
  orders: number | null;
  accounts: number;
  concurrency: number[];
  quick: boolean;
  pebble: boolean;
  logScale: boolean;
  certScale: boolean;
  cpuProf: boolean;
  defaultPollMs: number;
  logLevel: string;
  logEntries: number;
  scaleCerts: [number, number];
  scaleOrders: number;
  scaleConcurrency: number;
}

const USAGE = `usage: node dist/test/bench/run.js [--orders N] [--accounts K] [--concurrency 1,8,32] [--quick] [--no-pebble]
  [--skip-log-scale] [--skip-cert-scale] [--cpu-prof] [--poll-default-ms MS] [--log-level LEVEL]
  [--log-entries N] [--scale-certs 10000,1000000] [--scale-orders N] [--scale-concurrency C]`;

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): Args {
  const quick = argv.includes('--quick');
  const a: Args = {
    orders: null, accounts: quick ? 4 : 10, concurrency: [1, 8, 32], quick, pebble: true, logScale: true, certScale: true, cpuProf: false,
    defaultPollMs: 1000, logLevel: 'info', logEntries: quick ? 20_000 : 1_000_000, scaleCerts: quick ? [10_000, 50_000] : [10_000, 1_000_000],
    scaleOrders: quick ? 8 : 320, scaleConcurrency: quick ? 8 : 32,
  };
  const int = (v: string | undefined, flag: string, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) throw new UsageError(`${flag} needs an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    switch (f) {
      case '--quick': break;
      case '--orders': a.orders = int(argv[++i], f, 1); break;
      case '--accounts': a.accounts = int(argv[++i], f, 1); break;
      case '--concurrency': {
        const v = argv[++i];
        const list = (v ?? '').split(',').map((x) => Number(x.trim()));
        if (list.length === 0 || !list.every((n) => Number.isInteger(n) && n >= 1 && n <= 256)) throw new UsageError('--concurrency needs a list such as 1,8,32');
        a.concurrency = list;
        break;
      }
      case '--no-pebble': a.pebble = false; break;
      case '--skip-log-scale': a.logScale = false; break;
      case '--skip-cert-scale': a.certScale = false; break;
      case '--cpu-prof': a.cpuProf = true; break;
      case '--poll-default-ms': a.defaultPollMs = int(argv[++i], f, 0); break;
      case '--log-level': {
        const v = argv[++i];
        if (!v || !['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(v)) throw new UsageError('--log-level needs fatal|error|warn|info|debug|trace|silent');
        a.logLevel = v;
        break;
      }
      case '--log-entries': a.logEntries = int(argv[++i], f, 2000); break;
      case '--scale-certs': {
        const v = (argv[++i] ?? '').split(',').map(Number);
        if (v.length !== 2 || !v.every((n) => Number.isInteger(n) && n >= 0)) throw new UsageError('--scale-certs needs two counts, e.g. 10000,1000000');
        a.scaleCerts = [v[0], v[1]];
        break;
      }
      case '--scale-orders': a.scaleOrders = int(argv[++i], f, 1); break;
      case '--scale-concurrency': a.scaleConcurrency = int(argv[++i], f, 1); break;
      case '-h': case '--help': throw new UsageError('');
      default: throw new UsageError(`unknown argument ${f}`);
    }
  }
  return a;
}

/** Orders per level: enough for stable figures, bounded so that a full run stays near 10 minutes. */
function ordersFor(a: Args, c: number): number {
  if (a.orders !== null) return a.orders;
  if (a.quick) return Math.min(32, Math.max(2, c));
  return c === 1 ? 20 : Math.min(320, 20 * c);
}

/** Wait after a level before reading CPU: our checkpoint publisher signs within 1 s of the last issuance. */
const settleMs = (a: Args): number => (a.quick ? 1100 : 1500);

const log = (s: string): void => { process.stderr.write(`${s}\n`); };

interface ServerRun {
  server: 'ours' | 'pebble';
  warmup: LevelResult;
  keepAlive: KeepAliveProbe;
  levels: LevelResult[];
}

interface ScaleRun { certificates: number; prefill: PrefillResult; level: LevelResult }

interface Target { target: string; value: string; goal: string; met: boolean | null }

async function makeWork(prefix: string, n: number): Promise<OrderWork[]> {
  const out: OrderWork[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${prefix}-${i}.bench.test`;
    out.push({ name, csrDer: await buildCsr({ keys: await generateCsrKey('P-256'), dnsNames: [name] }) });
  }
  return out;
}

const HOT_PATHS = ['verifyRequest', 'verifySignature', 'keyFromJwk', 'issueLeaf', 'buildCertificate', 'parseCsr', 'issue', 'issueCertificate',
  'appendSync', 'issueNonce', 'createNonce', 'consumeNonce', 'renderOrder', 'Http01Validator.validate', 'validate', 'completeChallenge', 'publish', 'onSend'];

async function runServer(kind: 'ours' | 'pebble', a: Args, ctx: { tmp: string; outDir: string; runId: string; dns: TestDnsServer; responder: BenchHttp01Responder; work: Map<number, OrderWork[]>; warm: OrderWork[] }): Promise<ServerRun> {
  const logFile = path.join(ctx.tmp, `${kind}.log`);
  const profDir = path.join(ctx.outDir, 'profiles');
  let server: ServerHandle;
  if (kind === 'ours') {
    const nodeArgs = a.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-name', `ours-${ctx.runId}.cpuprofile`] : [];
    if (a.cpuProf) fs.mkdirSync(profDir, { recursive: true });
    server = await startOurs({ dataDir: path.join(ctx.tmp, 'ours-data'), http01Port: ctx.responder.port, dnsResolver: ctx.dns.resolverAddress, logLevel: a.logLevel, logFile, nodeArgs });
  } else {
    server = await startPebble({ workDir: path.join(ctx.tmp, 'pebble'), http01Port: ctx.responder.port, dnsResolver: ctx.dns.resolverAddress, logFile });
  }
  const windows: Array<{ label: string; from: number; to: number }> = [];
  try {
    const accounts = await createAccounts(server, a.accounts, a.defaultPollMs);
    const common = { accounts, responder: ctx.responder, defaultPollMs: a.defaultPollMs, settleMs: settleMs(a), orderTimeoutMs: 120_000 };
    log(`[${kind}] pid ${server.pid}: ${a.accounts} accounts; warm-up ${ctx.warm.length} orders`);
    const warmup = await runLevel(server, { ...common, label: 'warm-up', concurrency: 4, work: ctx.warm });
    const keepAlive = await keepAliveProbe(server, accounts[warmup.lastOrder?.accountIndex ?? 0], warmup.lastOrder?.url ?? null);
    const levels: LevelResult[] = [];
    for (const c of a.concurrency) {
      const work = ctx.work.get(c)!;
      const from = Date.now();
      const r = await runLevel(server, { ...common, label: `C=${c}`, concurrency: c, work });
      windows.push({ label: `C=${c}`, from: from - server.spawnedAt, to: Date.now() - server.spawnedAt });
      log(`[${kind}] C=${c}: ${r.completed}/${r.orders} orders in ${(r.wallMs / 1000).toFixed(1)} s, ${fmt(r.cpuMsPerOrder)} CPU ms/order, ${r.errors} errors`);
      levels.push(r);
    }
    return { server: kind, warmup, keepAlive, levels };
  } finally {
    const exit = await server.stop();
    if (kind === 'ours' && a.cpuProf) readProfile(path.join(profDir, `ours-${ctx.runId}.cpuprofile`), exit, windows);
  }
}

/** Summarizes our server's profile over the C=8 level (or the last level run). */
function readProfile(file: string, exit: { code: number | null; signal: NodeJS.Signals | null }, windows: ReadonlyArray<{ label: string; from: number; to: number }>): void {
  if (!fs.existsSync(file)) {
    log(`[ours] no CPU profile at ${file} (server exit ${JSON.stringify(exit)})`);
    return;
  }
  const w = windows.find((x) => x.label === 'C=8') ?? windows[windows.length - 1];
  if (!w) return;
  profiles.set('ours', { ...summarizeProfile(file, REPO_ROOT, w.from, w.to), inclusiveMs: inclusiveTimes(file, HOT_PATHS, w.from, w.to), levelLabel: w.label });
}

const profiles = new Map<string, ProfileSummary & { inclusiveMs: Record<string, number>; levelLabel: string }>();

async function runScale(a: Args, certs: number, ctx: { tmp: string; dns: TestDnsServer; responder: BenchHttp01Responder; work: OrderWork[]; warm: OrderWork[] }): Promise<ScaleRun> {
  const dataDir = path.join(ctx.tmp, `scale-${certs}`);
  log(`[scale] pre-filling ${certs.toLocaleString('en-US')} certificates`);
  const prefill = await prefillCertificates(dataDir, certs);
  const server = await startOurs({ dataDir, http01Port: ctx.responder.port, dnsResolver: ctx.dns.resolverAddress, logLevel: a.logLevel, logFile: path.join(ctx.tmp, `scale-${certs}.log`) });
  try {
    const accounts = await createAccounts(server, a.accounts, a.defaultPollMs);
    const common = { accounts, responder: ctx.responder, defaultPollMs: a.defaultPollMs, settleMs: settleMs(a), orderTimeoutMs: 120_000 };
    // --quick has no time for a warm-up here: both scale runs are then equally cold.
    if (!a.quick) await runLevel(server, { ...common, label: 'warm-up', concurrency: 4, work: ctx.warm });
    const level = await runLevel(server, { ...common, label: `${certs} certs C=${a.scaleConcurrency}`, concurrency: a.scaleConcurrency, work: ctx.work });
    log(`[scale] ${certs.toLocaleString('en-US')} certs: ${fmt(level.cpuMsPerOrder)} CPU ms/order, ${level.errors} errors`);
    return { certificates: certs, prefill, level };
  } finally {
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function levelRows(runs: ServerRun[]): Array<Array<string | number>> {
  return runs.flatMap((r) => r.levels.map((l) => [
    r.server, l.concurrency, l.completed, l.errors, l.ordersPerSec, l.cpuMsPerOrder, l.orderMs.p50, l.orderMs.p99,
    l.finalizeToValidMs.p50, l.finalizeToValidMs.p99, l.peakRssMb, l.requestsPerOrder, l.client.newConnections,
    round(100 * l.pollSleepShare, 0),
  ]));
}

function targets(ours: ServerRun | undefined, pebble: ServerRun | undefined, scale: ScaleRun[]): Target[] {
  const out: Target[] = [];
  if (!ours) return out;
  const at = (r: ServerRun | undefined, c: number): LevelResult | undefined => r?.levels.find((l) => l.concurrency === c);
  const cs = ours.levels.map((l) => l.concurrency);
  for (const c of cs) {
    const o = at(ours, c)!;
    const p = at(pebble, c);
    const rc = ratio(o.cpuMsPerOrder, p?.cpuMsPerOrder);
    out.push({ target: `CPU/order ≤ 0.5× Pebble (C=${c})`, value: p ? `${fmt(o.cpuMsPerOrder)} vs ${fmt(p.cpuMsPerOrder)} ms = ${fmt(rc)}×` : `${fmt(o.cpuMsPerOrder)} ms (no Pebble)`, goal: '≤ 0.5×', met: p ? rc <= 0.5 : null });
    out.push({ target: `CPU/order ≤ 3 ms, stretch (C=${c})`, value: `${fmt(o.cpuMsPerOrder)} ms`, goal: '≤ 3 ms', met: o.cpuMsPerOrder <= 3 });
    out.push({ target: `orders/s ≥ Pebble (C=${c})`, value: p ? `${fmt(o.ordersPerSec)} vs ${fmt(p.ordersPerSec)}` : `${fmt(o.ordersPerSec)} (no Pebble)`, goal: '≥ 1×', met: p ? o.ordersPerSec >= p.ordersPerSec : null });
  }
  const o1 = at(ours, 1);
  const p1 = at(pebble, 1);
  if (o1) out.push({ target: 'p99 finalize→valid ≤ Pebble (C=1)', value: p1 ? `${fmt(o1.finalizeToValidMs.p99)} vs ${fmt(p1.finalizeToValidMs.p99)} ms` : `${fmt(o1.finalizeToValidMs.p99)} ms (no Pebble)`, goal: '≤ 1×', met: p1 ? o1.finalizeToValidMs.p99 <= p1.finalizeToValidMs.p99 : null });
  const errors = [...ours.levels, ...(pebble?.levels ?? []), ...scale.map((s) => s.level)].reduce((n, l) => n + l.errors, 0);
  out.push({ target: '0 errors (all runs)', value: String(errors), goal: '0', met: errors === 0 });
  const o32 = at(ours, 32) ?? ours.levels[ours.levels.length - 1];
  out.push({ target: `peak RSS ≤ 200 MB (C=${o32.concurrency})`, value: `${fmt(o32.peakRssMb)} MB`, goal: '≤ 200 MB', met: o32.peakRssMb <= 200 });
  if (scale.length === 2) {
    const [small, big] = scale;
    const r = ratio(big.level.cpuMsPerOrder, small.level.cpuMsPerOrder);
    out.push({ target: `CPU/order with ${big.certificates.toLocaleString('en-US')} certs within 10% of ${small.certificates.toLocaleString('en-US')}`, value: `${fmt(big.level.cpuMsPerOrder)} vs ${fmt(small.level.cpuMsPerOrder)} ms = ${fmt(r)}×`, goal: '≤ 1.10×', met: r <= 1.1 });
  }
  return out;
}

export async function main(argv: readonly string[]): Promise<number> {
  let a: Args;
  try {
    a = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message ? `${e.message}\n` : ''}${USAGE}\n`);
      return e.message ? 2 : 0;
    }
    throw e;
  }
  const t0 = performance.now();
  const startedAt = new Date();
  const runId = startedAt.toISOString().replace(/[:.]/g, '-');
  const outDir = path.join(REPO_ROOT, 'bench-results');
  fs.mkdirSync(outDir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'acme-bench-'));
  const withPebble = a.pebble && pebbleInstalled();
  const notes: string[] = [];
  if (a.pebble && !withPebble) notes.push('Pebble not run: /usr/bin/pebble is not installed (apt-get install -y pebble)');
  if (a.cpuProf) notes.push('our server ran under node --cpu-prof: its CPU figures include profiler overhead');
  notes.push(`polls wait exactly Retry-After when a response has one, ${a.defaultPollMs} ms when it has none (the same rule for both servers)`);
  notes.push(`our server runs with ACME_CA_LOG_LEVEL=${a.logLevel} (output to a file), fresh data folder, SQLite WAL with synchronous FULL (its production setting)`);
  notes.push(`each server gets a warm-up of orders at C=4 before the measured levels (not reported in the table)${a.quick ? '; --quick: not the two scale runs' : ''}`);

  const dns = new TestDnsServer({ suffixes: ['test'] });
  const responder = new BenchHttp01Responder();
  const phases: Record<string, number> = {};
  const phase = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const s = performance.now();
    try { return await f(); } finally { phases[name] = round((performance.now() - s) / 1000, 1); }
  };
  try {
    await dns.start();
    await responder.start();

    log(`crypto ceiling …`);
    const crypto: CryptoCeiling = await phase('crypto', () => cryptoCeiling({ msPerOp: a.quick ? 150 : 600 }));

    log('generating CSRs …');
    const work = new Map<number, OrderWork[]>();
    const warm = await makeWork(`warm-${runId.slice(11, 19)}`, a.quick ? 4 : Math.max(8, a.accounts));
    let scaleWork: OrderWork[] = [];
    await phase('csrs', async () => {
      for (const c of a.concurrency) work.set(c, await makeWork(`c${c}-${runId.slice(11, 19)}`, ordersFor(a, c)));
      if (a.certScale) scaleWork = await makeWork(`scale-${runId.slice(11, 19)}`, a.scaleOrders);
    });

    const runs: ServerRun[] = [];
    const shared = { tmp, outDir, runId, dns, responder, work, warm };
    runs.push(await phase('ours', () => runServer('ours', a, shared)));
    if (withPebble) runs.push(await phase('pebble', () => runServer('pebble', a, shared)));

    const scale: ScaleRun[] = [];
    if (a.certScale) {
      await phase('cert-scale', async () => {
        for (const n of a.scaleCerts) scale.push(await runScale(a, n, { tmp, dns, responder, work: scaleWork, warm }));
      });
    }

    let logResult: LogScaleResult | null = null;
    if (a.logScale) {
      log(`[log] building a ${a.logEntries.toLocaleString('en-US')}-entry issuance log …`);
      logResult = await phase('log-scale', () => logScale({ dir: path.join(tmp, 'log-scale'), targetSize: a.logEntries, smallSize: 1000, samples: a.quick ? 100 : 300, progress: log }));
    }

    // ---------------------------------------------------------------- report
    const ours = runs.find((r) => r.server === 'ours');
    const pebble = runs.find((r) => r.server === 'pebble');
    const out: string[] = [];
    out.push('');
    out.push(`ACME load: ${a.accounts} accounts, full orders (newOrder → authz → http-01 → challenge → poll → finalize → poll → download), one name per order`);
    for (const r of runs) {
      const broken = Object.entries(r.keepAlive.kinds).filter(([, k]) => k.newConnections > 0 || k.connectionClose > 0);
      out.push(`keep-alive (${r.server}): ${r.keepAlive.ok ? 'every response kind kept the connection open' : `new connection after ${broken.map(([n, k]) => `${n} (${k.newConnections}/${k.requests})`).join(', ')}`}`);
    }
    out.push(table(['server', 'C', 'orders', 'errors', 'orders/s', 'CPU ms/order', 'p50 order ms', 'p99 order ms', 'p50 fin→valid', 'p99 fin→valid', 'peak RSS MB', 'req/order', 'new conns', 'poll sleep %'], levelRows(runs)));
    if (ours && pebble) {
      out.push('');
      out.push('ours / Pebble (lower is better except orders/s)');
      out.push(table(['C', 'CPU/order', 'orders/s', 'p50 order', 'p99 order', 'p50 fin→valid', 'p99 fin→valid', 'peak RSS'], ours.levels.map((o) => {
        const p = pebble.levels.find((l) => l.concurrency === o.concurrency);
        return [o.concurrency, ratio(o.cpuMsPerOrder, p?.cpuMsPerOrder), ratio(o.ordersPerSec, p?.ordersPerSec), ratio(o.orderMs.p50, p?.orderMs.p50),
          ratio(o.orderMs.p99, p?.orderMs.p99), ratio(o.finalizeToValidMs.p50, p?.finalizeToValidMs.p50), ratio(o.finalizeToValidMs.p99, p?.finalizeToValidMs.p99), ratio(o.peakRssMb, p?.peakRssMb)];
      })));
    }
    out.push('');
    out.push('crypto ceiling on this machine (one core)');
    out.push(table(['operation', 'per second', 'CPU ms/op'], [
      ['ES256 sign (node:crypto, cached KeyObject)', crypto.es256SignNode.perSec, crypto.es256SignNode.cpuMsPerOp],
      ['ES256 verify (node:crypto, cached KeyObject)', crypto.es256VerifyNode.perSec, crypto.es256VerifyNode.cpuMsPerOp],
      ['ES256 verify (jose flattenedVerify, cached KeyObject)', crypto.es256VerifyJose.perSec, crypto.es256VerifyJose.cpuMsPerOp],
      ['certificate build+sign (server/ca/leaf.ts issueLeaf)', crypto.issueLeaf.perSec, crypto.issueLeaf.cpuMsPerOp],
      ['CSR parse+verify (server/ca/csr.ts parseCsr)', crypto.parseCsr.perSec, crypto.parseCsr.cpuMsPerOp],
    ]));
    const best = ours ? Math.min(...ours.levels.map((l) => l.cpuMsPerOrder)) : NaN;
    out.push(`floor per order: ${fmt(crypto.floorRawMsPerOrder)} ms raw (${crypto.jwsPerOrder} ES256 verifies + 1 ES256 sign), `
      + `${fmt(crypto.floorLibMsPerOrder)} ms with our libraries (${crypto.jwsPerOrder} jose verifies + issueLeaf + 2× parseCsr); `
      + `our best measured ${fmt(best)} ms = ${fmt(best / crypto.floorLibMsPerOrder)}× the library floor`);
    if (scale.length > 0) {
      out.push('');
      out.push(`our server with certificates already stored (C=${a.scaleConcurrency}, ${a.scaleOrders} orders each)`);
      out.push(table(['stored certs', 'prefill s', 'db MB', 'orders/s', 'CPU ms/order', 'p50 order ms', 'p99 order ms', 'p99 fin→valid', 'peak RSS MB', 'errors'],
        scale.map((s) => [s.certificates, s.prefill.seconds, s.prefill.fileMb, s.level.ordersPerSec, s.level.cpuMsPerOrder, s.level.orderMs.p50, s.level.orderMs.p99, s.level.finalizeToValidMs.p99, s.level.peakRssMb, s.level.errors])));
      out.push(`note: ${scale[0].prefill.note}`);
    }
    if (logResult) {
      out.push('');
      out.push(`issuance log (separate SQLite file, WAL, synchronous FULL): ${logResult.targetSize.toLocaleString('en-US')} entries built in ${logResult.buildSeconds} s (${logResult.buildAppendsPerSec}/s), ${logResult.fileMb} MB`);
      out.push(table(['log size', 'append p50 ms', 'append p99 ms', 'append CPU ms', 'incl. proof p50 ms', 'incl. proof p99 ms', 'lookup p50 ms', 'lookup p99 ms', 'entry read p50 ms', 'entry read p99 ms'],
        [logResult.small, logResult.large].map((p) => [p.size, p.appendMs.p50, p.appendMs.p99, p.appendCpuMs, p.inclusionProofMs.p50, p.inclusionProofMs.p99, p.lookupMs.p50, p.lookupMs.p99, p.entryReadMs.p50, p.entryReadMs.p99])));
      out.push(`note: ${logResult.note}`);
    }
    const prof = profiles.get('ours');
    if (prof) {
      out.push('');
      out.push(`CPU profile of our server during ${prof.levelLabel} (${prof.sampledMs} ms busy — on CPU or blocked in a synchronous call — of a ${prof.windowMs} ms window, GC ${prof.gcMs} ms): ${prof.file}`);
      out.push(table(['self ms', 'self %', 'total %', 'function', 'location'], prof.top.slice(0, 12).map((h) => [h.selfMs, h.selfPct, h.totalPct, h.function, h.location])));
      out.push(table(['module', 'self ms', 'self %'], prof.modules.map((m) => [m.module, m.selfMs, m.selfPct])));
      out.push(`inclusive ms: ${Object.entries(prof.inclusiveMs).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    }
    const tg = targets(ours, pebble, scale);
    out.push('');
    out.push('targets (printed, not asserted)');
    out.push(table(['target', 'measured', 'goal', 'met'], tg.map((t) => [t.target, t.value, t.goal, t.met === null ? 'n/a' : t.met ? 'yes' : 'NO'])));
    const errorSamples = [...runs.flatMap((r) => r.levels), ...scale.map((s) => s.level)].flatMap((l) => l.errorSamples.map((e) => `${l.server} ${l.label}: ${e}`));
    if (errorSamples.length > 0) {
      out.push('');
      out.push('errors (first few):');
      for (const e of errorSamples.slice(0, 10)) out.push(`  ${e}`);
    }
    out.push('');
    notes.push(`orders/s at these concurrencies is bounded by the poll cadence: an order sleeps about 2 × ${Math.max(1000, a.defaultPollMs)} ms between polls, so at most about C / ${(2 * Math.max(1000, a.defaultPollMs) / 1000).toFixed(0)} orders/s whatever the server's speed`);
    for (const r of runs) if (!r.keepAlive.ok) notes.push(`${r.server} closed kept-alive connections (see keep-alive above): it pays extra TLS handshakes under the same client`);
    for (const n of notes) out.push(`note: ${n}`);

    const finishedAt = new Date();
    const result = {
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationSeconds: round((performance.now() - t0) / 1000, 1),
      phaseSeconds: phases,
      command: [process.argv0, ...process.argv.slice(1)].join(' '),
      args: argv,
      effective: { ...a, ordersPerLevel: Object.fromEntries(a.concurrency.map((c) => [c, ordersFor(a, c)])), pebble: withPebble },
      machine: {
        cores: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', memoryMb: Math.round(os.totalmem() / 1024 / 1024),
        node: process.version, platform: `${os.platform()} ${os.release()}`,
      },
      crypto,
      servers: Object.fromEntries(runs.map((r) => [r.server, { warmup: r.warmup, keepAlive: r.keepAlive, levels: r.levels }])),
      ratios: ours && pebble ? ours.levels.map((o) => {
        const p = pebble.levels.find((l) => l.concurrency === o.concurrency);
        return {
          concurrency: o.concurrency, cpuMsPerOrder: ratio(o.cpuMsPerOrder, p?.cpuMsPerOrder), ordersPerSec: ratio(o.ordersPerSec, p?.ordersPerSec),
          orderP50: ratio(o.orderMs.p50, p?.orderMs.p50), orderP99: ratio(o.orderMs.p99, p?.orderMs.p99),
          finalizeToValidP50: ratio(o.finalizeToValidMs.p50, p?.finalizeToValidMs.p50), finalizeToValidP99: ratio(o.finalizeToValidMs.p99, p?.finalizeToValidMs.p99),
          peakRss: ratio(o.peakRssMb, p?.peakRssMb),
        };
      }) : null,
      certScale: scale,
      logScale: logResult,
      profile: prof ?? null,
      targets: tg,
      notes,
    };
    const json = `${JSON.stringify(result, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`;
    const file = path.join(outDir, `${runId}.json`);
    fs.writeFileSync(file, json);
    fs.writeFileSync(path.join(outDir, 'latest.json'), json);

    process.stdout.write(`${out.join('\n')}\n\n`);
    process.stdout.write(`results: ${path.relative(process.cwd(), file) || file} (and bench-results/latest.json), ${result.durationSeconds} s\n`);
    process.stdout.write(`reproduce with: npm run bench --${argv.length ? ` ${argv.join(' ')}` : ''}\n`);
    return 0;
  } finally {
    await responder.close();
    await dns.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// Runs only as the entry point, never on import (and never inside `node --test`, which executes
// every file under dist/test/ as its own process).
const entry = process.argv[1] ? pathToFileURL(path.resolve(process.argv[1])).href : '';
if (entry === import.meta.url && process.env.NODE_TEST_CONTEXT === undefined) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}

