import { X509Certificate } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { normalizeSerialHex } from '../ca/certificate-builder.js';
import { toPem } from '../ca/pem.js';
import { certificateRevokedEntry, type RevokedBy } from '../log/entry.js';
import type { AcmeContext } from './context.js';
import { spkiSha256, type VerifiedJws } from './jws.js';
import { payloadObject, postJws, requireOwner } from './jws-route.js';
import { problem } from './problems.js';

// RFC 5280 §5.3.1 reason codes a requester may give; 7 is unassigned.
const REASONS = new Set([0, 1, 2, 3, 4, 5, 6, 8, 9, 10]);

export function certificateRoutes(app: FastifyInstance, ctx: AcmeContext): void {
  // The default chain, and alternates (RFC 8555 §7.4.2) when the issuer has cross-signed twins.
  const download = async (v: VerifiedJws, id: string, alternate: number | null, reply: FastifyReply): Promise<string> => {
    const cert = await ctx.store.getCertificate(id);
    if (!cert) throw problem('malformed', `no certificate ${id}`, 404);
    requireOwner(v, cert.accountId, 'certificate');
    const alternates = ctx.issuers.byId(cert.issuerId)?.alternateChains ?? [];
    if (alternate !== null && (alternate < 1 || alternate > alternates.length)) throw problem('malformed', `certificate ${id} has no alternate chain ${alternate}`, 404);
    const links = alternates.map((_, i) => `<${ctx.urls.certificate(id)}/alt/${i + 1}>;rel="alternate"`).filter((_, i) => i + 1 !== alternate);
    if (alternate !== null) links.unshift(`<${ctx.urls.certificate(id)}>;rel="alternate"`);
    if (links.length > 0) reply.header('Link', links.join(', '));
    reply.header('Content-Type', 'application/pem-certificate-chain');
    return toPem('CERTIFICATE', cert.der) + (alternate === null ? cert.chainPem : alternates[alternate - 1]);
  };
  postJws(app, ctx, '/acme/cert/:id', 'kid', async (v, req, reply) => download(v, (req.params as { id: string }).id, null, reply));
  postJws(app, ctx, '/acme/cert/:id/alt/:n', 'kid', async (v, req, reply) => {
    const { id, n } = req.params as { id: string; n: string };
    if (!/^\d{1,3}$/.test(n)) throw problem('malformed', 'alternate chains are numbered from 1', 404);
    return download(v, id, Number(n), reply);
  });

  // Revocation by the account that owns the certificate (kid) or by the certificate's key (jwk).
  postJws(app, ctx, '/acme/revoke-cert', 'either', async (v, req, reply) => {
    const p = payloadObject(v);
    if (typeof p.certificate !== 'string' || !/^[A-Za-z0-9_-]+$/.test(p.certificate)) throw problem('malformed', '"certificate" must be the base64url-encoded DER certificate');
    const der = Buffer.from(p.certificate, 'base64url');
    let x: X509Certificate;
    try { x = new X509Certificate(der); } catch { throw problem('malformed', '"certificate" is not a valid DER certificate'); }
    const serial = normalizeSerialHex(x.serialNumber);
    const cert = await ctx.store.getCertificateBySerial(serial);
    if (!cert || !Buffer.from(cert.der).equals(der)) throw problem('malformed', 'this CA did not issue that certificate', 404);
    const requested = p.reason === undefined ? 0 : p.reason;
    if (typeof requested !== 'number' || !REASONS.has(requested)) throw problem('badRevocationReason', `reason ${JSON.stringify(requested)} is not allowed; use an RFC 5280 code 0-10 other than 7`);
    // Whoever holds the private key proves it left its owner's control: that is keyCompromise, and
    // the key is then refused for future certificates (as Boulder does).
    const reason = v.account ? requested : 1;
    if (v.account) {
      // RFC 8555 §7.6: the owner, or an account that holds authorizations for all of its names.
      const order = v.account.id === cert.accountId ? null : await ctx.store.getOrder(cert.orderId);
      if (order && !(await ctx.store.hasValidAuthorizations(v.account.id, order.identifiers, ctx.now()))) {
        throw problem('unauthorized', 'this certificate belongs to another account, and this account lacks valid authorizations for all of its names');
      }
    } else if (spkiSha256(v.key) !== cert.spkiSha256) {
      throw problem('unauthorized', 'the JWS is signed neither by the certificate\'s key nor by the account that owns it');
    }
    if (cert.status === 'revoked') throw problem('alreadyRevoked', `certificate ${serial} was already revoked`);
    const by: RevokedBy = v.account ? { kind: 'account', id: v.account.id } : { kind: 'certificate-key' };
    const done = await ctx.store.revokeCertificate(cert.id, reason, ctx.now(), certificateRevokedEntry({ serial: cert.serial, der: cert.der, accountId: cert.accountId, reason, by }, ctx.now()));
    if (!done) throw problem('alreadyRevoked', `certificate ${serial} was already revoked`);
    ctx.logAppended();
    ctx.revoked();
    req.log.info({ serial, reason, by: v.account ? `account ${v.account.id}` : 'certificate key' }, 'certificate revoked');
    reply.code(200).header('Content-Length', '0');
    return reply.send();
  });
}
