import type { FastifyError, FastifyInstance } from 'fastify';
import { accountRoutes } from './accounts.js';
import { authorizationRoutes } from './authorizations.js';
import { certificateRoutes } from './certificates.js';
import type { AcmeContext } from './context.js';
import { directoryRoutes } from './directory.js';
import { finalizeRoutes } from './finalize.js';
import { orderRoutes } from './orders.js';
import { renewalInfoRoutes } from './renewal-info.js';
import { AcmeProblem, problem } from './problems.js';

/** Maps any error to an RFC 7807 problem document; internal details stay in the log. */
export function toProblem(err: unknown): AcmeProblem {
  if (err instanceof AcmeProblem) return err;
  const fe = err as Partial<FastifyError>;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return problem('malformed', 'the request body is too large', 413);
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return problem('malformed', 'Content-Type must be application/jose+json', 415);
  if (fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || fe.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') return problem('malformed', 'the request body is empty or truncated');
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return problem('malformed', fe.message ?? 'bad request', fe.statusCode);
  return problem('serverInternal', 'the server hit an internal error; retry later (the operator can find it in the log by request id)', 500);
}

export async function acmePlugin(app: FastifyInstance, ctx: AcmeContext): Promise<void> {
  // JWS bodies are parsed by the JWS layer; any content type is read as text so that a wrong one
  // gets a proper problem document rather than a framework error.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: ctx.config.acme.maxBodyBytes }, (_req, body, done) => done(null, body));

  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('Replay-Nonce', await ctx.nonces.issue());
    reply.header('Link', [reply.getHeader('Link'), `<${ctx.urls.directory()}>;rel="index"`].filter(Boolean).join(', '));
    return payload;
  });

  app.setErrorHandler(async (err, req, reply) => {
    const p = toProblem(err);
    if (p.status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ problem: p.problemType, detail: p.detail }, 'request refused');
    for (const [k, v] of Object.entries(p.headers)) reply.header(k, v);
    reply.code(p.status).header('Content-Type', 'application/problem+json').header('Cache-Control', 'no-store');
    return JSON.stringify(p.toJSON());
  });

  app.setNotFoundHandler(async (req, reply) => {
    reply.code(404).header('Content-Type', 'application/problem+json');
    return JSON.stringify(problem('malformed', `no ACME resource at ${req.method} ${req.url}`, 404).toJSON());
  });

  directoryRoutes(app, ctx);
  accountRoutes(app, ctx);
  orderRoutes(app, ctx);
  authorizationRoutes(app, ctx);
  finalizeRoutes(app, ctx);
  certificateRoutes(app, ctx);
  renewalInfoRoutes(app, ctx);
}
