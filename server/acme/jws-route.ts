import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccountRecord } from '../../storage/types.js';
import type { AcmeContext } from './context.js';
import { verifyRequest, type KeyMode, type VerifiedJws } from './jws.js';
import { problem } from './problems.js';

export type JwsHandler = (v: VerifiedJws, req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

const JOSE = 'application/jose+json';

/** Registers a POST route whose body must be a JWS verified per RFC 8555 §6.2-6.5. */
export function postJws(app: FastifyInstance, ctx: AcmeContext, path: string, mode: KeyMode, handler: JwsHandler): void {
  // RFC 8555 §6.3: resources are read with POST-as-GET; a plain GET is 405.
  app.get(path, async (_req, reply) => {
    reply.header('Allow', 'POST');
    throw problem('malformed', 'this resource is only available through POST (use POST-as-GET: a JWS with an empty payload)', 405);
  });
  app.post(path, async (req, reply) => {
    const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (ct !== JOSE) throw problem('malformed', `Content-Type must be ${JOSE}, got ${JSON.stringify(req.headers['content-type'] ?? '')}`, 415);
    const v = await verifyRequest(ctx, req.body, ctx.urls.request(req.url), mode);
    reply.header('Cache-Control', 'no-store');
    return handler(v, req, reply);
  });
}

/** The account that signed with kid; routes that require kid call this to get a non-null account. */
export function signer(v: VerifiedJws): AccountRecord {
  if (!v.account) throw problem('malformed', 'this request must be signed with "kid"');
  return v.account;
}

export function requireOwner(v: VerifiedJws, ownerAccountId: string, what: string): AccountRecord {
  const a = signer(v);
  if (a.id !== ownerAccountId) throw problem('unauthorized', `this ${what} belongs to another account`);
  return a;
}

export function payloadObject(v: VerifiedJws): Record<string, unknown> {
  if (v.payload === null || typeof v.payload !== 'object' || Array.isArray(v.payload)) {
    throw problem('malformed', 'the JWS payload must be a JSON object');
  }
  return v.payload as Record<string, unknown>;
}
