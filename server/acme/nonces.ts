import { randomBytes } from 'node:crypto';
import type { Storage } from '../../storage/types.js';

export class NonceService {
  constructor(private readonly store: Storage, private readonly lifetimeMs: number, private readonly now: () => number) {}

  async issue(): Promise<string> {
    // 128 bits, base64url: unguessable and valid in a header without quoting.
    const value = randomBytes(16).toString('base64url');
    await this.store.createNonce(value, this.now() + this.lifetimeMs);
    return value;
  }

  async redeem(value: string): Promise<boolean> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) return false;
    return this.store.consumeNonce(value, this.now());
  }
}
