/**
 * The signing core of the mesh fronts: "sign a subordinate CA from a CSR" and "sign a leaf from a
 * CSR under a named role". Both the native API and the Vault-compatible API call only these two;
 * every decision (who may have which trust domain or role, names, TTLs, pathLen, name
 * constraints) is taken here from the policy's `mesh:` section, before anything is signed, and
 * every signature is appended to the issuance log before the certificate is handed out.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { MeshStore } from '../../storage/mesh-types.js';
import type { Storage } from '../../storage/types.js';
import type { Issuer } from '../ca/ca-material.js';
import { buildCertificate, OID, randomSerial, serialHex, type NameConstraintsTemplate, type SanEntry } from '../ca/certificate-builder.js';
import '../ca/crypto-engine.js';
import { CsrError, parseCsr, type ParsedCsr } from '../ca/csr.js';
import { checkPublicKey, describeKey } from '../ca/goodkey.js';
import { issueLeaf } from '../ca/leaf.js';
import { pemCertificates } from '../ca/pem.js';
import { leafHash } from '../log/merkle.js';
import { checkSpiffeId, ipInCidr, matchDns, matchUri } from '../policy/match.js';
import type { PolicyConfig } from '../policy/types.js';
import { meshCertificateIssuedEntry } from './log-entries.js';
import type { MeshNameConstraints, MeshPolicy, MeshScope, MeshTrustDomain } from './mesh-policy.js';

export type MeshErrorKind = 'malformed' | 'badCSR' | 'unauthorized' | 'forbidden' | 'notFound' | 'notConfigured';

/** A refusal with the HTTP status the fronts answer with and a sentence for the requester. */
export class MeshError extends Error {
  constructor(readonly status: 400 | 401 | 403 | 404, readonly kind: MeshErrorKind, message: string) {
    super(message);
    this.name = 'MeshError';
  }
}

/** Who asks: the mesh scope their credential carries and a label for the log. */
export interface MeshPrincipal {
  scope: string;
  /** e.g. 'token:<id>', 'approle:<name>', 'cert:<role>'. */
  credential: string;
}

export type MeshProfile = 'generic' | 'spire' | 'istio' | 'linkerd' | 'kuma';
export const MESH_PROFILES: readonly MeshProfile[] = ['generic', 'spire', 'istio', 'linkerd', 'kuma'];

export interface SubjectOverrides {
  commonName?: string;
  organization?: string[];
  organizationalUnit?: string[];
  country?: string[];
  locality?: string[];
  province?: string[];
}

export interface IntermediateRequest {
  csrDer: Uint8Array;
  /** Explicit (native API, or a Vault mount's configured one); else taken from the URI SAN. */
  trustDomain: string | null;
  ttlMs: number | null;
  /** Requested pathLenConstraint; null = the default 0. */
  maxPathLength: number | null;
  subject: SubjectOverrides;
  /** SANs named in the request besides the CSR's. */
  uriSans: string[];
  dnsSans: string[];
  ipSans: string[];
  /** Requested name constraints; each must lie within the policy's. */
  nameConstraints: { uriDomains: string[]; dns: string[] } | null;
  profile: MeshProfile;
  front: 'native' | 'vault';
}

export interface LeafRequest {
  csrDer: Uint8Array;
  role: string;
  ttlMs: number | null;
  commonName: string;
  uriSans: string[];
  dnsSans: string[];
  ipSans: string[];
  excludeCnFromSans: boolean;
  front: 'native' | 'vault';
}

export interface MeshSigned {
  kind: 'intermediate' | 'leaf';
  der: Uint8Array;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  trustDomain: string;
  /** Our issuing CA first, then any certificates between it and the root. */
  issuingDers: Uint8Array[];
  rootDer: Uint8Array;
  logIndex: number;
  logLeafHash: string;
  warnings: string[];
}

export interface MeshSignerDeps {
  store: Storage;
  mesh: MeshStore;
  issuer: () => Issuer;
  rootPem: string;
  policy: () => PolicyConfig;
  now: () => number;
  backdateMs: number;
  /** Wakes the checkpoint publisher after an append. */
  logAppended: () => void;
}

const SPIFFE_CA_URI = /^spiffe:\/\/([a-z0-9._-]+)$/;
const COUNTRY = /^[A-Z]{2}$/;

function human(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

/** The pathLenConstraint of a CA certificate, or null when it has none. */
export function pathLenOf(cert: pkijs.Certificate): number | null {
  const ext = cert.extensions?.find((e) => e.extnID === OID.basicConstraints);
  if (!ext) return null;
  const bc = new pkijs.BasicConstraints({ schema: asn1js.fromBER(ext.extnValue.valueBlock.valueHexView).result });
  if (bc.pathLenConstraint === undefined) return null;
  return typeof bc.pathLenConstraint === 'number' ? bc.pathLenConstraint : bc.pathLenConstraint.valueBlock.valueDec;
}

/**
 * A Name with one attribute per RDN (C=…, O=…, CN=…), re-read from DER so pkijs keeps the exact
 * encoding: pkijs itself would put every attribute into one multi-valued RDN ("O=x + CN=y").
 */
function singleValuedName(tvs: pkijs.AttributeTypeAndValue[]): pkijs.RelativeDistinguishedNames {
  const seq = new asn1js.Sequence({ value: tvs.map((tv) => new asn1js.Set({ value: [tv.toSchema()] })) });
  return pkijs.RelativeDistinguishedNames.fromBER(seq.toBER(false));
}

/** Subject RDN: the CSR's attributes, with those the request names replaced. */
function buildSubject(csrSubject: pkijs.RelativeDistinguishedNames, o: SubjectOverrides): pkijs.RelativeDistinguishedNames {
  const given: Array<[string, string[] | undefined]> = [
    ['2.5.4.6', o.country], ['2.5.4.8', o.province], ['2.5.4.7', o.locality], ['2.5.4.10', o.organization],
    ['2.5.4.11', o.organizationalUnit], [OID.commonName, o.commonName ? [o.commonName] : undefined],
  ];
  const overridden = new Set(given.filter(([, v]) => v !== undefined && v.length > 0).map(([t]) => t));
  // Nothing asked: keep the CSR's Name byte for byte (pkijs re-emits the original encoding).
  if (overridden.size === 0) return csrSubject;
  const out: pkijs.AttributeTypeAndValue[] = [];
  const keep = csrSubject.typesAndValues.filter((tv) => !overridden.has(tv.type));
  const order = ['2.5.4.6', '2.5.4.8', '2.5.4.7', '2.5.4.10', '2.5.4.11'];
  for (const type of order) {
    const values = given.find(([t]) => t === type)?.[1];
    if (values && values.length > 0) {
      for (const v of values) {
        if (type === '2.5.4.6' && !COUNTRY.test(v)) throw new MeshError(400, 'malformed', `country "${v}" is not a two-letter ISO 3166 code`);
        const value = type === '2.5.4.6' ? new asn1js.PrintableString({ value: v }) : new asn1js.Utf8String({ value: v });
        out.push(new pkijs.AttributeTypeAndValue({ type, value }));
      }
    } else {
      for (const tv of keep.filter((x) => x.type === type)) out.push(new pkijs.AttributeTypeAndValue({ type: tv.type, value: tv.value }));
    }
  }
  // Attributes we do not set (e.g. SPIRE's serialNumber, which keeps its CA subjects unique) stay.
  for (const tv of keep.filter((x) => !order.includes(x.type) && x.type !== OID.commonName)) out.push(new pkijs.AttributeTypeAndValue({ type: tv.type, value: tv.value }));
  if (o.commonName) out.push(new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: o.commonName }) }));
  else for (const tv of keep.filter((x) => x.type === OID.commonName)) out.push(new pkijs.AttributeTypeAndValue({ type: tv.type, value: tv.value }));
  return singleValuedName(out);
}

function csrSubject(der: Uint8Array): pkijs.RelativeDistinguishedNames {
  return pkijs.CertificationRequest.fromBER(new Uint8Array(der)).subject;
}

/** Whether a requested DNS constraint lies within a policy one (same domain or below it). */
function dnsWithin(requested: string, allowed: string): boolean {
  return requested === allowed || requested.endsWith(`.${allowed}`);
}

/** Whether a requested URI host constraint (`h` or `.h`) lies within a policy one. */
function uriDomainWithin(requested: string, allowed: string): boolean {
  if (allowed.startsWith('.')) {
    const base = allowed.slice(1);
    const r = requested.startsWith('.') ? requested.slice(1) : requested;
    return requested.startsWith('.') ? dnsWithin(r, base) : r.endsWith(`.${base}`);
  }
  return requested === allowed;
}

/**
 * Name constraints of a new subordinate CA: per name type, the request's (each within the
 * policy's) or else the policy's. Per type, because leaving a type out of the extension would
 * leave that type unconstrained: a request may only ever narrow what the policy permits.
 */
export function mergeNameConstraints(policy: MeshNameConstraints | null, requested: { uriDomains: string[]; dns: string[] } | null): MeshNameConstraints | null {
  const req = requested ?? { uriDomains: [], dns: [] };
  const uri = req.uriDomains.map((d) => d.toLowerCase());
  const dns = req.dns.map((d) => d.toLowerCase().replace(/^\./, ''));
  if (policy) {
    for (const d of uri) {
      if (policy.uriDomains.length > 0 && !policy.uriDomains.some((p) => uriDomainWithin(d, p))) {
        throw new MeshError(403, 'forbidden', `requested URI name constraint "${d}" is not within the policy's (${policy.uriDomains.join(', ')})`);
      }
    }
    for (const d of dns) {
      if (policy.dns.length > 0 && !policy.dns.some((p) => dnsWithin(d, p))) {
        throw new MeshError(403, 'forbidden', `requested DNS name constraint "${d}" is not within the policy's (${policy.dns.join(', ')})`);
      }
    }
  }
  const merged = { uriDomains: uri.length > 0 ? uri : policy?.uriDomains ?? [], dns: dns.length > 0 ? dns : policy?.dns ?? [] };
  return merged.uriDomains.length + merged.dns.length > 0 ? merged : null;
}

function toTemplate(nc: MeshNameConstraints | null): NameConstraintsTemplate | undefined {
  return nc ? { permittedUris: nc.uriDomains, permittedDns: nc.dns } : undefined;
}

export class MeshSigner {
  constructor(private readonly deps: MeshSignerDeps) {}

  /** The `mesh:` section in force, or a refusal that says how to configure it. */
  meshPolicy(): { mesh: MeshPolicy; version: string } {
    const p = this.deps.policy();
    if (!p.mesh) throw new MeshError(400, 'notConfigured', 'mesh signing is not configured: the policy file has no mesh section (see docs/mesh.md)');
    return { mesh: p.mesh, version: p.version };
  }

  private scopeOf(mesh: MeshPolicy, who: MeshPrincipal): MeshScope {
    if (!Object.hasOwn(mesh.scopes, who.scope)) {
      throw new MeshError(403, 'forbidden', `permission denied: the credential's scope "${who.scope}" is not defined under mesh.scopes in the policy`);
    }
    return mesh.scopes[who.scope];
  }

  private async parse(der: Uint8Array): Promise<ParsedCsr> {
    let csr: ParsedCsr;
    try {
      csr = await parseCsr(der);
    } catch (e) {
      if (e instanceof CsrError) throw new MeshError(400, 'badCSR', e.message);
      throw e;
    }
    const key = checkPublicKey(csr.spkiDer);
    if (!key.ok) throw new MeshError(400, 'badCSR', `the CSR's public key is refused: ${key.reason}`);
    return csr;
  }

  private ttl(requested: number | null, dflt: number, max: number, what: string, warnings: string[]): number {
    const ttl = requested ?? dflt;
    if (ttl < 60_000) throw new MeshError(400, 'malformed', `ttl ${human(ttl)} is shorter than the minimum of 1m`);
    if (ttl > max) {
      warnings.push(`TTL of ${human(ttl)} exceeds the policy's maximum for ${what} (${human(max)}); the certificate ends after ${human(max)}`);
      return max;
    }
    return ttl;
  }

  private window(ttlMs: number, issuer: Issuer, warnings: string[]): { notBefore: Date; notAfter: Date } {
    const now = this.deps.now();
    let notAfter = now + ttlMs;
    if (notAfter > issuer.notAfter.getTime()) {
      notAfter = issuer.notAfter.getTime();
      warnings.push(`the validity was shortened to end with the issuing CA, at ${issuer.notAfter.toISOString()}`);
    }
    return { notBefore: new Date(now - this.deps.backdateMs), notAfter: new Date(notAfter) };
  }

  private chain(issuer: Issuer): { issuingDers: Uint8Array[]; rootDer: Uint8Array } {
    const chain = pemCertificates(issuer.chainPem);
    const issuingDers = chain.length > 0 && Buffer.from(chain[0]).equals(Buffer.from(issuer.certDer)) ? chain : [issuer.certDer, ...chain];
    return { issuingDers, rootDer: pemCertificates(this.deps.rootPem)[0] };
  }

  /** Sign a subordinate CA for a mesh (SPIRE, Istio, Linkerd, Kuma, cert-manager isCA). */
  async signIntermediate(who: MeshPrincipal, req: IntermediateRequest): Promise<MeshSigned> {
    const { mesh, version } = this.meshPolicy();
    const scope = this.scopeOf(mesh, who);
    const csr = await this.parse(req.csrDer);
    const issuer = this.deps.issuer();
    const warnings: string[] = [];

    const uris = [...new Set([...csr.uris, ...req.uriSans])];
    if (uris.length > 1) throw new MeshError(400, 'badCSR', `a subordinate CA carries at most one URI SAN, spiffe://<trust-domain>; the request names ${uris.length}: ${uris.join(', ')}`);
    let uriTd: string | null = null;
    if (uris.length === 1) {
      const m = SPIFFE_CA_URI.exec(uris[0]);
      if (!m) throw new MeshError(400, 'badCSR', `URI SAN "${uris[0]}" is not allowed on a subordinate CA: it must be spiffe://<trust-domain> with no path`);
      uriTd = m[1];
    }
    if (req.trustDomain && uriTd && req.trustDomain !== uriTd) {
      throw new MeshError(400, 'badCSR', `the URI SAN ${uris[0]} names trust domain "${uriTd}" but the request is for "${req.trustDomain}"`);
    }
    const td = req.trustDomain ?? uriTd;
    if (!td) throw new MeshError(400, 'malformed', 'the request names no trust domain: put spiffe://<trust-domain> in uri_sans or in the CSR (or configure the mount\'s trustDomain)');
    if (!scope.trustDomains.includes(td)) {
      throw new MeshError(403, 'forbidden', `permission denied: scope "${scope.name}" may not obtain a subordinate CA for trust domain "${td}" (allowed: ${scope.trustDomains.join(', ') || 'none'})`);
    }
    const tdc: MeshTrustDomain = mesh.trustDomains[td];
    if (req.profile === 'spire' && uris.length === 0) throw new MeshError(400, 'badCSR', `profile spire needs the URI SAN spiffe://${td} in the CSR (SPIRE's own CSRs carry it)`);

    const pathLength = req.maxPathLength ?? 0;
    if (pathLength > tdc.maxPathLength) {
      throw new MeshError(403, 'forbidden', `permission denied: pathLen ${pathLength} is above the policy's maximum of ${tdc.maxPathLength} for trust domain "${td}" (mesh.trustDomains.${td}.maxPathLength)`);
    }
    const ours = pathLenOf(issuer.cert);
    if (ours !== null && pathLength > ours - 1) {
      throw new MeshError(400, 'malformed', `pathLen ${pathLength} is impossible under our issuing CA, whose pathLen ${ours} allows at most ${ours - 1} below a CA it signs; use an issuing intermediate with pathLen ${pathLength + 1} or more`);
    }
    if (req.ipSans.length > 0 || csr.ipAddresses.length > 0) throw new MeshError(400, 'badCSR', 'IP address SANs are not issued on subordinate CAs');
    const dnsNames = [...new Set([...csr.dnsNames, ...req.dnsSans.map((d) => d.toLowerCase())])];
    for (const d of dnsNames) {
      if (!tdc.dns.some((p) => matchDns(d, p))) {
        throw new MeshError(403, 'forbidden', `permission denied: DNS SAN "${d}" is not allowed on a subordinate CA for trust domain "${td}" (mesh.trustDomains.${td}.dns: ${tdc.dns.join(', ') || 'none'})`);
      }
    }
    if (req.profile === 'linkerd') {
      const key = describeKey(csr.spkiDer);
      if (key.algorithm !== 'EC-P256') throw new MeshError(400, 'badCSR', `profile linkerd needs an ECDSA P-256 issuer key (Linkerd refuses others); the CSR has ${key.algorithm}${key.bits ? ` ${key.bits}` : ''}`);
      if (issuer.key.hash !== 'SHA-256') throw new MeshError(400, 'malformed', `profile linkerd needs a SHA-256 signature, but our issuing CA signs with ${issuer.key.hash}`);
    }
    const nameConstraints = mergeNameConstraints(tdc.nameConstraints, req.nameConstraints);
    const ttl = this.ttl(req.ttlMs, tdc.defaultTtlMs, tdc.maxTtlMs, `trust domain ${td}`, warnings);
    const { notBefore, notAfter } = this.window(ttl, issuer, warnings);

    let subjectName = buildSubject(csrSubject(req.csrDer), req.subject);
    if (subjectName.typesAndValues.length === 0) {
      // RFC 5280 §4.1.2.6: a CA's subject must not be empty (SPIRE's default subject is never empty).
      subjectName = buildSubject(new pkijs.RelativeDistinguishedNames(), { commonName: `${td} mesh CA` });
    }
    const san: SanEntry[] = [...uris.map((u): SanEntry => ({ type: 'uri', value: u })), ...dnsNames.map((d): SanEntry => ({ type: 'dns', value: d }))];
    const serial = randomSerial();
    const der = await buildCertificate({
      serial, subject: {}, subjectName, issuerName: issuer.cert.subject, issuerSpkiDer: issuer.key.spkiDer, issuerKeyId: issuer.keyId,
      subjectSpkiDer: csr.spkiDer, notBefore, notAfter, ca: true, pathLength,
      // Exactly these two: SPIRE allows only keyCertSign/cRLSign/digitalSignature, Kuma forbids
      // keyAgreement; no EKU, because Go enforces EKU nesting below a CA (Istio, Linkerd verify serverAuth).
      keyUsage: ['keyCertSign', 'cRLSign'],
      san, nameConstraints: toTemplate(nameConstraints),
    }, issuer.key);
    return this.record({
      kind: 'intermediate', der, serial: serialHex(serial), notBefore, notAfter, trustDomain: td, role: null, who, front: req.front,
      pathLength, uris, dnsNames, ipAddresses: [], nameConstraints, version, issuer, warnings,
    });
  }

  /** Sign a workload leaf under a role (istio-csr workloads, istiod, Consul-style leaves). */
  async signLeaf(who: MeshPrincipal, req: LeafRequest): Promise<MeshSigned> {
    const { mesh, version } = this.meshPolicy();
    const scope = this.scopeOf(mesh, who);
    if (!Object.hasOwn(mesh.roles, req.role)) throw new MeshError(400, 'notFound', `unknown role "${req.role}"; roles: ${Object.keys(mesh.roles).join(', ') || '(none)'}`);
    const role = mesh.roles[req.role];
    if (!scope.roles.includes(role.name)) {
      throw new MeshError(403, 'forbidden', `permission denied: scope "${scope.name}" may not sign under role "${role.name}" (allowed: ${scope.roles.join(', ') || 'none'})`);
    }
    const csr = await this.parse(req.csrDer);
    const issuer = this.deps.issuer();
    const warnings: string[] = [];

    // Vault's default (use_csr_sans): SANs come from the CSR unless the request names some.
    const fromRequest = req.uriSans.length + req.dnsSans.length + req.ipSans.length > 0;
    let dns = fromRequest ? req.dnsSans.map((d) => d.toLowerCase()) : [...csr.dnsNames];
    const ips = fromRequest ? req.ipSans : [...csr.ipAddresses];
    const uris = fromRequest ? req.uriSans : [...csr.uris];
    const cn = (req.commonName || csr.commonName || '').toLowerCase();
    if (cn && !req.excludeCnFromSans) {
      if (/^[a-z0-9*][a-z0-9.*-]*$/.test(cn)) dns = [cn, ...dns.filter((d) => d !== cn)];
      else warnings.push(`common name "${cn}" is not a DNS name and was not added to the SANs`);
    }
    dns = [...new Set(dns)];
    for (const d of dns) {
      if (!role.dns.some((p) => matchDns(d, p))) throw new MeshError(403, 'forbidden', `permission denied: DNS name "${d}" is not allowed by role "${role.name}" (dns: ${role.dns.join(', ') || 'none'})`);
    }
    for (const ip of ips) {
      if (!role.ip.some((c) => ipInCidr(ip, c))) throw new MeshError(403, 'forbidden', `permission denied: IP address ${ip} is not allowed by role "${role.name}" (ip: ${role.ip.join(', ') || 'none'})`);
    }
    for (const u of uris) {
      const why = checkSpiffeId(u);
      if (why !== null) throw new MeshError(400, 'badCSR', `URI SAN "${u}" is not a workload SPIFFE ID: it ${why}`);
      if (!role.uri.some((p) => matchUri(u, p))) throw new MeshError(403, 'forbidden', `permission denied: URI "${u}" is not allowed by role "${role.name}" (uri: ${role.uri.join(', ') || 'none'})`);
    }
    if (role.spiffe && uris.length !== 1) {
      throw new MeshError(400, 'badCSR', `role "${role.name}" issues X509-SVIDs: the certificate needs exactly one spiffe://${role.trustDomain}/... URI SAN, the request has ${uris.length}`);
    }
    if (dns.length + ips.length + uris.length === 0) throw new MeshError(400, 'badCSR', 'the request names no subject alternative name (none in the CSR or the request)');

    const ttl = this.ttl(req.ttlMs, role.defaultTtlMs, role.maxTtlMs, `role ${role.name}`, warnings);
    const { notBefore, notAfter } = this.window(ttl, issuer, warnings);
    const san: SanEntry[] = [...dns.map((d): SanEntry => ({ type: 'dns', value: d })), ...ips.map((i): SanEntry => ({ type: 'ip', value: i })), ...uris.map((u): SanEntry => ({ type: 'uri', value: u }))];
    // The ACME leaf profile: CA:false, digitalSignature (+keyEncipherment for RSA), serverAuth+clientAuth.
    const leaf = await issueLeaf(issuer, { spkiDer: csr.spkiDer, san, notBefore, notAfter });
    return this.record({
      kind: 'leaf', der: leaf.der, serial: leaf.serial, notBefore: leaf.notBefore, notAfter: leaf.notAfter, trustDomain: role.trustDomain, role: role.name,
      who, front: req.front, pathLength: null, uris, dnsNames: dns, ipAddresses: ips, nameConstraints: null, version, issuer, warnings,
    });
  }

  private async record(f: {
    kind: 'intermediate' | 'leaf'; der: Uint8Array; serial: string; notBefore: Date; notAfter: Date; trustDomain: string; role: string | null;
    who: MeshPrincipal; front: 'native' | 'vault'; pathLength: number | null; uris: string[]; dnsNames: string[]; ipAddresses: string[];
    nameConstraints: MeshNameConstraints | null; version: string; issuer: Issuer; warnings: string[];
  }): Promise<MeshSigned> {
    const now = this.deps.now();
    const entry = meshCertificateIssuedEntry({
      kind: f.kind, serial: f.serial, der: f.der, issuerDer: f.issuer.certDer, trustDomain: f.trustDomain, role: f.role, scope: f.who.scope,
      credential: f.who.credential, front: f.front, pathLength: f.pathLength, uris: f.uris, dnsNames: f.dnsNames, ipAddresses: f.ipAddresses,
      nameConstraints: f.nameConstraints, notBefore: f.notBefore.getTime(), notAfter: f.notAfter.getTime(), policyVersion: f.version,
    }, now);
    // The log entry is written before the certificate leaves: a certificate nobody can find in the
    // log is never handed out (if the append fails, the request fails and the certificate is dropped).
    const logIndex = await this.deps.store.appendLogEvent(entry);
    this.deps.logAppended();
    await this.deps.mesh.recordCertificate({
      serial: f.serial, kind: f.kind, trustDomain: f.trustDomain, role: f.role, scope: f.who.scope, credential: f.who.credential, front: f.front,
      der: f.der, notBefore: f.notBefore.getTime(), notAfter: f.notAfter.getTime(), createdAt: now, logIndex,
    });
    const { issuingDers, rootDer } = this.chain(f.issuer);
    return {
      kind: f.kind, der: f.der, serial: f.serial, notBefore: f.notBefore, notAfter: f.notAfter, trustDomain: f.trustDomain, issuingDers, rootDer,
      logIndex, logLeafHash: Buffer.from(leafHash(entry.body)).toString('hex'), warnings: f.warnings,
    };
  }
}
