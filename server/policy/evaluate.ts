/**
 * Policy decisions: (request, account scope, profile, policy) -> allow, or denials that each
 * name the identifier and the rule. Pure: no I/O, no clock (callers pass `now`), no state, so
 * the same inputs always give the same answer and every decision can be replayed from the
 * policy version stored with an order.
 */
import type { ChallengeType, Identifier } from '../../storage/types.js';
import { checkPublicKey, type KeyAlgorithmName } from '../ca/goodkey.js';
import { checkSpiffeId, dnsOverlaps, formatIp, isWildcardName, mappedIpv4, matchDns, matchUri, ipInCidr, parseIp } from './match.js';
import {
  CHALLENGE_TYPES, lookup, usableProfiles,
  type Denial, type PolicyConfig, type ProfileConfig, type RateLimit, type ScopeConfig, type UriDenial,
} from './types.js';

export interface OrderRequest {
  identifiers: Identifier[];
  /** The newOrder `profile` field; undefined when the client sent none. */
  profile?: string;
}

export interface PolicyContext {
  /** The account's scope name (from its EAB binding, else policy.defaultScope). */
  scope: string;
  policy: PolicyConfig;
}

export type OrderProblem = 'invalidProfile' | 'rejectedIdentifier' | 'unauthorized';

export type OrderDecision =
  | { allow: true; profile: ProfileConfig; scope: ScopeConfig; reasons: string[] }
  | { allow: false; problem: OrderProblem; detail: string; denials: Denial[] };

const DENY_WINS = '(denials win over allows)';
const LIST_LIMIT = 8;

function listPatterns(items: readonly string[]): string {
  if (items.length <= LIST_LIMIT) return items.join(', ');
  return `${items.slice(0, LIST_LIMIT).join(', ')} and ${items.length - LIST_LIMIT} more`;
}

function names(profiles: readonly ProfileConfig[]): string {
  return profiles.length > 0 ? profiles.map((p) => p.name).join(', ') : '(none)';
}

function refuse(problem: OrderProblem, detail: string, denials: Denial[] = []): OrderDecision {
  return { allow: false, problem, detail, denials };
}

type ProfileChoice = { ok: true; profile: ProfileConfig; why: string } | { ok: false; decision: OrderDecision };

/**
 * A requested profile must exist and be open to the scope. Without a request the policy's
 * default is used when the scope may use it, else the scope's first usable profile, so that a
 * scope restricted to, say, `mtls` works for clients that do not know about profiles.
 */
function chooseProfile(requested: string | undefined, scope: ScopeConfig, policy: PolicyConfig): ProfileChoice {
  const usable = usableProfiles(scope, policy.profiles);
  if (requested !== undefined) {
    const profile = lookup(policy.profiles, requested);
    if (profile === undefined) {
      return { ok: false, decision: refuse('invalidProfile', `profile '${requested}' is not offered; profiles available to scope '${scope.name}': ${names(usable)}`) };
    }
    if (!usable.includes(profile)) {
      return { ok: false, decision: refuse('invalidProfile', `profile '${requested}' is not available to scope '${scope.name}'; profiles available to it: ${names(usable)}`) };
    }
    return { ok: true, profile, why: `profile '${profile.name}' (requested)` };
  }
  const def = lookup(policy.profiles, policy.defaultProfile);
  if (def !== undefined && usable.includes(def)) return { ok: true, profile: def, why: `profile '${def.name}' (the policy default)` };
  if (usable.length > 0) return { ok: true, profile: usable[0], why: `profile '${usable[0].name}' (the first profile available to scope '${scope.name}'; the default '${policy.defaultProfile}' is not)` };
  return { ok: false, decision: refuse('unauthorized', `no profile is available to scope '${scope.name}'; ask the CA operator`) };
}

/** Challenge types that can validate the identifier (RFC 8555 8.3-8.4, RFC 8737, RFC 8738)
 * and that the profile allows, in a fixed order. Empty means the identifier cannot be validated
 * under this profile. `wildcard` is the authorization's flag; a `*.` value also counts. */
export function challengeTypesFor(identifier: Identifier, wildcard: boolean, profile: ProfileConfig): ChallengeType[] {
  let possible: readonly ChallengeType[];
  if (identifier.type === 'ip') possible = ['http-01', 'tls-alpn-01'];
  else if (wildcard || isWildcardName(identifier.value)) possible = ['dns-01'];
  else possible = CHALLENGE_TYPES;
  return CHALLENGE_TYPES.filter((c) => possible.includes(c) && profile.challengeTypes.includes(c));
}

type Check = { ok: true; reason: string } | { ok: false; rule: string; detail: string };

function checkDns(value: string, scope: ScopeConfig): Check {
  const name = value.toLowerCase();
  const wildcard = isWildcardName(name);
  for (const pattern of scope.dns.deny) {
    if (matchDns(name, pattern)) {
      return { ok: false, rule: `dns.deny ${pattern}`, detail: `${value}: denied by scope '${scope.name}' rule dns.deny ${pattern} ${DENY_WINS}` };
    }
    if (wildcard && dnsOverlaps(name, pattern)) {
      return {
        ok: false, rule: `dns.deny ${pattern}`,
        detail: `${value}: denied by scope '${scope.name}' rule dns.deny ${pattern}: the wildcard certificate would also be valid for ${pattern} ${DENY_WINS}`,
      };
    }
  }
  const allowedBy = scope.dns.allow.find((p) => matchDns(name, p));
  if (allowedBy !== undefined) return { ok: true, reason: `${value}: allowed by scope '${scope.name}' rule dns.allow ${allowedBy}` };
  if (scope.dns.allow.length === 0) return { ok: false, rule: 'dns.allow', detail: `${value}: scope '${scope.name}' allows no DNS names` };
  const hint = wildcard ? ' (a wildcard needs a pattern that covers every name under it: ".parent" or "*.parent")' : '';
  return { ok: false, rule: 'dns.allow', detail: `${value}: scope '${scope.name}' allows only ${listPatterns(scope.dns.allow)}${hint}` };
}

function checkIp(value: string, scope: ScopeConfig): Check {
  const bytes = parseIp(value);
  if (bytes === null) return { ok: false, rule: 'ip.format', detail: `${value}: not an IPv4 or IPv6 address` };
  const v4 = mappedIpv4(bytes);
  const shown = v4 === null ? value : `${value} (IPv4-mapped, the same host as ${formatIp(v4)})`;
  const denied = scope.ip.deny.find((c) => ipInCidr(value, c));
  if (denied !== undefined) {
    return { ok: false, rule: `ip.deny ${denied}`, detail: `${shown}: denied by scope '${scope.name}' rule ip.deny ${denied} ${DENY_WINS}` };
  }
  const allowedBy = scope.ip.allow.find((c) => ipInCidr(value, c));
  if (allowedBy !== undefined) return { ok: true, reason: `${value}: allowed by scope '${scope.name}' rule ip.allow ${allowedBy}` };
  if (scope.ip.allow.length === 0) return { ok: false, rule: 'ip.allow', detail: `${shown}: scope '${scope.name}' allows no IP addresses` };
  return { ok: false, rule: 'ip.allow', detail: `${shown}: scope '${scope.name}' allows only IP addresses in ${listPatterns(scope.ip.allow)}` };
}

/** One identifier against the profile, then the scope; the first failing rule is reported,
 * so each identifier yields at most one denial (one subproblem). */
function checkIdentifier(id: Identifier, profile: ProfileConfig, scope: ScopeConfig): Check {
  const type: string = id.type;
  if (type !== 'dns' && type !== 'ip') {
    return { ok: false, rule: 'identifier.type', detail: `${id.value}: identifier type "${type}" is not supported; use dns or ip` };
  }
  if (!profile.identifierTypes.includes(id.type)) {
    return { ok: false, rule: 'profile.identifierTypes', detail: `${id.value}: profile '${profile.name}' allows only ${profile.identifierTypes.join(' and ')} identifiers` };
  }
  const wildcard = id.type === 'dns' && isWildcardName(id.value);
  if (wildcard && !profile.allowWildcards) {
    return { ok: false, rule: 'profile.allowWildcards', detail: `${id.value}: profile '${profile.name}' does not allow wildcard names` };
  }
  if (wildcard && !scope.wildcards) {
    return { ok: false, rule: 'scope.wildcards', detail: `${id.value}: scope '${scope.name}' does not allow wildcard certificates` };
  }
  if (challengeTypesFor(id, wildcard, profile).length === 0) {
    const what = id.type === 'ip' ? 'an IP address (needs http-01 or tls-alpn-01)' : 'a wildcard name (needs dns-01)';
    return { ok: false, rule: 'profile.challengeTypes', detail: `${id.value}: profile '${profile.name}' offers only ${profile.challengeTypes.join(', ')}, which cannot validate ${what}` };
  }
  return id.type === 'dns' ? checkDns(id.value, scope) : checkIp(id.value, scope);
}

/**
 * Decides a newOrder. Identifiers are expected normalised by server/acme/identifiers.ts
 * (lower-case names, canonical IP text); DNS names are lower-cased here again regardless.
 * A refusal with several denials maps to `compound` with one `rejectedIdentifier` subproblem
 * per denial; with one denial, to that denial; with none (maxNames, empty order, profile and
 * scope problems), to `problem` with `detail`.
 */
export function evaluateOrder(req: OrderRequest, ctx: PolicyContext): OrderDecision {
  const { policy } = ctx;
  const scope = lookup(policy.scopes, ctx.scope);
  if (scope === undefined) {
    return refuse('unauthorized', `the account's scope '${ctx.scope}' is not defined by the current policy; ask the CA operator to rebind the account`);
  }
  const choice = chooseProfile(req.profile, scope, policy);
  if (!choice.ok) return choice.decision;
  const { profile } = choice;

  const distinct = new Set(req.identifiers.map((i) => `${i.type}:${i.type === 'dns' ? i.value.toLowerCase() : i.value}`));
  if (distinct.size === 0) return refuse('rejectedIdentifier', 'an order needs at least one identifier');
  if (distinct.size > profile.maxNames) {
    return refuse('rejectedIdentifier', `the order has ${distinct.size} identifiers; profile '${profile.name}' allows at most ${profile.maxNames} (rule profile.maxNames)`);
  }

  const denials: Denial[] = [];
  const reasons: string[] = [choice.why];
  for (const identifier of req.identifiers) {
    const result = checkIdentifier(identifier, profile, scope);
    if (result.ok) reasons.push(result.reason);
    else denials.push({ identifier, rule: result.rule, detail: result.detail });
  }
  if (denials.length === 0) return { allow: true, profile, scope, reasons };
  const detail = denials.length === 1
    ? denials[0].detail
    : `${denials.length} of ${req.identifiers.length} identifiers were refused: ${denials.map((d) => d.detail).join('; ')}`;
  return refuse('rejectedIdentifier', detail, denials);
}

export interface CsrUriContext {
  scope: string;
  /** The order's profile name. */
  profile: string;
  policy: PolicyConfig;
}

/**
 * URI SANs in a finalize CSR. ACME cannot validate a URI, so the only authority for one is the
 * account's scope: a URI is allowed when a `uri.allow` pattern matches and no `uri.deny` does,
 * the profile permits URI SANs at all, and it is the certificate's only URI (an X509-SVID carries
 * exactly one SPIFFE ID). Returns one denial per refused URI; empty means all are allowed.
 */
export function evaluateCsrUris(uris: readonly string[], ctx: CsrUriContext): UriDenial[] {
  if (uris.length === 0) return [];
  const scope = lookup(ctx.policy.scopes, ctx.scope);
  const profile = lookup(ctx.policy.profiles, ctx.profile);
  if (scope === undefined) return uris.map((uri) => ({ uri, rule: 'scope', detail: `${uri}: the account's scope '${ctx.scope}' is not defined by the current policy` }));
  if (profile === undefined) return uris.map((uri) => ({ uri, rule: 'profile', detail: `${uri}: the order's profile '${ctx.profile}' is no longer offered` }));
  const denials: UriDenial[] = [];
  uris.forEach((uri, i) => {
    const deny = (rule: string, detail: string): void => { denials.push({ uri, rule, detail: `${uri}: ${detail}` }); };
    if (!profile.uriSans) return deny('profile.uriSans', `profile '${profile.name}' does not allow URI SANs`);
    const why = checkSpiffeId(uri);
    if (why !== null) return deny('uri.format', `not a valid SPIFFE ID: ${why}`);
    if (i > 0) return deny('uri.count', `a certificate may carry only one SPIFFE ID; the CSR has ${uris.length} URIs`);
    const denied = scope.uri.deny.find((p) => matchUri(uri, p));
    if (denied !== undefined) return deny(`uri.deny ${denied}`, `denied by scope '${scope.name}' rule uri.deny ${denied} ${DENY_WINS}`);
    if (scope.uri.allow.length === 0) return deny('uri.allow', `scope '${scope.name}' allows no URI SANs`);
    if (!scope.uri.allow.some((p) => matchUri(uri, p))) return deny('uri.allow', `scope '${scope.name}' allows only URIs matching ${listPatterns(scope.uri.allow)}`);
    return undefined;
  });
  return denials;
}

export type KeyDecision = { ok: true; algorithm: KeyAlgorithmName; bits: number } | { ok: false; reason: string };

/** The CSR's public key (DER SubjectPublicKeyInfo) under the profile's key policy. */
export function evaluateKey(spkiDer: Uint8Array, profile: ProfileConfig): KeyDecision {
  const check = checkPublicKey(spkiDer, profile.keys);
  return check.ok ? check : { ok: false, reason: `profile '${profile.name}': ${check.reason}` };
}

const EPSILON = 1e-9;

export interface BucketState {
  tokens: number;
  updatedAt: number;
}

/**
 * A token bucket of capacity `limit.count` refilled continuously at count/windowMs tokens per
 * millisecond; a request takes one token. Continuous refill (rather than fixed windows) means no
 * burst of 2x the limit at a window boundary. `null` state is a full bucket. A clock that went
 * backwards refills nothing. Returns the state to store whether or not the request is allowed.
 */
export function tokenBucket(
  state: BucketState | null,
  limit: RateLimit,
  now: number,
): { allowed: boolean; state: BucketState; retryAfterMs: number } {
  if (!(limit.count > 0) || !(limit.windowMs > 0)) {
    return { allowed: false, state: { tokens: 0, updatedAt: now }, retryAfterMs: Math.max(0, limit.windowMs) };
  }
  const rate = limit.count / limit.windowMs;
  const elapsed = state === null ? 0 : Math.max(0, now - state.updatedAt);
  const tokens = state === null ? limit.count : Math.min(limit.count, state.tokens + elapsed * rate);
  const updatedAt = state === null ? now : Math.max(now, state.updatedAt);
  // The tolerance absorbs floating-point error in elapsed * rate, so that waiting exactly the
  // advertised Retry-After is always enough.
  if (tokens >= 1 - EPSILON) return { allowed: true, state: { tokens: Math.max(0, tokens - 1), updatedAt }, retryAfterMs: 0 };
  return { allowed: false, state: { tokens, updatedAt }, retryAfterMs: Math.max(1, Math.ceil((1 - tokens) / rate - EPSILON)) };
}

/** Key for the duplicate-certificate limit: the order's identifier set, order-insensitive. */
export function nameSetKey(identifiers: readonly Identifier[]): string {
  const keys = new Set(identifiers.map((i) => `${i.type}:${i.type === 'dns' ? i.value.toLowerCase() : i.value}`));
  return [...keys].sort().join(',');
}

/** The directory's `meta.profiles`: name -> description, in policy order. Every profile is
 * listed (the directory is unauthenticated); newOrder enforces which scope may use which. */
export function directoryProfiles(policy: PolicyConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of Object.values(policy.profiles)) {
    out[p.name] = p.description !== '' ? p.description : `${formatValidity(p.validityMs)}, ${p.extKeyUsage.join(' and ')}`;
  }
  return out;
}

function formatValidity(ms: number): string {
  const unit = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (ms % 86_400_000 === 0) return unit(ms / 86_400_000, 'day');
  if (ms % 3_600_000 === 0) return unit(ms / 3_600_000, 'hour');
  return unit(Math.round(ms / 60_000), 'minute');
}
