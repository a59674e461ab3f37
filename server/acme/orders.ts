import type { FastifyInstance } from 'fastify';
import type { AuthzRecord, CertificateRecord, ChallengeRecord, Identifier, ProblemRecord } from '../../storage/types.js';
import { certificateForCertId } from './renewal-info.js';
import { challengeTypesFor, evaluateOrder } from '../policy/evaluate.js';
import { accountScope, enforceRateLimits, recordDenial, refusalProblem } from './order-policy.js';
import type { AcmeContext } from './context.js';
import { newId, newToken } from './ids.js';
import { checkIdentifier, MAX_IDENTIFIERS } from './identifiers.js';
import { payloadObject, postJws, requireOwner, signer } from './jws-route.js';
import { AcmeProblem, problem } from './problems.js';
import { effectiveOrderStatus, orderJson } from './resources.js';

/** One problem for one failure; a compound problem with subproblems for several (RFC 8555 §6.7.1). */
export function combineProblems(problems: ProblemRecord[]): AcmeProblem {
  if (problems.length === 1) {
    const only = problems[0];
    const p = new AcmeProblem(only.type.replace('urn:ietf:params:acme:error:', '') as AcmeProblem['problemType'], only.detail);
    if (only.identifier) p.identifier = only.identifier;
    return p;
  }
  const p = problem('compound', `${problems.length} identifiers cannot be issued: ${problems.map((x) => x.detail).join('; ')}`);
  p.subproblems = problems;
  return p;
}

export function parseIdentifiers(raw: unknown): Identifier[] {
  if (!Array.isArray(raw) || raw.length === 0) throw problem('malformed', '"identifiers" must be a non-empty array');
  if (raw.length > MAX_IDENTIFIERS) throw problem('rejectedIdentifier', `an order may hold at most ${MAX_IDENTIFIERS} identifiers; it has ${raw.length}`);
  const ok: Identifier[] = [];
  const failures: ProblemRecord[] = [];
  const seen = new Set<string>();
  for (const r of raw) {
    const c = checkIdentifier(r);
    if (!c.ok) { failures.push(c.problem); continue; }
    const key = `${c.identifier.type}:${c.identifier.value}`;
    if (!seen.has(key)) { seen.add(key); ok.push(c.identifier); }
  }
  if (failures.length > 0) throw combineProblems(failures);
  return ok;
}

/**
 * RFC 9773 §5: "replaces" names a certificate of this account, sharing at least one identifier
 * with the new order, and not already replaced.
 */
async function checkReplaces(ctx: AcmeContext, raw: unknown, accountId: string, identifiers: Identifier[]): Promise<CertificateRecord> {
  if (typeof raw !== 'string') throw problem('malformed', '"replaces" must be the ARI certID of the certificate being renewed');
  const cert = await certificateForCertId(ctx, raw);
  if (cert.accountId !== accountId) throw problem('unauthorized', 'the certificate named by "replaces" belongs to another account');
  const old = new Set(cert.nameSet.split(','));
  if (!identifiers.some((i) => old.has(`${i.type}:${i.value}`))) throw problem('malformed', 'the new order shares no identifier with the certificate it replaces');
  if (cert.replacedByOrder !== null) {
    const other = await ctx.store.getOrder(cert.replacedByOrder);
    if (other && effectiveOrderStatus(other, ctx.now()) !== 'invalid') throw problem('alreadyReplaced', `certificate ${cert.serial} was already replaced by order ${ctx.urls.order(other.id)}`);
  }
  return cert;
}

export async function renderOrder(ctx: AcmeContext, orderId: string): Promise<Record<string, unknown>> {
  const order = await ctx.store.getOrder(orderId);
  if (!order) throw problem('malformed', 'the order does not exist', 404);
  const authzs = await ctx.store.listAuthzByOrder(order.id);
  return orderJson(order, authzs.map((a) => a.id), ctx.urls, ctx.now());
}

export function orderRoutes(app: FastifyInstance, ctx: AcmeContext): void {
  postJws(app, ctx, '/acme/new-order', 'kid', async (v, req, reply) => {
    const account = signer(v);
    const p = payloadObject(v);
    if (p.notBefore !== undefined || p.notAfter !== undefined) {
      throw problem('malformed', 'notBefore and notAfter are not supported: certificate lifetime is set by the CA (omit both fields)');
    }
    const identifiers = parseIdentifiers(p.identifiers);
    if (p.profile !== undefined && typeof p.profile !== 'string') throw problem('malformed', '"profile" must be the name of a profile from the directory\'s meta.profiles');
    const scope = accountScope(ctx, account);
    if (scope === null) throw problem('unauthorized', 'this CA only issues to accounts bound to a scope: register with an External Account Binding key from the CA operator');
    const decision = evaluateOrder({ identifiers, profile: p.profile as string | undefined }, { scope, policy: ctx.policy.current() });
    if (!decision.allow) {
      await recordDenial(ctx, {
        accountId: account.id, scope, profile: (p.profile as string | undefined) ?? null, stage: 'newOrder', problem: decision.problem, detail: decision.detail, identifiers,
        denials: decision.denials.map((d) => ({ identifier: d.identifier.value, rule: d.rule, detail: d.detail })),
      });
      throw refusalProblem(decision);
    }
    const profile = decision.profile;
    const replaced = p.replaces === undefined ? null : await checkReplaces(ctx, p.replaces, account.id, identifiers);
    await enforceRateLimits(ctx, account, scope, identifiers, replaced !== null);
    const now = ctx.now();
    const expires = now + ctx.config.acme.orderLifetimeMs;
    const orderId = newId();
    const authorizations: Array<{ authz: AuthzRecord; challenges: ChallengeRecord[] }> = identifiers.map((identifier) => {
      const wildcard = identifier.type === 'dns' && identifier.value.startsWith('*.');
      const authzId = newId();
      const token = newToken();
      return {
        authz: {
          id: authzId, orderId, accountId: account.id, wildcard, status: 'pending', expires,
          identifier: wildcard ? { type: 'dns', value: identifier.value.slice(2) } : identifier,
        },
        // One token for all of an authorization's challenges, as Boulder does: the key authorization is the same.
        challenges: challengeTypesFor(identifier, wildcard, profile).map((type) => ({
          id: newId(), authzId, type, token, status: 'pending', validatedAt: null, error: null, attempts: 0,
        })),
      };
    });
    const created = await ctx.store.createOrder({
      order: { id: orderId, accountId: account.id, status: 'pending', identifiers, notBefore: null, notAfter: null, expires, createdAt: now, profile: profile.name, scope, replaces: replaced ? (p.replaces as string) : null },
      authorizations,
      ...(replaced ? { replacesCertificateId: replaced.id } : {}),
    });
    if (!created) throw problem('alreadyReplaced', `certificate ${replaced!.serial} is already being replaced by another order; poll that order instead`);
    req.log.info({ accountId: account.id, orderId, scope, profile: profile.name, identifiers: identifiers.map((i) => i.value) }, 'order created');
    reply.header('Location', ctx.urls.order(orderId)).code(201);
    return renderOrder(ctx, orderId);
  });

  postJws(app, ctx, '/acme/order/:id', 'kid', async (v, req, reply) => {
    const { id } = req.params as { id: string };
    const order = await ctx.store.getOrder(id);
    if (!order) throw problem('malformed', `no order ${id}`, 404);
    requireOwner(v, order.accountId, 'order');
    const status = effectiveOrderStatus(order, ctx.now());
    if (status === 'processing' || status === 'pending') reply.header('Retry-After', String(ctx.config.acme.retryAfterSeconds));
    return renderOrder(ctx, id);
  });
}
