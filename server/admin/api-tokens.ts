import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiTokenRecord, Storage, TokenScope } from '../../storage/types.js';

export const TOKEN_SCOPES: readonly TokenScope[] = ['admin', 'read-log', 'mesh'];
const PREFIX = 'acmeca';
const FORMAT = /^acmeca_([A-Za-z0-9_-]{16})_([A-Za-z0-9_-]{43})$/;

const sha256 = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

export interface CreatedToken { id: string; token: string; scopes: TokenScope[]; expiresAt: number | null }

/** A bearer token "acmeca_<id>_<secret>": the id finds the row, only SHA-256(secret) is stored. */
export async function createApiToken(store: Storage, input: { name: string; scopes: TokenScope[]; ttlMs?: number | null }, now: number): Promise<CreatedToken> {
  const id = randomBytes(12).toString('base64url');
  const secret = randomBytes(32).toString('base64url');
  const expiresAt = input.ttlMs ? now + input.ttlMs : null;
  await store.createApiToken({ id, name: input.name, scopes: [...new Set(input.scopes)], secretSha256: sha256(secret).toString('hex'), createdAt: now, expiresAt, revokedAt: null });
  return { id, token: `${PREFIX}_${id}_${secret}`, scopes: input.scopes, expiresAt };
}

export type TokenCheck = { ok: true; token: ApiTokenRecord } | { ok: false; reason: string };

/** Checks a presented token for a scope; the comparison of secrets is constant-time. */
export async function checkApiToken(store: Storage, presented: string | undefined, scope: TokenScope, now: number): Promise<TokenCheck> {
  if (!presented) return { ok: false, reason: 'an Authorization: Bearer token is required' };
  const m = FORMAT.exec(presented);
  if (!m) return { ok: false, reason: 'the bearer token is malformed' };
  const row = await store.getApiToken(m[1]);
  const given = sha256(m[2]);
  // Compare against a dummy when the id is unknown, so timing does not reveal which ids exist.
  const stored = row ? Buffer.from(row.secretSha256, 'hex') : sha256('no such token');
  const match = timingSafeEqual(given, stored) && row !== null;
  if (!match) return { ok: false, reason: 'the bearer token is unknown' };
  if (row.revokedAt !== null) return { ok: false, reason: 'the bearer token was revoked' };
  if (row.expiresAt !== null && row.expiresAt <= now) return { ok: false, reason: 'the bearer token expired' };
  if (!row.scopes.includes(scope) && !row.scopes.includes('admin')) return { ok: false, reason: `the bearer token lacks the "${scope}" scope` };
  return { ok: true, token: row };
}

export function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return m ? m[1] : undefined;
}
