import { flattenedVerify, type JWK } from 'jose';
import type { EabKeyRecord } from '../../storage/types.js';
import type { SecretBox } from '../admin/key-encryption.js';
import { problem } from './problems.js';
import { parseFlattenedJws } from './jws.js';

const MAC_ALGS = ['HS256', 'HS384', 'HS512'];

/** The key id an externalAccountBinding names, read before its MAC can be checked. */
export function eabKeyId(binding: unknown): string {
  const jws = parseFlattenedJws(binding);
  let header: { kid?: unknown };
  try { header = JSON.parse(Buffer.from(jws.protected, 'base64url').toString('utf8')) as { kid?: unknown }; } catch { throw problem('malformed', 'externalAccountBinding has an unreadable protected header'); }
  if (typeof header.kid !== 'string' || header.kid.length === 0) throw problem('malformed', 'externalAccountBinding must name its key id in "kid"');
  return header.kid;
}

/**
 * RFC 8555 §7.3.4: the binding is a MAC-signed JWS over the account's JWK, for the newAccount URL,
 * made with a key the operator issued. Returns nothing; throws a problem on any mismatch.
 */
export async function verifyExternalAccountBinding(binding: unknown, key: EabKeyRecord | null, accountJwk: JWK, newAccountUrl: string, box: SecretBox, now: number): Promise<void> {
  const jws = parseFlattenedJws(binding);
  const header = JSON.parse(Buffer.from(jws.protected, 'base64url').toString('utf8')) as { alg?: unknown; url?: unknown; nonce?: unknown; kid?: unknown };
  if (typeof header.alg !== 'string' || !MAC_ALGS.includes(header.alg)) throw problem('malformed', `externalAccountBinding must use a MAC algorithm (${MAC_ALGS.join(', ')})`);
  if (header.nonce !== undefined) throw problem('malformed', 'externalAccountBinding must not carry a nonce');
  if (header.url !== newAccountUrl) throw problem('malformed', `externalAccountBinding "url" must be ${newAccountUrl}`);
  const unusable = 'the EAB key id is unknown, already used, revoked or expired; ask the CA operator for a new EAB key';
  if (!key || key.hmacKeyEnc === null || key.usedAt !== null || key.revokedAt !== null || (key.expiresAt !== null && key.expiresAt <= now)) {
    throw problem('unauthorized', unusable);
  }
  const hmac = box.unseal(key.hmacKeyEnc, key.id);
  let payload: Uint8Array;
  try {
    ({ payload } = await flattenedVerify(jws, new Uint8Array(hmac), { algorithms: MAC_ALGS }));
  } catch {
    throw problem('unauthorized', 'externalAccountBinding MAC does not verify with that EAB key; check the HMAC key given to your client');
  } finally {
    hmac.fill(0);
  }
  let bound: JWK;
  try { bound = JSON.parse(Buffer.from(payload).toString('utf8')) as JWK; } catch { throw problem('malformed', 'externalAccountBinding payload must be the account JWK'); }
  const same = (a: JWK, b: JWK): boolean => ['kty', 'crv', 'x', 'y', 'n', 'e'].every((m) => (a as Record<string, unknown>)[m] === (b as Record<string, unknown>)[m]);
  if (!same(bound, accountJwk)) throw problem('unauthorized', 'externalAccountBinding binds a different key than the one signing this request');
}
