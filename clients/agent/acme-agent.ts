import { createPrivateKey, randomInt, type KeyObject } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  ACME_ERR, AcmeConnection, AcmeError, acmeError, algOf, asOrder, asProblem, header, parseRetryAfter,
  type AcmeProblem, type AgentLogEntry, type ExternalAccountBinding, type OrderBody, type PollLimits,
} from './acme-connection.js';
import {
  idKey, loadOrCreateAccountKey, newKeyAndCsr, parseCertificatePem, toIdentifier, writeFileAtomic,
  type AgentIdentifier, type LoadedCertificate,
} from './certificate-files.js';
import { Http01Server, type Http01Publisher } from './http01-server.js';
import { isRecord, str } from './json-shape.js';

// The agent's public surface was one module before it was split; importers keep using this one.
export { AcmeError, parseRetryAfter, type AcmeDirectory, type AcmeProblem, type AgentLogEntry, type ExternalAccountBinding } from './acme-connection.js';
export {
  ariCertId, loadOrCreateAccountKey, parseCertificatePem, toIdentifier, writeFileAtomic,
  type AgentIdentifier, type LoadedCertificate,
} from './certificate-files.js';
export type { Http01Publisher } from './http01-server.js';

/*
 * RenewalAgent keeps one certificate fresh for one service, with ACME (RFC 8555) and ACME Renewal
 * Information (RFC 9773): it asks the CA when to renew (renewalInfo), renews at a uniformly random
 * moment of the suggested window, names the certificate it replaces (newOrder "replaces"), proves
 * control with http-01, writes the chain and key atomically and tells the service (onRenewed) so
 * it can reload without a restart. A certificate that is missing or expired is obtained afresh.
 */

export type Http01Challenge =
  /** A built-in responder, listening on host:port only while an order is being validated. */
  | { kind: 'responder'; host: string; port: number }
  /** The service serves `/.well-known/acme-challenge/<token>` itself. */
  | ({ kind: 'callback' } & Http01Publisher);

export interface RenewedInfo {
  certPem: string;
  keyPem: string;
  serial: string;
  certId: string;
  notBefore: Date;
  notAfter: Date;
  orderUrl: string;
  /** ARI certID of the certificate this one replaces, when it was renewed with "replaces". */
  replaced: string | null;
  reason: RenewalReason;
}

export type RenewalReason = 'missing' | 'expired' | 'identifiers-changed' | 'window' | 'fallback';

export interface CheckResult {
  renewed: boolean;
  /** Why it renewed, or 'not-due'. */
  reason: RenewalReason | 'not-due';
  /** ARI certID and serial of the current certificate after the check. */
  certId: string | null;
  serial: string | null;
  /** The suggested window the decision was based on (absent when ARI was unavailable). */
  window: { start: Date; end: Date } | null;
  /** The moment chosen in the window (or by the fallback rule). */
  renewAt: Date | null;
  /** When the scheduler checks again. */
  nextCheckInMs: number;
  explanationURL: string | null;
  renewal: RenewedInfo | null;
}

export interface RenewalAgentOptions {
  /** The CA's ACME directory URL (https). */
  directoryUrl: string;
  /** PEM of the CA(s) that sign the ACME server's TLS certificate; the system store when absent. */
  caPem?: string | Buffer;
  /** Account key: a private JWK file (created 0600 with a new P-256 key when missing), or a key. */
  accountKey: string | KeyObject;
  /** DNS names or IP addresses (strings are classified), or explicit identifiers. */
  identifiers: ReadonlyArray<string | AgentIdentifier>;
  /** Leaf-first PEM chain, written atomically (0644). */
  certPath: string;
  /** PKCS#8 PEM private key, written atomically (0600). */
  keyPath: string;
  challenge: Http01Challenge;
  /** ACME profile (newOrder "profile"); the CA's default when absent. */
  profile?: string;
  contact?: string[];
  eab?: ExternalAccountBinding;
  /** Called after new files are in place, e.g. to call tls.Server#setSecureContext. */
  onRenewed?: (certPem: string, keyPem: string, info: RenewedInfo) => void | Promise<void>;
  /** Clock (ms since the epoch) used for every decision; default Date.now. */
  now?: () => number;
  /** Uniform [0, 1) source for the moment within the window; default crypto-random. */
  random?: () => number;
  /** Bounds applied to the server's Retry-After between checks; default 60 s .. 24 h. */
  checkInterval?: { minMs: number; maxMs: number };
  /** Longest time one renewal (order to download) may take; default 5 min. */
  orderTimeoutMs?: number;
  /** Timeout of one HTTP request; default 30 s. */
  requestTimeoutMs?: number;
  /** Longest wait honoured from a Retry-After while polling an order; default 60 s. */
  maxPollIntervalMs?: number;
  log?: (entry: AgentLogEntry) => void;
  /** User-Agent header. */
  userAgent?: string;
}

export interface AgentEvents {
  renewed: RenewedInfo;
  checked: CheckResult;
  error: Error;
}

interface RenewalInfoAnswer { start: number; end: number; retryAfterMs: number | null; explanationURL: string | null }

const DEFAULT_MIN_CHECK = 60_000;
const DEFAULT_MAX_CHECK = 24 * 3_600_000;

/**
 * Keeps one certificate fresh. `checkOnce()` makes one decision (and renews when due); `start()`
 * checks now and then again when the CA's Retry-After (bounded by `checkInterval`) or the chosen
 * renewal moment comes, whichever is first; `stop()` ends that. The agent's timer is unref'd: it
 * keeps checking as long as the service it serves keeps the process alive.
 */
export class RenewalAgent {
  private readonly identifiers: AgentIdentifier[];
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly minCheck: number;
  private readonly maxCheck: number;
  private conn: AcmeConnection | null = null;
  private current: LoadedCertificate | null = null;
  private loaded = false;
  /** The moment picked in the current window; kept while the window is unchanged (RFC 9773 §4.2). */
  private plan: { certId: string; start: number; end: number; at: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<CheckResult> | null = null;
  private stopped = false;
  private failures = 0;
  private ariFailures = 0;
  private readonly listeners: { [K in keyof AgentEvents]: Set<(e: AgentEvents[K]) => void> } = { renewed: new Set(), checked: new Set(), error: new Set() };

  constructor(private readonly opts: RenewalAgentOptions) {
    if (opts.identifiers.length === 0) throw new Error('RenewalAgent: give at least one identifier');
    const unique = new Map<string, AgentIdentifier>();
    for (const i of opts.identifiers.map(toIdentifier)) unique.set(idKey(i), i);
    this.identifiers = [...unique.values()];
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? (() => randomInt(0, 2 ** 47) / 2 ** 47);
    this.minCheck = opts.checkInterval?.minMs ?? DEFAULT_MIN_CHECK;
    this.maxCheck = Math.max(this.minCheck, opts.checkInterval?.maxMs ?? DEFAULT_MAX_CHECK);
  }

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<K extends keyof AgentEvents>(event: K, listener: (e: AgentEvents[K]) => void): () => void {
    const set = this.listeners[event] as Set<(e: AgentEvents[K]) => void>;
    set.add(listener);
    return () => { set.delete(listener); };
  }

  private emit<K extends keyof AgentEvents>(event: K, e: AgentEvents[K]): void {
    for (const l of this.listeners[event] as Set<(e: AgentEvents[K]) => void>) {
      try { l(e); } catch (err) { this.log('error', `a "${event}" listener threw: ${(err as Error).message}`); }
    }
  }

  private log(level: AgentLogEntry['level'], msg: string, fields?: AgentLogEntry['fields']): void {
    this.opts.log?.({ level, msg, ...(fields ? { fields } : {}) });
  }

  /** The certificate in use (as loaded from certPath or last obtained), or null. */
  get certificate(): LoadedCertificate | null { return this.current; }

  /** ARI certID of the certificate in use. */
  get certId(): string | null { return this.current?.certId ?? null; }

  private async connection(): Promise<AcmeConnection> {
    if (this.conn) return this.conn;
    const key = typeof this.opts.accountKey === 'string' ? await loadOrCreateAccountKey(this.opts.accountKey) : this.opts.accountKey;
    if (key.type !== 'private') throw new Error('RenewalAgent: the account key must be a private key');
    algOf(key);
    this.conn = new AcmeConnection(this.opts.directoryUrl, this.opts.caPem, key, this.opts.requestTimeoutMs ?? 30_000, this.opts.userAgent ?? 'acme-ca-renewal-agent/1', (e) => this.opts.log?.(e));
    return this.conn;
  }

  /** Reads certPath and keyPath; a missing, unreadable or mismatched pair counts as no certificate. */
  async load(): Promise<LoadedCertificate | null> {
    this.loaded = true;
    this.current = null;
    let pem: string;
    let keyPem: string;
    try {
      pem = await fsp.readFile(this.opts.certPath, 'utf8');
      keyPem = await fsp.readFile(this.opts.keyPath, 'utf8');
    } catch {
      return null;
    }
    try {
      const cert = parseCertificatePem(pem);
      // A pair torn by a crash between the two renames (or edited by hand) is not usable: start over.
      if (cert && !cert.x509.checkPrivateKey(createPrivateKey(keyPem))) {
        this.log('warn', `${this.opts.keyPath} does not match ${this.opts.certPath}; a new certificate will be obtained`);
        return null;
      }
      this.current = cert;
    } catch (e) {
      this.log('warn', `${this.opts.certPath} or ${this.opts.keyPath} cannot be parsed; a new certificate will be obtained`, { error: (e as Error).message });
    }
    return this.current;
  }

  /** Loads the account key and the current certificate, checks now, then keeps checking until stop(). */
  async start(): Promise<CheckResult | null> {
    this.stopped = false;
    await this.connection();
    if (!this.loaded) await this.load();
    return this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
    this.conn?.close();
    this.conn = null;
  }

  private async tick(): Promise<CheckResult | null> {
    this.timer = null;
    if (this.stopped) return null;
    let result: CheckResult | null = null;
    let delay: number;
    try {
      result = await this.checkOnce();
      this.failures = 0;
      delay = result.nextCheckInMs;
    } catch (e) {
      this.failures++;
      delay = Math.min(this.maxCheck, this.minCheck * 2 ** Math.min(this.failures - 1, 16));
      // Never sleep past the certificate's expiry without a retry in between.
      if (this.current) delay = Math.max(this.minCheck, Math.min(delay, (this.current.notAfter - this.now()) / 2));
      this.log('error', `check failed; retrying in ${Math.round(delay / 1000)} s`, { error: (e as Error).message });
      this.emit('error', e as Error);
    }
    if (!this.stopped) {
      this.timer = setTimeout(() => { void this.tick(); }, delay);
      this.timer.unref();
    }
    return result;
  }

  /** One decision: renew now if due (or missing/expired), else report when to look again. */
  checkOnce(): Promise<CheckResult> {
    if (this.running) return this.running;
    const p = this.check().finally(() => { this.running = null; });
    this.running = p;
    return p;
  }

  private clampCheck(ms: number | null): number {
    return Math.max(this.minCheck, Math.min(this.maxCheck, ms ?? this.minCheck));
  }

  private async check(): Promise<CheckResult> {
    if (!this.loaded) await this.load();
    const now = this.now();
    const cur = this.current;
    const base = { window: null, renewAt: null, explanationURL: null } as const;
    if (!cur) return this.renewAndReport('missing', null, base);
    if (now >= cur.notAfter) return this.renewAndReport('expired', null, base);
    const wanted = new Set(this.identifiers.map(idKey));
    const have = new Set(cur.identifiers.map(idKey));
    if (wanted.size !== have.size || [...wanted].some((k) => !have.has(k))) {
      // RFC 9773 §5: "replaces" needs at least one identifier in common with the old certificate.
      const overlap = [...wanted].some((k) => have.has(k));
      return this.renewAndReport('identifiers-changed', overlap ? cur.certId : null, base);
    }

    let info: RenewalInfoAnswer | null = null;
    try {
      info = await this.renewalInfo(cur.certId);
      this.ariFailures = 0;
    } catch (e) {
      this.ariFailures++;
      this.log('warn', 'renewalInfo unavailable; falling back to two thirds of the lifetime', { error: (e as Error).message });
    }
    if (!info) {
      // RFC 9773 §4.2: without ARI the client decides itself: here at 2/3 of the lifetime.
      const at = cur.notBefore + Math.floor((cur.notAfter - cur.notBefore) * 2 / 3);
      if (at <= now) return this.renewAndReport('fallback', cur.certId, { window: null, renewAt: new Date(at), explanationURL: null });
      // Ask ARI again with exponential backoff, but never later than the fallback moment.
      const retry = this.clampCheck(this.minCheck * 2 ** Math.min(this.ariFailures, 10));
      return this.notDue(cur, { window: null, renewAt: new Date(at), explanationURL: null }, Math.max(0, Math.min(retry, at - now)));
    }
    if (!this.plan || this.plan.certId !== cur.certId || this.plan.start !== info.start || this.plan.end !== info.end) {
      const r = Math.min(Math.max(this.random(), 0), 1);
      this.plan = { certId: cur.certId, start: info.start, end: info.end, at: info.start + Math.floor(r * (info.end - info.start)) };
    }
    const window = { start: new Date(info.start), end: new Date(info.end) };
    const at = this.plan.at;
    const decision = { window, renewAt: new Date(at), explanationURL: info.explanationURL };
    if (info.end <= now || at <= now) return this.renewAndReport('window', cur.certId, decision);
    // Wake at the chosen moment when it comes before the next regular check (RFC 9773 §4.2 step 3).
    return this.notDue(cur, decision, Math.max(0, Math.min(this.clampCheck(info.retryAfterMs), at - now)));
  }

  private notDue(cur: LoadedCertificate, d: Pick<CheckResult, 'window' | 'renewAt' | 'explanationURL'>, next: number): CheckResult {
    const result: CheckResult = { renewed: false, reason: 'not-due', certId: cur.certId, serial: cur.serial, ...d, nextCheckInMs: next, renewal: null };
    this.log('debug', 'not due', { certId: cur.certId, renewAt: d.renewAt?.toISOString() ?? null, nextCheckInMs: next });
    this.emit('checked', result);
    return result;
  }

  private async renewAndReport(reason: RenewalReason, replaces: string | null, d: Pick<CheckResult, 'window' | 'renewAt' | 'explanationURL'>): Promise<CheckResult> {
    const renewal = await this.renew(reason, replaces);
    const result: CheckResult = { renewed: true, reason, certId: renewal.certId, serial: renewal.serial, ...d, nextCheckInMs: this.minCheck, renewal };
    this.emit('checked', result);
    return result;
  }

  /** GET renewalInfo/<certID> (RFC 9773 §4.1). */
  private async renewalInfo(certId: string): Promise<RenewalInfoAnswer | null> {
    const conn = await this.connection();
    const dir = await conn.getDirectory();
    if (!dir.renewalInfo) return null;
    const res = await conn.request('GET', `${dir.renewalInfo.replace(/\/+$/, '')}/${certId}`);
    if (res.status !== 200) throw acmeError(`GET renewalInfo ${certId}`, res);
    const body = res.json;
    if (!isRecord(body) || !isRecord(body.suggestedWindow)) throw new Error(`renewalInfo answered without a suggestedWindow: ${res.text.slice(0, 300)}`);
    const start = Date.parse(String(body.suggestedWindow.start));
    const end = Date.parse(String(body.suggestedWindow.end));
    if (Number.isNaN(start) || Number.isNaN(end) || end <= start) throw new Error(`renewalInfo answered an invalid window: ${res.text.slice(0, 300)}`);
    return { start, end, retryAfterMs: parseRetryAfter(header(res, 'retry-after'), this.now()), explanationURL: typeof body.explanationURL === 'string' ? body.explanationURL : null };
  }

  /** Renews unconditionally (with "replaces" = certID when given); used by checkOnce when due. */
  async renew(reason: RenewalReason, replaces: string | null): Promise<RenewedInfo> {
    const conn = await this.connection();
    await conn.ensureAccount(this.opts.contact, this.opts.eab);
    const ch = this.opts.challenge;
    let builtIn: Http01Server | null = null;
    let publisher: Http01Publisher;
    if (ch.kind === 'responder') {
      builtIn = new Http01Server(ch.host, ch.port);
      publisher = builtIn;
    } else {
      publisher = ch;
    }
    const deadline = Date.now() + (this.opts.orderTimeoutMs ?? 300_000);
    try {
      let order: { url: string; body: OrderBody };
      try {
        order = await this.newOrder(conn, replaces);
      } catch (e) {
        // RFC 9773 §5: the certificate was replaced already (e.g. by a run that died before writing
        // its files); a plain order still gets the service a certificate.
        if (!(e instanceof AcmeError && e.problemType === `${ACME_ERR}alreadyReplaced` && replaces)) throw e;
        this.log('warn', 'the CA says the certificate was already replaced; ordering without "replaces"', { certId: replaces });
        replaces = null;
        order = await this.newOrder(conn, null);
      }
      await this.authorize(conn, order.body, publisher, deadline);
      const { csrDer, keyPem, spkiDer } = await newKeyAndCsr(this.identifiers);
      const ready = await conn.pollOrder(order.url, ['ready', 'processing', 'valid'], this.pollLimits(deadline));
      let body = ready;
      if (ready.status === 'ready') {
        const fin = await conn.post(ready.finalize, { csr: Buffer.from(csrDer).toString('base64url') });
        if (fin.status !== 200) throw acmeError('finalize', fin);
        body = asOrder(fin.json);
      }
      if (body.status !== 'valid') body = await conn.pollOrder(order.url, ['valid'], this.pollLimits(deadline));
      if (!body.certificate) throw new Error(`order ${order.url} is valid without a certificate URL`);
      const dl = await conn.post(body.certificate, '', { accept: 'application/pem-certificate-chain' });
      if (dl.status !== 200) throw acmeError('certificate download', dl);
      const certPem = dl.text.endsWith('\n') ? dl.text : `${dl.text}\n`;
      const parsed = parseCertificatePem(certPem);
      if (!parsed) throw new Error('the downloaded certificate chain holds no certificate');
      if (!Buffer.from(parsed.x509.publicKey.export({ format: 'der', type: 'spki' })).equals(spkiDer)) throw new Error('the CA returned a certificate for another key');
      const names = new Set(parsed.identifiers.map(idKey));
      const missing = this.identifiers.filter((i) => !names.has(idKey(i)));
      if (missing.length > 0) throw new Error(`the CA returned a certificate without ${missing.map((i) => i.value).join(', ')}`);
      // Key first: a reader that sees the new chain always finds its key.
      await fsp.mkdir(path.dirname(path.resolve(this.opts.keyPath)), { recursive: true });
      await fsp.mkdir(path.dirname(path.resolve(this.opts.certPath)), { recursive: true });
      await writeFileAtomic(this.opts.keyPath, keyPem, 0o600);
      await writeFileAtomic(this.opts.certPath, certPem, 0o644);
      this.current = parsed;
      this.loaded = true;
      this.plan = null;
      const info: RenewedInfo = {
        certPem, keyPem, serial: parsed.serial, certId: parsed.certId, notBefore: new Date(parsed.notBefore), notAfter: new Date(parsed.notAfter),
        orderUrl: order.url, replaced: replaces, reason,
      };
      this.log('info', 'certificate obtained', { serial: parsed.serial, certId: parsed.certId, replaced: replaces, reason, notAfter: info.notAfter.toISOString() });
      if (this.opts.onRenewed) await this.opts.onRenewed(certPem, keyPem, info);
      this.emit('renewed', info);
      return info;
    } finally {
      await builtIn?.close();
    }
  }

  private async newOrder(conn: AcmeConnection, replaces: string | null): Promise<{ url: string; body: OrderBody }> {
    const dir = await conn.getDirectory();
    const payload: Record<string, unknown> = { identifiers: this.identifiers };
    if (this.opts.profile) payload.profile = this.opts.profile;
    if (replaces) payload.replaces = replaces;
    const res = await conn.post(dir.newOrder, payload);
    const url = header(res, 'location');
    if (res.status !== 201 || !url) throw acmeError('newOrder', res);
    return { url, body: asOrder(res.json) };
  }

  private async authorize(conn: AcmeConnection, order: OrderBody, publisher: Http01Publisher, deadline: number): Promise<void> {
    const published: string[] = [];
    try {
      for (const authzUrl of order.authorizations) {
        const res = await conn.post(authzUrl, '');
        if (res.status !== 200 || !isRecord(res.json)) throw acmeError(`authorization ${authzUrl}`, res);
        const authz = res.json;
        if (authz.status === 'valid') continue;
        if (authz.status !== 'pending') throw new Error(`authorization ${authzUrl} is ${String(authz.status)}`);
        const challenges = Array.isArray(authz.challenges) ? authz.challenges.filter(isRecord) : [];
        const ch = challenges.find((c) => c.type === 'http-01');
        if (!ch) throw new Error(`authorization ${authzUrl} offers no http-01 challenge`);
        const token = str(ch, 'token', 'challenge');
        if (!/^[A-Za-z0-9_-]+$/.test(token)) throw new Error(`challenge token ${JSON.stringify(token)} is not base64url`);
        await publisher.publish(token, await conn.keyAuthorization(token));
        published.push(token);
        if (ch.status === 'pending') {
          const ans = await conn.post(str(ch, 'url', 'challenge'), {});
          if (ans.status !== 200) throw acmeError('challenge response', ans);
        }
        await conn.poll(authzUrl, this.pollLimits(deadline), (b) => {
          if (b.status === 'valid') return true;
          if (b.status === 'pending' || b.status === 'processing') return false;
          const errs = (Array.isArray(b.challenges) ? b.challenges.filter(isRecord) : []).map((c) => asProblem(c.error)).filter((p): p is AcmeProblem => p !== null);
          throw new AcmeError(`authorization ${authzUrl} is ${String(b.status)}: ${errs.map((p) => `${p.type.replace(ACME_ERR, '')}: ${p.detail ?? ''}`).join('; ')}`, 0, errs[0] ?? null);
        });
      }
    } finally {
      for (const t of published) await publisher.unpublish?.(t);
    }
  }

  private pollLimits(deadline: number): PollLimits {
    return { deadline, maxWaitMs: this.opts.maxPollIntervalMs ?? 60_000 };
  }
}
