import type { FastifyInstance } from 'fastify';
import type { CertificateRecord } from '../../storage/types.js';
import { normalizeSerialHex, serialBytesFromHex } from '../ca/certificate-builder.js';
import { ariRetryAfterSeconds, renewNowWindow, suggestedWindow } from '../ca/renewal-window.js';
import type { AcmeContext } from './context.js';
import { problem } from './problems.js';

// RFC 9773 §4.1: certID = base64url(AKI keyIdentifier) "." base64url(serial DER integer bytes).
const B64URL = /^[A-Za-z0-9_-]+$/;

export interface ParsedCertId { keyId: Buffer; serial: string }

export function parseCertId(certId: string): ParsedCertId {
  const parts = certId.split('.');
  if (parts.length !== 2 || !B64URL.test(parts[0]) || !B64URL.test(parts[1])) {
    throw problem('malformed', `"${certId.slice(0, 80)}" is not an ARI certID (base64url keyIdentifier "." base64url serial, without padding)`);
  }
  const keyId = Buffer.from(parts[0], 'base64url');
  const serialBytes = Buffer.from(parts[1], 'base64url');
  if (keyId.length === 0 || serialBytes.length === 0 || serialBytes.length > 21) throw problem('malformed', 'the certID\'s keyIdentifier or serial is empty or too long');
  if (serialBytes[0] & 0x80) throw problem('malformed', 'the certID\'s serial is negative; encode the DER INTEGER bytes, including a leading 00 where needed');
  return { keyId, serial: normalizeSerialHex(serialBytes.toString('hex')) };
}

export function certIdOf(keyId: Uint8Array, serialHex: string): string {
  return `${Buffer.from(keyId).toString('base64url')}.${Buffer.from(serialBytesFromHex(serialHex)).toString('base64url')}`;
}

/** Finds the certificate a certID names; a mismatching issuer key id means it is not ours. */
export async function certificateForCertId(ctx: AcmeContext, certId: string): Promise<CertificateRecord> {
  const parsed = parseCertId(certId);
  const cert = await ctx.store.getCertificateBySerial(parsed.serial);
  const issuer = cert ? ctx.issuers.byId(cert.issuerId) : undefined;
  if (!cert || !issuer || !Buffer.from(issuer.keyId).equals(parsed.keyId)) {
    throw problem('malformed', `this CA issued no certificate with certID ${certId}`, 404);
  }
  return cert;
}

export function renewalInfoRoutes(app: FastifyInstance, ctx: AcmeContext): void {
  app.get('/acme/renewal-info/:certId', async (req, reply) => {
    const { certId } = req.params as { certId: string };
    const cert = await certificateForCertId(ctx, certId);
    // A revoked certificate must be replaced at once, like one an operator selected (as Boulder does).
    const urgentSince = cert.status === 'revoked' ? cert.revokedAt : cert.renewNowAt;
    const w = urgentSince !== null ? renewNowWindow(urgentSince) : suggestedWindow(cert);
    reply.header('Retry-After', String(ariRetryAfterSeconds(cert)));
    return {
      suggestedWindow: { start: new Date(w.start).toISOString(), end: new Date(w.end).toISOString() },
      ...(cert.renewNowAt !== null && ctx.config.acme.website ? { explanationURL: ctx.config.acme.website } : {}),
    };
  });
}
