import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomInt, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import path from 'node:path';
import * as asn1js from 'asn1js';
import { calculateJwkThumbprint, exportJWK, FlattenedSign, type FlattenedJWS, type JWK, type JWSHeaderParameters } from 'jose';
import * as pkijs from 'pkijs';
import { webcrypto } from '../../server/ca/crypto-engine.js';

/*
 * RenewalAgent keeps one certificate fresh for one service, with ACME (RFC 8555) and ACME Renewal
 * Information (RFC 9773): it asks the CA when to renew (renewalInfo), renews at a uniformly random
 * moment of the suggested window, names the certificate it replaces (newOrder "replaces"), proves
 * control with http-01, writes the chain and key atomically and tells the service (onRenewed) so
 * it can reload without a restart. A certificate that is missing or expired is obtained afresh.
 */

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

export interface AgentIdentifier { type: 'dns' | 'ip'; value: string }

/** Publishes http-01 key authorizations somewhere the CA can fetch them (e.g. a running web server). */
export interface Http01Publisher {
  publish(token: string, keyAuthorization: string): void | Promise<void>;
  unpublish?(token: string): void | Promise<void>;
}

export type Http01Challenge =
  /** A built-in responder, listening on host:port only while an order is being validated. */
  | { kind: 'responder'; host: string; port: number }
  /** The service serves `/.well-known/acme-challenge/<token>` itself. */
  | ({ kind: 'callback' } & Http01Publisher);

export interface ExternalAccountBinding {
  keyId: string;
  /** base64url HMAC key, as the CA operator hands it out. */
  hmacKey: string;
}

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

export interface AgentLogEntry { level: 'debug' | 'info' | 'warn' | 'error'; msg: string; fields?: Record<string, string | number | boolean | null> }

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

export class AcmeError extends Error {
  constructor(message: string, readonly status: number, readonly problem: AcmeProblem | null) { super(message); this.name = 'AcmeError'; }
  get problemType(): string | null { return this.problem?.type ?? null; }
}

export interface AcmeProblem { type: string; detail?: string; status?: number; subproblems?: AcmeProblem[] }

export interface AgentEvents {
  renewed: RenewedInfo;
  checked: CheckResult;
  error: Error;
}

// ---------------------------------------------------------------------------------------------
// Certificates: parsing and the ARI certID
// ---------------------------------------------------------------------------------------------

export interface LoadedCertificate {
  pem: string;
  x509: X509Certificate;
  serial: string;
  certId: string;
  notBefore: number;
  notAfter: number;
  identifiers: AgentIdentifier[];
}

const ERR = 'urn:ietf:params:acme:error:';
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * RFC 9773 §4.1: base64url(keyIdentifier of the Authority Key Identifier) "." base64url(the
 * serial's DER INTEGER content octets, including a leading 00 when the top bit is set).
 */
export function ariCertId(certDer: Uint8Array): string {
  const cert = pkijs.Certificate.fromBER(new Uint8Array(certDer));
  const aki = cert.extensions?.find((e) => e.extnID === '2.5.29.35');
  if (!aki) throw new Error('the certificate has no Authority Key Identifier; it has no ARI certID');
  const parsed = pkijs.AuthorityKeyIdentifier.fromBER(aki.extnValue.valueBlock.valueHexView.slice());
  if (!parsed.keyIdentifier) throw new Error('the certificate\'s Authority Key Identifier has no keyIdentifier');
  const keyId = Buffer.from(parsed.keyIdentifier.valueBlock.valueHexView);
  const serial = Buffer.from(cert.serialNumber.valueBlock.valueHexView);
  return `${keyId.toString('base64url')}.${serial.toString('base64url')}`;
}

function pemToDer(pem: string): Uint8Array {
  return new Uint8Array(Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, ''), 'base64'));
}

function identifiersOf(x: X509Certificate): AgentIdentifier[] {
  const out: AgentIdentifier[] = [];
  for (const part of (x.subjectAltName ?? '').split(/,\s*/)) {
    if (part.startsWith('DNS:')) out.push({ type: 'dns', value: part.slice(4).toLowerCase() });
    else if (part.startsWith('IP Address:')) out.push({ type: 'ip', value: normalizeIp(part.slice(11)) });
  }
  return out;
}

/** Parses a leaf-first PEM chain; null when the text holds no certificate. */
export function parseCertificatePem(pem: string): LoadedCertificate | null {
  const first = pem.match(PEM_CERT)?.[0];
  if (!first) return null;
  const x509 = new X509Certificate(first);
  return {
    pem, x509, serial: x509.serialNumber.toLowerCase(), certId: ariCertId(pemToDer(first)),
    notBefore: Date.parse(x509.validFrom), notAfter: Date.parse(x509.validTo), identifiers: identifiersOf(x509),
  };
}

function normalizeIp(ip: string): string {
  // node prints IPv6 SANs in full lower-case form; compare through the URL parser's canonical form.
  if (isIP(ip) !== 6) return ip;
  try { return new URL(`http://[${ip}]/`).hostname.replace(/^\[|\]$/g, ''); } catch { return ip.toLowerCase(); }
}

export function toIdentifier(v: string | AgentIdentifier): AgentIdentifier {
  if (typeof v !== 'string') return v.type === 'ip' ? { type: 'ip', value: normalizeIp(v.value) } : { type: 'dns', value: v.value.toLowerCase() };
  return isIP(v) ? { type: 'ip', value: normalizeIp(v) } : { type: 'dns', value: v.toLowerCase().replace(/\.$/, '') };
}

const idKey = (i: AgentIdentifier): string => `${i.type}:${i.value}`;

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Record<string, unknown>, k: string, what: string): string {
  const v = o[k];
  if (typeof v !== 'string') throw new Error(`${what}: "${k}" is missing or not a string`);
  return v;
}

// Not unref'd: a one-shot run must stay alive while it waits for the CA.
const sleep = (ms: number): Promise<void> => new Promise((r) => { setTimeout(r, ms); });

/** Writes via a temporary file and a rename, so readers never see a half-written file. */
export async function writeFileAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await fsp.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

type JwsAlg = 'ES256' | 'ES384' | 'ES512' | 'RS256' | 'EdDSA';

function algOf(key: KeyObject): JwsAlg {
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

/** Loads a private JWK file, or creates one with a new P-256 key (0600) when it does not exist. */
export async function loadOrCreateAccountKey(file: string): Promise<KeyObject> {
  let text: string | null = null;
  try { text = await fsp.readFile(file, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (text !== null) {
    const parsed: unknown = JSON.parse(text);
    if (!isRecord(parsed) || typeof parsed.kty !== 'string' || typeof parsed.d !== 'string') throw new Error(`${file} is not a private JWK`);
    return createPrivateKey({ key: parsed as JsonWebKey, format: 'jwk' });
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await writeFileAtomic(file, `${JSON.stringify(privateKey.export({ format: 'jwk' }))}\n`, 0o600);
  return privateKey;
}

/** A seconds value or an HTTP-date (RFC 9110 §10.2.3), as milliseconds from `now`; null if absent/invalid. */
export function parseRetryAfter(value: string | undefined, now: number): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return new Uint8Array(ip.split('.').map(Number));
  const full = new URL(`http://[${ip}]/`).hostname.replace(/^\[|\]$/g, '');
  const [head, tail] = full.includes('::') ? full.split('::') : [full, ''];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = full.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { const n = parseInt(g, 16); out[2 * i] = n >> 8; out[2 * i + 1] = n & 0xff; });
  return out;
}

/** A new P-256 key and a CSR for the identifiers (SAN; CN = first DNS name when it fits). */
async function newKeyAndCsr(identifiers: AgentIdentifier[]): Promise<{ csrDer: Uint8Array; keyPem: string; spkiDer: Buffer }> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const csr = new pkijs.CertificationRequest();
  csr.version = 0;
  const cn = identifiers.find((i) => i.type === 'dns' && i.value.length <= 64);
  if (cn) csr.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: cn.value }) }));
  await csr.subjectPublicKeyInfo.importKey(keys.publicKey);
  const san = new pkijs.GeneralNames({
    names: identifiers.map((i) => (i.type === 'dns'
      ? new pkijs.GeneralName({ type: 2, value: i.value })
      : new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipBytes(i.value) }) }))),
  });
  const ext = new pkijs.Extensions({ extensions: [new pkijs.Extension({ extnID: '2.5.29.17', critical: false, extnValue: san.toSchema().toBER(false) })] });
  csr.attributes = [new pkijs.Attribute({ type: '1.2.840.113549.1.9.14', values: [ext.toSchema()] })];
  await csr.sign(keys.privateKey, 'SHA-256');
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`;
  const spkiDer = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  return { csrDer: new Uint8Array(csr.toSchema().toBER(false)), keyPem, spkiDer };
}

// ---------------------------------------------------------------------------------------------
// The ACME connection: JWS, nonces, badNonce retry, keep-alive HTTPS
// ---------------------------------------------------------------------------------------------

interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
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

interface OrderBody {
  status: string;
  identifiers: AgentIdentifier[];
  authorizations: string[];
  finalize: string;
  certificate?: string;
  replaces?: string;
  error?: AcmeProblem;
}

function asOrder(v: unknown): OrderBody {
  if (!isRecord(v) || typeof v.status !== 'string' || !Array.isArray(v.authorizations) || typeof v.finalize !== 'string') {
    throw new Error(`the CA answered an order that is not an order: ${JSON.stringify(v).slice(0, 300)}`);
  }
  return v as unknown as OrderBody;
}

function asProblem(v: unknown): AcmeProblem | null {
  return isRecord(v) && typeof v.type === 'string' ? (v as unknown as AcmeProblem) : null;
}

function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

class AcmeConnection {
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
      if (res.status >= 400 && asProblem(res.json)?.type === `${ERR}badNonce` && attempt === 0) {
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
}

function acmeError(what: string, res: HttpResponse): AcmeError {
  const p = asProblem(res.json);
  const detail = p ? `${p.type.replace(ERR, '')}: ${p.detail ?? ''}` : res.text.slice(0, 300);
  return new AcmeError(`${what} failed with HTTP ${res.status}: ${detail}`, res.status, p);
}

// ---------------------------------------------------------------------------------------------
// Built-in http-01 responder
// ---------------------------------------------------------------------------------------------

class Http01Server implements Http01Publisher {
  private readonly tokens = new Map<string, string>();
  private server: http.Server | null = null;
  constructor(private readonly host: string, private readonly port: number) {}

  async publish(token: string, keyAuthorization: string): Promise<void> {
    this.tokens.set(token, keyAuthorization);
    if (this.server) return;
    const s = http.createServer((req, res) => {
      const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '');
      const v = m ? this.tokens.get(m[1]) : undefined;
      if (req.method !== 'GET' || v === undefined) { res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n'); return; }
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(v);
    });
    s.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen({ host: this.host, port: this.port }, () => { s.off('error', reject); resolve(); });
    });
    this.server = s;
  }

  unpublish(token: string): void { this.tokens.delete(token); }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    this.tokens.clear();
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

// ---------------------------------------------------------------------------------------------
// The agent
// ---------------------------------------------------------------------------------------------

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
        if (!(e instanceof AcmeError && e.problemType === `${ERR}alreadyReplaced` && replaces)) throw e;
        this.log('warn', 'the CA says the certificate was already replaced; ordering without "replaces"', { certId: replaces });
        replaces = null;
        order = await this.newOrder(conn, null);
      }
      await this.authorize(conn, order.body, publisher, deadline);
      const { csrDer, keyPem, spkiDer } = await newKeyAndCsr(this.identifiers);
      const ready = await this.pollOrder(conn, order.url, ['ready', 'processing', 'valid'], deadline);
      let body = ready;
      if (ready.status === 'ready') {
        const fin = await conn.post(ready.finalize, { csr: Buffer.from(csrDer).toString('base64url') });
        if (fin.status !== 200) throw acmeError('finalize', fin);
        body = asOrder(fin.json);
      }
      if (body.status !== 'valid') body = await this.pollOrder(conn, order.url, ['valid'], deadline);
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
        await this.poll(conn, authzUrl, deadline, (b) => {
          if (b.status === 'valid') return true;
          if (b.status === 'pending' || b.status === 'processing') return false;
          const errs = (Array.isArray(b.challenges) ? b.challenges.filter(isRecord) : []).map((c) => asProblem(c.error)).filter((p): p is AcmeProblem => p !== null);
          throw new AcmeError(`authorization ${authzUrl} is ${String(b.status)}: ${errs.map((p) => `${p.type.replace(ERR, '')}: ${p.detail ?? ''}`).join('; ')}`, 0, errs[0] ?? null);
        });
      }
    } finally {
      for (const t of published) await publisher.unpublish?.(t);
    }
  }

  private async pollOrder(conn: AcmeConnection, url: string, want: string[], deadline: number): Promise<OrderBody> {
    let last: OrderBody | null = null;
    await this.poll(conn, url, deadline, (raw) => {
      const b = asOrder(raw);
      last = b;
      if (want.includes(b.status)) return true;
      if (b.status === 'invalid') {
        const p = b.error ?? null;
        throw new AcmeError(`order ${url} became invalid${p ? `: ${p.type.replace(ERR, '')}: ${p.detail ?? ''}` : ''}`, 0, p);
      }
      return false;
    });
    return last!;
  }

  /** POST-as-GET until `done`, sleeping as the server's Retry-After says (bounded), until the deadline. */
  private async poll(conn: AcmeConnection, url: string, deadline: number, done: (body: Record<string, unknown>) => boolean): Promise<void> {
    const maxWait = this.opts.maxPollIntervalMs ?? 60_000;
    for (;;) {
      const res = await conn.post(url, '');
      if (res.status !== 200 || !isRecord(res.json)) throw acmeError(`polling ${url}`, res);
      if (done(res.json)) return;
      const wait = Math.min(maxWait, Math.max(250, parseRetryAfter(header(res, 'retry-after'), Date.now()) ?? 1000));
      if (Date.now() + wait > deadline) throw new Error(`polling ${url}: not done before the order deadline; last: ${res.text.slice(0, 300)}`);
      await sleep(wait);
    }
  }
}
