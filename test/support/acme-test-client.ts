import { execFile } from 'node:child_process';
import {
  checkPrimeSync, createPrivateKey, createPublicKey, generateKeyPairSync, generatePrimeSync, randomBytes, sign as cryptoSign,
  type KeyObject,
} from 'node:crypto';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import * as asn1js from 'asn1js';
import { calculateJwkThumbprint, exportJWK, FlattenedSign, type FlattenedJWS, type JWK, type JWSHeaderParameters } from 'jose';
import * as pkijs from 'pkijs';
import { webcrypto } from '../../server/ca/crypto-engine.js';
import { ipToBytes } from '../../server/ca/certificate-builder.js';
import { bigintToB64url, bigMod, bitLength, modPow, randomBelow } from './bigint.js';

export { bigintToB64url };

/*
 * A deliberately small ACME (RFC 8555) client for protocol tests. Unlike certbot or lego it can
 * send requests that are wrong on purpose: any header parameter, algorithm, nonce, URL, content
 * type or raw body can be overridden per request. JWS are built with jose (never by hand), except
 * the two cases jose refuses to produce: `alg: "none"` and an RSA key under 2048 bits.
 */

// ---------------------------------------------------------------------------------------------
// Account keys
// ---------------------------------------------------------------------------------------------

export type AccountKeyKind = 'ES256' | 'ES384' | 'RS256' | 'EdDSA';

export interface AccountKey {
  /** JWS algorithm this key signs with. */
  alg: AccountKeyKind;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Public JWK (members of RFC 7638 only plus whatever jose exports for public keys). */
  jwk: JWK;
  /** RFC 7638 SHA-256 thumbprint, base64url. */
  thumbprint: string;
}

function algFor(key: KeyObject): AccountKeyKind {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1' || curve === 'P-256') return 'ES256';
      if (curve === 'secp384r1' || curve === 'P-384') return 'ES384';
      throw new Error(`unsupported EC curve ${String(curve)}`);
    }
    case 'rsa': return 'RS256';
    case 'ed25519': return 'EdDSA';
    default: throw new Error(`unsupported key type ${String(key.asymmetricKeyType)}`);
  }
}

/** Wraps a private KeyObject as an account key (public JWK and thumbprint computed by jose). */
export async function accountKeyFromPrivate(privateKey: KeyObject): Promise<AccountKey> {
  const publicKey = createPublicKey(privateKey);
  const jwk = await exportJWK(publicKey);
  return { alg: algFor(privateKey), privateKey, publicKey, jwk, thumbprint: await calculateJwkThumbprint(jwk, 'sha256') };
}

/** A fresh account key; `rsaBits` lets a test make a deliberately weak RSA key. */
export async function generateAccountKey(kind: AccountKeyKind = 'ES256', rsaBits = 2048): Promise<AccountKey> {
  let privateKey: KeyObject;
  switch (kind) {
    case 'ES256': privateKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey; break;
    case 'ES384': privateKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey; break;
    case 'RS256': privateKey = generateKeyPairSync('rsa', { modulusLength: rsaBits }).privateKey; break;
    case 'EdDSA': privateKey = generateKeyPairSync('ed25519').privateKey; break;
  }
  return accountKeyFromPrivate(privateKey);
}

// ---------------------------------------------------------------------------------------------
// CSR keys and CSRs (pkijs over the server's WebCrypto engine)
// ---------------------------------------------------------------------------------------------

export type CsrKeyKind = 'P-256' | 'P-384' | 'P-521' | 'RSA2048' | 'RSA1024';

/** Hashes a CSR can be signed with; SHA-1 only to check that the CA refuses it. */
export type CsrHash = 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';

function keyAlgorithm(kind: CsrKeyKind): EcKeyImportParams | RsaHashedImportParams {
  return kind === 'RSA2048' || kind === 'RSA1024' ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: kind };
}

export async function generateCsrKey(kind: CsrKeyKind = 'P-256'): Promise<CryptoKeyPair> {
  if (kind === 'RSA2048' || kind === 'RSA1024') {
    const modulusLength = kind === 'RSA2048' ? 2048 : 1024;
    return webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength, publicExponent: new Uint8Array([1, 0, 1]) }, true, ['sign', 'verify']);
  }
  return webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: kind }, true, ['sign', 'verify']);
}

// ---------------------------------------------------------------------------------------------
// RSA keys from chosen primes: weak keys (close primes, ROCA form, e = 3) that no key generator
// produces, so that a test can check the CA refuses a CSR carrying one. The CSR itself is still
// properly self-signed, so only the key policy can be the reason for a refusal.
// ---------------------------------------------------------------------------------------------

/** a^-1 mod m by the extended Euclidean algorithm; throws when gcd(a, m) != 1. */
export function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [bigMod(a, m), m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  if (oldR !== 1n) throw new Error('modInverse: the numbers are not coprime');
  return bigMod(oldS, m);
}

/** The private JWK (with CRT members) of the RSA key with primes p, q and public exponent e. */
export function rsaPrivateJwkFromPrimes(p: bigint, q: bigint, e = 65537n): JsonWebKey {
  if (p === q) throw new Error('rsaPrivateJwkFromPrimes: p and q must differ');
  const n = p * q;
  const phi = (p - 1n) * (q - 1n);
  const d = modInverse(e, phi);
  return {
    kty: 'RSA',
    n: bigintToB64url(n),
    e: bigintToB64url(e),
    d: bigintToB64url(d),
    p: bigintToB64url(p),
    q: bigintToB64url(q),
    dp: bigintToB64url(d % (p - 1n)),
    dq: bigintToB64url(d % (q - 1n)),
    qi: bigintToB64url(modInverse(q, p)),
  };
}

/** Imports a private RSA JWK (and its public half) into the WebCrypto engine pkijs signs with. */
export async function csrKeyFromRsaJwk(jwk: JsonWebKey, hash: CsrHash = 'SHA-256'): Promise<CryptoKeyPair> {
  if (jwk.kty !== 'RSA' || typeof jwk.n !== 'string' || typeof jwk.e !== 'string' || typeof jwk.d !== 'string') {
    throw new Error('csrKeyFromRsaJwk: expected a private RSA JWK (kty, n, e, d)');
  }
  const algorithm: RsaHashedImportParams = { name: 'RSASSA-PKCS1-v1_5', hash };
  // Only the key members: "alg"/"key_ops" from elsewhere would conflict with the import usages.
  const priv: JsonWebKey = { kty: 'RSA', n: jwk.n, e: jwk.e, d: jwk.d, p: jwk.p, q: jwk.q, dp: jwk.dp, dq: jwk.dq, qi: jwk.qi, ext: true };
  return {
    privateKey: await webcrypto.subtle.importKey('jwk', priv, algorithm, true, ['sign']),
    publicKey: await webcrypto.subtle.importKey('jwk', { kty: 'RSA', n: jwk.n, e: jwk.e, ext: true }, algorithm, true, ['verify']),
  };
}

/** A prime of exactly `bits` bits with its top two bits set (so two of them make a 2*bits modulus). */
function primeTopTwo(bits: number, accept: (p: bigint) => boolean = () => true): bigint {
  const top = 3n << BigInt(bits - 2);
  for (let i = 0; i < 200; i++) {
    const p = generatePrimeSync(bits, { bigint: true });
    if ((p & top) === top && accept(p)) return p;
  }
  throw new Error(`no ${bits}-bit prime with the top two bits set within the attempt bound`);
}

/** Smallest prime >= start (OpenSSL's primality test); bounded so a bug cannot hang a test. */
function nextPrime(start: bigint): bigint {
  let c = start | 1n;
  for (let i = 0; i < 50_000; i++, c += 2n) {
    if (checkPrimeSync(c)) return c;
  }
  throw new Error('nextPrime: no prime within the search bound');
}

export interface RsaPrimes { p: bigint; q: bigint; e: bigint }

/**
 * Primes that share their top ~800 bits, so n = p*q falls to Fermat's method in one step
 * (the "primes too close" check of Boulder's goodkey). 2048-bit modulus.
 */
export function fermatRsaPrimes(): RsaPrimes {
  for (let attempt = 0; attempt < 20; attempt++) {
    const p = primeTopTwo(1024, (x) => (x - 1n) % 65537n !== 0n);
    const q = nextPrime(p + (1n << 200n) + randomBelow(1n << 200n));
    if (bitLength(p * q) === 2048 && (q - 1n) % 65537n !== 0n) return { p, q, e: 65537n };
  }
  throw new Error('fermatRsaPrimes: no suitable pair within the attempt bound');
}

/** First `count` primes, by trial division (count is small). */
function firstPrimes(count: number): bigint[] {
  const out: bigint[] = [];
  for (let c = 2n; out.length < count; c++) {
    if (out.every((p) => c % p !== 0n)) out.push(c);
  }
  return out;
}

/**
 * Infineon RSALib's prime form p = k*M + (65537^a mod M) (ROCA, CVE-2017-15361), with M the
 * product of the first 126 primes as RSALib used for 2048-bit keys. Both primes have the form,
 * so the modulus carries the fingerprint. 2048-bit modulus, e = 65537.
 */
export function rocaRsaPrimes(): RsaPrimes {
  const M = firstPrimes(126).reduce((acc, x) => acc * x, 1n);
  const prime = (): bigint => {
    const low = 3n << 1022n; // top two bits of a 1024-bit number
    const high = 1n << 1024n;
    const kMin = (low + M - 1n) / M;
    const kMax = (high - M) / M - 1n;
    for (let attempt = 0; attempt < 10; attempt++) {
      const residue = modPow(65537n, randomBelow(1n << 128n), M);
      let k = kMin + randomBelow(kMax - kMin - 5_000n);
      for (let i = 0; i < 5_000; i++, k++) {
        const p = k * M + residue;
        if ((p - 1n) % 65537n !== 0n && checkPrimeSync(p)) return p;
      }
    }
    throw new Error('rocaRsaPrimes: no prime within the search bound');
  };
  const p = prime();
  let q = prime();
  for (let i = 0; i < 5 && q === p; i++) q = prime();
  return { p, q, e: 65537n };
}

/** Two ordinary 1024-bit primes usable with e = 3 (p, q = 2 mod 3), for a 2048-bit e=3 key. */
export function exponent3RsaPrimes(): RsaPrimes {
  const ok = (x: bigint): boolean => x % 3n === 2n;
  for (let attempt = 0; attempt < 20; attempt++) {
    const p = primeTopTwo(1024, ok);
    const q = primeTopTwo(1024, ok);
    if (p !== q && bitLength(p * q) === 2048) return { p, q, e: 3n };
  }
  throw new Error('exponent3RsaPrimes: no suitable pair within the attempt bound');
}

/** A CSR key pair for the RSA key with the given primes. */
export function csrKeyFromPrimes(primes: RsaPrimes, hash: CsrHash = 'SHA-256'): Promise<CryptoKeyPair> {
  return csrKeyFromRsaJwk(rsaPrivateJwkFromPrimes(primes.p, primes.q, primes.e), hash);
}

/** The WebCrypto pair of an account key, e.g. to sign a CSR with the account key on purpose. */
export async function cryptoKeyPairFromAccountKey(key: AccountKey): Promise<CryptoKeyPair> {
  let kind: CsrKeyKind;
  if (key.alg === 'ES256') kind = 'P-256';
  else if (key.alg === 'ES384') kind = 'P-384';
  else if (key.alg === 'RS256') kind = 'RSA2048';
  else throw new Error(`cannot convert a ${key.alg} key for pkijs`);
  const algorithm = keyAlgorithm(kind);
  const pkcs8 = key.privateKey.export({ format: 'der', type: 'pkcs8' });
  const spki = key.publicKey.export({ format: 'der', type: 'spki' });
  return {
    privateKey: await webcrypto.subtle.importKey('pkcs8', pkcs8, algorithm, true, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', spki, algorithm, true, ['verify']),
  };
}

/** A certificate key as an account-style signing key, for revocation signed by the certificate key. */
export async function accountKeyFromCryptoKeyPair(pair: CryptoKeyPair): Promise<AccountKey> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey));
  return accountKeyFromPrivate(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
}

// IP SANs are encoded with the CA's own function; the tests check the result with openssl.
export { ipToBytes };

export interface CsrSpec {
  keys: CryptoKeyPair;
  commonName?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** URI SANs (e.g. SPIFFE IDs). */
  uris?: string[];
  /** Omit the extensionRequest attribute even if there are no SANs. */
  noSan?: boolean;
  /** Signature hash; default SHA-256. An RSA key is re-imported for it when its own hash differs. */
  hash?: CsrHash;
}

/** An RSA private key bound (as WebCrypto binds RSA keys) to `hash`; EC keys are returned as they are. */
async function signingKeyFor(key: CryptoKey, hash: CsrHash): Promise<CryptoKey> {
  const alg = key.algorithm as RsaHashedKeyAlgorithm;
  if (alg.name !== 'RSASSA-PKCS1-v1_5' || alg.hash.name === hash) return key;
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', key);
  return webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSASSA-PKCS1-v1_5', hash }, false, ['sign']);
}

/** A DER PKCS#10 request signed by `keys` (SHA-256 unless `hash`), with the given CN and SANs. */
export async function buildCsr(spec: CsrSpec): Promise<Uint8Array> {
  const csr = new pkijs.CertificationRequest();
  csr.version = 0;
  if (spec.commonName !== undefined) {
    csr.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: spec.commonName }) }));
  }
  await csr.subjectPublicKeyInfo.importKey(spec.keys.publicKey);
  const names = [
    ...(spec.dnsNames ?? []).map((d) => new pkijs.GeneralName({ type: 2, value: d })),
    ...(spec.ipAddresses ?? []).map((ip) => new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipToBytes(ip) }) })),
    ...(spec.uris ?? []).map((u) => new pkijs.GeneralName({ type: 6, value: u })),
  ];
  if (names.length > 0 && !spec.noSan) {
    const san = new pkijs.GeneralNames({ names });
    const extensions = new pkijs.Extensions({
      extensions: [new pkijs.Extension({ extnID: '2.5.29.17', critical: false, extnValue: san.toSchema().toBER(false) })],
    });
    csr.attributes = [new pkijs.Attribute({ type: '1.2.840.113549.1.9.14', values: [extensions.toSchema()] })];
  }
  const hash = spec.hash ?? 'SHA-256';
  await csr.sign(await signingKeyFor(spec.keys.privateKey, hash), hash);
  return new Uint8Array(csr.toSchema().toBER(false));
}

/** A copy of a DER CSR with one byte of its signature flipped (the last byte of the DER). */
export function corruptCsrSignature(der: Uint8Array): Uint8Array {
  const copy = new Uint8Array(der);
  copy[copy.length - 1] ^= 0x01;
  return copy;
}

// ---------------------------------------------------------------------------------------------
// Resource shapes (checked at the boundary)
// ---------------------------------------------------------------------------------------------

export interface Identifier { type: 'dns' | 'ip'; value: string }

export interface AcmeDirectory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
  revokeCert: string;
  keyChange: string;
  meta?: Record<string, unknown>;
}

export interface AcmeProblemDocument {
  type: string;
  detail: string;
  status?: number;
  algorithms?: string[];
  subproblems?: AcmeProblemDocument[];
  identifier?: Identifier;
}

export interface AcmeAccount {
  status: string;
  contact?: string[];
  orders?: string;
  termsOfServiceAgreed?: boolean;
}

export interface AcmeOrder {
  status: 'pending' | 'ready' | 'processing' | 'valid' | 'invalid';
  expires?: string;
  identifiers: Identifier[];
  authorizations: string[];
  finalize: string;
  certificate?: string;
  error?: AcmeProblemDocument;
}

export interface AcmeChallenge {
  type: string;
  url: string;
  status: 'pending' | 'processing' | 'valid' | 'invalid';
  token: string;
  validated?: string;
  error?: AcmeProblemDocument;
}

export interface AcmeAuthorization {
  identifier: Identifier;
  status: string;
  expires?: string;
  challenges: AcmeChallenge[];
  wildcard?: boolean;
}

export interface AcmeOrdersList { orders: string[] }

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function need(cond: boolean, what: string, v: unknown): void {
  if (!cond) throw new Error(`unexpected ACME response (${what}): ${JSON.stringify(v)}`);
}

export function asDirectory(v: unknown): AcmeDirectory {
  need(isObject(v) && ['newNonce', 'newAccount', 'newOrder', 'revokeCert', 'keyChange'].every((k) => typeof v[k] === 'string'), 'directory', v);
  return v as unknown as AcmeDirectory;
}

export function asProblem(v: unknown): AcmeProblemDocument {
  need(isObject(v) && typeof v.type === 'string' && typeof v.detail === 'string', 'problem document', v);
  return v as unknown as AcmeProblemDocument;
}

export function asAccount(v: unknown): AcmeAccount {
  need(isObject(v) && typeof v.status === 'string', 'account', v);
  return v as unknown as AcmeAccount;
}

export function asOrder(v: unknown): AcmeOrder {
  need(isObject(v) && typeof v.status === 'string' && Array.isArray(v.identifiers) && Array.isArray(v.authorizations) && typeof v.finalize === 'string', 'order', v);
  return v as unknown as AcmeOrder;
}

export function asAuthorization(v: unknown): AcmeAuthorization {
  need(isObject(v) && isObject(v.identifier) && typeof v.status === 'string' && Array.isArray(v.challenges), 'authorization', v);
  return v as unknown as AcmeAuthorization;
}

export function asChallenge(v: unknown): AcmeChallenge {
  need(isObject(v) && typeof v.type === 'string' && typeof v.url === 'string' && typeof v.status === 'string' && typeof v.token === 'string', 'challenge', v);
  return v as unknown as AcmeChallenge;
}

export function asOrdersList(v: unknown): AcmeOrdersList {
  need(isObject(v) && Array.isArray(v.orders) && v.orders.every((o) => typeof o === 'string'), 'orders list', v);
  return v as unknown as AcmeOrdersList;
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

export interface AcmeResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON when the response is JSON (application/json, application/problem+json), otherwise the text. */
  body: unknown;
  text: string;
  /** Whether the request went over a kept-alive connection that served an earlier request. */
  reusedSocket: boolean;
}

/** One header as a single string (first value if repeated). */
export function header(res: AcmeResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Links of a response by relation: `Link: <url>;rel="next", <url>;rel="index"`. */
export function links(res: AcmeResponse, rel: string): string[] {
  const raw = res.headers.link;
  const all = (Array.isArray(raw) ? raw : raw ? [raw] : []).join(', ');
  const out: string[] = [];
  for (const m of all.matchAll(/<([^>]*)>\s*((?:;\s*[^,;]+)*)/g)) {
    const params = m[2];
    const relm = /;\s*rel="?([^";]+)"?/i.exec(params);
    if (relm && relm[1].split(/\s+/).includes(rel)) out.push(m[1]);
  }
  return out;
}

/** Retry-After in milliseconds (delta-seconds or HTTP-date), or null. */
export function retryAfterMs(res: AcmeResponse, now = Date.now()): number | null {
  const v = header(res, 'retry-after');
  if (v === undefined) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, t - now);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

export interface PostOptions {
  /** Signing key; default the client's account key. */
  key?: AccountKey;
  /** Header "kid"; undefined: the client's account URL unless `jwk` is set; null: no "kid". */
  kid?: string | null;
  /** Header "jwk": true for the signing key's public JWK, or a JWK of one's choice. */
  jwk?: boolean | JWK;
  /** Header "alg". "none" sends an unsigned JWS; "HS256"/"HS384"/"HS512" sign with a random HMAC key. */
  alg?: string;
  /** Header "nonce"; undefined: a fresh one; null: none. */
  nonce?: string | null;
  /** Header "url"; default the request URL. */
  url?: string;
  contentType?: string;
  /** Sent instead of the JWS, verbatim. */
  rawBody?: string;
  /** More protected header parameters (override the ones above). */
  extraProtected?: Record<string, unknown>;
  accept?: string;
}

/** newOrder options: the request overrides of PostOptions plus the order's `profile`. */
export interface OrderOptions extends PostOptions {
  /** The newOrder `profile` field (ACME profiles extension); omitted when undefined. */
  profile?: string;
}

/** An External Account Binding key as the CA operator hands it out. */
export interface EabCredentials {
  keyId: string;
  /** base64url HMAC key. */
  hmacKey: string;
}

/** Ways to make an externalAccountBinding wrong on purpose. */
export interface EabOptions {
  alg?: 'HS256' | 'HS384' | 'HS512';
  /** Protected "kid"; default the key id. */
  kid?: string;
  /** Protected "url"; default the newAccount URL. */
  url?: string;
  /** Bind this JWK instead of the account key's. */
  payloadJwk?: JWK;
  /** Sign with this base64url HMAC key instead of the real one. */
  hmacKey?: string;
  extraProtected?: Record<string, unknown>;
}

/**
 * RFC 8555 §7.3.4: a flattened JWS, MACed with the EAB HMAC key, whose protected header is
 * {alg, kid: <EAB key id>, url: <newAccount URL>} and whose payload is the account's public JWK.
 */
export async function externalAccountBinding(accountJwk: JWK, eab: EabCredentials, newAccountUrl: string, o: EabOptions = {}): Promise<FlattenedJWS> {
  const header: Record<string, unknown> = { alg: o.alg ?? 'HS256', kid: o.kid ?? eab.keyId, url: o.url ?? newAccountUrl, ...o.extraProtected };
  const payload = new TextEncoder().encode(JSON.stringify(o.payloadJwk ?? accountJwk));
  const secret = new Uint8Array(Buffer.from(o.hmacKey ?? eab.hmacKey, 'base64url'));
  return new FlattenedSign(payload).setProtectedHeader(header as JWSHeaderParameters).sign(secret);
}

export interface ClientOptions {
  /** Sockets per origin; 1 lets a test observe keep-alive reuse. */
  maxSockets?: number;
}

export interface Account { key: AccountKey; url: string }

export class AcmeTestClient {
  agent: https.Agent;
  directory!: AcmeDirectory;
  account: Account | null = null;
  private nonces: string[] = [];

  private constructor(readonly directoryUrl: string, readonly rootPem: string, private readonly opts: ClientOptions) {
    this.agent = this.makeAgent();
  }

  static async connect(directoryUrl: string, rootPem: string, opts: ClientOptions = {}): Promise<AcmeTestClient> {
    const c = new AcmeTestClient(directoryUrl, rootPem, opts);
    const res = await c.request('GET', directoryUrl);
    if (res.status !== 200) throw new Error(`GET ${directoryUrl} answered ${res.status}: ${res.text}`);
    c.directory = asDirectory(res.body);
    return c;
  }

  /** Another client for the same server (own agent, nonces and account). */
  async sibling(opts: ClientOptions = this.opts): Promise<AcmeTestClient> {
    return AcmeTestClient.connect(this.directoryUrl, this.rootPem, opts);
  }

  private makeAgent(): https.Agent {
    return new https.Agent({ keepAlive: true, maxSockets: this.opts.maxSockets ?? 4, ca: this.rootPem });
  }

  /** Drops every kept-alive connection (e.g. after the server restarted) and cached nonce. */
  resetConnections(): void {
    this.agent.destroy();
    this.agent = this.makeAgent();
    this.nonces = [];
  }

  close(): void {
    this.agent.destroy();
  }

  request(method: string, url: string, o: RequestOptions = {}): Promise<AcmeResponse> {
    const timeoutMs = o.timeoutMs ?? 10_000;
    return new Promise<AcmeResponse>((resolve, reject) => {
      const headers: Record<string, string> = { 'User-Agent': 'acme-ca-protocol-tests', ...o.headers };
      if (o.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(o.body));
      const req = https.request(url, { method, headers, agent: this.agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const ct = res.headers['content-type'] ?? '';
          let body: unknown = text;
          if (/json/i.test(ct) && text.length > 0) {
            try { body = JSON.parse(text) as unknown; } catch { body = text; }
          }
          const nonce = res.headers['replay-nonce'];
          if (typeof nonce === 'string' && nonce.length > 0) this.nonces.push(nonce);
          if (this.nonces.length > 16) this.nonces.splice(0, this.nonces.length - 16);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, reusedSocket: req.reusedSocket });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no response within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(o.body);
    });
  }

  /** HEAD newNonce, raw. */
  headNonce(): Promise<AcmeResponse> {
    return this.request('HEAD', this.directory.newNonce);
  }

  /** A fresh nonce from HEAD newNonce (not from the pool). */
  async newNonce(): Promise<string> {
    const res = await this.headNonce();
    const n = header(res, 'replay-nonce');
    if (res.status !== 200 || !n) throw new Error(`HEAD newNonce answered ${res.status} without a nonce`);
    // request() pooled it; hand it out exclusively.
    this.nonces = this.nonces.filter((x) => x !== n);
    return n;
  }

  /** A nonce from the last responses, or a new one. */
  async takeNonce(): Promise<string> {
    return this.nonces.pop() ?? this.newNonce();
  }

  private signingKey(o: PostOptions): AccountKey {
    const key = o.key ?? this.account?.key;
    if (!key) throw new Error('no key: pass opts.key or create an account first');
    return key;
  }

  /** Builds the flattened JWS for `url` (all overrides of PostOptions apply). */
  async jws(url: string, payload: JsonObject | '' | FlattenedJWS, o: PostOptions = {}): Promise<FlattenedJWS> {
    const key = this.signingKey(o);
    const alg = o.alg ?? key.alg;
    const header: Record<string, unknown> = { alg };
    if (o.jwk) header.jwk = o.jwk === true ? key.jwk : o.jwk;
    if (o.kid !== undefined) {
      if (o.kid !== null) header.kid = o.kid;
    } else if (!o.jwk) {
      if (this.account) header.kid = this.account.url;
      else header.jwk = key.jwk;
    }
    if (o.nonce !== null) header.nonce = o.nonce ?? (await this.takeNonce());
    header.url = o.url ?? url;
    Object.assign(header, o.extraProtected ?? {});
    const payloadBytes = new TextEncoder().encode(payload === '' ? '' : JSON.stringify(payload));
    return signFlattened(payloadBytes, header, key, alg);
  }

  /** POST a JWS (or `rawBody`) to `url`. `''` is POST-as-GET. */
  async post(url: string, payload: JsonObject | '' | FlattenedJWS, o: PostOptions = {}): Promise<AcmeResponse> {
    const body = o.rawBody ?? JSON.stringify(await this.jws(url, payload, o));
    const headers: Record<string, string> = { 'Content-Type': o.contentType ?? 'application/jose+json' };
    if (o.accept) headers.Accept = o.accept;
    return this.request('POST', url, { headers, body });
  }

  /** newAccount with `key` (signed with "jwk"); on 200/201 the client uses that account. */
  async newAccount(key: AccountKey, payload: JsonObject = { termsOfServiceAgreed: true }, o: PostOptions = {}): Promise<AcmeResponse> {
    const res = await this.post(this.directory.newAccount, payload, { key, jwk: true, kid: null, ...o });
    const location = header(res, 'location');
    if ((res.status === 200 || res.status === 201) && location) this.account = { key, url: location };
    return res;
  }

  /**
   * newAccount bound to an EAB key (RFC 8555 §7.3.4): `payload` plus an externalAccountBinding
   * over `key`'s public JWK for the directory's newAccount URL.
   */
  async newAccountWithEab(key: AccountKey, eab: EabCredentials, payload: JsonObject = { termsOfServiceAgreed: true }, o: PostOptions = {}, eabOpts: EabOptions = {}): Promise<AcmeResponse> {
    const binding = await externalAccountBinding(key.jwk, eab, this.directory.newAccount, eabOpts);
    return this.newAccount(key, { ...payload, externalAccountBinding: binding }, o);
  }

  /** newOrder; `o.profile` sets the order's profile, `extra` adds any other payload members. */
  newOrder(identifiers: Identifier[], o: OrderOptions = {}, extra: JsonObject = {}): Promise<AcmeResponse> {
    const { profile, ...post } = o;
    return this.post(this.directory.newOrder, { identifiers, ...(profile !== undefined ? { profile } : {}), ...extra }, post);
  }

  getAuthz(url: string, o: PostOptions = {}): Promise<AcmeResponse> {
    return this.post(url, '', o);
  }

  respondChallenge(url: string, o: PostOptions = {}): Promise<AcmeResponse> {
    return this.post(url, {}, o);
  }

  finalize(finalizeUrl: string, csrDer: Uint8Array, o: PostOptions = {}): Promise<AcmeResponse> {
    return this.post(finalizeUrl, { csr: Buffer.from(csrDer).toString('base64url') }, o);
  }

  /**
   * POST-as-GET `url` until `until(body)` holds, sleeping as long as Retry-After says (at least
   * 100 ms, 1 s when absent); fails on an error status, on an `invalid` resource or at the deadline.
   */
  async poll(url: string, until: (body: unknown) => boolean, opts: { timeoutMs?: number; post?: PostOptions } = {}): Promise<AcmeResponse> {
    const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
    for (;;) {
      const res = await this.post(url, '', opts.post);
      if (res.status >= 400) throw new Error(`polling ${url}: HTTP ${res.status} ${res.text}`);
      if (until(res.body)) return res;
      if (isObject(res.body) && res.body.status === 'invalid') throw new Error(`polling ${url}: resource is invalid: ${res.text}`);
      const wait = Math.max(100, retryAfterMs(res) ?? 1000);
      if (Date.now() + wait > deadline) throw new Error(`polling ${url}: condition not met within the deadline; last: ${res.text}`);
      await sleep(wait);
    }
  }

  downloadCert(url: string, o: PostOptions = {}): Promise<AcmeResponse> {
    return this.post(url, '', { accept: 'application/pem-certificate-chain', ...o });
  }

  /** revokeCert signed by the account (kid) or by the certificate's key (jwk). */
  revoke(certDer: Uint8Array, opts: { signWith: 'account' | 'certKey'; certKey?: AccountKey; reason?: number; post?: PostOptions }): Promise<AcmeResponse> {
    const payload: JsonObject = { certificate: Buffer.from(certDer).toString('base64url') };
    if (opts.reason !== undefined) payload.reason = opts.reason;
    if (opts.signWith === 'certKey') {
      if (!opts.certKey) throw new Error('signWith certKey needs certKey');
      return this.post(this.directory.revokeCert, payload, { key: opts.certKey, jwk: true, kid: null, ...opts.post });
    }
    return this.post(this.directory.revokeCert, payload, opts.post);
  }

  /**
   * keyChange (RFC 8555 §7.3.5) to `newKey`; the inner JWS's url, account and oldKey can be
   * falsified. On 200 the client signs with the new key from then on.
   */
  async keyChange(newKey: AccountKey, opts: { innerUrl?: string; innerAccount?: string; oldKey?: JWK; innerExtra?: Record<string, unknown>; post?: PostOptions } = {}): Promise<AcmeResponse> {
    const account = this.account;
    if (!account) throw new Error('keyChange needs an account');
    const url = this.directory.keyChange;
    const inner = await signFlattened(
      new TextEncoder().encode(JSON.stringify({ account: opts.innerAccount ?? account.url, oldKey: opts.oldKey ?? account.key.jwk })),
      { alg: newKey.alg, jwk: newKey.jwk, url: opts.innerUrl ?? url, ...opts.innerExtra },
      newKey, newKey.alg,
    );
    const res = await this.post(url, inner, opts.post);
    if (res.status === 200) this.account = { key: newKey, url: account.url };
    return res;
  }

  /** Key authorization of a token for the current account (RFC 8555 §8.1). */
  keyAuthorization(token: string): string {
    if (!this.account) throw new Error('no account');
    return `${token}.${this.account.key.thumbprint}`;
  }
}

/** jose FlattenedSign, except for alg "none" and RSA keys under 2048 bits (see file comment). */
async function signFlattened(payload: Uint8Array, header: Record<string, unknown>, key: AccountKey, alg: string): Promise<FlattenedJWS> {
  const b64 = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');
  if (alg === 'none') {
    return { protected: b64(JSON.stringify(header)), payload: b64(payload), signature: '' };
  }
  if (/^HS(256|384|512)$/.test(alg)) {
    return new FlattenedSign(payload).setProtectedHeader(header as JWSHeaderParameters).sign(new Uint8Array(randomBytes(32)));
  }
  const bits = key.privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
  if (alg === 'RS256' && key.privateKey.asymmetricKeyType === 'rsa' && bits < 2048) {
    const protectedB64 = b64(JSON.stringify(header));
    const payloadB64 = b64(payload);
    const signature = cryptoSign('sha256', Buffer.from(`${protectedB64}.${payloadB64}`, 'ascii'), key.privateKey);
    return { protected: protectedB64, payload: payloadB64, signature: signature.toString('base64url') };
  }
  return new FlattenedSign(payload).setProtectedHeader(header as JWSHeaderParameters).sign(key.privateKey);
}

// ---------------------------------------------------------------------------------------------
// http-01 responder
// ---------------------------------------------------------------------------------------------

/** Serves `/.well-known/acme-challenge/<token>` from a map, on 127.0.0.1. */
export class Http01Responder {
  readonly tokens = new Map<string, string>();
  /** Paths requested, for assertions on what the CA fetched. */
  readonly requests: string[] = [];
  private server: http.Server | null = null;
  port = 0;

  async start(port: number, host = '127.0.0.1'): Promise<void> {
    const server = http.createServer((req, res) => {
      const p = req.url ?? '';
      this.requests.push(p);
      const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(p);
      const value = m ? this.tokens.get(m[1]) : undefined;
      if (req.method !== 'GET' || value === undefined) {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(value);
    });
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host }, () => { server.off('error', reject); resolve(); });
    });
    const addr = server.address();
    this.port = addr !== null && typeof addr === 'object' ? addr.port : port;
    this.server = server;
  }

  set(token: string, keyAuthorization: string): void {
    this.tokens.set(token, keyAuthorization);
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------------
// Flows and checks shared by the protocol and restart tests
// ---------------------------------------------------------------------------------------------

/** Answers the http-01 challenge of every pending authorization of an order and waits for them to be valid. */
export async function completeHttp01(client: AcmeTestClient, order: AcmeOrder, responder: Http01Responder, timeoutMs = 20_000): Promise<void> {
  for (const authzUrl of order.authorizations) {
    const authz = asAuthorization((await client.getAuthz(authzUrl)).body);
    if (authz.status === 'valid') continue;
    const ch = authz.challenges.find((c) => c.type === 'http-01');
    if (!ch) throw new Error(`authorization ${authzUrl} offers no http-01: ${JSON.stringify(authz)}`);
    responder.set(ch.token, client.keyAuthorization(ch.token));
    const res = await client.respondChallenge(ch.url);
    if (res.status !== 200) throw new Error(`challenge ${ch.url} answered ${res.status}: ${res.text}`);
    await client.poll(authzUrl, (b) => isObject(b) && b.status === 'valid', { timeoutMs });
  }
}

/** The PEM certificates of a chain, leaf first. */
export function splitPem(pem: string): string[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => `${m[0]}\n`);
}

/**
 * `openssl verify -CAfile root -untrusted intermediates leaf`; resolves with openssl's output,
 * rejects unless openssl says "<leaf>: OK". Bounded by a timeout.
 */
export async function opensslVerifyChain(rootPemPath: string, chainPem: string): Promise<string> {
  const blocks = splitPem(chainPem);
  if (blocks.length < 2) throw new Error(`expected a leaf and at least one intermediate, got ${blocks.length} certificates`);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-proto-verify-'));
  try {
    const leaf = path.join(dir, 'leaf.pem');
    const inter = path.join(dir, 'intermediate.pem');
    await fsp.writeFile(leaf, blocks[0]);
    await fsp.writeFile(inter, blocks.slice(1).join(''));
    const args = ['verify', '-CAfile', rootPemPath, '-untrusted', inter, leaf];
    const out = await new Promise<string>((resolve, reject) => {
      execFile('openssl', args, { timeout: 15_000, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err) reject(new Error(`openssl ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      });
    });
    if (!out.includes(`${leaf}: OK`)) throw new Error(`openssl verify did not say OK: ${out}`);
    return out;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
