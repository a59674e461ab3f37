import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../ca/ca-material.js';
import { ed25519RawPublicKey, verifierKeyString } from './note.js';

export interface LogKey {
  origin: string;
  privateKey: KeyObject;
  /** The C2SP verifier key string auditors configure: origin+keyid+base64(0x01‖pub). */
  vkey: string;
}

/** The log's Ed25519 key: separate from every CA key, generated on first start, 0600. */
export function loadOrCreateLogKey(dataDir: string, origin: string): LogKey {
  const path = join(dataDir, 'log.key');
  if (!existsSync(path)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileAtomic(path, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), true);
  }
  const privateKey = createPrivateKey(readFileSync(path, 'utf8'));
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`${path} is not an Ed25519 key`);
  return { origin, privateKey, vkey: verifierKeyString(origin, ed25519RawPublicKey(privateKey)) };
}
