import { createHash, randomBytes } from 'node:crypto';
import type { EabKeyRecord, Storage } from '../../storage/types.js';
import type { SecretBox } from './key-encryption.js';

export interface CreatedEabKey {
  keyId: string;
  /** base64url HMAC key: shown once, never stored in the clear, never logged. */
  hmacKey: string;
  scope: string;
  expiresAt: number | null;
}

export interface EabKeyView {
  keyId: string;
  scope: string;
  description: string;
  status: 'unused' | 'used' | 'revoked' | 'expired';
  createdAt: number;
  expiresAt: number | null;
  usedAt: number | null;
  accountId: string | null;
  /** SHA-256 of the HMAC key, to match a key an operator holds without revealing it. */
  fingerprint: string;
}

export function eabKeyView(k: EabKeyRecord, now: number): EabKeyView {
  const status = k.revokedAt !== null ? 'revoked' : k.usedAt !== null ? 'used' : k.expiresAt !== null && k.expiresAt <= now ? 'expired' : 'unused';
  return { keyId: k.id, scope: k.scope, description: k.description, status, createdAt: k.createdAt, expiresAt: k.expiresAt, usedAt: k.usedAt, accountId: k.accountId, fingerprint: k.hmacKeySha256 };
}

export async function createEabKey(store: Storage, box: SecretBox, input: { scope: string; description?: string; ttlMs?: number | null }, now: number): Promise<CreatedEabKey> {
  const keyId = `eab_${randomBytes(12).toString('base64url')}`;
  const hmac = randomBytes(32);
  const expiresAt = input.ttlMs ? now + input.ttlMs : null;
  await store.createEabKey({
    id: keyId, scope: input.scope, description: input.description ?? '', hmacKeyEnc: box.seal(hmac, keyId),
    hmacKeySha256: createHash('sha256').update(hmac).digest('hex'), createdAt: now, expiresAt, revokedAt: null, usedAt: null, accountId: null,
  });
  return { keyId, hmacKey: hmac.toString('base64url'), scope: input.scope, expiresAt };
}
