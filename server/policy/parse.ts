/**
 * The policy file: YAML in, a validated, frozen PolicyConfig out. Every refusal is a PolicyError
 * naming the key path (`scopes.web.dns.allow[1]`), the offending value and what is allowed, in
 * the style of server/config.ts, because the operator reading it is usually mid-reload on a
 * running CA and must fix the file without reading this code.
 */
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import type { ChallengeType } from '../../storage/types.js';
import { MAX_IDENTIFIERS } from '../acme/identifiers.js';
import type { KeyAlgorithmName, KeyPolicy } from '../ca/goodkey.js';
import { parseDuration } from '../config.js';
import { checkDnsPattern, checkUriPattern, parseCidr } from './match.js';
import { MeshPolicyError, parseMeshPolicy, type MeshPolicy } from '../mesh/mesh-policy.js';
import {
  ANY_SCOPE, BUILTIN_DEFAULT_SCOPE, BUILTIN_PROFILES, CHALLENGE_TYPES, DEFAULT_POLICY, DEFAULT_RATE_LIMITS,
  deepFreeze, EXT_KEY_USAGES, IDENTIFIER_TYPES, lookup, PROFILE_FIELD_DEFAULTS, usableProfiles,
  type AllowDeny, type ExtKeyUsageName, type PolicyConfig, type PolicyIdentifierType, type ProfileConfig,
  type RateLimit, type RateLimitConfig, type ScopeConfig,
} from './types.js';

export class PolicyError extends Error {
  constructor(readonly source: string, readonly path: string, message: string) {
    super(message);
    this.name = 'PolicyError';
  }
}

const KEY_ALGORITHMS: readonly KeyAlgorithmName[] = ['RSA', 'EC-P256', 'EC-P384', 'EC-P521', 'Ed25519'];
// Letter first so names never look like array indices (which JavaScript would reorder in a
// record); lower case so 'Payments' and 'payments' cannot both exist.
const NAME = /^[a-z][a-z0-9._-]{0,63}$/;
const MIN_VALIDITY_MS = 60_000;
// The CA/Browser Forum ceiling for TLS certificates; internal clients enforce it too (Apple, Chrome).
const MAX_VALIDITY_MS = 398 * 86_400_000;
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 16384;

const TOP_KEYS = ['defaultProfile', 'defaultScope', 'profiles', 'scopes', 'rateLimits'] as const;
const PROFILE_KEYS = [
  'description', 'validity', 'extKeyUsage', 'keys', 'identifierTypes', 'challengeTypes', 'maxNames',
  'allowWildcards', 'uriSans', 'scopes', 'crlDistributionPoint',
] as const;
const KEYS_KEYS = ['allowed', 'rsaMinBits', 'rsaMaxBits'] as const;
const SCOPE_KEYS = ['dns', 'ip', 'uri', 'wildcards', 'profiles', 'rateLimits'] as const;
const ALLOW_DENY_KEYS = ['allow', 'deny'] as const;
const RATE_LIMIT_KEYS = ['ordersPerAccount', 'ordersPerScope', 'duplicateCertificates'] as const;
const LIMIT_KEYS = ['count', 'window'] as const;
// The mesh section is parsed and documented by the mesh module (server/mesh/mesh-policy.ts,
// docs/mesh.md), so it is not among POLICY_FILE_KEYS, which docs/policy.md is checked against.
const MESH_KEY = 'mesh';

/** Every key the file may contain, by section; docs/policy.md is checked against it. */
export const POLICY_FILE_KEYS = {
  top: TOP_KEYS, profile: PROFILE_KEYS, keys: KEYS_KEYS, scope: SCOPE_KEYS, rules: ALLOW_DENY_KEYS,
  rateLimits: RATE_LIMIT_KEYS, limit: LIMIT_KEYS,
} as const;

type Mapping = Record<string, unknown>;

/** Validation context: one per parse, so every message carries the file it came from. */
class Reader {
  constructor(readonly source: string) {}

  fail(path: string, value: unknown, what: string): never {
    throw new PolicyError(this.source, path, `invalid policy ${this.source}: ${path} = ${show(value)}: ${what}`);
  }

  mapping(value: unknown, path: string, allowed: readonly string[]): Mapping {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.fail(path === '' ? '(top level)' : path, value, allowed.length > 0 ? `expected a mapping with keys ${allowed.join(', ')}` : 'expected a mapping');
    }
    const m = value as Mapping;
    if (allowed.length > 0) {
      const unknown = Object.keys(m).filter((k) => !allowed.includes(k));
      if (unknown.length > 0) {
        const where = unknown.map((k) => join(path, k)).join(', ');
        throw new PolicyError(this.source, join(path, unknown[0]),
          `invalid policy ${this.source}: unknown key${unknown.length > 1 ? 's' : ''} ${where}; allowed here: ${allowed.join(', ')}`);
      }
    }
    return m;
  }

  /** A mapping of operator-chosen names (profiles, scopes): keys checked against NAME. */
  named(value: unknown, path: string): Array<[string, unknown]> {
    const m = this.mapping(value, path, []);
    for (const k of Object.keys(m)) {
      if (!NAME.test(k)) this.fail(join(path, k), k, 'a name must start with a lower-case letter and use only a-z, 0-9, ".", "-" and "_" (at most 64 characters)');
    }
    return Object.entries(m);
  }

  string(value: unknown, path: string): string {
    if (typeof value !== 'string') this.fail(path, value, 'expected a string');
    return value as string;
  }

  name(value: unknown, path: string): string {
    const s = this.string(value, path);
    if (!NAME.test(s)) this.fail(path, value, 'expected a name: a lower-case letter, then a-z, 0-9, ".", "-" or "_"');
    return s;
  }

  boolean(value: unknown, path: string): boolean {
    if (typeof value !== 'boolean') this.fail(path, value, 'expected true or false');
    return value as boolean;
  }

  integer(value: unknown, path: string, min: number, max: number, why = ''): number {
    if (typeof value !== 'number' || !Number.isInteger(value)) this.fail(path, value, `expected an integer from ${min} to ${max}`);
    const n = value as number;
    if (n < min) this.fail(path, value, `must be at least ${min}${why}`);
    if (n > max) this.fail(path, value, `must be at most ${max}${why}`);
    return n;
  }

  duration(value: unknown, path: string, minMs: number, maxMs: number): number {
    const ms = typeof value === 'string' || typeof value === 'number' ? parseDuration(value) : null;
    if (ms === null) this.fail(path, value, 'expected a duration such as 90s, 15m, 24h, 7d or 1h30m (a bare number is seconds)');
    if (ms! < minMs) this.fail(path, value, `must be at least ${human(minMs)}`);
    if (ms! > maxMs) this.fail(path, value, `must be at most ${human(maxMs)}`);
    return ms!;
  }

  list(value: unknown, path: string): unknown[] {
    if (!Array.isArray(value)) this.fail(path, value, 'expected a list');
    return value as unknown[];
  }

  /** A non-empty list of distinct members of `allowed`. */
  choices<T extends string>(value: unknown, path: string, allowed: readonly T[]): T[] {
    const items = this.list(value, path);
    if (items.length === 0) this.fail(path, value, `must not be empty; choose from ${allowed.join(', ')}`);
    const out: T[] = [];
    items.forEach((item, i) => {
      if (typeof item !== 'string' || !(allowed as readonly string[]).includes(item)) {
        this.fail(`${path}[${i}]`, item, `expected one of ${allowed.join(', ')}`);
      }
      if (out.includes(item as T)) this.fail(`${path}[${i}]`, item, 'is listed twice');
      out.push(item as T);
    });
    return out;
  }
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function show(value: unknown): string {
  if (value === undefined) return '(missing)';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

function human(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}

// ---------------------------------------------------------------------------
// Sections.

function parseKeys(r: Reader, value: unknown, path: string, base: KeyPolicy): KeyPolicy {
  const m = r.mapping(value, path, KEYS_KEYS);
  const keys: KeyPolicy = { allowed: [...base.allowed], rsaMinBits: base.rsaMinBits, rsaMaxBits: base.rsaMaxBits };
  if (m.allowed !== undefined) keys.allowed = r.choices(m.allowed, `${path}.allowed`, KEY_ALGORITHMS);
  const multipleOf8 = (n: number, p: string): void => {
    // goodkey refuses RSA sizes that are not whole bytes, so such a bound could never be met exactly.
    if (n % 8 !== 0) r.fail(p, n, 'must be a multiple of 8');
  };
  if (m.rsaMinBits !== undefined) {
    keys.rsaMinBits = r.integer(m.rsaMinBits, `${path}.rsaMinBits`, MIN_RSA_BITS, MAX_RSA_BITS, ' (the CA/Browser Forum minimum is 2048)');
    multipleOf8(keys.rsaMinBits, `${path}.rsaMinBits`);
  }
  if (m.rsaMaxBits !== undefined) {
    keys.rsaMaxBits = r.integer(m.rsaMaxBits, `${path}.rsaMaxBits`, MIN_RSA_BITS, MAX_RSA_BITS);
    multipleOf8(keys.rsaMaxBits, `${path}.rsaMaxBits`);
  }
  if (keys.rsaMinBits > keys.rsaMaxBits) {
    r.fail(`${path}.rsaMinBits`, keys.rsaMinBits, `must not exceed rsaMaxBits (${keys.rsaMaxBits})`);
  }
  return keys;
}

function parseProfile(r: Reader, name: string, value: unknown, path: string): ProfileConfig {
  const m = r.mapping(value, path, PROFILE_KEYS);
  const builtin = lookup<ProfileConfig>(BUILTIN_PROFILES, name);
  // A built-in name overlays the built-in, so `mtls: {validity: 12h}` changes only the
  // validity; a new profile must state what its certificates are for and how long they live.
  if (builtin === undefined) {
    if (m.validity === undefined) r.fail(`${path}.validity`, undefined, 'a new profile must set validity, e.g. 24h');
    if (m.extKeyUsage === undefined) r.fail(`${path}.extKeyUsage`, undefined, 'a new profile must set extKeyUsage, e.g. [serverAuth, clientAuth]');
  }
  const base: ProfileConfig = builtin !== undefined
    ? structuredClone(builtin)
    : { ...structuredClone(PROFILE_FIELD_DEFAULTS), name, validityMs: 0, extKeyUsage: [] };
  const p: ProfileConfig = { ...base, name };
  if (m.description !== undefined) p.description = r.string(m.description, `${path}.description`);
  if (m.validity !== undefined) p.validityMs = r.duration(m.validity, `${path}.validity`, MIN_VALIDITY_MS, MAX_VALIDITY_MS);
  if (m.extKeyUsage !== undefined) p.extKeyUsage = r.choices<ExtKeyUsageName>(m.extKeyUsage, `${path}.extKeyUsage`, EXT_KEY_USAGES);
  if (m.keys !== undefined) p.keys = parseKeys(r, m.keys, `${path}.keys`, base.keys);
  if (m.identifierTypes !== undefined) p.identifierTypes = r.choices<PolicyIdentifierType>(m.identifierTypes, `${path}.identifierTypes`, IDENTIFIER_TYPES);
  if (m.challengeTypes !== undefined) p.challengeTypes = r.choices<ChallengeType>(m.challengeTypes, `${path}.challengeTypes`, CHALLENGE_TYPES);
  if (m.maxNames !== undefined) p.maxNames = r.integer(m.maxNames, `${path}.maxNames`, 1, MAX_IDENTIFIERS, ` (the server's per-order limit is ${MAX_IDENTIFIERS})`);
  if (m.allowWildcards !== undefined) p.allowWildcards = r.boolean(m.allowWildcards, `${path}.allowWildcards`);
  if (m.uriSans !== undefined) p.uriSans = r.boolean(m.uriSans, `${path}.uriSans`);
  if (m.crlDistributionPoint !== undefined) p.crlDistributionPoint = r.boolean(m.crlDistributionPoint, `${path}.crlDistributionPoint`);
  if (m.scopes !== undefined) {
    const items = r.list(m.scopes, `${path}.scopes`);
    if (items.length === 0) r.fail(`${path}.scopes`, m.scopes, `must not be empty; use ["${ANY_SCOPE}"] for every scope, or remove the profile with "${name}: null"`);
    p.scopes = items.map((s, i) => (s === ANY_SCOPE ? ANY_SCOPE : r.name(s, `${path}.scopes[${i}]`)));
    if (p.scopes.includes(ANY_SCOPE) && p.scopes.length > 1) {
      r.fail(`${path}.scopes`, m.scopes, `"${ANY_SCOPE}" already means every scope; list it alone or list scope names`);
    }
  }
  // Checked here rather than at issuance: a profile that cannot validate any identifier type
  // it allows is certainly a mistake in the file.
  if (p.identifierTypes.includes('ip') && !p.challengeTypes.some((c) => c === 'http-01' || c === 'tls-alpn-01')) {
    r.fail(`${path}.challengeTypes`, p.challengeTypes, 'allows no challenge that can validate an IP address (http-01 or tls-alpn-01); add one or drop "ip" from identifierTypes');
  }
  return p;
}

function parsePatterns(r: Reader, value: unknown, path: string, kind: 'dns' | 'ip' | 'uri'): AllowDeny {
  const m = r.mapping(value, path, ALLOW_DENY_KEYS);
  const one = (items: unknown, p: string): string[] => {
    if (items === undefined) return [];
    const out: string[] = [];
    r.list(items, p).forEach((item, i) => {
      const at = `${p}[${i}]`;
      if (typeof item !== 'string') r.fail(at, item, kind === 'ip' ? 'expected a CIDR string such as 10.0.0.0/8' : 'expected a string');
      const text = item as string;
      let canonical = text;
      if (kind === 'dns') {
        // DNS is case-insensitive; canonical lower case keeps matching a plain comparison.
        canonical = text.toLowerCase();
        const why = checkDnsPattern(canonical);
        if (why !== null) r.fail(at, item, `${why}. A DNS pattern is an exact name, ".suffix" (any name below it), "*.parent" (one label) or "*" (any name)`);
      } else if (kind === 'ip') {
        const c = parseCidr(text);
        if (!c.ok) r.fail(at, item, `${c.reason}; expected a CIDR such as 10.20.0.0/16 or fd00::/8`);
        canonical = c.cidr.canonical;
      } else {
        const why = checkUriPattern(text);
        if (why !== null) r.fail(at, item, `${why}; expected spiffe://trust-domain/path with "*" only as whole path segments`);
      }
      if (!out.includes(canonical)) out.push(canonical);
    });
    return out;
  };
  return { allow: one(m.allow, `${path}.allow`), deny: one(m.deny, `${path}.deny`) };
}

function parseLimit(r: Reader, value: unknown, path: string): RateLimit {
  const m = r.mapping(value, path, LIMIT_KEYS);
  if (m.count === undefined) r.fail(`${path}.count`, undefined, 'a rate limit needs count and window, e.g. {count: 300, window: 1h}');
  if (m.window === undefined) r.fail(`${path}.window`, undefined, 'a rate limit needs count and window, e.g. {count: 300, window: 1h}');
  return {
    count: r.integer(m.count, `${path}.count`, 1, 1_000_000_000),
    windowMs: r.duration(m.window, `${path}.window`, 1000, 366 * 86_400_000),
  };
}

function parseRateLimits(r: Reader, value: unknown, path: string): Partial<RateLimitConfig> {
  const m = r.mapping(value, path, RATE_LIMIT_KEYS);
  const out: Partial<RateLimitConfig> = {};
  for (const k of RATE_LIMIT_KEYS) {
    if (m[k] !== undefined) out[k] = parseLimit(r, m[k], `${path}.${k}`);
  }
  return out;
}

function parseScope(r: Reader, name: string, value: unknown, path: string): ScopeConfig {
  // No merging with the built-in `default` scope: a scope the operator writes means exactly
  // what it says, and anything it leaves out is denied.
  const m = r.mapping(value, path, SCOPE_KEYS);
  const empty = (): AllowDeny => ({ allow: [], deny: [] });
  const scope: ScopeConfig = {
    name,
    dns: m.dns === undefined ? empty() : parsePatterns(r, m.dns, `${path}.dns`, 'dns'),
    ip: m.ip === undefined ? empty() : parsePatterns(r, m.ip, `${path}.ip`, 'ip'),
    uri: m.uri === undefined ? empty() : parsePatterns(r, m.uri, `${path}.uri`, 'uri'),
    wildcards: m.wildcards === undefined ? false : r.boolean(m.wildcards, `${path}.wildcards`),
  };
  if (m.profiles !== undefined) {
    const items = r.list(m.profiles, `${path}.profiles`);
    if (items.length === 0) r.fail(`${path}.profiles`, m.profiles, 'must not be empty (leave it out to allow every profile open to this scope)');
    scope.profiles = items.map((p, i) => r.name(p, `${path}.profiles[${i}]`));
  }
  if (m.rateLimits !== undefined) scope.rateLimits = parseRateLimits(r, m.rateLimits, `${path}.rateLimits`);
  return scope;
}

// ---------------------------------------------------------------------------

/**
 * Parses and validates a policy file. `source` names the file in error messages. An empty file
 * yields the built-in policy (with its own version hash). Throws PolicyError.
 */
export function parsePolicy(text: string, source: string): PolicyConfig {
  const r = new Reader(source);
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new PolicyError(source, '', `policy ${source} is not valid YAML: ${(e as Error).message}`);
  }
  const top = doc === null || doc === undefined ? {} : r.mapping(doc, '', [...TOP_KEYS, MESH_KEY]);

  // Profiles: built-ins first (so they keep their place in meta.profiles), then the file's.
  const profiles: Record<string, ProfileConfig> = {};
  for (const p of Object.values(BUILTIN_PROFILES)) profiles[p.name] = structuredClone(p);
  if (top.profiles !== undefined) {
    for (const [name, value] of r.named(top.profiles, 'profiles')) {
      const path = `profiles.${name}`;
      if (value === null) {
        if (lookup(BUILTIN_PROFILES, name) === undefined) r.fail(path, value, `null removes a built-in profile (${Object.keys(BUILTIN_PROFILES).join(', ')}); "${name}" is not one`);
        delete profiles[name];
        continue;
      }
      profiles[name] = parseProfile(r, name, value, path);
    }
  }
  if (Object.keys(profiles).length === 0) r.fail('profiles', top.profiles, 'at least one profile must remain');

  // Scopes: the file's set replaces the built-in permissive `default` scope entirely, so that
  // writing a restrictive policy can never leave an allow-everything scope behind.
  const scopes: Record<string, ScopeConfig> = {};
  if (top.scopes === undefined) {
    scopes[BUILTIN_DEFAULT_SCOPE.name] = structuredClone(BUILTIN_DEFAULT_SCOPE);
  } else {
    for (const [name, value] of r.named(top.scopes, 'scopes')) scopes[name] = parseScope(r, name, value, `scopes.${name}`);
  }

  const rateLimits: RateLimitConfig = {
    ...structuredClone(DEFAULT_RATE_LIMITS),
    ...(top.rateLimits === undefined ? {} : parseRateLimits(r, top.rateLimits, 'rateLimits')),
  };

  const defaultProfile = top.defaultProfile === undefined ? DEFAULT_POLICY.defaultProfile : r.name(top.defaultProfile, 'defaultProfile');
  const defaultScope = top.defaultScope === undefined ? DEFAULT_POLICY.defaultScope
    : top.defaultScope === null ? null : r.name(top.defaultScope, 'defaultScope');

  // Referential integrity, after everything is parsed so messages can list the real names.
  const profileNames = Object.keys(profiles);
  const scopeNames = Object.keys(scopes);
  const list = (names: string[]): string => (names.length > 0 ? names.join(', ') : '(none)');
  if (lookup(profiles, defaultProfile) === undefined) {
    r.fail('defaultProfile', defaultProfile, `names no profile; profiles: ${list(profileNames)}`);
  }
  if (defaultScope !== null && lookup(scopes, defaultScope) === undefined) {
    r.fail('defaultScope', defaultScope, `names no scope; scopes: ${list(scopeNames)} (define scopes.${defaultScope}, pick one of those, or set defaultScope: null so that only EAB-bound accounts may order)`);
  }
  for (const p of Object.values(profiles)) {
    p.scopes.forEach((s, i) => {
      if (s !== ANY_SCOPE && lookup(scopes, s) === undefined) r.fail(`profiles.${p.name}.scopes[${i}]`, s, `names no scope; scopes: ${list(scopeNames)}`);
    });
  }
  for (const s of Object.values(scopes)) {
    (s.profiles ?? []).forEach((p, i) => {
      if (lookup(profiles, p) === undefined) r.fail(`scopes.${s.name}.profiles[${i}]`, p, `names no profile; profiles: ${list(profileNames)}`);
    });
    if (usableProfiles(s, profiles).length === 0) {
      r.fail(`scopes.${s.name}`, s.profiles ?? '(all profiles)',
        `no profile is open to this scope: ${s.profiles ? `of ${s.profiles.join(', ')}, none lists '${s.name}' (or "*") in its scopes` : `no profile lists '${s.name}' (or "*") in its scopes`}`);
    }
  }

  let mesh: MeshPolicy | undefined;
  if (top[MESH_KEY] !== undefined && top[MESH_KEY] !== null) {
    try {
      mesh = parseMeshPolicy(top[MESH_KEY]);
    } catch (e) {
      if (e instanceof MeshPolicyError) throw new PolicyError(source, e.path, `invalid policy ${source}: ${e.message}`);
      throw e;
    }
  }

  return deepFreeze({
    version: createHash('sha256').update(text, 'utf8').digest('hex'),
    defaultProfile,
    defaultScope,
    profiles,
    scopes,
    rateLimits,
    // Only present when written, so a policy without it equals the built-in one.
    ...(mesh ? { mesh } : {}),
  });
}
