import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, flattenedVerify, type JWK } from 'jose';
import type { AccountRecord } from '../../storage/types.js';
import { problem } from './problems.js';
import type { AcmeContext } from './context.js';

export const ACCEPTED_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'EdDSA'] as const;
type Alg = (typeof ACCEPTED_ALGORITHMS)[number];

export interface FlattenedJws { protected: string; payload: string; signature: string }

export interface ProtectedHeader {
  alg: Alg;
  nonce?: string;
  url: string;
  jwk?: JWK;
  kid?: string;
}

export interface VerifiedJws {
  header: ProtectedHeader;
  /** null for POST-as-GET (empty payload). */
  payload: unknown;
  /** Public key that signed the request. */
  key: KeyObject;
  jwk: JWK;
  thumbprint: string;
  /** Set when signed with kid. */
  account: AccountRecord | null;
}

export type KeyMode = 'kid' | 'jwk' | 'either';

const PUBLIC_MEMBERS: Record<string, string[]> = { EC: ['kty', 'crv', 'x', 'y'], RSA: ['kty', 'n', 'e'], OKP: ['kty', 'crv', 'x'] };

function decodeJson(b64: string, what: string): unknown {
  if (!/^[A-Za-z0-9_-]*$/.test(b64)) throw problem('malformed', `the JWS ${what} is not base64url`);
  try {
    return JSON.parse(Buffer.from(b64, 'base64url').toString('utf8'));
  } catch {
    throw problem('malformed', `the JWS ${what} is not base64url-encoded JSON`);
  }
}

export function parseFlattenedJws(body: unknown): FlattenedJws {
  let obj: unknown = body;
  if (typeof body === 'string') {
    try { obj = JSON.parse(body); } catch { throw problem('malformed', 'the request body is not JSON; send a JWS in flattened JSON serialization'); }
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw problem('malformed', 'the request body must be a JWS object in flattened JSON serialization');
  const o = obj as Record<string, unknown>;
  if ('signatures' in o) throw problem('malformed', 'the JWS must use the flattened JSON serialization with exactly one signature');
  if ('header' in o) throw problem('malformed', 'the JWS must not have an unprotected header; put every header parameter in "protected"');
  if (typeof o.protected !== 'string' || typeof o.payload !== 'string' || typeof o.signature !== 'string') {
    throw problem('malformed', 'the JWS needs string members "protected", "payload" and "signature"');
  }
  return { protected: o.protected, payload: o.payload, signature: o.signature };
}

export function parseProtectedHeader(jws: FlattenedJws): ProtectedHeader {
  const h = decodeJson(jws.protected, 'protected header');
  if (h === null || typeof h !== 'object' || Array.isArray(h)) throw problem('malformed', 'the JWS protected header must be a JSON object');
  const header = h as Record<string, unknown>;
  const alg = header.alg;
  if (typeof alg !== 'string' || !(ACCEPTED_ALGORITHMS as readonly string[]).includes(alg)) {
    const p = problem('badSignatureAlgorithm', `the JWS algorithm ${JSON.stringify(alg ?? null)} is not accepted; sign with one of ${ACCEPTED_ALGORITHMS.join(', ')}`);
    p.algorithms = [...ACCEPTED_ALGORITHMS];
    throw p;
  }
  if (typeof header.url !== 'string') throw problem('malformed', 'the JWS protected header has no "url"');
  if (header.nonce !== undefined && typeof header.nonce !== 'string') throw problem('badNonce', 'the JWS "nonce" must be a string');
  if (header.jwk !== undefined && (header.jwk === null || typeof header.jwk !== 'object' || Array.isArray(header.jwk))) throw problem('malformed', 'the JWS "jwk" must be a JSON object');
  if (header.kid !== undefined && typeof header.kid !== 'string') throw problem('malformed', 'the JWS "kid" must be a string (the account URL)');
  if (header.jwk !== undefined && header.kid !== undefined) throw problem('malformed', 'the JWS must carry either "jwk" or "kid", not both');
  if (Array.isArray(header.crit) || header.b64 !== undefined) throw problem('malformed', 'the JWS must not use "crit" or "b64"');
  return { alg: alg as Alg, nonce: header.nonce as string | undefined, url: header.url, jwk: header.jwk as JWK | undefined, kid: header.kid as string | undefined };
}

export function publicJwk(jwk: JWK): JWK {
  const members = PUBLIC_MEMBERS[jwk.kty ?? ''];
  if (!members) throw problem('badPublicKey', `JWK key type ${JSON.stringify(jwk.kty ?? null)} is not supported; use EC, RSA or OKP (Ed25519)`);
  if ('d' in jwk || 'p' in jwk || 'k' in jwk) throw problem('malformed', 'the JWS "jwk" contains private key material; send only the public key');
  const out: Record<string, unknown> = {};
  for (const m of members) {
    if (typeof (jwk as Record<string, unknown>)[m] !== 'string') throw problem('malformed', `the JWK is missing its "${m}" member`);
    out[m] = (jwk as Record<string, unknown>)[m];
  }
  return out as JWK;
}

export function keyFromJwk(jwk: JWK): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk as unknown as JsonWebKey, format: 'jwk' });
  } catch (e) {
    throw problem('badPublicKey', `the JWK is not a valid public key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
    throw problem('badPublicKey', `RSA account keys must be at least 2048 bits; this one has ${key.asymmetricKeyDetails?.modulusLength}`);
  }
  if (key.asymmetricKeyType !== 'ec' && key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ed25519') {
    throw problem('badPublicKey', `account keys must be ECDSA, RSA or Ed25519; got ${key.asymmetricKeyType}`);
  }
  return key;
}

export function spkiSha256(key: KeyObject): string {
  return createHash('sha256').update(key.export({ format: 'der', type: 'spki' })).digest('hex');
}

/** Checks a JWS's signature with a known key and returns its decoded payload. */
export async function verifySignature(jws: FlattenedJws, header: ProtectedHeader, key: KeyObject): Promise<unknown> {
  try {
    await flattenedVerify(jws, key, { algorithms: [header.alg] });
  } catch (e) {
    throw problem('malformed', `the JWS signature does not verify with the ${header.kid ? 'account' : 'provided'} key (${(e as Error).message})`);
  }
  if (jws.payload === '') return null;
  return decodeJson(jws.payload, 'payload');
}

/**
 * The RFC 8555 §6.2-6.5 pipeline: parse, algorithm, key (jwk or kid), url, signature, nonce.
 * The nonce is spent only after the signature verifies, so a forged request cannot burn one.
 */
export async function verifyRequest(ctx: AcmeContext, body: unknown, requestUrl: string, mode: KeyMode): Promise<VerifiedJws> {
  const jws = parseFlattenedJws(body);
  const header = parseProtectedHeader(jws);
  if (mode === 'kid' && !header.kid) throw problem('malformed', 'this request must be signed with the account key and identify it with "kid" (the account URL); "jwk" is only for newAccount and revokeCert');
  if (mode === 'jwk' && !header.jwk) throw problem('malformed', 'this request must carry the public key as "jwk" in the protected header; "kid" is not allowed here');
  if (!header.kid && !header.jwk) throw problem('malformed', 'the JWS protected header needs "jwk" or "kid"');
  if (header.url !== requestUrl) throw problem('unauthorized', `the JWS "url" ${JSON.stringify(header.url)} does not match the request URL ${requestUrl}`);
  if (header.nonce === undefined) throw problem('badNonce', 'the JWS has no "nonce"; get one from newNonce or the last response\'s Replay-Nonce header');

  let account: AccountRecord | null = null;
  let jwk: JWK;
  let key: KeyObject;
  if (header.kid) {
    const id = ctx.urls.accountIdFromUrl(header.kid);
    account = id ? await ctx.store.getAccount(id) : null;
    if (!account) throw problem('accountDoesNotExist', `no account exists at "kid" ${header.kid}; create one with newAccount`);
    jwk = JSON.parse(account.jwk) as JWK;
    key = ctx.keyCache.get(account.id, account.thumbprint) ?? ctx.keyCache.put(account.id, account.thumbprint, keyFromJwk(jwk));
  } else {
    jwk = publicJwk(header.jwk!);
    key = keyFromJwk(jwk);
  }
  const payload = await verifySignature(jws, header, key);
  if (!(await ctx.nonces.redeem(header.nonce))) {
    throw problem('badNonce', 'the nonce is unknown, expired or already used; retry with the fresh nonce in this response\'s Replay-Nonce header');
  }
  if (account && account.status !== 'valid') throw problem('unauthorized', `the account is ${account.status}; it can no longer make requests`, 401); // RFC 8555 §7.3.6
  const thumbprint = account ? account.thumbprint : await calculateJwkThumbprint(jwk, 'sha256');
  return { header, payload, key, jwk, thumbprint, account };
}

/** Account key objects, cached so that a request does not re-import its key. */
export class KeyCache {
  private readonly map = new Map<string, { thumbprint: string; key: KeyObject }>();
  constructor(private readonly max = 10_000) {}
  get(accountId: string, thumbprint: string): KeyObject | undefined {
    const e = this.map.get(accountId);
    return e && e.thumbprint === thumbprint ? e.key : undefined;
  }
  put(accountId: string, thumbprint: string, key: KeyObject): KeyObject {
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value as string);
    this.map.set(accountId, { thumbprint, key });
    return key;
  }
}
