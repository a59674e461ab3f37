import type { AccountRecord, Identifier, ProblemRecord } from '../../storage/types.js';
import { policyDeniedEntry, type DenialFacts } from '../log/entry.js';
import { nameSetKey, tokenBucket } from '../policy/evaluate.js';
import { lookup, rateLimitsFor, type RateLimit } from '../policy/types.js';
import type { AcmeContext } from './context.js';
import { AcmeProblem, problem, problemRecord } from './problems.js';

type Refusal = { problem: 'invalidProfile' | 'rejectedIdentifier' | 'unauthorized'; detail: string; denials: Array<{ identifier: Identifier; rule: string; detail: string }> };

/** One denial → its own problem; several → compound with one subproblem each (RFC 8555 §6.7.1). */
export function refusalProblem(r: Refusal): AcmeProblem {
  if (r.denials.length === 0) return problem(r.problem, r.detail);
  if (r.denials.length === 1) {
    const p = problem('rejectedIdentifier', r.denials[0].detail);
    p.identifier = r.denials[0].identifier;
    return p;
  }
  const p = problem('compound', r.detail);
  p.subproblems = r.denials.map((d): ProblemRecord => ({ ...problemRecord('rejectedIdentifier', d.detail, d.identifier), status: 400 }));
  return p;
}

/** The scope an account orders in: its EAB scope, else the policy default (null: none). */
export function accountScope(ctx: AcmeContext, account: AccountRecord): string | null {
  if (account.eabKeyId !== null) return account.scope;
  return ctx.policy.current().defaultScope;
}

/** Every refusal is an audit event in the issuance log, and a metric by rule. */
export async function recordDenial(ctx: AcmeContext, facts: Omit<DenialFacts, 'policyVersion'>): Promise<void> {
  const rules = facts.denials.length > 0 ? facts.denials.map((d) => d.rule) : [facts.problem];
  for (const rule of rules) ctx.metrics.policyDenials.inc({ rule: rule.split(' ')[0] });
  await ctx.store.appendLogEvent(policyDeniedEntry({ ...facts, policyVersion: ctx.policy.current().version }, ctx.now()));
  ctx.logAppended();
}

/**
 * Token buckets per account, per scope and per exact name set, kept in storage so they hold across
 * restarts and replicas. A renewal that replaces a certificate is exempt from the duplicate limit.
 */
export async function enforceRateLimits(ctx: AcmeContext, account: AccountRecord, scopeName: string, identifiers: Identifier[], isRenewal: boolean): Promise<void> {
  const policy = ctx.policy.current();
  const scope = lookup(policy.scopes, scopeName);
  if (!scope) return;
  const limits = rateLimitsFor(scope, policy);
  const checks: Array<{ name: string; key: string; limit: RateLimit }> = [
    { name: 'ordersPerAccount', key: `account:${account.id}`, limit: limits.ordersPerAccount },
    { name: 'ordersPerScope', key: `scope:${scopeName}`, limit: limits.ordersPerScope },
  ];
  if (!isRenewal) checks.push({ name: 'duplicateCertificates', key: `dup:${nameSetKey(identifiers)}`, limit: limits.duplicateCertificates });
  const decisions = await ctx.store.consumeRateLimits(checks.map((c) => ({ key: c.key, decide: (state) => tokenBucket(state, c.limit, ctx.now()) })));
  const refusedAt = decisions.findIndex((d) => !d.allowed);
  if (refusedAt >= 0) {
    const c = checks[refusedAt];
    const d = decisions[refusedAt];
    ctx.metrics.rateLimitHits.inc({ limit: c.name });
    const seconds = Math.max(1, Math.ceil(d.retryAfterMs / 1000));
    const what = c.name === 'ordersPerAccount' ? 'new orders for this account'
      : c.name === 'ordersPerScope' ? `new orders in scope '${scopeName}'` : 'certificates for exactly this set of names';
    const p = problem('rateLimited', `rate limit ${c.name} reached: at most ${c.limit.count} ${what} per ${Math.round(c.limit.windowMs / 1000)}s; retry after ${seconds}s`);
    p.headers['Retry-After'] = String(seconds);
    await recordDenial(ctx, { accountId: account.id, scope: scopeName, profile: null, stage: 'rateLimit', problem: 'rateLimited', detail: p.detail, identifiers, denials: [] });
    throw p;
  }
}
