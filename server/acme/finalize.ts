import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Identifier } from '../../storage/types.js';
import { CsrError, parseCsr, type ParsedCsr } from '../ca/csr.js';
import { evaluateCsrUris, evaluateKey, evaluateOrder } from '../policy/evaluate.js';
import { recordDenial, refusalProblem } from './order-policy.js';
import { waitAtMost, type AcmeContext } from './context.js';
import { spkiSha256 } from './jws.js';
import { payloadObject, postJws, requireOwner } from './jws-route.js';
import { problem } from './problems.js';
import { effectiveOrderStatus } from './resources.js';
import { renderOrder } from './orders.js';

/**
 * The DNS and IP names a CSR asks for must be exactly the order's identifiers (RFC 8555 §7.4).
 * URI SANs are not ACME identifiers; the policy decides them separately.
 */
export function csrMatchesOrder(csr: ParsedCsr, identifiers: Identifier[]): string | null {
  const want = new Set(identifiers.map((i) => `${i.type}:${i.value}`));
  const have = new Set([...csr.dnsNames.map((n) => `dns:${n}`), ...csr.ipAddresses.map((n) => `ip:${n}`)]);
  if (csr.commonName !== null) {
    const cn = csr.commonName.toLowerCase();
    if (!want.has(`dns:${cn}`) && !want.has(`ip:${cn}`)) return `the CSR's common name "${csr.commonName}" is not one of the order's identifiers`;
    if (!have.has(`dns:${cn}`) && !have.has(`ip:${cn}`)) have.add(want.has(`dns:${cn}`) ? `dns:${cn}` : `ip:${cn}`);
  }
  const missing = [...want].filter((n) => !have.has(n)).map((n) => n.slice(n.indexOf(':') + 1));
  const extra = [...have].filter((n) => !want.has(n)).map((n) => n.slice(n.indexOf(':') + 1));
  if (missing.length === 0 && extra.length === 0) return null;
  const parts: string[] = [];
  if (extra.length) parts.push(`names not in the order: ${extra.join(', ')}`);
  if (missing.length) parts.push(`order identifiers missing from the CSR: ${missing.join(', ')}`);
  return `the CSR does not match the order (${parts.join('; ')})`;
}

export function finalizeRoutes(app: FastifyInstance, ctx: AcmeContext): void {
  postJws(app, ctx, '/acme/order/:id/finalize', 'kid', async (v, req, reply) => {
    const { id } = req.params as { id: string };
    const order = await ctx.store.getOrder(id);
    if (!order) throw problem('malformed', `no order ${id}`, 404);
    const account = requireOwner(v, order.accountId, 'order');
    const status = effectiveOrderStatus(order, ctx.now());
    if (status !== 'ready') {
      const why = status === 'pending' ? 'not every authorization is valid yet; complete the challenges first'
        : status === 'processing' || status === 'valid' ? 'it has already been finalized' : 'it is invalid';
      throw problem('orderNotReady', `the order is ${status}: ${why}`);
    }
    const p = payloadObject(v);
    if (typeof p.csr !== 'string' || !/^[A-Za-z0-9_-]+$/.test(p.csr)) throw problem('malformed', '"csr" must be the base64url-encoded DER CSR');
    const der = new Uint8Array(Buffer.from(p.csr, 'base64url'));
    // Every refusal from here on is an audit event, like a refusal at newOrder.
    const denied = async (problemType: 'badCSR' | 'badPublicKey' | 'rejectedIdentifier', detail: string, rules: Array<{ identifier: string; rule: string; detail: string }>): Promise<never> => {
      await recordDenial(ctx, { accountId: account.id, scope: order.scope, profile: order.profile, stage: 'finalize', problem: problemType, detail, identifiers: order.identifiers, denials: rules });
      throw problem(problemType, detail);
    };
    let csr: ParsedCsr;
    try {
      csr = await parseCsr(der);
    } catch (e) {
      if (!(e instanceof CsrError)) throw e;
      return denied('badCSR', e.message, [{ identifier: '(csr)', rule: 'csr.signature', detail: e.message }]);
    }
    const mismatch = csrMatchesOrder(csr, order.identifiers);
    if (mismatch) await denied('badCSR', mismatch, [{ identifier: '(csr)', rule: 'csr.identifiers', detail: mismatch }]);
    // The policy may have been reloaded since newOrder: decide again, so a tightened rule holds.
    const policy = ctx.policy.current();
    const decision = evaluateOrder({ identifiers: order.identifiers, profile: order.profile }, { scope: order.scope, policy });
    if (!decision.allow) {
      await recordDenial(ctx, { accountId: account.id, scope: order.scope, profile: order.profile, stage: 'finalize', problem: decision.problem, detail: decision.detail, identifiers: order.identifiers, denials: decision.denials.map((d) => ({ identifier: d.identifier.value, rule: d.rule, detail: d.detail })) });
      throw refusalProblem(decision);
    }
    const keyCheck = evaluateKey(csr.spkiDer, decision.profile);
    if (!keyCheck.ok) await denied('badPublicKey', `the CSR's public key is refused: ${keyCheck.reason}`, [{ identifier: '(csr key)', rule: `profile.keys`, detail: keyCheck.reason }]);
    if (spkiSha256(v.key) === createHash('sha256').update(csr.spkiDer).digest('hex')) {
      await denied('badCSR', 'the CSR uses the account key; certificates must have a key of their own', [{ identifier: '(csr key)', rule: 'csr.key != account.key', detail: 'the CSR reuses the account key' }]);
    }
    if (await ctx.store.isKeyBlocked(createHash('sha256').update(csr.spkiDer).digest('hex'))) {
      await denied('badPublicKey', 'the CSR\'s key was revoked for keyCompromise; generate a new key', [{ identifier: '(csr key)', rule: 'blockedKeys', detail: 'key revoked for keyCompromise' }]);
    }
    const uriDenials = evaluateCsrUris(csr.uris, { scope: order.scope, profile: order.profile, policy });
    if (uriDenials.length > 0) {
      await denied('badCSR', `the CSR's URI names are refused: ${uriDenials.map((d) => d.detail).join('; ')}`, uriDenials.map((d) => ({ identifier: d.uri, rule: d.rule, detail: d.detail })));
    }
    const moved = await ctx.store.transitionOrder(order.id, ['ready'], 'processing', { csr: der });
    if (!moved) throw problem('orderNotReady', 'the order was finalized by a concurrent request');
    // Signing takes milliseconds: waiting briefly lets most clients see a valid order at once
    // instead of sleeping a whole Retry-After second; a slow signature still answers processing.
    await waitAtMost(ctx.issuance.schedule(order.id, csr), ctx.config.acme.finalizeWaitMs);
    reply.header('Location', ctx.urls.order(order.id));
    const body = await renderOrder(ctx, order.id);
    if (body.status === 'processing') reply.header('Retry-After', String(ctx.config.acme.retryAfterSeconds));
    return body;
  });
}
