import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { subtle } from './crypto-engine.js';

// A CA signing key: the node KeyObject for checks and the WebCrypto key pkijs signs with.
// Key providers (software today, PKCS#11 later) produce this shape.
export interface SigningKey {
  privateKey: CryptoKey;
  /** The same key for node:crypto, which signs certificates several times faster than WebCrypto. */
  privateKeyObject: KeyObject;
  publicKeyObject: KeyObject;
  spkiDer: Uint8Array;
  /** Hash that goes with the curve, e.g. SHA-256 for P-256. */
  hash: 'SHA-256' | 'SHA-384';
}

const CURVE_HASH: Record<string, 'SHA-256' | 'SHA-384'> = { 'P-256': 'SHA-256', 'P-384': 'SHA-384' };

export function generateP256Pkcs8Pem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export async function signingKeyFromPem(pem: string): Promise<SigningKey> {
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey({ key: pem, format: 'pem' });
  } catch (e) {
    throw new Error(`not a readable PEM private key: ${(e as Error).message}`);
  }
  if (keyObject.asymmetricKeyType !== 'ec') throw new Error(`CA keys must be ECDSA (P-256 or P-384); got ${keyObject.asymmetricKeyType}`);
  const jwk = keyObject.export({ format: 'jwk' });
  const hash = CURVE_HASH[jwk.crv ?? ''];
  if (!hash) throw new Error(`CA keys must be on P-256 or P-384; got ${jwk.crv}`);
  const pkcs8 = keyObject.export({ format: 'der', type: 'pkcs8' });
  const privateKey = await subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: jwk.crv! }, false, ['sign']);
  const publicKeyObject = createPublicKey(keyObject);
  return { privateKey, privateKeyObject: keyObject, publicKeyObject, spkiDer: new Uint8Array(publicKeyObject.export({ format: 'der', type: 'spki' })), hash };
}
