import { createPublicKey, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { calculateJwkThumbprint, exportJWK, FlattenedSign, type FlattenedJWS, type JWK, type JWSHeaderParameters } from 'jose';
import type { AgentIdentifier } from './certificate-files.js';
import { isRecord, str } from './json-shape.js';

export interface AgentLogEntry { level: 'debug' | 'info' | 'warn' | 'error'; msg: string; fields?: Record<string, string | number | boolean | null> }

export interface ExternalAccountBinding {
  keyId: string;
  /** base64url HMAC key, as the CA operator hands it out. */
  hmacKey: string;
}

export class AcmeError extends Error {
  constructor(message: string, readonly status: number, readonly problem: AcmeProblem | null) { super(message); this.name = 'AcmeError'; }
  get problemType(): string | null { return this.problem?.type ?? null; }
}

export interface AcmeProblem { type: string; detail?: string; status?: number; subproblems?: AcmeProblem[] }

export const ACME_ERR = 'urn:ietf:params:acme:error:';

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: unknown;
}

export interface AcmeDirectory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
  revokeCert?: string;
  renewalInfo?: string;
  meta?: Record<string, unknown>;
}

export interface OrderBody {
  status: string;
  identifiers: AgentIdentifier[];
  authorizations: string[];
  finalize: string;
  certificate?: string;
  replaces?: string;
  error?: AcmeProblem;
}

/** How long polling may go on: until `deadline` (ms since the epoch), never sleeping more than `maxWaitMs` at once. */
export interface PollLimits { deadline: number; maxWaitMs: number }

export function asOrder(v: unknown): OrderBody {
  if (!isRecord(v) || typeof v.status !== 'string' || !Array.isArray(v.authorizations) || typeof v.finalize !== 'string') {
    throw new Error(`the CA answered an order that is not an order: ${JSON.stringify(v).slice(0, 300)}`);
  }
  return v as unknown as OrderBody;
}

export function asProblem(v: unknown): AcmeProblem | null {
  return isRecord(v) && typeof v.type === 'string' ? (v as unknown as AcmeProblem) : null;
}

export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function acmeError(what: string, res: HttpResponse): AcmeError {
  const p = asProblem(res.json);
  const detail = p ? `${p.type.replace(ACME_ERR, '')}: ${p.detail ?? ''}` : res.text.slice(0, 300);
  return new AcmeError(`${what} failed with HTTP ${res.status}: ${detail}`, res.status, p);
}

/** A seconds value or an HTTP-date (RFC 9110 §10.2.3), as milliseconds from `now`; null if absent/invalid. */
export function parseRetryAfter(value: string | undefined, now: number): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

type JwsAlg = 'ES256' | 'ES384' | 'ES512' | 'RS256' | 'EdDSA';

export function algOf(key: KeyObject): JwsAlg {
  if (key.asymmetricKeyType === 'ec') {
    const c = key.asymmetricKeyDetails?.namedCurve;
    if (c === 'prime256v1') return 'ES256';
    if (c === 'secp384r1') return 'ES384';
    if (c === 'secp521r1') return 'ES512';
    throw new Error(`unsupported account key curve ${String(c)}`);
  }
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  throw new Error(`unsupported account key type ${String(key.asymmetricKeyType)}`);
}

// Not unref'd: a one-shot run must stay alive while it waits for the CA.
const sleep = (ms: number): Promise<void> => new Promise((r) => { setTimeout(r, ms); });

/** One account's view of the CA: JWS, nonces, badNonce retry, keep-alive HTTPS. */
export class AcmeConnection {
  private readonly agent: https.Agent;
  private directory: AcmeDirectory | null = null;
  private nonce: string | null = null;
  private jwk: JWK | null = null;
  private thumbprint: string | null = null;
  accountUrl: string | null = null;

  constructor(
    private readonly directoryUrl: string,
    caPem: string | Buffer | undefined,
    private readonly key: KeyObject,
    private readonly timeoutMs: number,
    private readonly userAgent: string,
    private readonly log: (entry: AgentLogEntry) => void,
  ) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 4, ...(caPem !== undefined ? { ca: caPem } : {}) });
  }

  close(): void { this.agent.destroy(); }

  request(method: string, url: string, body?: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
    const u = new URL(url);
    if (u.protocol !== 'https:') return Promise.reject(new Error(`refusing a non-https ACME URL ${url}`));
    return new Promise<HttpResponse>((resolve, reject) => {
      const h: Record<string, string> = { 'User-Agent': this.userAgent, ...headers };
      if (body !== undefined) h['Content-Length'] = String(Buffer.byteLength(body));
      const req = https.request(u, { method, headers: h, agent: this.agent, timeout: this.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 4 * 1024 * 1024) { req.destroy(new Error(`${method} ${url}: response larger than 4 MiB`)); return; }
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown = null;
          if (/json/i.test(res.headers['content-type'] ?? '') && text.length > 0) {
            try { json = JSON.parse(text) as unknown; } catch { json = null; }
          }
          const n = res.headers['replay-nonce'];
          if (typeof n === 'string' && n.length > 0) this.nonce = n;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no response within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  async getDirectory(): Promise<AcmeDirectory> {
    if (this.directory) return this.directory;
    const res = await this.request('GET', this.directoryUrl);
    if (res.status !== 200 || !isRecord(res.json)) throw new Error(`GET ${this.directoryUrl} answered ${res.status}: ${res.text.slice(0, 300)}`);
    const d = res.json;
    this.directory = {
      newNonce: str(d, 'newNonce', 'directory'), newAccount: str(d, 'newAccount', 'directory'), newOrder: str(d, 'newOrder', 'directory'),
      ...(typeof d.revokeCert === 'string' ? { revokeCert: d.revokeCert } : {}),
      ...(typeof d.renewalInfo === 'string' ? { renewalInfo: d.renewalInfo } : {}),
      ...(isRecord(d.meta) ? { meta: d.meta } : {}),
    };
    return this.directory;
  }

  private async takeNonce(): Promise<string> {
    if (this.nonce) { const n = this.nonce; this.nonce = null; return n; }
    const dir = await this.getDirectory();
    const res = await this.request('HEAD', dir.newNonce);
    const n = header(res, 'replay-nonce');
    if (!n) throw new Error(`HEAD ${dir.newNonce} answered ${res.status} without a Replay-Nonce`);
    this.nonce = null;
    return n;
  }

  async publicJwk(): Promise<JWK> {
    if (!this.jwk) {
      const j = await exportJWK(createPublicKey(this.key));
      this.jwk = j;
      this.thumbprint = await calculateJwkThumbprint(j, 'sha256');
    }
    return this.jwk;
  }

  async keyAuthorization(token: string): Promise<string> {
    await this.publicJwk();
    return `${token}.${this.thumbprint!}`;
  }

  /** POST a JWS; "" is POST-as-GET. One retry with the fresh nonce on badNonce (RFC 8555 §6.5). */
  async post(url: string, payload: Record<string, unknown> | '', o: { useJwk?: boolean; accept?: string } = {}): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      const nonce = await this.takeNonce();
      const hdr: JWSHeaderParameters = { alg: algOf(this.key), nonce, url };
      if (o.useJwk || !this.accountUrl) hdr.jwk = await this.publicJwk();
      else hdr.kid = this.accountUrl;
      const bytes = new TextEncoder().encode(payload === '' ? '' : JSON.stringify(payload));
      const jws: FlattenedJWS = await new FlattenedSign(bytes).setProtectedHeader(hdr).sign(this.key);
      const headers: Record<string, string> = { 'Content-Type': 'application/jose+json' };
      if (o.accept) headers.Accept = o.accept;
      const res = await this.request('POST', url, JSON.stringify(jws), headers);
      if (res.status >= 400 && asProblem(res.json)?.type === `${ACME_ERR}badNonce` && attempt === 0) {
        this.log({ level: 'debug', msg: 'badNonce: retrying once with the nonce from the error response', fields: { url } });
        continue;
      }
      return res;
    }
  }

  /** newAccount (or the existing account of this key); sets accountUrl. */
  async ensureAccount(contact: string[] | undefined, eab: ExternalAccountBinding | undefined): Promise<string> {
    if (this.accountUrl) return this.accountUrl;
    const dir = await this.getDirectory();
    const payload: Record<string, unknown> = { termsOfServiceAgreed: true };
    if (contact && contact.length > 0) payload.contact = contact;
    if (eab) {
      const inner = new TextEncoder().encode(JSON.stringify(await this.publicJwk()));
      payload.externalAccountBinding = await new FlattenedSign(inner)
        .setProtectedHeader({ alg: 'HS256', kid: eab.keyId, url: dir.newAccount })
        .sign(new Uint8Array(Buffer.from(eab.hmacKey, 'base64url')));
    }
    const res = await this.post(dir.newAccount, payload, { useJwk: true });
    const location = header(res, 'location');
    if ((res.status !== 200 && res.status !== 201) || !location) throw acmeError('newAccount', res);
    this.accountUrl = location;
    return location;
  }

  /** POST-as-GET until `done`, sleeping as the server's Retry-After says (bounded), until the deadline. */
  async poll(url: string, limits: PollLimits, done: (body: Record<string, unknown>) => boolean): Promise<void> {
    for (;;) {
      const res = await this.post(url, '');
      if (res.status !== 200 || !isRecord(res.json)) throw acmeError(`polling ${url}`, res);
      if (done(res.json)) return;
      const wait = Math.min(limits.maxWaitMs, Math.max(250, parseRetryAfter(header(res, 'retry-after'), Date.now()) ?? 1000));
      if (Date.now() + wait > limits.deadline) throw new Error(`polling ${url}: not done before the order deadline; last: ${res.text.slice(0, 300)}`);
      await sleep(wait);
    }
  }

  async pollOrder(url: string, want: string[], limits: PollLimits): Promise<OrderBody> {
    let last: OrderBody | null = null;
    await this.poll(url, limits, (raw) => {
      const b = asOrder(raw);
      last = b;
      if (want.includes(b.status)) return true;
      if (b.status === 'invalid') {
        const p = b.error ?? null;
        throw new AcmeError(`order ${url} became invalid${p ? `: ${p.type.replace(ACME_ERR, '')}: ${p.detail ?? ''}` : ''}`, 0, p);
      }
      return false;
    });
    return last!;
  }
}
