import { createHash, randomBytes, sign } from 'node:crypto';
import { isIP } from 'node:net';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import './crypto-engine.js';
import type { SigningKey } from './signing-key.js';

export const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  crlDistributionPoints: '2.5.29.31',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  nameConstraints: '2.5.29.30',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  extensionRequest: '1.2.840.113549.1.9.14',
  acmeIdentifier: '1.3.6.1.5.5.7.1.31',
} as const;

export type KeyUsageName = 'digitalSignature' | 'keyEncipherment' | 'keyCertSign' | 'cRLSign';
const KEY_USAGE_BIT: Record<KeyUsageName, number> = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 };

export interface SubjectName { commonName?: string; organization?: string }

export type SanEntry = { type: 'dns'; value: string } | { type: 'ip'; value: string } | { type: 'uri'; value: string };

/** Permitted subtrees (RFC 5280 §4.2.1.10): DNS names cover the name and every name below it;
 * URI entries are hosts (`example.org` exactly, `.example.org` below it), as Go's PermittedURIDomains. */
export interface NameConstraintsTemplate {
  permittedDns?: string[];
  permittedUris?: string[];
  excludedDns?: string[];
}

export interface CertificateTemplate {
  serial: Uint8Array;
  subject: SubjectName;
  /** Exact subject Name (e.g. copied from a CSR); when set it replaces `subject`. */
  subjectName?: pkijs.RelativeDistinguishedNames;
  /** Issuer's subject as DER Name; omitted for a self-signed certificate. */
  issuerName?: pkijs.RelativeDistinguishedNames;
  issuerSpkiDer?: Uint8Array;
  /** The issuer's subjectKeyIdentifier; must be copied, not recomputed, or path building fails for issuers with another SKI method. */
  issuerKeyId?: Uint8Array;
  subjectSpkiDer: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  ca: boolean;
  pathLength?: number;
  keyUsage: KeyUsageName[];
  extKeyUsage?: string[];
  san?: SanEntry[];
  crlDistributionPoint?: string;
  nameConstraints?: NameConstraintsTemplate;
}

/** 128 random bits as a positive, minimally encoded DER INTEGER body. */
export function randomSerial(): Uint8Array {
  for (let i = 0; i < 8; i++) {
    const n = BigInt(`0x${randomBytes(16).toString('hex')}`);
    if (n === 0n) continue;
    return serialBytesFromHex(n.toString(16));
  }
  throw new Error('random source returned zero repeatedly');
}

export function serialBytesFromHex(hex: string): Uint8Array {
  const even = hex.length % 2 === 1 ? `0${hex}` : hex;
  const bytes = Buffer.from(even, 'hex');
  return bytes[0] & 0x80 ? new Uint8Array([0, ...bytes]) : new Uint8Array(bytes);
}

/** Serial as lower-case hex without sign padding, the form openssl and the API print. */
export function serialHex(serial: Uint8Array): string {
  let i = 0;
  while (i < serial.length - 1 && serial[i] === 0) i++;
  return Buffer.from(serial.subarray(i)).toString('hex');
}

/** A serial as printed by openssl or node (upper case, whole bytes, maybe a 00 sign byte) in our stored form. */
export function normalizeSerialHex(printed: string): string {
  return printed.toLowerCase().replace(/^(?:00)+(?=..)/, '');
}

export function keyIdentifier(spkiDer: Uint8Array): Uint8Array {
  const spki = pkijs.PublicKeyInfo.fromBER(new Uint8Array(spkiDer));
  // RFC 7093 §2 method 1: leftmost 160 bits of the SHA-256 of the subjectPublicKey bits.
  return new Uint8Array(createHash('sha256').update(spki.subjectPublicKey.valueBlock.valueHexView).digest().subarray(0, 20));
}

export function ipToBytes(ip: string): Uint8Array {
  const v = isIP(ip);
  if (v === 4) return new Uint8Array(ip.split('.').map(Number));
  if (v !== 6) throw new Error(`not an IP address: ${ip}`);
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, ''];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').flatMap((g) => {
    if (g.includes('.')) { const b = ipToBytes(g); return [(b[0] << 8) | b[1], (b[2] << 8) | b[3]]; }
    return [Number.parseInt(g, 16)];
  }));
  const h = parse(head);
  const t = parse(tail);
  const groups = [...h, ...Array(8 - h.length - t.length).fill(0), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  return out;
}

export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length !== 16) throw new Error(`IP address of ${b.length} bytes`);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  // Canonical RFC 5952 text: compress the longest run of zero groups.
  let best = -1; let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i; while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

function names(subject: SubjectName): pkijs.RelativeDistinguishedNames {
  const atvs: pkijs.AttributeTypeAndValue[] = [];
  if (subject.organization) atvs.push(new pkijs.AttributeTypeAndValue({ type: OID.organization, value: new asn1js.Utf8String({ value: subject.organization }) }));
  if (subject.commonName) atvs.push(new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: subject.commonName }) }));
  // One attribute per RDN (O=…, CN=…): pkijs would otherwise put them all in one multi-valued RDN.
  const der = new asn1js.Sequence({ value: atvs.map((a) => new asn1js.Set({ value: [a.toSchema()] })) }).toBER(false);
  return pkijs.RelativeDistinguishedNames.fromBER(der);
}

function keyUsageBits(usages: KeyUsageName[]): asn1js.BitString {
  let bits = 0;
  for (const u of usages) bits |= 1 << (15 - KEY_USAGE_BIT[u]);
  const bytes = bits & 0xff ? [bits >> 8, bits & 0xff] : [bits >> 8];
  const last = bytes[bytes.length - 1];
  let unused = 0;
  while (unused < 7 && ((last >> unused) & 1) === 0) unused++;
  return new asn1js.BitString({ valueHex: new Uint8Array(bytes).buffer, unusedBits: unused });
}

function generalName(entry: SanEntry): pkijs.GeneralName {
  switch (entry.type) {
    case 'dns': return new pkijs.GeneralName({ type: 2, value: entry.value });
    case 'uri': return new pkijs.GeneralName({ type: 6, value: entry.value });
    case 'ip': return new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipToBytes(entry.value).buffer as ArrayBuffer }) });
  }
}

function extension(extnID: string, critical: boolean, value: asn1js.BaseBlock): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) });
}

function time(d: Date): pkijs.Time {
  // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  return new pkijs.Time({ type: d.getUTCFullYear() < 2050 ? 0 : 1, value: d });
}

/** Builds and signs a certificate; the only input with a side effect is the signing key. */
export async function buildCertificate(t: CertificateTemplate, signer: SigningKey): Promise<Uint8Array> {
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ valueHex: t.serial.buffer.slice(t.serial.byteOffset, t.serial.byteOffset + t.serial.byteLength) as ArrayBuffer });
  cert.subject = t.subjectName ?? names(t.subject);
  cert.issuer = t.issuerName ?? cert.subject;
  cert.notBefore = time(t.notBefore);
  cert.notAfter = time(t.notAfter);
  cert.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(new Uint8Array(t.subjectSpkiDer));

  const exts: pkijs.Extension[] = [];
  const bc = new pkijs.BasicConstraints(t.ca ? { cA: true, ...(t.pathLength !== undefined ? { pathLenConstraint: t.pathLength } : {}) } : {});
  exts.push(extension(OID.basicConstraints, true, bc.toSchema()));
  exts.push(extension(OID.keyUsage, true, keyUsageBits(t.keyUsage)));
  if (t.extKeyUsage && t.extKeyUsage.length > 0) exts.push(extension(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: t.extKeyUsage }).toSchema()));
  exts.push(extension(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: keyIdentifier(t.subjectSpkiDer).buffer as ArrayBuffer })));
  if (t.issuerSpkiDer) {
    const akid = t.issuerKeyId ?? keyIdentifier(t.issuerSpkiDer);
    exts.push(extension(OID.authorityKeyIdentifier, false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: new Uint8Array(akid).buffer }) }).toSchema()));
  }
  if (t.san && t.san.length > 0) {
    // RFC 5280 §4.2.1.6: with an empty subject the SAN extension must be critical.
    const critical = cert.subject.typesAndValues.length === 0;
    exts.push(extension(OID.subjectAltName, critical, new pkijs.GeneralNames({ names: t.san.map(generalName) }).toSchema()));
  }
  if (t.crlDistributionPoint) {
    const dp = new pkijs.CRLDistributionPoints({
      distributionPoints: [new pkijs.DistributionPoint({ distributionPoint: [new pkijs.GeneralName({ type: 6, value: t.crlDistributionPoint })] })],
    });
    exts.push(extension(OID.crlDistributionPoints, false, dp.toSchema()));
  }
  if (t.nameConstraints) {
    const subtree = (type: 2 | 6, value: string): pkijs.GeneralSubtree => new pkijs.GeneralSubtree({ base: new pkijs.GeneralName({ type, value }) });
    const permitted = [...(t.nameConstraints.permittedDns ?? []).map((d) => subtree(2, d)), ...(t.nameConstraints.permittedUris ?? []).map((u) => subtree(6, u))];
    const excluded = (t.nameConstraints.excludedDns ?? []).map((d) => subtree(2, d));
    // RFC 5280 §4.2.1.10: conforming CAs mark name constraints critical.
    exts.push(extension(OID.nameConstraints, true, new pkijs.NameConstraints({
      ...(permitted.length > 0 ? { permittedSubtrees: permitted } : {}), ...(excluded.length > 0 ? { excludedSubtrees: excluded } : {}),
    }).toSchema()));
  }
  cert.extensions = exts;
  signWithNode(cert, signer);
  return new Uint8Array(cert.toSchema(true).toBER(false));
}

const ECDSA_WITH: Record<SigningKey['hash'], string> = { 'SHA-256': '1.2.840.10045.4.3.2', 'SHA-384': '1.2.840.10045.4.3.3' };

/**
 * ECDSA signature over the TBS with node:crypto (DER-encoded, as X.509 wants): the same result as
 * pkijs' sign() through WebCrypto, at a fraction of its cost on the issuance hot path.
 */
function signWithNode(cert: pkijs.Certificate, signer: SigningKey): void {
  const alg = new pkijs.AlgorithmIdentifier({ algorithmId: ECDSA_WITH[signer.hash] });
  cert.signature = alg;
  cert.signatureAlgorithm = alg;
  const tbs = new Uint8Array(cert.encodeTBS().toBER(false));
  cert.tbsView = tbs;
  const sig = sign(signer.hash.replace('-', '').toLowerCase(), tbs, { key: signer.privateKeyObject, dsaEncoding: 'der' });
  cert.signatureValue = new asn1js.BitString({ valueHex: new Uint8Array(sig).buffer });
}

/** The certificate's subjectKeyIdentifier, or the RFC 7093 one computed from its key when absent. */
export function subjectKeyId(cert: pkijs.Certificate): Uint8Array {
  const ext = cert.extensions?.find((e) => e.extnID === OID.subjectKeyIdentifier);
  if (ext) {
    const inner = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView).result;
    if (inner instanceof asn1js.OctetString) return new Uint8Array(inner.valueBlock.valueHexView);
  }
  return keyIdentifier(new Uint8Array(cert.subjectPublicKeyInfo.toSchema().toBER(false)));
}

export function parseCertificate(der: Uint8Array): pkijs.Certificate {
  return pkijs.Certificate.fromBER(new Uint8Array(der));
}
