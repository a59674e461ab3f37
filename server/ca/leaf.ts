import { createHash } from 'node:crypto';
import * as pkijs from 'pkijs';
import { buildCertificate, OID, randomSerial, serialHex, type CertificateTemplate, type SanEntry } from './certificate-builder.js';
import type { Issuer } from './ca-material.js';

const RSA_ENCRYPTION = '1.2.840.113549.1.1.1';

export interface LeafRequest {
  spkiDer: Uint8Array;
  san: SanEntry[];
  notBefore: Date;
  notAfter: Date;
  extKeyUsage?: string[];
  crlDistributionPoint?: string;
}

export interface IssuedLeaf {
  der: Uint8Array;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  spkiSha256: string;
}

/** The leaf profile: pure, so tests and policy can reason about it without signing. */
export function leafTemplate(issuer: Issuer, req: LeafRequest, serial: Uint8Array): CertificateTemplate {
  const firstDns = req.san.find((s) => s.type === 'dns');
  // A CN is only for old clients; RFC 5280 caps it at 64 characters, so long names live in the SAN only.
  const commonName = firstDns && firstDns.value.length <= 64 ? firstDns.value : undefined;
  // The key's algorithm from its SPKI (createPublicKey would cost more than the whole signature).
  const rsa = pkijs.PublicKeyInfo.fromBER(new Uint8Array(req.spkiDer)).algorithm.algorithmId === RSA_ENCRYPTION;
  const notAfter = req.notAfter.getTime() > issuer.notAfter.getTime() ? issuer.notAfter : req.notAfter;
  return {
    serial,
    subject: commonName ? { commonName } : {},
    issuerName: issuer.cert.subject,
    issuerSpkiDer: issuer.key.spkiDer,
    issuerKeyId: issuer.keyId,
    subjectSpkiDer: req.spkiDer,
    notBefore: req.notBefore,
    notAfter,
    ca: false,
    keyUsage: rsa ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'],
    extKeyUsage: req.extKeyUsage ?? [OID.serverAuth, OID.clientAuth],
    san: req.san,
    ...(req.crlDistributionPoint ? { crlDistributionPoint: req.crlDistributionPoint } : {}),
  };
}

export async function issueLeaf(issuer: Issuer, req: LeafRequest): Promise<IssuedLeaf> {
  const serial = randomSerial();
  const t = leafTemplate(issuer, req, serial);
  const der = await buildCertificate(t, issuer.key);
  return {
    der, serial: serialHex(serial), notBefore: t.notBefore, notAfter: t.notAfter,
    spkiSha256: createHash('sha256').update(req.spkiDer).digest('hex'),
  };
}
