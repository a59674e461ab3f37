import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { writeFileAtomic, type Issuer } from './ca-material.js';
import { OID, type SanEntry } from './certificate-builder.js';
import { issueLeaf } from './leaf.js';
import { toPem } from './pem.js';
import { generateP256Pkcs8Pem } from './signing-key.js';

const VALIDITY_MS = 30 * 86_400_000;
const RENEW_BEFORE_MS = 10 * 86_400_000;

export interface ServerTls { certPem: string; keyPem: string; names: string[] }

function wanted(names: string[]): string[] {
  return [...new Set(names.map((n) => n.replace(/^\[|\]$/g, '').toLowerCase()))].sort();
}

/**
 * The server's own HTTPS certificate, issued by the CA it serves so that trusting root.pem is
 * all a client needs. Reissued when missing, near expiry, for other names or another issuer.
 */
export async function ensureServerCertificate(dataDir: string, issuer: Issuer, names: string[], now = new Date()): Promise<ServerTls> {
  const certPath = join(dataDir, 'server.pem');
  const keyPath = join(dataDir, 'server.key');
  const want = wanted(names);
  if (existsSync(certPath) && existsSync(keyPath)) {
    const certPem = readFileSync(certPath, 'utf8');
    const keyPem = readFileSync(keyPath, 'utf8');
    const x = new X509Certificate(certPem);
    const have = wanted((x.subjectAltName ?? '').split(', ').map((s) => s.replace(/^(DNS:|IP Address:)/, '')));
    const fresh = new Date(x.validTo).getTime() - now.getTime() > RENEW_BEFORE_MS;
    const sameIssuer = x.verify(issuer.key.publicKeyObject);
    const matchesKey = createPublicKey(createPrivateKey(keyPem)).equals(x.publicKey);
    if (fresh && sameIssuer && matchesKey && have.join(',') === want.join(',')) return { certPem, keyPem, names: want };
  }
  const keyPem = generateP256Pkcs8Pem();
  const spkiDer = new Uint8Array(createPublicKey(keyPem).export({ format: 'der', type: 'spki' }));
  const san: SanEntry[] = want.map((n) => (isIP(n) ? { type: 'ip', value: n } : { type: 'dns', value: n }));
  const leaf = await issueLeaf(issuer, {
    spkiDer, san, notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + VALIDITY_MS), extKeyUsage: [OID.serverAuth],
  });
  const certPem = toPem('CERTIFICATE', leaf.der) + issuer.chainPem;
  writeFileAtomic(keyPath, keyPem, true);
  writeFileAtomic(certPath, certPem, false);
  return { certPem, keyPem, names: want };
}
