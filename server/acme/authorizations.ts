import type { FastifyInstance } from 'fastify';
import { waitAtMost, type AcmeContext } from './context.js';
import { payloadObject, postJws, requireOwner } from './jws-route.js';
import { problem } from './problems.js';
import { authzJson, challengeJson, effectiveAuthzStatus } from './resources.js';

export function authorizationRoutes(app: FastifyInstance, ctx: AcmeContext): void {
  postJws(app, ctx, '/acme/authz/:id', 'kid', async (v, req, reply) => {
    const { id } = req.params as { id: string };
    let authz = await ctx.store.getAuthz(id);
    if (!authz) throw problem('malformed', `no authorization ${id}`, 404);
    requireOwner(v, authz.accountId, 'authorization');
    if (v.payload !== null) {
      const p = payloadObject(v);
      if (p.status !== 'deactivated') throw problem('malformed', 'the only status a client may set on an authorization is "deactivated"');
      const ok = await ctx.store.updateAuthzStatus(id, ['pending', 'valid'], 'deactivated');
      if (!ok) throw problem('malformed', `only pending or valid authorizations can be deactivated; this one is ${authz.status}`, 403);
      authz = (await ctx.store.getAuthz(id))!;
    }
    const challenges = await ctx.store.listChallengesByAuthz(id);
    if (effectiveAuthzStatus(authz, ctx.now()) === 'pending') reply.header('Retry-After', String(ctx.config.acme.retryAfterSeconds));
    return authzJson(authz, challenges, ctx.urls, ctx.now());
  });

  postJws(app, ctx, '/acme/chall/:id', 'kid', async (v, req, reply) => {
    const { id } = req.params as { id: string };
    const challenge = await ctx.store.getChallenge(id);
    if (!challenge) throw problem('malformed', `no challenge ${id}`, 404);
    const authz = (await ctx.store.getAuthz(challenge.authzId))!;
    requireOwner(v, authz.accountId, 'challenge');
    reply.header('Link', `<${ctx.urls.authz(authz.id)}>;rel="up"`);
    // POST-as-GET only reads; a POST of {} asks the CA to validate (RFC 8555 §7.5.1).
    if (v.payload === null || challenge.status !== 'pending') return challengeJson(challenge, ctx.urls);
    payloadObject(v);
    const authzStatus = effectiveAuthzStatus(authz, ctx.now());
    if (authzStatus !== 'pending') throw problem('malformed', `the authorization is ${authzStatus}; its challenges can no longer be answered`, 403);
    const siblings = await ctx.store.listChallengesByAuthz(authz.id);
    const busy = siblings.find((c) => c.id !== id && c.status === 'processing');
    if (busy) throw problem('malformed', `challenge ${busy.type} of this authorization is already being validated; wait for its result`, 409);
    if (await ctx.store.transitionChallenge(id, ['pending'], 'processing')) {
      // A local validation usually completes within milliseconds; a short wait spares a poll.
      await waitAtMost(ctx.validations.schedule(id), ctx.config.acme.validationWaitMs);
    }
    const after = (await ctx.store.getChallenge(id))!;
    if (after.status === 'processing') reply.header('Retry-After', String(ctx.config.acme.retryAfterSeconds));
    return challengeJson(after, ctx.urls);
  });
}
