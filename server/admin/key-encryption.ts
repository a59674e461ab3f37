import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../ca/ca-material.js';

/**
 * Encrypts secrets that must be usable later but must not sit in the database in the clear (EAB
 * HMAC keys until their single use). The key-encryption key is a 0600 file beside the database,
 * so a copy of the database alone reveals nothing.
 */
export class SecretBox {
  private constructor(private readonly kek: Buffer) {}

  static open(dataDir: string): SecretBox {
    const path = join(dataDir, 'secrets.kek');
    if (!existsSync(path)) writeFileAtomic(path, randomBytes(32).toString('base64'), true);
    const kek = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
    if (kek.length !== 32) throw new Error(`${path} must hold 32 base64-encoded bytes`);
    return new SecretBox(kek);
  }

  seal(plaintext: Uint8Array, context: string): Uint8Array {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.kek, iv);
    c.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([c.update(plaintext), c.final()]);
    return new Uint8Array(Buffer.concat([iv, c.getAuthTag(), body]));
  }

  /** The context (e.g. the EAB key id) is authenticated, so a ciphertext cannot be moved to another row. */
  unseal(sealed: Uint8Array, context: string): Buffer {
    const b = Buffer.from(sealed);
    const d = createDecipheriv('aes-256-gcm', this.kek, b.subarray(0, 12));
    d.setAAD(Buffer.from(context, 'utf8'));
    d.setAuthTag(b.subarray(12, 28));
    return Buffer.concat([d.update(b.subarray(28)), d.final()]);
  }
}
