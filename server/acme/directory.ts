import type { FastifyInstance } from 'fastify';
import { directoryProfiles } from '../policy/evaluate.js';
import type { AcmeContext } from './context.js';

export function directoryRoutes(app: FastifyInstance, ctx: AcmeContext): void {
  app.get('/directory', async () => {
    const { acme } = ctx.config;
    const meta: Record<string, unknown> = { externalAccountRequired: acme.externalAccountRequired, profiles: directoryProfiles(ctx.policy.current()) };
    if (acme.termsOfService) meta.termsOfService = acme.termsOfService;
    if (acme.website) meta.website = acme.website;
    return {
      newNonce: ctx.urls.newNonce(),
      newAccount: ctx.urls.newAccount(),
      newOrder: ctx.urls.newOrder(),
      revokeCert: ctx.urls.revokeCert(),
      keyChange: ctx.urls.keyChange(),
      renewalInfo: ctx.urls.renewalInfo(),
      meta,
    };
  });

  // RFC 8555 §7.2: HEAD answers 200, GET 204; both carry a nonce (added by the plugin's hook).
  app.head('/acme/new-nonce', async (_req, reply) => {
    reply.header('Cache-Control', 'no-store').header('Content-Length', '0').code(200);
    return reply.send();
  });
  app.get('/acme/new-nonce', async (_req, reply) => {
    reply.header('Cache-Control', 'no-store').code(204);
    return reply.send();
  });
}
