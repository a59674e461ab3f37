import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import type * as pkijs from 'pkijs';
import { buildCertificate, keyIdentifier, parseCertificate, randomSerial, subjectKeyId } from './certificate-builder.js';
import { pemCertificates, toPem } from './pem.js';
import { generateP256Pkcs8Pem, signingKeyFromPem, type SigningKey } from './signing-key.js';

const DAY = 86_400_000;
export const ROOT_VALIDITY_MS = 3650 * DAY;
export const INTERMEDIATE_VALIDITY_MS = 1095 * DAY;
// pathLen 1 leaves room for the mesh intermediates this CA signs below itself.
export const INTERMEDIATE_PATH_LEN = 1;

export interface Issuer {
  /** SHA-256 of the intermediate certificate's DER, hex: the issuer's stable name in storage and URLs. */
  id: string;
  certDer: Uint8Array;
  certPem: string;
  cert: pkijs.Certificate;
  key: SigningKey;
  keyId: Uint8Array;
  /** PEM of the intermediate followed by any further intermediates up to (not including) the root. */
  chainPem: string;
  /**
   * Other chains for the same intermediate key (e.g. cross-signed by another root), each the PEM
   * certificates that follow the leaf; offered with Link rel="alternate" (RFC 8555 §7.4.2).
   */
  alternateChains: string[];
  notAfter: Date;
}

export interface CaMaterial {
  rootPem: string;
  rootPath: string;
  issuer: Issuer;
}

export interface CaFiles {
  root: string;
  rootKey: string;
  /** Convenience copies of the active issuer, rewritten after each switch; never read back. */
  intermediate: string;
  chain: string;
  /** Holds the id of the active issuer; replaced atomically, so a rotation is one rename. */
  activeIssuer: string;
  issuers: string;
}

export function caFiles(dataDir: string): CaFiles {
  return {
    root: join(dataDir, 'root.pem'),
    rootKey: join(dataDir, 'root.key'),
    intermediate: join(dataDir, 'intermediate.pem'),
    chain: join(dataDir, 'chain.pem'),
    activeIssuer: join(dataDir, 'active-issuer'),
    issuers: join(dataDir, 'issuers'),
  };
}

export function issuerFiles(dataDir: string, id: string): { cert: string; key: string; chain: string } {
  const dir = join(caFiles(dataDir).issuers, id);
  return { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), chain: join(dir, 'chain.pem') };
}

/** Writes atomically; secrets are created 0600 so they are never readable by others, even briefly. */
export function writeFileAtomic(path: string, data: string | Uint8Array, secret: boolean): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode: secret ? 0o600 : 0o644 });
  chmodSync(tmp, secret ? 0o600 : 0o644);
  renameSync(tmp, path);
}

export class CaImportError extends Error {}

/**
 * Checks an intermediate before it is trusted to sign: it must be a CA allowed to sign
 * certificates, currently valid, match its key, and chain to the given root.
 */
export function checkIntermediate(certPem: string, key: SigningKey, chainPems: string[], rootPem: string | null, now: Date): void {
  const ders = pemCertificates(certPem);
  if (ders.length === 0) throw new CaImportError('the intermediate certificate file holds no PEM CERTIFICATE');
  const x = new X509Certificate(Buffer.from(ders[0]));
  if (!x.ca) throw new CaImportError(`certificate "${x.subject}" is not a CA (basicConstraints cA is not true)`);
  if (!x.publicKey.equals(key.publicKeyObject)) throw new CaImportError(`the private key does not match the intermediate certificate "${x.subject}"`);
  if (new Date(x.validTo).getTime() <= now.getTime()) throw new CaImportError(`the intermediate certificate expired on ${new Date(x.validTo).toISOString()}`);
  if (new Date(x.validFrom).getTime() > now.getTime()) throw new CaImportError(`the intermediate certificate is not valid before ${new Date(x.validFrom).toISOString()}`);
  const parsed = parseCertificate(ders[0]);
  const ku = parsed.extensions?.find((e) => e.extnID === '2.5.29.15');
  if (ku) {
    const parsedKu = asn1js.fromBER(ku.extnValue.valueBlock.valueHexView).result;
    const bits = parsedKu instanceof asn1js.BitString ? parsedKu.valueBlock.valueHexView : new Uint8Array();
    if (!(bits[0] & 0x04)) throw new CaImportError('the intermediate certificate\'s keyUsage does not include keyCertSign');
  }
  const chain = [...ders.slice(1), ...chainPems.flatMap((p) => pemCertificates(p))].map((d) => new X509Certificate(Buffer.from(d)));
  const roots = rootPem ? pemCertificates(rootPem).map((d) => new X509Certificate(Buffer.from(d))) : [];
  let cur = x;
  for (let i = 0; i < 8; i++) {
    const parent = [...chain, ...roots].find((c) => cur.checkIssued(c) && cur.verify(c.publicKey));
    if (!parent) {
      if (roots.length === 0) return; // no root given: the chain is taken as presented
      throw new CaImportError(`the intermediate chain does not lead to the given root: no issuer found for "${cur.subject}"`);
    }
    if (roots.some((r) => r.fingerprint256 === parent.fingerprint256)) return;
    cur = parent;
  }
  throw new CaImportError('the intermediate chain is longer than 8 certificates');
}

async function generateCa(dataDir: string, organization: string, now: Date): Promise<void> {
  const f = caFiles(dataDir);
  const rootKeyPem = generateP256Pkcs8Pem();
  const rootKey = await signingKeyFromPem(rootKeyPem);
  const rootDer = await buildCertificate({
    serial: randomSerial(), subject: { organization, commonName: `${organization} Root CA` },
    subjectSpkiDer: rootKey.spkiDer, notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + ROOT_VALIDITY_MS),
    ca: true, keyUsage: ['keyCertSign', 'cRLSign'],
  }, rootKey);
  const rootCert = parseCertificate(rootDer);
  const interKeyPem = generateP256Pkcs8Pem();
  const interKey = await signingKeyFromPem(interKeyPem);
  const interDer = await buildCertificate({
    serial: randomSerial(), subject: { organization, commonName: `${organization} Intermediate CA` },
    issuerName: rootCert.subject, issuerSpkiDer: rootKey.spkiDer, issuerKeyId: subjectKeyId(rootCert), subjectSpkiDer: interKey.spkiDer,
    notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + INTERMEDIATE_VALIDITY_MS),
    ca: true, pathLength: INTERMEDIATE_PATH_LEN, keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
  }, rootKey);
  writeFileAtomic(f.rootKey, rootKeyPem, true);
  writeFileAtomic(f.root, toPem('CERTIFICATE', rootDer), false);
  installIssuer(dataDir, [interDer], interKeyPem);
}

/** Signs a fresh intermediate with the generated root's key (which must be in the data folder). */
async function newIntermediateFromRoot(dataDir: string, organization: string, now: Date): Promise<{ der: Uint8Array; keyPem: string }> {
  const f = caFiles(dataDir);
  if (!existsSync(f.rootKey)) throw new CaImportError(`the root key is not in ${dataDir} (an enterprise root); rotate with "intermediate csr" and "intermediate import" instead`);
  const rootKey = await signingKeyFromPem(readFileSync(f.rootKey, 'utf8'));
  const rootCert = parseCertificate(pemCertificates(readFileSync(f.root, 'utf8'))[0]);
  const keyPem = generateP256Pkcs8Pem();
  const key = await signingKeyFromPem(keyPem);
  const der = await buildCertificate({
    // Distinct subjects per rotation: path building must never confuse two intermediates.
    serial: randomSerial(), subject: { organization, commonName: `${organization} Intermediate CA ${now.toISOString().slice(0, 19).replace('T', ' ')} ${Buffer.from(keyIdentifier(key.spkiDer)).toString('hex').slice(0, 8)}` },
    issuerName: rootCert.subject, issuerSpkiDer: rootKey.spkiDer, issuerKeyId: subjectKeyId(rootCert), subjectSpkiDer: key.spkiDer,
    notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + INTERMEDIATE_VALIDITY_MS),
    ca: true, pathLength: INTERMEDIATE_PATH_LEN, keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
  }, rootKey);
  return { der, keyPem };
}

/** Generated CA: a new intermediate from the root in the data folder becomes the active issuer. */
export async function rotateGeneratedIntermediate(dataDir: string, organization: string, now = new Date()): Promise<string> {
  const { der, keyPem } = await newIntermediateFromRoot(dataDir, organization, now);
  return installIssuer(dataDir, [der], keyPem);
}

export const issuerIdOf = (certDer: Uint8Array): string => createHash('sha256').update(certDer).digest('hex');

/**
 * Writes an issuer's files under issuers/<id>/ (key first, so no certificate is ever without its
 * key), then makes it active with one atomic rename. Earlier issuers stay, retired: they keep
 * signing CRLs for the certificates they issued.
 */
export function installIssuer(dataDir: string, chainDers: Uint8Array[], keyPem: string): string {
  const id = issuerIdOf(chainDers[0]);
  const files = issuerFiles(dataDir, id);
  mkdirSync(join(caFiles(dataDir).issuers, id), { recursive: true, mode: 0o700 });
  writeFileAtomic(files.key, keyPem, true);
  writeFileAtomic(files.chain, chainDers.map((d) => toPem('CERTIFICATE', d)).join(''), false);
  writeFileAtomic(files.cert, toPem('CERTIFICATE', chainDers[0]), false);
  writeFileAtomic(caFiles(dataDir).activeIssuer, `${id}\n`, false);
  writeFileAtomic(caFiles(dataDir).intermediate, toPem('CERTIFICATE', chainDers[0]), false);
  writeFileAtomic(caFiles(dataDir).chain, chainDers.map((d) => toPem('CERTIFICATE', d)).join(''), false);
  return id;
}

export function activeIssuerId(dataDir: string): string | null {
  const f = caFiles(dataDir).activeIssuer;
  return existsSync(f) ? readFileSync(f, 'utf8').trim() : null;
}

export function listIssuerIds(dataDir: string): string[] {
  const dir = caFiles(dataDir).issuers;
  return existsSync(dir) ? readdirSync(dir).filter((n) => /^[0-9a-f]{64}$/.test(n)) : [];
}

export function readAlternateChains(dataDir: string, id: string): string[] {
  const dir = join(caFiles(dataDir).issuers, id);
  return existsSync(dir) ? readdirSync(dir).filter((n) => /^alternate-\d+\.pem$/.test(n)).sort().map((n) => readFileSync(join(dir, n), 'utf8')) : [];
}

/**
 * Adds an alternate chain for an issuer: its first certificate must carry the issuer's subject and
 * public key (a cross-signed twin), so a leaf verifies through it to another root.
 */
export function addAlternateChain(dataDir: string, issuerId: string, chainPem: string, now = new Date()): string {
  const files = issuerFiles(dataDir, issuerId);
  if (!existsSync(files.cert)) throw new CaImportError(`no issuer ${issuerId} in ${dataDir}`);
  const issuer = new X509Certificate(readFileSync(files.cert, 'utf8'));
  const ders = pemCertificates(chainPem);
  if (ders.length === 0) throw new CaImportError('the alternate chain holds no PEM CERTIFICATE');
  const twin = new X509Certificate(Buffer.from(ders[0]));
  if (twin.subject !== issuer.subject || !twin.publicKey.equals(issuer.publicKey)) {
    throw new CaImportError(`the alternate chain's first certificate ("${twin.subject}") is not the intermediate "${issuer.subject}" with the same key`);
  }
  if (new Date(twin.validTo).getTime() <= now.getTime()) throw new CaImportError(`the alternate intermediate expired on ${new Date(twin.validTo).toISOString()}`);
  const ours = Buffer.from(subjectKeyId(parseCertificate(pemCertificates(readFileSync(files.cert, 'utf8'))[0])));
  const theirs = Buffer.from(subjectKeyId(parseCertificate(ders[0])));
  if (!ours.equals(theirs)) {
    throw new CaImportError(`the alternate intermediate's subject key identifier (${theirs.toString('hex')}) differs from ours (${ours.toString('hex')}); issued certificates name their issuer by it, so re-sign it with subjectKeyIdentifier=${ours.toString('hex').replace(/(..)(?!$)/g, '$1:')}`);
  }
  const dir = join(caFiles(dataDir).issuers, issuerId);
  const n = readdirSync(dir).filter((f) => /^alternate-\d+\.pem$/.test(f)).length + 1;
  const path = join(dir, `alternate-${n}.pem`);
  writeFileAtomic(path, ders.map((d) => toPem('CERTIFICATE', d)).join(''), false);
  return path;
}

/** Loads one issuer; the active one must be currently valid, retired ones may have expired. */
export async function loadIssuer(dataDir: string, id: string, rootPem: string, now: Date, opts: { active: boolean }): Promise<Issuer> {
  const files = issuerFiles(dataDir, id);
  const key = await signingKeyFromPem(readFileSync(files.key, 'utf8'));
  const certPem = readFileSync(files.cert, 'utf8');
  const chainPem = existsSync(files.chain) ? readFileSync(files.chain, 'utf8') : certPem;
  if (opts.active) checkIntermediate(certPem, key, [chainPem], rootPem, now);
  const certDer = pemCertificates(certPem)[0];
  const cert = parseCertificate(certDer);
  const alternateChains = readAlternateChains(dataDir, id);
  return { id, certDer, certPem: toPem('CERTIFICATE', certDer), cert, key, keyId: subjectKeyId(cert), chainPem, alternateChains, notAfter: cert.notAfter.value };
}

export interface CaSource {
  dataDir: string;
  organization: string;
  intermediateCert: string | null;
  intermediateKey: string | null;
  rootCert: string | null;
}

/** Installs an externally signed intermediate into the data folder after checking it. */
export async function importIntermediate(dataDir: string, certPath: string, keyPath: string, rootPath: string | null, now: Date): Promise<void> {
  const f = caFiles(dataDir);
  const certPem = readFileSync(certPath, 'utf8');
  const keyPem = readFileSync(keyPath, 'utf8');
  const rootPem = rootPath ? readFileSync(rootPath, 'utf8') : existsSync(f.root) ? readFileSync(f.root, 'utf8') : null;
  if (!rootPem) throw new CaImportError('no root certificate given and none in the data folder; pass the root that signed the intermediate');
  const key = await signingKeyFromPem(keyPem);
  checkIntermediate(certPem, key, [], rootPem, now);
  const ders = pemCertificates(certPem);
  if (activeIssuerId(dataDir) === issuerIdOf(ders[0])) return;
  writeFileAtomic(f.root, rootPem, false);
  installIssuer(dataDir, ders, keyPem);
}

export async function loadOrCreateCa(src: CaSource, now = new Date()): Promise<CaMaterial & { generated: boolean }> {
  mkdirSync(src.dataDir, { recursive: true, mode: 0o700 });
  const f = caFiles(src.dataDir);
  let generated = false;
  if (src.intermediateCert && src.intermediateKey) {
    await importIntermediate(src.dataDir, src.intermediateCert, src.intermediateKey, src.rootCert, now);
  } else if (activeIssuerId(src.dataDir) === null) {
    await generateCa(src.dataDir, src.organization, now);
    generated = true;
  }
  const rootPem = readFileSync(f.root, 'utf8');
  const issuer = await loadIssuer(src.dataDir, activeIssuerId(src.dataDir)!, rootPem, now, { active: true });
  return { rootPem, rootPath: f.root, generated, issuer };
}
