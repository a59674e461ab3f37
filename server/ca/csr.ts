import { createPublicKey, verify } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import './crypto-engine.js';
import { bytesToIp, OID } from './certificate-builder.js';

export class CsrError extends Error {}

export interface ParsedCsr {
  spkiDer: Uint8Array;
  commonName: string | null;
  dnsNames: string[];
  ipAddresses: string[];
  uris: string[];
  signatureAlgorithm: string;
}

// Signature algorithms whose hash is broken: a CSR signed with them proves nothing.
const WEAK_SIGNATURES: Record<string, string> = {
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
  '1.2.840.10040.4.3': 'dsa-with-sha1',
};

function attributeExtensions(csr: pkijs.CertificationRequest): pkijs.Extension[] {
  const attr = csr.attributes?.find((a) => a.type === OID.extensionRequest);
  if (!attr || attr.values.length === 0) return [];
  return new pkijs.Extensions({ schema: attr.values[0] }).extensions;
}

// Signature algorithms checked with node:crypto directly (the platform's own verifier is several
// times faster than going through WebCrypto); anything else falls back to pkijs.
const NODE_VERIFY: Record<string, string | null> = {
  '1.2.840.10045.4.3.2': 'sha256', '1.2.840.10045.4.3.3': 'sha384', '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256', '1.2.840.113549.1.1.12': 'sha384', '1.2.840.113549.1.1.13': 'sha512',
  '1.3.101.112': null,
};

async function signatureValid(csr: pkijs.CertificationRequest): Promise<boolean> {
  const alg = csr.signatureAlgorithm.algorithmId;
  if (!(alg in NODE_VERIFY)) return csr.verify();
  const key = createPublicKey({ key: Buffer.from(csr.subjectPublicKeyInfo.toSchema().toBER(false)), format: 'der', type: 'spki' });
  return verify(NODE_VERIFY[alg], csr.tbsView, key, csr.signatureValue.valueBlock.valueHexView);
}

/**
 * Parses a DER CSR and checks its self-signature; throws CsrError with a reason a person can act on.
 * `verifySignature: false` is for a CSR this CA already checked (stored with a processing order).
 */
export async function parseCsr(der: Uint8Array, opts: { verifySignature: boolean } = { verifySignature: true }): Promise<ParsedCsr> {
  let csr: pkijs.CertificationRequest;
  try {
    csr = pkijs.CertificationRequest.fromBER(new Uint8Array(der));
  } catch (e) {
    throw new CsrError(`the CSR is not a valid DER PKCS#10 request: ${(e as Error).message}`);
  }
  const sigAlg = csr.signatureAlgorithm.algorithmId;
  if (WEAK_SIGNATURES[sigAlg]) throw new CsrError(`the CSR is signed with ${WEAK_SIGNATURES[sigAlg]}; sign it with SHA-256 or better`);
  if (opts.verifySignature) {
    let valid = false;
    try {
      valid = await signatureValid(csr);
    } catch (e) {
      throw new CsrError(`the CSR signature cannot be checked: ${(e as Error).message}`);
    }
    if (!valid) throw new CsrError('the CSR signature is invalid: it was not signed by the key it contains');
  }

  let commonName: string | null = null;
  for (const tv of csr.subject.typesAndValues) {
    if (tv.type === OID.commonName) commonName = String(tv.value.valueBlock.value);
  }
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  const uris: string[] = [];
  let exts: pkijs.Extension[];
  try {
    exts = attributeExtensions(csr);
  } catch (e) {
    throw new CsrError(`the CSR's extension request cannot be parsed: ${(e as Error).message}`);
  }
  for (const ext of exts) {
    if (ext.extnID !== OID.subjectAltName) continue;
    const parsed = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView);
    if (parsed.offset === -1) throw new CsrError('the CSR\'s subjectAltName extension is not valid DER');
    const gns = new pkijs.GeneralNames({ schema: parsed.result });
    for (const gn of gns.names) {
      if (gn.type === 2) dnsNames.push(String(gn.value).toLowerCase());
      else if (gn.type === 7) ipAddresses.push(bytesToIp(new Uint8Array((gn.value as asn1js.OctetString).valueBlock.valueHexView)));
      else if (gn.type === 6) uris.push(String(gn.value));
      else throw new CsrError(`the CSR requests an unsupported subjectAltName of type ${gn.type}; only DNS names, IP addresses and URIs are issued`);
    }
  }
  const spkiDer = new Uint8Array(csr.subjectPublicKeyInfo.toSchema().toBER(false));
  return { spkiDer, commonName, dnsNames, ipAddresses, uris, signatureAlgorithm: sigAlg };
}
