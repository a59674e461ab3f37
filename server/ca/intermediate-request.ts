import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { writeFileAtomic, importIntermediate } from './ca-material.js';
import { OID } from './certificate-builder.js';
import { toPem } from './pem.js';
import { generateP256Pkcs8Pem, signingKeyFromPem } from './signing-key.js';

export function pendingKeyPath(dataDir: string): string {
  return join(dataDir, 'intermediate-pending.key');
}

/**
 * First half of bringing an enterprise root: a fresh intermediate key stays in the data folder
 * (0600) and only the CSR leaves it, for the offline root to sign.
 */
export async function createIntermediateCsr(dataDir: string, subject: { organization: string; commonName: string }): Promise<{ csrPem: string; keyPath: string }> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const keyPath = pendingKeyPath(dataDir);
  const keyPem = existsSync(keyPath) ? readFileSync(keyPath, 'utf8') : generateP256Pkcs8Pem();
  const key = await signingKeyFromPem(keyPem);
  const csr = new pkijs.CertificationRequest();
  csr.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: OID.organization, value: new asn1js.Utf8String({ value: subject.organization }) }));
  csr.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: subject.commonName }) }));
  csr.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(new Uint8Array(key.spkiDer));
  await csr.sign(key.privateKey, key.hash);
  if (!existsSync(keyPath)) writeFileAtomic(keyPath, keyPem, true);
  return { csrPem: toPem('CERTIFICATE REQUEST', new Uint8Array(csr.toSchema().toBER(false))), keyPath };
}

/** Second half: the signed certificate is checked against the pending key and the root, then installed. */
export async function importSignedIntermediate(dataDir: string, certPath: string, rootPath: string | null, keyPath?: string): Promise<void> {
  const key = keyPath ?? pendingKeyPath(dataDir);
  if (!existsSync(key)) throw new Error(`no pending intermediate key at ${key}; run "acme-ca intermediate csr" first or pass --key`);
  await importIntermediate(dataDir, certPath, key, rootPath, new Date());
}
