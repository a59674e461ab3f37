import { createHash, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';

/*
 * A lean ACME client for load generation. It does the same things against every server: ES256
 * account keys as cached KeyObjects (node:crypto signs, no per-request key import), nonces taken
 * from Replay-Nonce (HEAD newNonce only when the pool is empty), one keep-alive agent per load
 * level, and polls that wait exactly what Retry-After says (a fixed default when it is absent).
 * The protocol-conformance client is test/support/acme-test-client.ts; this one only needs speed
 * and bounded, countable behaviour.
 */

export interface BenchDirectory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
}

export interface BenchAccount {
  privateKey: KeyObject;
  /** Public JWK, members of RFC 7638 only (EC: crv, kty, x, y). */
  jwk: { crv: string; kty: string; x: string; y: string };
  thumbprint: string;
  /** Account URL (kid) once created. */
  url: string;
}

export interface BenchResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Parsed JSON body, or null when the body is not JSON. */
  json: Record<string, unknown> | null;
}

export interface ClientCounters {
  requests: number;
  /** Requests that had to open a new TCP+TLS connection (not reused from the keep-alive pool). */
  newConnections: number;
  /** Responses that asked to close the connection (`Connection: close`). */
  connectionClose: number;
  headNonce: number;
  badNonceRetries: number;
  /** Responses with status >= 400 (including retried badNonce ones). */
  errorResponses: number;
}

export class AcmeError extends Error {
  constructor(readonly status: number, readonly problemType: string, message: string) {
    super(message);
  }
}

const b64u = (b: Buffer | string): string => Buffer.from(b).toString('base64url');
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_BAD_NONCE_RETRIES = 5;
const MAX_POLLS = 120;
const MAX_RETRY_AFTER_MS = 30_000;

export function generateBenchAccountKey(): Omit<BenchAccount, 'url'> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const j = publicKey.export({ format: 'jwk' });
  const jwk = { crv: String(j.crv), kty: String(j.kty), x: String(j.x), y: String(j.y) };
  // RFC 7638: members in lexicographic order, no whitespace.
  const thumbprint = b64u(createHash('sha256').update(JSON.stringify(jwk)).digest());
  return { privateKey, jwk, thumbprint };
}

/** Retry-After as milliseconds (delta-seconds or HTTP-date), or null when absent or unreadable. */
export function retryAfterMs(headers: http.IncomingHttpHeaders, now = Date.now()): number | null {
  const raw = headers['retry-after'];
  const v = (Array.isArray(raw) ? raw[0] : raw)?.trim();
  if (v === undefined || v === '') return null;
  if (/^\d+$/.test(v)) return Math.min(MAX_RETRY_AFTER_MS, Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.min(MAX_RETRY_AFTER_MS, Math.max(0, t - now));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface BenchClientOptions {
  directoryUrl: string;
  /** PEM of the CA that signed the server's TLS certificate. */
  tlsCaPem: string;
  maxSockets: number;
  /** Poll interval when a response has no Retry-After. */
  defaultPollMs: number;
}

export class BenchClient {
  readonly counters: ClientCounters = { requests: 0, newConnections: 0, connectionClose: 0, headNonce: 0, badNonceRetries: 0, errorResponses: 0 };
  /** Total time spent sleeping between polls, ms. */
  pollSleepMs = 0;
  directory!: BenchDirectory;
  private readonly agent: https.Agent;
  private readonly nonces: string[] = [];

  constructor(readonly opts: BenchClientOptions) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets: opts.maxSockets, maxFreeSockets: opts.maxSockets, ca: opts.tlsCaPem });
  }

  async connect(): Promise<void> {
    const res = await this.request('GET', this.opts.directoryUrl);
    const d = res.json;
    if (res.status !== 200 || d === null || typeof d.newNonce !== 'string' || typeof d.newAccount !== 'string' || typeof d.newOrder !== 'string') {
      throw new Error(`GET ${this.opts.directoryUrl} answered ${res.status}: ${res.text.slice(0, 300)}`);
    }
    this.directory = { newNonce: d.newNonce, newAccount: d.newAccount, newOrder: d.newOrder };
  }

  close(): void {
    this.agent.destroy();
  }

  request(method: string, url: string, body?: string, headers: Record<string, string> = {}): Promise<BenchResponse> {
    return new Promise<BenchResponse>((resolve, reject) => {
      const h: Record<string, string> = { 'User-Agent': 'acme-ca-bench', ...headers };
      if (body !== undefined) h['Content-Length'] = String(Buffer.byteLength(body));
      const req = https.request(url, { method, headers: h, agent: this.agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          this.counters.requests++;
          if (!req.reusedSocket) this.counters.newConnections++;
          if (/close/i.test(String(res.headers.connection ?? ''))) this.counters.connectionClose++;
          const status = res.statusCode ?? 0;
          if (status >= 400) this.counters.errorResponses++;
          const nonce = res.headers['replay-nonce'];
          if (typeof nonce === 'string' && nonce !== '') this.nonces.push(nonce);
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> | null = null;
          if (/json/i.test(String(res.headers['content-type'] ?? '')) && text !== '') {
            try {
              const parsed: unknown = JSON.parse(text);
              if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
            } catch {
              json = null;
            }
          }
          resolve({ status, headers: res.headers, text, json });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no response within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  private async takeNonce(): Promise<string> {
    const pooled = this.nonces.pop();
    if (pooled !== undefined) return pooled;
    this.counters.headNonce++;
    const res = await this.request('HEAD', this.directory.newNonce);
    // request() pooled it; hand it out exclusively.
    const n = this.nonces.pop();
    if (res.status !== 200 || n === undefined) throw new Error(`HEAD newNonce answered ${res.status} without a nonce`);
    return n;
  }

  private async signedBody(account: Omit<BenchAccount, 'url'> & { url?: string }, url: string, payload: Record<string, unknown> | '', useJwk: boolean): Promise<string> {
    const header: Record<string, unknown> = { alg: 'ES256' };
    if (useJwk) header.jwk = account.jwk;
    else header.kid = account.url;
    header.nonce = await this.takeNonce();
    header.url = url;
    const protectedB64 = b64u(JSON.stringify(header));
    const payloadB64 = payload === '' ? '' : b64u(JSON.stringify(payload));
    const signature = cryptoSign('sha256', Buffer.from(`${protectedB64}.${payloadB64}`), { key: account.privateKey, dsaEncoding: 'ieee-p1363' });
    return JSON.stringify({ protected: protectedB64, payload: payloadB64, signature: b64u(signature) });
  }

  /** POST a JWS; badNonce is retried (bounded) with a fresh nonce, any other error status throws. */
  async post(account: Omit<BenchAccount, 'url'> & { url?: string }, url: string, payload: Record<string, unknown> | '', o: { useJwk?: boolean; accept?: string } = {}): Promise<BenchResponse> {
    for (let attempt = 0; ; attempt++) {
      const body = await this.signedBody(account, url, payload, o.useJwk ?? false);
      const headers: Record<string, string> = { 'Content-Type': 'application/jose+json' };
      if (o.accept) headers.Accept = o.accept;
      const res = await this.request('POST', url, body, headers);
      if (res.status < 400) return res;
      const type = typeof res.json?.type === 'string' ? res.json.type : '';
      if (type === 'urn:ietf:params:acme:error:badNonce' && attempt < MAX_BAD_NONCE_RETRIES) {
        this.counters.badNonceRetries++;
        continue;
      }
      throw new AcmeError(res.status, type, `POST ${url} answered ${res.status}: ${res.text.slice(0, 400)}`);
    }
  }

  async newAccount(key: Omit<BenchAccount, 'url'>): Promise<BenchAccount> {
    const res = await this.post(key, this.directory.newAccount, { termsOfServiceAgreed: true }, { useJwk: true });
    const location = res.headers.location;
    if (typeof location !== 'string') throw new Error(`newAccount answered ${res.status} without Location`);
    return { ...key, url: location };
  }

  /** Sleeps as Retry-After (or the default) says, then POST-as-GETs `url` until `done` holds. */
  async poll(account: BenchAccount, url: string, firstWaitMs: number, done: (body: Record<string, unknown>) => boolean): Promise<BenchResponse> {
    let wait = firstWaitMs;
    for (let i = 0; i < MAX_POLLS; i++) {
      if (wait > 0) {
        this.pollSleepMs += wait;
        await sleep(wait);
      }
      const res = await this.post(account, url, '');
      const body = res.json ?? {};
      if (done(body)) return res;
      if (body.status === 'invalid') throw new Error(`polling ${url}: resource is invalid: ${res.text.slice(0, 400)}`);
      wait = this.waitAfter(res);
    }
    throw new Error(`polling ${url}: not done after ${MAX_POLLS} polls`);
  }

  /** How long to wait after `res` before the next poll. */
  waitAfter(res: BenchResponse): number {
    return retryAfterMs(res.headers) ?? this.opts.defaultPollMs;
  }
}
