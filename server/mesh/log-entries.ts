import { createHash } from 'node:crypto';
import type { LogAppend } from '../../storage/types.js';
import { canonicalJson, LOG_ENTRY_VERSION, type CanonicalValue } from '../log/entry.js';

// Built like server/log/entry.ts's entries (canonical JSON, same version field), so an auditor
// reads mesh signatures with the same tools; the event type says which front and what kind.
const iso = (ms: number): string => new Date(ms).toISOString();
const sha256hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export interface MeshIssuedFacts {
  kind: 'intermediate' | 'leaf';
  serial: string;
  der: Uint8Array;
  issuerDer: Uint8Array;
  trustDomain: string;
  role: string | null;
  scope: string;
  credential: string;
  front: 'native' | 'vault';
  pathLength: number | null;
  uris: string[];
  dnsNames: string[];
  ipAddresses: string[];
  nameConstraints: { uriDomains: string[]; dns: string[] } | null;
  notBefore: number;
  notAfter: number;
  policyVersion: string;
}

/** mesh.certificate.issued: one per signature by a mesh front, with the certificate itself. */
export function meshCertificateIssuedEntry(f: MeshIssuedFacts, at: number): LogAppend {
  const certSha256 = sha256hex(f.der);
  const fields: Record<string, CanonicalValue | undefined> = {
    kind: f.kind,
    serial: f.serial,
    certificate: { sha256: certSha256, der: Buffer.from(f.der).toString('base64') },
    issuer: { sha256: sha256hex(f.issuerDer) },
    trustDomain: f.trustDomain,
    role: f.role ?? undefined,
    scope: f.scope,
    credential: f.credential,
    front: f.front,
    pathLength: f.pathLength ?? undefined,
    uris: f.uris,
    dnsNames: f.dnsNames,
    ipAddresses: f.ipAddresses.length > 0 ? f.ipAddresses : undefined,
    nameConstraints: f.nameConstraints ? { uriDomains: f.nameConstraints.uriDomains, dns: f.nameConstraints.dns } : undefined,
    notBefore: iso(f.notBefore),
    notAfter: iso(f.notAfter),
    policy: { version: f.policyVersion },
  };
  const body = canonicalJson({ v: LOG_ENTRY_VERSION, type: 'mesh.certificate.issued', time: iso(at), ...fields });
  return {
    eventType: 'mesh.certificate.issued',
    body: new Uint8Array(Buffer.from(body, 'utf8')),
    lookupKeys: [`serial:${f.serial}`, `cert:${certSha256}`, `mesh-scope:${f.scope}`, `trust-domain:${f.trustDomain}`, ...f.uris.map((u) => `uri:${u}`), ...f.dnsNames.map((d) => `id:${d}`)],
    at,
  };
}
