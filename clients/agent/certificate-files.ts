import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import fsp from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { webcrypto } from '../../server/ca/crypto-engine.js';
import { isRecord } from './json-shape.js';

export interface AgentIdentifier { type: 'dns' | 'ip'; value: string }

export interface LoadedCertificate {
  pem: string;
  x509: X509Certificate;
  serial: string;
  certId: string;
  notBefore: number;
  notAfter: number;
  identifiers: AgentIdentifier[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * RFC 9773 §4.1: base64url(keyIdentifier of the Authority Key Identifier) "." base64url(the
 * serial's DER INTEGER content octets, including a leading 00 when the top bit is set).
 */
export function ariCertId(certDer: Uint8Array): string {
  const cert = pkijs.Certificate.fromBER(new Uint8Array(certDer));
  const aki = cert.extensions?.find((e) => e.extnID === '2.5.29.35');
  if (!aki) throw new Error('the certificate has no Authority Key Identifier; it has no ARI certID');
  const parsed = pkijs.AuthorityKeyIdentifier.fromBER(aki.extnValue.valueBlock.valueHexView.slice());
  if (!parsed.keyIdentifier) throw new Error('the certificate\'s Authority Key Identifier has no keyIdentifier');
  const keyId = Buffer.from(parsed.keyIdentifier.valueBlock.valueHexView);
  const serial = Buffer.from(cert.serialNumber.valueBlock.valueHexView);
  return `${keyId.toString('base64url')}.${serial.toString('base64url')}`;
}

function pemToDer(pem: string): Uint8Array {
  return new Uint8Array(Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, ''), 'base64'));
}

function identifiersOf(x: X509Certificate): AgentIdentifier[] {
  const out: AgentIdentifier[] = [];
  for (const part of (x.subjectAltName ?? '').split(/,\s*/)) {
    if (part.startsWith('DNS:')) out.push({ type: 'dns', value: part.slice(4).toLowerCase() });
    else if (part.startsWith('IP Address:')) out.push({ type: 'ip', value: normalizeIp(part.slice(11)) });
  }
  return out;
}

/** Parses a leaf-first PEM chain; null when the text holds no certificate. */
export function parseCertificatePem(pem: string): LoadedCertificate | null {
  const first = pem.match(PEM_CERT)?.[0];
  if (!first) return null;
  const x509 = new X509Certificate(first);
  return {
    pem, x509, serial: x509.serialNumber.toLowerCase(), certId: ariCertId(pemToDer(first)),
    notBefore: Date.parse(x509.validFrom), notAfter: Date.parse(x509.validTo), identifiers: identifiersOf(x509),
  };
}

function normalizeIp(ip: string): string {
  // node prints IPv6 SANs in full lower-case form; compare through the URL parser's canonical form.
  if (isIP(ip) !== 6) return ip;
  try { return new URL(`http://[${ip}]/`).hostname.replace(/^\[|\]$/g, ''); } catch { return ip.toLowerCase(); }
}

export function toIdentifier(v: string | AgentIdentifier): AgentIdentifier {
  if (typeof v !== 'string') return v.type === 'ip' ? { type: 'ip', value: normalizeIp(v.value) } : { type: 'dns', value: v.value.toLowerCase() };
  return isIP(v) ? { type: 'ip', value: normalizeIp(v) } : { type: 'dns', value: v.toLowerCase().replace(/\.$/, '') };
}

export const idKey = (i: AgentIdentifier): string => `${i.type}:${i.value}`;

/** Writes via a temporary file and a rename, so readers never see a half-written file. */
export async function writeFileAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await fsp.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

/** Loads a private JWK file, or creates one with a new P-256 key (0600) when it does not exist. */
export async function loadOrCreateAccountKey(file: string): Promise<KeyObject> {
  let text: string | null = null;
  try { text = await fsp.readFile(file, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (text !== null) {
    const parsed: unknown = JSON.parse(text);
    if (!isRecord(parsed) || typeof parsed.kty !== 'string' || typeof parsed.d !== 'string') throw new Error(`${file} is not a private JWK`);
    return createPrivateKey({ key: parsed as JsonWebKey, format: 'jwk' });
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await writeFileAtomic(file, `${JSON.stringify(privateKey.export({ format: 'jwk' }))}\n`, 0o600);
  return privateKey;
}

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return new Uint8Array(ip.split('.').map(Number));
  const full = new URL(`http://[${ip}]/`).hostname.replace(/^\[|\]$/g, '');
  const [head, tail] = full.includes('::') ? full.split('::') : [full, ''];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = full.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { const n = parseInt(g, 16); out[2 * i] = n >> 8; out[2 * i + 1] = n & 0xff; });
  return out;
}

/** A new P-256 key and a CSR for the identifiers (SAN; CN = first DNS name when it fits). */
export async function newKeyAndCsr(identifiers: AgentIdentifier[]): Promise<{ csrDer: Uint8Array; keyPem: string; spkiDer: Buffer }> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const csr = new pkijs.CertificationRequest();
  csr.version = 0;
  const cn = identifiers.find((i) => i.type === 'dns' && i.value.length <= 64);
  if (cn) csr.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: cn.value }) }));
  await csr.subjectPublicKeyInfo.importKey(keys.publicKey);
  const san = new pkijs.GeneralNames({
    names: identifiers.map((i) => (i.type === 'dns'
      ? new pkijs.GeneralName({ type: 2, value: i.value })
      : new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipBytes(i.value) }) }))),
  });
  const ext = new pkijs.Extensions({ extensions: [new pkijs.Extension({ extnID: '2.5.29.17', critical: false, extnValue: san.toSchema().toBER(false) })] });
  csr.attributes = [new pkijs.Attribute({ type: '1.2.840.113549.1.9.14', values: [ext.toSchema()] })];
  await csr.sign(keys.privateKey, 'SHA-256');
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`;
  const spkiDer = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  return { csrDer: new Uint8Array(csr.toSchema().toBER(false)), keyPem, spkiDer };
}
