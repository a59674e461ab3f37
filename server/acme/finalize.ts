import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Identifier } from '../../storage/types.js';
import { CsrError, parseCsr, type ParsedCsr } from '../ca/csr.js';
import { checkPublicKey } from '../ca/goodkey.js';
import type { AcmeContext } from './context.js';
import { spkiSha256 } from './jws.js';
import { payloadObject, postJws, requireOwner } from './jws-route.js';
import { problem } from './problems.js';
import { effectiveOrderStatus } from './resources.js';
import { renderOrder } from './orders.js';

/** The names a CSR asks for must be exactly the order's identifiers (RFC 8555 §7.4). */
export function csrMatchesOrder(csr: ParsedCsr, identifiers: Identifier[]): string | null {
  const want = new Set(identifiers.map((i) => `${i.type}:${i.value}`));
  const have = new Set([...csr.dnsNames.map((n) => `dns:${n}`), ...csr.ipAddresses.map((n) => `ip:${n}`)]);
  if (csr.commonName !== null) {
    const cn = csr.commonName.toLowerCase();
    if (!want.has(`dns:${cn}`) && !want.has(`ip:${cn}`)) return `the CSR's common name "${csr.commonName}" is not one of the order's identifiers`;
    if (!have.has(`dns:${cn}`) && !have.has(`ip:${cn}`)) have.add(want.has(`dns:${cn}`) ? `dns:${cn}` : `ip:${cn}`);
  }
  if (csr.uris.length > 0) return `the CSR asks for URI names (${csr.uris.join(', ')}), which this account's policy does not allow`;
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
    requireOwner(v, order.accountId, 'order');
    const status = effectiveOrderStatus(order, ctx.now());
    if (status !== 'ready') {
      const why = status === 'pending' ? 'not every authorization is valid yet; complete the challenges first'
        : status === 'processing' || status === 'valid' ? 'it has already been finalized' : 'it is invalid';
      throw problem('orderNotReady', `the order is ${status}: ${why}`);
    }
    const p = payloadObject(v);
    if (typeof p.csr !== 'string' || !/^[A-Za-z0-9_-]+$/.test(p.csr)) throw problem('malformed', '"csr" must be the base64url-encoded DER CSR');
    const der = new Uint8Array(Buffer.from(p.csr, 'base64url'));
    let csr: ParsedCsr;
    try {
      csr = await parseCsr(der);
    } catch (e) {
      if (e instanceof CsrError) throw problem('badCSR', e.message);
      throw e;
    }
    const mismatch = csrMatchesOrder(csr, order.identifiers);
    if (mismatch) throw problem('badCSR', mismatch);
    const keyCheck = checkPublicKey(csr.spkiDer);
    if (!keyCheck.ok) throw problem('badPublicKey', `the CSR's public key is refused: ${keyCheck.reason}`);
    if (spkiSha256(v.key) === createHash('sha256').update(csr.spkiDer).digest('hex')) {
      throw problem('badCSR', 'the CSR uses the account key; certificates must have a key of their own');
    }
    const moved = await ctx.store.transitionOrder(order.id, ['ready'], 'processing', { csr: der });
    if (!moved) throw problem('orderNotReady', 'the order was finalized by a concurrent request');
    ctx.issuance.schedule(order.id);
    reply.header('Location', ctx.urls.order(order.id)).header('Retry-After', String(ctx.config.acme.retryAfterSeconds));
    return renderOrder(ctx, order.id);
  });
}
