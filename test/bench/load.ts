import { X509Certificate } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { AcmeError, BenchClient, generateBenchAccountKey, type BenchAccount, type ClientCounters } from './client.js';
import { cpuDelta, processCpu, processMemory, resetPeakRss, selfCpuMs } from './proc.js';
import type { BenchHttp01Responder } from './responder.js';
import type { ServerHandle } from './servers.js';
import { round, summarize, type Summary } from './stats.js';

/*
 * The load: K accounts completing N full orders at concurrency C, the same way against every server:
 * newOrder → authz → http-01 (served by the benchmark) → challenge → poll authz → finalize with a
 * pre-generated ECDSA P-256 CSR → poll order → download. Server CPU comes from /proc before and
 * after the level; a short settle lets deferred work (checkpoint signing) land in the level.
 */

export interface OrderWork {
  name: string;
  csrDer: Uint8Array;
}

export interface LevelOptions {
  label: string;
  concurrency: number;
  work: OrderWork[];
  accounts: BenchAccount[];
  responder: BenchHttp01Responder;
  defaultPollMs: number;
  /** Wait after the last order before reading the server's CPU time. */
  settleMs: number;
  /** Bound on one order's wall time. */
  orderTimeoutMs: number;
}

export interface LevelResult {
  /** An order completed in this level and the index of its account (for follow-up probes). */
  lastOrder: { url: string; accountIndex: number } | null;
  server: string;
  label: string;
  concurrency: number;
  orders: number;
  completed: number;
  errors: number;
  errorSamples: string[];
  wallMs: number;
  ordersPerSec: number;
  serverCpuMs: number;
  serverCpuUserMs: number;
  serverCpuSystemMs: number;
  /** The primary figure: server user+system CPU per full order. */
  cpuMsPerOrder: number;
  /** VmHWM during the level (reset before it when the kernel allows), MiB. */
  peakRssMb: number;
  peakRssIsLevelOnly: boolean;
  rssAfterMb: number;
  orderMs: Summary;
  finalizeToValidMs: Summary;
  /** Share of an order's wall time spent sleeping between polls (as Retry-After asked). */
  pollSleepShare: number;
  requestsPerOrder: number;
  client: ClientCounters;
  loadGeneratorCpuMs: number;
}

interface OrderSample {
  orderUrl: string;
  accountIndex: number;
  totalMs: number;
  finalizeToValidMs: number;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new Error(`expected ${what} to be a string, got ${JSON.stringify(v)}`);
  return v;
}

function strArray(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`expected ${what} to be an array of strings, got ${JSON.stringify(v)}`);
  return v as string[];
}

function objArray(v: unknown, what: string): Array<Record<string, unknown>> {
  if (!Array.isArray(v) || !v.every((x) => x !== null && typeof x === 'object')) throw new Error(`expected ${what} to be an array of objects`);
  return v as Array<Record<string, unknown>>;
}

export async function createAccounts(server: ServerHandle, count: number, defaultPollMs: number): Promise<BenchAccount[]> {
  const client = new BenchClient({ directoryUrl: server.directoryUrl, tlsCaPem: server.tlsCaPem, maxSockets: 4, defaultPollMs });
  try {
    await client.connect();
    const out: BenchAccount[] = [];
    for (let i = 0; i < count; i++) out.push(await client.newAccount(generateBenchAccountKey()));
    return out;
  } finally {
    client.close();
  }
}

async function fullOrder(client: BenchClient, account: BenchAccount, w: OrderWork, responder: BenchHttp01Responder): Promise<Omit<OrderSample, 'accountIndex'>> {
  const t0 = performance.now();
  const created = await client.post(account, client.directory.newOrder, { identifiers: [{ type: 'dns', value: w.name }] });
  if (created.status !== 201) throw new Error(`newOrder answered ${created.status}`);
  const orderUrl = str(created.headers.location, 'newOrder Location');
  const order = created.json ?? {};
  const finalizeUrl = str(order.finalize, 'order.finalize');
  const tokens: string[] = [];
  try {
    for (const authzUrl of strArray(order.authorizations, 'order.authorizations')) {
      const authz = (await client.post(account, authzUrl, '')).json ?? {};
      if (authz.status === 'valid') continue;
      const ch = objArray(authz.challenges, 'authz.challenges').find((c) => c.type === 'http-01');
      if (!ch) throw new Error(`authorization ${authzUrl} offers no http-01`);
      const token = str(ch.token, 'challenge token');
      responder.set(token, `${token}.${account.thumbprint}`);
      tokens.push(token);
      const answered = await client.post(account, str(ch.url, 'challenge url'), {});
      if (answered.json?.status !== 'valid') {
        await client.poll(account, authzUrl, client.waitAfter(answered), (b) => b.status === 'valid');
      }
    }
  } finally {
    for (const t of tokens) responder.delete(t);
  }
  const tFinalize = performance.now();
  const finalized = await client.post(account, finalizeUrl, { csr: Buffer.from(w.csrDer).toString('base64url') });
  let done = finalized.json ?? {};
  if (done.status !== 'valid') {
    done = (await client.poll(account, orderUrl, client.waitAfter(finalized), (b) => b.status === 'valid')).json ?? {};
  }
  const tValid = performance.now();
  const cert = await client.post(account, str(done.certificate, 'order.certificate'), '', { accept: 'application/pem-certificate-chain' });
  const leafPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(cert.text);
  if (!leafPem) throw new Error('certificate download holds no PEM certificate');
  const leaf = new X509Certificate(leafPem[0]);
  if (!leaf.checkHost(w.name)) throw new Error(`downloaded certificate is not for ${w.name}`);
  const tEnd = performance.now();
  return { orderUrl, totalMs: tEnd - t0, finalizeToValidMs: tValid - tFinalize };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** One load level against one server: `work.length` orders, `concurrency` at a time. */
export async function runLevel(server: ServerHandle, o: LevelOptions): Promise<LevelResult> {
  const client = new BenchClient({ directoryUrl: server.directoryUrl, tlsCaPem: server.tlsCaPem, maxSockets: o.concurrency, defaultPollMs: o.defaultPollMs });
  await client.connect();
  // The directory fetch is not part of the level.
  Object.assign(client.counters, { requests: 0, newConnections: 0, connectionClose: 0, headNonce: 0, badNonceRetries: 0, errorResponses: 0 });

  const samples: OrderSample[] = [];
  const errorSamples: string[] = [];
  let errors = 0;
  let next = 0;
  const peakReset = resetPeakRss(server.pid);
  const cpu0 = processCpu(server.pid);
  const self0 = selfCpuMs();
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < o.work.length) {
      const i = next++;
      const account = o.accounts[i % o.accounts.length];
      try {
        samples.push({ ...await withTimeout(fullOrder(client, account, o.work[i], o.responder), o.orderTimeoutMs, `order ${i}`), accountIndex: i % o.accounts.length });
      } catch (e) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(e instanceof AcmeError ? e.message : String((e as Error).message ?? e));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, o.work.length) }, () => worker()));
  const wallMs = performance.now() - t0;
  const selfCpu = selfCpuMs() - self0;
  await new Promise((r) => setTimeout(r, o.settleMs));
  const cpu = cpuDelta(cpu0, processCpu(server.pid));
  const mem = processMemory(server.pid);
  client.close();

  const completed = samples.length;
  const orderMs = summarize(samples.map((s) => s.totalMs));
  return {
    server: server.name,
    lastOrder: samples.length > 0 ? { url: samples[samples.length - 1].orderUrl, accountIndex: samples[samples.length - 1].accountIndex } : null,
    label: o.label,
    concurrency: o.concurrency,
    orders: o.work.length,
    completed,
    errors,
    errorSamples,
    wallMs: round(wallMs, 1),
    ordersPerSec: round(completed / (wallMs / 1000), 2),
    serverCpuMs: round(cpu.totalMs, 1),
    serverCpuUserMs: round(cpu.userMs, 1),
    serverCpuSystemMs: round(cpu.systemMs, 1),
    cpuMsPerOrder: round(completed > 0 ? cpu.totalMs / completed : NaN, 2),
    peakRssMb: round(mem.peakRssMb, 1),
    peakRssIsLevelOnly: peakReset,
    rssAfterMb: round(mem.rssMb, 1),
    orderMs,
    finalizeToValidMs: summarize(samples.map((s) => s.finalizeToValidMs)),
    pollSleepShare: round(completed > 0 ? client.pollSleepMs / samples.reduce((a, s) => a + s.totalMs, 0) : NaN, 3),
    requestsPerOrder: round(completed > 0 ? client.counters.requests / completed : NaN, 2),
    client: { ...client.counters },
    loadGeneratorCpuMs: round(selfCpu, 1),
  };
}

export interface KeepAliveProbe {
  /** Requests sent over one keep-alive connection (maxSockets 1), by kind. */
  kinds: Record<string, { requests: number; newConnections: number; connectionClose: number }>;
  /** True when every response left the connection open for the next request. */
  ok: boolean;
}

/**
 * Sends each kind of request several times over a single pooled connection and counts how often a
 * new TCP+TLS connection had to be opened: HEAD/GET newNonce, GET directory, a POST-as-GET, an error
 * response (bad JWS) and a 405 (GET on a POST-only resource).
 */
export async function keepAliveProbe(server: ServerHandle, account: BenchAccount, orderUrl: string | null): Promise<KeepAliveProbe> {
  const client = new BenchClient({ directoryUrl: server.directoryUrl, tlsCaPem: server.tlsCaPem, maxSockets: 1, defaultPollMs: 1000 });
  const kinds: KeepAliveProbe['kinds'] = {};
  try {
    await client.connect();
    const kind = async (name: string, f: () => Promise<unknown>): Promise<void> => {
      const before = { ...client.counters };
      for (let i = 0; i < 5; i++) {
        try { await f(); } catch { /* error responses are the point of some kinds */ }
      }
      kinds[name] = {
        requests: client.counters.requests - before.requests,
        newConnections: client.counters.newConnections - before.newConnections,
        connectionClose: client.counters.connectionClose - before.connectionClose,
      };
    };
    await kind('HEAD newNonce', () => client.request('HEAD', client.directory.newNonce));
    await kind('GET newNonce', () => client.request('GET', client.directory.newNonce));
    await kind('GET directory', () => client.request('GET', server.directoryUrl));
    await kind('POST newOrder (bad JWS → 400)', () => client.request('POST', client.directory.newOrder, '{"protected":"e30","payload":"","signature":"AA"}', { 'Content-Type': 'application/jose+json' }));
    await kind('GET newOrder (405/404)', () => client.request('GET', client.directory.newOrder));
    if (orderUrl) await kind('POST-as-GET order', () => client.post(account, orderUrl, ''));
  } finally {
    client.close();
  }
  const ok = Object.values(kinds).every((k) => k.newConnections === 0 && k.connectionClose === 0);
  return { kinds, ok };
}
