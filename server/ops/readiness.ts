import { createVerify } from 'node:crypto';
import type { Storage } from '../../storage/types.js';
import { subtle } from '../ca/crypto-engine.js';
import type { SigningKey } from '../ca/signing-key.js';

export interface ReadinessCheck { name: string; ok: boolean; detail: string }
export interface ReadinessReport { ready: boolean; checks: ReadinessCheck[] }

export interface ReadinessSources {
  store: Storage;
  issuerKey: () => SigningKey;
  lastCheckpointAt: () => number;
  /** A checkpoint older than this means the log publisher is stuck. */
  maxCheckpointAgeMs: number;
  now: () => number;
}

async function check(name: string, fn: () => Promise<string>): Promise<ReadinessCheck> {
  try {
    return { name, ok: true, detail: await fn() };
  } catch (e) {
    return { name, ok: false, detail: (e as Error).message };
  }
}

/** Ready means: the database takes writes, the CA key can sign, and the log publishes checkpoints. */
export async function readiness(s: ReadinessSources): Promise<ReadinessReport> {
  const checks = await Promise.all([
    check('database', async () => { await s.store.ping(); return 'writable'; }),
    check('caKey', async () => {
      const key = s.issuerKey();
      const probe = Buffer.from(`readiness ${s.now()}`);
      const sig = Buffer.from(await subtle.sign({ name: 'ECDSA', hash: key.hash }, key.privateKey, probe));
      // WebCrypto gives IEEE P1363 signatures; node verifies them with dsaEncoding ieee-p1363.
      const ok = createVerify(key.hash.replace('-', '')).update(probe).verify({ key: key.publicKeyObject, dsaEncoding: 'ieee-p1363' }, sig);
      if (!ok) throw new Error('the intermediate key produced a signature its certificate key does not verify');
      return 'signs';
    }),
    check('logCheckpoint', async () => {
      const at = s.lastCheckpointAt();
      if (at === 0) throw new Error('no checkpoint published yet');
      const age = s.now() - at;
      if (age > s.maxCheckpointAgeMs) throw new Error(`last checkpoint is ${Math.round(age / 1000)}s old (limit ${Math.round(s.maxCheckpointAgeMs / 1000)}s)`);
      return `${Math.round(age / 1000)}s old`;
    }),
  ]);
  return { ready: checks.every((c) => c.ok), checks };
}
