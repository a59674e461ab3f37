/**
 * The typed issuance policy: profiles (what a certificate looks like), scopes (who may ask for
 * which names) and rate limits. Everything here is data; server/policy/parse.ts builds it from
 * YAML and server/policy/evaluate.ts decides with it. Parsed policies are deeply frozen so that a
 * request handler holding the old policy during a reload can never observe a half-changed one.
 */
import type { ChallengeType, Identifier } from '../../storage/types.js';
import { DEFAULT_KEY_POLICY, type KeyPolicy } from '../ca/goodkey.js';
import type { MeshPolicy } from '../mesh/mesh-policy.js';

export type ExtKeyUsageName = 'serverAuth' | 'clientAuth';
export type PolicyIdentifierType = 'dns' | 'ip';

export const EXT_KEY_USAGES: readonly ExtKeyUsageName[] = ['serverAuth', 'clientAuth'];
export const IDENTIFIER_TYPES: readonly PolicyIdentifierType[] = ['dns', 'ip'];
/** Also the order in which challengeTypesFor lists the offered challenges. */
export const CHALLENGE_TYPES: readonly ChallengeType[] = ['http-01', 'dns-01', 'tls-alpn-01'];

/** Profile.scopes = ['*'] lets every scope use the profile. */
export const ANY_SCOPE = '*';

export interface ProfileConfig {
  name: string;
  /** Shown as the value of meta.profiles[name] in the directory. */
  description: string;
  validityMs: number;
  extKeyUsage: ExtKeyUsageName[];
  keys: KeyPolicy;
  identifierTypes: PolicyIdentifierType[];
  challengeTypes: ChallengeType[];
  /** Distinct identifiers per order (URI SANs are not counted: they are not order identifiers). */
  maxNames: number;
  allowWildcards: boolean;
  /** Whether a CSR under this profile may carry URI SANs (SPIFFE IDs) at all; the scope still
   * decides which ones. */
  uriSans: boolean;
  /** Scope names that may use the profile; ['*'] = any scope. */
  scopes: string[];
  crlDistributionPoint?: boolean;
}

export interface AllowDeny {
  allow: string[];
  deny: string[];
}

export interface RateLimit {
  count: number;
  windowMs: number;
}

export interface RateLimitConfig {
  /** New orders per account. */
  ordersPerAccount: RateLimit;
  /** New orders summed over every account bound to one scope. */
  ordersPerScope: RateLimit;
  /** Certificates for exactly the same set of identifiers (see nameSetKey in evaluate.ts). */
  duplicateCertificates: RateLimit;
}

export interface ScopeConfig {
  name: string;
  /** Exact names, `.suffix` (anything strictly below) or `*.parent` (exactly one label);
   * a lone `*` allows every name. Canonical lower case. */
  dns: AllowDeny;
  /** CIDRs in canonical form (host bits zero, RFC 5952 text for IPv6). */
  ip: AllowDeny;
  /** SPIFFE ID patterns, `spiffe://trust-domain/path` with `*` as whole path segments. */
  uri: AllowDeny;
  /** Whether wildcard certificates (`*.name` identifiers) may be ordered in this scope. */
  wildcards: boolean;
  /** Profiles this scope may use; undefined = every profile whose `scopes` admits the scope. */
  profiles?: string[];
  /** Overrides of the policy-wide limits for accounts bound to this scope. */
  rateLimits?: Partial<RateLimitConfig>;
}

export interface PolicyConfig {
  /** Hex SHA-256 of the policy file's text ('builtin' for DEFAULT_POLICY); stored with orders so
   * a decision can be traced to the policy that made it. */
  version: string;
  defaultProfile: string;
  /** Scope of accounts not bound to one by EAB; null = such accounts may not order. */
  defaultScope: string | null;
  /** In file order, which is also the directory's meta.profiles order. */
  profiles: Record<string, ProfileConfig>;
  scopes: Record<string, ScopeConfig>;
  rateLimits: RateLimitConfig;
  /** The `mesh:` section (server/mesh/mesh-policy.ts, docs/mesh.md); absent = no mesh signing. */
  mesh?: MeshPolicy;
}

/** A refused identifier: `rule` names the policy rule (e.g. `dns.deny .secret.internal`,
 * `profile.maxNames`), `detail` is a sentence for the requester that starts with the identifier. */
export interface Denial {
  identifier: Identifier;
  rule: string;
  detail: string;
}

/** A refused URI SAN in a CSR (URIs are not ACME identifiers, so they have their own shape). */
export interface UriDenial {
  uri: string;
  rule: string;
  detail: string;
}

// ---------------------------------------------------------------------------
// Built-in defaults. parse.ts overlays the operator's file on these.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Values a profile gets for keys it leaves out (a built-in profile's own values win). */
export const PROFILE_FIELD_DEFAULTS: Omit<ProfileConfig, 'name' | 'validityMs' | 'extKeyUsage'> = deepFreeze({
  description: '',
  keys: { allowed: [...DEFAULT_KEY_POLICY.allowed], rsaMinBits: DEFAULT_KEY_POLICY.rsaMinBits, rsaMaxBits: DEFAULT_KEY_POLICY.rsaMaxBits },
  identifierTypes: ['dns', 'ip'],
  challengeTypes: [...CHALLENGE_TYPES],
  maxNames: 100,
  allowWildcards: true,
  uriSans: true,
  scopes: [ANY_SCOPE],
  crlDistributionPoint: false,
});

export const BUILTIN_PROFILES: Readonly<Record<'mtls' | 'server', ProfileConfig>> = deepFreeze({
  mtls: {
    ...PROFILE_FIELD_DEFAULTS,
    name: 'mtls',
    description: 'Mutual TLS: 24 hours, serverAuth and clientAuth',
    validityMs: DAY,
    extKeyUsage: ['serverAuth', 'clientAuth'],
  },
  server: {
    ...PROFILE_FIELD_DEFAULTS,
    name: 'server',
    description: 'TLS server: 7 days, serverAuth only',
    validityMs: 7 * DAY,
    extKeyUsage: ['serverAuth'],
  },
});

/** Permissive on purpose: without a policy file the server issues for any validated name, as it
 * did before policies existed. URI SANs stay off: they have no ACME challenge, so only an
 * operator's explicit rule can authorise them. */
export const BUILTIN_DEFAULT_SCOPE: ScopeConfig = deepFreeze({
  name: 'default',
  dns: { allow: ['*'], deny: [] },
  ip: { allow: ['0.0.0.0/0', '::/0'], deny: [] },
  uri: { allow: [], deny: [] },
  wildcards: true,
});

/** Generous: they exist to stop runaway clients, not to ration an internal CA. */
export const DEFAULT_RATE_LIMITS: RateLimitConfig = deepFreeze({
  ordersPerAccount: { count: 300, windowMs: HOUR },
  ordersPerScope: { count: 3000, windowMs: HOUR },
  duplicateCertificates: { count: 100, windowMs: HOUR },
});

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

export const DEFAULT_POLICY: PolicyConfig = deepFreeze({
  version: 'builtin',
  defaultProfile: 'mtls',
  defaultScope: 'default',
  profiles: { mtls: clone(BUILTIN_PROFILES.mtls), server: clone(BUILTIN_PROFILES.server) },
  scopes: { default: clone(BUILTIN_DEFAULT_SCOPE) },
  rateLimits: clone(DEFAULT_RATE_LIMITS),
});

/** Own-property lookup: policy records are keyed by operator-chosen names, and a name such as
 * `constructor` must not resolve to Object.prototype's member. */
export function lookup<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** The scope's effective limits: its overrides over the policy-wide ones. */
export function rateLimitsFor(scope: ScopeConfig, policy: PolicyConfig): RateLimitConfig {
  return { ...policy.rateLimits, ...(scope.rateLimits ?? {}) };
}

/** Profiles a scope may use, in policy order: the profile admits the scope (by name or "*") and,
 * when the scope restricts its profiles, the scope lists it. Both sides must agree so that
 * neither a profile owner nor a scope owner can widen the other's choice alone. */
export function usableProfiles(scope: ScopeConfig, profiles: Record<string, ProfileConfig>): ProfileConfig[] {
  return Object.values(profiles).filter((p) =>
    (p.scopes.includes(ANY_SCOPE) || p.scopes.includes(scope.name)) && (scope.profiles === undefined || scope.profiles.includes(p.name)));
}
