/**
 * The `mesh:` section of the policy file: which trust domains may get subordinate CAs, which
 * roles sign leaves and with which names, which credential scopes may use which of them, and
 * the Vault-compatible front's mounts and certificate-login roles. Parsed by parsePolicy (which
 * passes the raw section here) so that a bad mesh section fails a reload like any other key;
 * the result is frozen with the rest of the policy. docs/mesh.md is the reference.
 *
 * This file must not import server/policy/parse.ts (parse.ts imports it).
 */
import { parseDuration } from '../config.js';
import { checkDnsPattern, checkUriPattern, parseCidr } from '../policy/match.js';

export class MeshPolicyError extends Error {
  constructor(readonly path: string, message: string) {
    super(message);
    this.name = 'MeshPolicyError';
  }
}

export interface MeshNameConstraints {
  /** Permitted URI hosts (`td` exactly, `.td` below it). */
  uriDomains: string[];
  /** Permitted DNS subtrees (a name covers itself and everything below it). */
  dns: string[];
}

export interface MeshTrustDomain {
  name: string;
  /** Longest validity of a subordinate CA; it is also never beyond our own intermediate. */
  maxTtlMs: number;
  /** Validity when the request names none. */
  defaultTtlMs: number;
  /** Largest pathLenConstraint a request may ask for (0 = the CA may sign only leaves). */
  maxPathLength: number;
  /** DNS SANs a subordinate CA may carry (policy DNS patterns); none by default. */
  dns: string[];
  nameConstraints: MeshNameConstraints | null;
}

export interface MeshRole {
  name: string;
  trustDomain: string;
  /** Exactly one SPIFFE ID (`spiffe://<td>/<path>`) in every certificate signed under the role. */
  spiffe: boolean;
  /** SPIFFE ID patterns (policy syntax) the URI SAN must match. */
  uri: string[];
  /** DNS patterns (policy syntax) every DNS SAN must match. */
  dns: string[];
  /** CIDRs every IP SAN must lie in. */
  ip: string[];
  maxTtlMs: number;
  defaultTtlMs: number;
}

export interface MeshScope {
  name: string;
  /** Trust domains this scope may obtain subordinate CAs for. */
  trustDomains: string[];
  /** Roles this scope may sign leaves under. */
  roles: string[];
}

export interface MeshMount {
  name: string;
  /** Trust domain of sign-intermediate requests that carry no `spiffe://` URI (e.g. Linkerd issuers). */
  trustDomain: string | null;
}

export interface MeshCertRole {
  name: string;
  scope: string;
  /** DNS patterns matched against the client certificate's CN and DNS SANs. */
  dns: string[];
  /** SPIFFE ID patterns matched against its URI SANs. */
  uri: string[];
  tokenTtlMs: number;
}

export interface MeshPolicy {
  trustDomains: Record<string, MeshTrustDomain>;
  roles: Record<string, MeshRole>;
  scopes: Record<string, MeshScope>;
  certRoles: Record<string, MeshCertRole>;
  vault: { mounts: Record<string, MeshMount>; approleMounts: string[]; certMounts: string[] };
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
export const MESH_DEFAULTS = {
  intermediateMaxTtlMs: 30 * DAY,
  leafMaxTtlMs: DAY,
  leafDefaultTtlMs: HOUR,
  tokenTtlMs: HOUR,
} as const;
const MIN_TTL_MS = 60_000;
// Ten years: our own intermediate's end caps every certificate anyway; this only catches typos.
const MAX_TTL_MS = 3650 * DAY;

const TOP_KEYS = ['trustDomains', 'roles', 'scopes', 'certRoles', 'vault'] as const;
const TD_KEYS = ['maxTtl', 'defaultTtl', 'maxPathLength', 'dns', 'nameConstraints'] as const;
const NC_KEYS = ['uriDomains', 'dns'] as const;
const ROLE_KEYS = ['trustDomain', 'spiffe', 'uri', 'dns', 'ip', 'maxTtl', 'defaultTtl'] as const;
const SCOPE_KEYS = ['trustDomains', 'roles'] as const;
const CERT_ROLE_KEYS = ['scope', 'dns', 'uri', 'tokenTtl'] as const;
const VAULT_KEYS = ['mounts', 'approleMounts', 'certMounts'] as const;
const MOUNT_KEYS = ['trustDomain'] as const;

/** Every key of the section, for docs/mesh.md's completeness test. */
export const MESH_POLICY_KEYS = {
  top: TOP_KEYS, trustDomain: TD_KEYS, nameConstraints: NC_KEYS, role: ROLE_KEYS, scope: SCOPE_KEYS,
  certRole: CERT_ROLE_KEYS, vault: VAULT_KEYS, mount: MOUNT_KEYS,
} as const;

// Same name rule as the policy's profiles and scopes, so names never look like array indices.
const NAME = /^[a-z][a-z0-9._-]{0,63}$/;
// SPIFFE trust domain names: lower-case letters, digits, dots, dashes, underscores.
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
// Vault mount names are path segments; `auth` and `sys` are Vault's own.
const MOUNT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const RESERVED_MOUNTS = ['auth', 'sys', 'identity', 'cubbyhole'];

type Mapping = Record<string, unknown>;

function show(value: unknown): string {
  if (value === undefined) return '(missing)';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

function fail(path: string, value: unknown, what: string): never {
  throw new MeshPolicyError(path, `${path} = ${show(value)}: ${what}`);
}

function mapping(value: unknown, path: string, allowed: readonly string[] | null): Mapping {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(path, value, allowed ? `expected a mapping with keys ${allowed.join(', ')}` : 'expected a mapping');
  const m = value as Mapping;
  if (allowed) {
    const unknown = Object.keys(m).filter((k) => !allowed.includes(k));
    if (unknown.length > 0) throw new MeshPolicyError(`${path}.${unknown[0]}`, `unknown key ${unknown.map((k) => `${path}.${k}`).join(', ')}; allowed here: ${allowed.join(', ')}`);
  }
  return m;
}

function named(value: unknown, path: string, re: RegExp, what: string): Array<[string, unknown]> {
  const m = mapping(value, path, null);
  for (const k of Object.keys(m)) if (!re.test(k)) fail(`${path}.${k}`, k, what);
  return Object.entries(m);
}

function strings(value: unknown, path: string): string[] {
  if (!Array.isArray(value)) fail(path, value, 'expected a list of strings');
  return (value as unknown[]).map((v, i) => {
    if (typeof v !== 'string' || v.length === 0) fail(`${path}[${i}]`, v, 'expected a non-empty string');
    return v as string;
  });
}

function duration(value: unknown, path: string): number {
  const ms = typeof value === 'string' || typeof value === 'number' ? parseDuration(value) : null;
  if (ms === null) fail(path, value, 'expected a duration such as 1h, 720h or 30d (a bare number is seconds)');
  if (ms! < MIN_TTL_MS) fail(path, value, 'must be at least 1m');
  if (ms! > MAX_TTL_MS) fail(path, value, 'must be at most 3650d');
  return ms!;
}

function dnsPatterns(value: unknown, path: string): string[] {
  return strings(value, path).map((p, i) => {
    const lower = p.toLowerCase();
    const why = checkDnsPattern(lower);
    if (why !== null) fail(`${path}[${i}]`, p, why);
    return lower;
  });
}

function parseTrustDomain(name: string, value: unknown, path: string): MeshTrustDomain {
  const m = value === null ? {} : mapping(value, path, TD_KEYS);
  const maxTtlMs = m.maxTtl === undefined ? MESH_DEFAULTS.intermediateMaxTtlMs : duration(m.maxTtl, `${path}.maxTtl`);
  const defaultTtlMs = m.defaultTtl === undefined ? maxTtlMs : duration(m.defaultTtl, `${path}.defaultTtl`);
  if (defaultTtlMs > maxTtlMs) fail(`${path}.defaultTtl`, m.defaultTtl, 'must not exceed maxTtl');
  let maxPathLength = 0;
  if (m.maxPathLength !== undefined) {
    if (typeof m.maxPathLength !== 'number' || !Number.isInteger(m.maxPathLength) || m.maxPathLength < 0 || m.maxPathLength > 8) {
      fail(`${path}.maxPathLength`, m.maxPathLength, 'expected an integer from 0 to 8');
    }
    maxPathLength = m.maxPathLength as number;
  }
  let nameConstraints: MeshNameConstraints | null = null;
  if (m.nameConstraints !== undefined && m.nameConstraints !== null) {
    const nc = mapping(m.nameConstraints, `${path}.nameConstraints`, NC_KEYS);
    const uriDomains = nc.uriDomains === undefined ? [] : strings(nc.uriDomains, `${path}.nameConstraints.uriDomains`).map((d, i) => {
      const host = d.startsWith('.') ? d.slice(1) : d;
      if (!TRUST_DOMAIN.test(host)) fail(`${path}.nameConstraints.uriDomains[${i}]`, d, 'expected a host such as example.org or .example.org');
      return d;
    });
    const dns = nc.dns === undefined ? [] : strings(nc.dns, `${path}.nameConstraints.dns`).map((d, i) => {
      const lower = d.toLowerCase();
      // RFC 5280 DNS constraints are subtrees named by a plain domain; patterns mean nothing there.
      if (lower.includes('*') || lower.startsWith('.') || checkDnsPattern(lower) !== null) fail(`${path}.nameConstraints.dns[${i}]`, d, 'expected a plain domain such as cluster.local (it covers the name and every name below it)');
      return lower;
    });
    if (uriDomains.length + dns.length === 0) fail(`${path}.nameConstraints`, m.nameConstraints, 'give uriDomains or dns, or leave nameConstraints out');
    nameConstraints = { uriDomains, dns };
  }
  return { name, maxTtlMs, defaultTtlMs, maxPathLength, dns: m.dns === undefined ? [] : dnsPatterns(m.dns, `${path}.dns`), nameConstraints };
}

function parseRole(name: string, value: unknown, path: string, trustDomains: Record<string, MeshTrustDomain>): MeshRole {
  const m = mapping(value, path, ROLE_KEYS);
  if (typeof m.trustDomain !== 'string') fail(`${path}.trustDomain`, m.trustDomain, 'a role must name its trust domain');
  const td = m.trustDomain as string;
  if (!Object.hasOwn(trustDomains, td)) fail(`${path}.trustDomain`, td, `names no trust domain under mesh.trustDomains; defined: ${Object.keys(trustDomains).join(', ') || '(none)'}`);
  const spiffe = m.spiffe === undefined ? true : m.spiffe;
  if (typeof spiffe !== 'boolean') fail(`${path}.spiffe`, m.spiffe, 'expected true or false');
  const uri = m.uri === undefined ? [] : strings(m.uri, `${path}.uri`).map((p, i) => {
    const why = checkUriPattern(p);
    if (why !== null) fail(`${path}.uri[${i}]`, p, `${why}; expected spiffe://${td}/path with "*" only as whole path segments`);
    if (!p.startsWith(`spiffe://${td}/`)) fail(`${path}.uri[${i}]`, p, `must be in the role's trust domain ${td}`);
    return p;
  });
  if (spiffe && uri.length === 0) fail(`${path}.uri`, m.uri, 'a SPIFFE role needs at least one uri pattern, e.g. spiffe://<td>/ns/*/sa/*');
  const ip = m.ip === undefined ? [] : strings(m.ip, `${path}.ip`).map((c, i) => {
    const r = parseCidr(c);
    if (!r.ok) fail(`${path}.ip[${i}]`, c, r.reason);
    return r.cidr.canonical;
  });
  const maxTtlMs = m.maxTtl === undefined ? MESH_DEFAULTS.leafMaxTtlMs : duration(m.maxTtl, `${path}.maxTtl`);
  const defaultTtlMs = m.defaultTtl === undefined ? Math.min(MESH_DEFAULTS.leafDefaultTtlMs, maxTtlMs) : duration(m.defaultTtl, `${path}.defaultTtl`);
  if (defaultTtlMs > maxTtlMs) fail(`${path}.defaultTtl`, m.defaultTtl, 'must not exceed maxTtl');
  return { name, trustDomain: td, spiffe: spiffe as boolean, uri, dns: m.dns === undefined ? [] : dnsPatterns(m.dns, `${path}.dns`), ip, maxTtlMs, defaultTtlMs };
}

function nameList(value: unknown, path: string, defined: Record<string, unknown>, what: string): string[] {
  return strings(value, path).map((n, i) => {
    if (!Object.hasOwn(defined, n)) fail(`${path}[${i}]`, n, `names no ${what}; defined: ${Object.keys(defined).join(', ') || '(none)'}`);
    return n;
  });
}

/** Parses the raw `mesh:` value of a policy file; throws MeshPolicyError naming the key path. */
export function parseMeshPolicy(raw: unknown): MeshPolicy {
  const m = mapping(raw, 'mesh', TOP_KEYS);
  const trustDomains: Record<string, MeshTrustDomain> = {};
  if (m.trustDomains !== undefined) {
    for (const [name, v] of named(m.trustDomains, 'mesh.trustDomains', TRUST_DOMAIN, 'a trust domain is lower-case letters, digits, ".", "-" and "_"')) {
      trustDomains[name] = parseTrustDomain(name, v, `mesh.trustDomains.${name}`);
    }
  }
  const roles: Record<string, MeshRole> = {};
  if (m.roles !== undefined) {
    for (const [name, v] of named(m.roles, 'mesh.roles', NAME, 'a role name starts with a lower-case letter and uses a-z, 0-9, ".", "-", "_"')) {
      roles[name] = parseRole(name, v, `mesh.roles.${name}`, trustDomains);
    }
  }
  const scopes: Record<string, MeshScope> = {};
  if (m.scopes !== undefined) {
    for (const [name, v] of named(m.scopes, 'mesh.scopes', NAME, 'a scope name starts with a lower-case letter and uses a-z, 0-9, ".", "-", "_"')) {
      const s = mapping(v, `mesh.scopes.${name}`, SCOPE_KEYS);
      scopes[name] = {
        name,
        trustDomains: s.trustDomains === undefined ? [] : nameList(s.trustDomains, `mesh.scopes.${name}.trustDomains`, trustDomains, 'trust domain under mesh.trustDomains'),
        roles: s.roles === undefined ? [] : nameList(s.roles, `mesh.scopes.${name}.roles`, roles, 'role under mesh.roles'),
      };
    }
  }
  const certRoles: Record<string, MeshCertRole> = {};
  if (m.certRoles !== undefined) {
    for (const [name, v] of named(m.certRoles, 'mesh.certRoles', NAME, 'a role name starts with a lower-case letter and uses a-z, 0-9, ".", "-", "_"')) {
      const path = `mesh.certRoles.${name}`;
      const c = mapping(v, path, CERT_ROLE_KEYS);
      if (typeof c.scope !== 'string' || !Object.hasOwn(scopes, c.scope)) fail(`${path}.scope`, c.scope, `names no scope under mesh.scopes; defined: ${Object.keys(scopes).join(', ') || '(none)'}`);
      const uri = c.uri === undefined ? [] : strings(c.uri, `${path}.uri`).map((p, i) => {
        const why = checkUriPattern(p);
        if (why !== null) fail(`${path}.uri[${i}]`, p, why);
        return p;
      });
      const dns = c.dns === undefined ? [] : dnsPatterns(c.dns, `${path}.dns`);
      if (uri.length + dns.length === 0) fail(path, v, 'a certificate role must match something: give dns or uri patterns');
      certRoles[name] = { name, scope: c.scope as string, dns, uri, tokenTtlMs: c.tokenTtl === undefined ? MESH_DEFAULTS.tokenTtlMs : duration(c.tokenTtl, `${path}.tokenTtl`) };
    }
  }
  const v = m.vault === undefined ? {} : mapping(m.vault, 'mesh.vault', VAULT_KEYS);
  const mounts: Record<string, MeshMount> = {};
  if (v.mounts === undefined) mounts.pki = { name: 'pki', trustDomain: null };
  else {
    for (const [name, mv] of named(v.mounts, 'mesh.vault.mounts', MOUNT, 'a mount is one path segment: letters, digits, ".", "-", "_"')) {
      if (RESERVED_MOUNTS.includes(name)) fail(`mesh.vault.mounts.${name}`, name, `"${name}" is a Vault system path`);
      const mm = mv === null ? {} : mapping(mv, `mesh.vault.mounts.${name}`, MOUNT_KEYS);
      let trustDomain: string | null = null;
      if (mm.trustDomain !== undefined) {
        if (typeof mm.trustDomain !== 'string' || !Object.hasOwn(trustDomains, mm.trustDomain)) fail(`mesh.vault.mounts.${name}.trustDomain`, mm.trustDomain, `names no trust domain under mesh.trustDomains`);
        trustDomain = mm.trustDomain as string;
      }
      mounts[name] = { name, trustDomain };
    }
  }
  const authMounts = (value: unknown, path: string, dflt: string): string[] => {
    if (value === undefined) return [dflt];
    return strings(value, path).map((s, i) => {
      if (!MOUNT.test(s)) fail(`${path}[${i}]`, s, 'a mount is one path segment: letters, digits, ".", "-", "_"');
      return s;
    });
  };
  const approleMounts = authMounts(v.approleMounts, 'mesh.vault.approleMounts', 'approle');
  const certMounts = authMounts(v.certMounts, 'mesh.vault.certMounts', 'cert');
  const clash = approleMounts.find((a) => certMounts.includes(a) || a === 'token');
  if (clash) fail('mesh.vault.approleMounts', clash, 'an auth mount may serve one method only (and "token" is Vault\'s own)');
  if (certMounts.includes('token')) fail('mesh.vault.certMounts', 'token', '"token" is Vault\'s own auth mount');
  return { trustDomains, roles, scopes, certRoles, vault: { mounts, approleMounts, certMounts } };
}
