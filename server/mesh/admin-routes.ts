/**
 * Operator endpoints for mesh credentials under /admin/v1/mesh: tokens, AppRoles and their
 * secret IDs. They need an operator API token (`acmeca_…`) with the "admin" or "mesh" scope; a
 * "mesh" token can therefore mint mesh credentials for any mesh scope, and nothing else.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { bearer, checkApiToken } from '../admin/api-tokens.js';
import { parseDuration } from '../config.js';
import type { MeshDeps } from './context.js';
import { checkName, checkScopeDefined, createAppRole, createMeshToken, createSecretId, CredentialError, tokenView } from './credentials.js';

// Errors are problem documents (application/problem+json) sent as text: only successes have schemas.
const tokenSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, scope: { type: 'string' }, source: { type: 'string' },
    createdAt: { type: 'integer' }, expiresAt: { type: ['integer', 'null'] }, revokedAt: { type: ['integer', 'null'] },
  },
  required: ['id', 'name', 'scope', 'source', 'createdAt', 'expiresAt', 'revokedAt'],
} as const;
const createdTokenSchema = {
  type: 'object',
  properties: { id: { type: 'string' }, token: { type: 'string' }, name: { type: 'string' }, scope: { type: 'string' }, expiresAt: { type: ['integer', 'null'] } },
  required: ['id', 'token', 'name', 'scope', 'expiresAt'],
} as const;
const appRoleSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' }, roleId: { type: 'string' }, scope: { type: 'string' }, tokenTtlSeconds: { type: 'integer' },
    createdAt: { type: 'integer' }, revokedAt: { type: ['integer', 'null'] },
  },
  required: ['name', 'roleId', 'scope', 'tokenTtlSeconds', 'createdAt', 'revokedAt'],
} as const;
const secretIdSchema = {
  type: 'object',
  properties: { roleName: { type: 'string' }, roleId: { type: 'string' }, secretId: { type: 'string' }, secretIdAccessor: { type: 'string' }, expiresAt: { type: ['integer', 'null'] } },
  required: ['roleName', 'roleId', 'secretId', 'secretIdAccessor', 'expiresAt'],
} as const;

// Defaults that expire: a forgotten credential should not work forever.
export const DEFAULT_TOKEN_TTL = '90d';
export const DEFAULT_SECRET_ID_TTL = '30d';
export const DEFAULT_APPROLE_TOKEN_TTL = '1h';

class AdminMeshError extends Error {
  constructor(readonly status: number, readonly kind: string, message: string) { super(message); }
}

function sendProblem(reply: FastifyReply, status: number, kind: string, detail: string): FastifyReply {
  return reply.code(status).header('Content-Type', 'application/problem+json').send(JSON.stringify({ type: `urn:acme-ca:error:${kind}`, status, detail }));
}

/** A duration for a credential: "never" means no expiry; anything else as in the policy file. */
export function credentialTtl(text: string | undefined, dflt: string, field: string): number | null {
  const t = text ?? dflt;
  if (t === 'never') return null;
  const ms = parseDuration(t);
  if (!ms) throw new CredentialError(`${field} ${JSON.stringify(t)} is not a duration such as 1h, 30d, or "never"`);
  return ms;
}

export function appRoleView(r: { name: string; roleId: string; scope: string; tokenTtlMs: number; createdAt: number; revokedAt: number | null }): Record<string, unknown> {
  return { name: r.name, roleId: r.roleId, scope: r.scope, tokenTtlSeconds: Math.round(r.tokenTtlMs / 1000), createdAt: r.createdAt, revokedAt: r.revokedAt };
}

export function meshAdminRoutes(app: FastifyInstance, deps: MeshDeps): void {
  app.addHook('onRequest', async (req, reply) => {
    const check = await checkApiToken(deps.store, bearer(req.headers.authorization), 'mesh', deps.now());
    if (!check.ok) {
      const missing = check.reason.startsWith('an Authorization');
      return sendProblem(reply.header('WWW-Authenticate', 'Bearer'), check.reason.includes('scope') ? 403 : 401, missing ? 'unauthorized' : 'forbidden', check.reason);
    }
  });
  app.setErrorHandler(async (err, req, reply) => {
    if (err instanceof AdminMeshError) return sendProblem(reply, err.status, err.kind, err.message);
    if (err instanceof CredentialError) return sendProblem(reply, 400, 'malformed', err.message);
    const fe = err as { validation?: unknown; statusCode?: number; message: string };
    if (fe.validation || (fe.statusCode && fe.statusCode < 500)) return sendProblem(reply, fe.statusCode ?? 400, 'malformed', fe.message);
    req.log.error({ err }, 'mesh admin request failed');
    return sendProblem(reply, 500, 'internal', 'internal error; see the server log');
  });

  app.post('/admin/v1/mesh/tokens', {
    schema: {
      body: { type: 'object', properties: { name: { type: 'string', minLength: 1 }, scope: { type: 'string', minLength: 1 }, ttl: { type: 'string' } }, required: ['name', 'scope'], additionalProperties: false },
      response: { 201: createdTokenSchema },
    },
  }, async (req, reply) => {
    const body = req.body as { name: string; scope: string; ttl?: string };
    checkScopeDefined(deps.policy().mesh, body.scope);
    const created = await createMeshToken(deps.meshStore, { name: body.name, scope: body.scope, ttlMs: credentialTtl(body.ttl, DEFAULT_TOKEN_TTL, 'ttl') }, deps.now());
    reply.code(201).header('Cache-Control', 'no-store');
    return created;
  });

  app.get('/admin/v1/mesh/tokens', {
    schema: { response: { 200: { type: 'object', properties: { tokens: { type: 'array', items: tokenSchema } }, required: ['tokens'] } } },
  }, async () => ({ tokens: (await deps.meshStore.listTokens(deps.now())).map(tokenView) }));

  app.delete('/admin/v1/mesh/tokens/:id', { schema: { response: { 200: tokenSchema } } }, async (req) => {
    const { id } = req.params as { id: string };
    if (!(await deps.meshStore.revokeToken(id, deps.now()))) throw new AdminMeshError(404, 'notFound', `no active mesh token ${id}`);
    return tokenView((await deps.meshStore.getToken(id))!);
  });

  app.post('/admin/v1/mesh/approles', {
    schema: {
      body: { type: 'object', properties: { name: { type: 'string', minLength: 1 }, scope: { type: 'string', minLength: 1 }, tokenTtl: { type: 'string' } }, required: ['name', 'scope'], additionalProperties: false },
      response: { 201: appRoleSchema },
    },
  }, async (req, reply) => {
    const body = req.body as { name: string; scope: string; tokenTtl?: string };
    checkName(body.name, 'AppRole name');
    checkScopeDefined(deps.policy().mesh, body.scope);
    const tokenTtlMs = credentialTtl(body.tokenTtl, DEFAULT_APPROLE_TOKEN_TTL, 'tokenTtl');
    if (tokenTtlMs === null) throw new CredentialError('tokenTtl must be a duration: tokens from an AppRole login always expire');
    const role = await createAppRole(deps.meshStore, { name: body.name, scope: body.scope, tokenTtlMs }, deps.now());
    reply.code(201);
    return appRoleView(role);
  });

  app.get('/admin/v1/mesh/approles', {
    schema: { response: { 200: { type: 'object', properties: { approles: { type: 'array', items: appRoleSchema } }, required: ['approles'] } } },
  }, async () => ({ approles: (await deps.meshStore.listAppRoles()).map(appRoleView) }));

  app.delete('/admin/v1/mesh/approles/:name', { schema: { response: { 200: appRoleSchema } } }, async (req) => {
    const { name } = req.params as { name: string };
    if (!(await deps.meshStore.revokeAppRole(name, deps.now()))) throw new AdminMeshError(404, 'notFound', `no active AppRole ${name}`);
    return appRoleView((await deps.meshStore.getAppRole(name))!);
  });

  app.post('/admin/v1/mesh/approles/:name/secret-ids', {
    schema: {
      body: { type: ['object', 'null'], properties: { ttl: { type: 'string' } }, additionalProperties: false },
      response: { 201: secretIdSchema },
    },
  }, async (req, reply) => {
    const { name } = req.params as { name: string };
    const body = (req.body ?? {}) as { ttl?: string };
    const role = await deps.meshStore.getAppRole(name);
    if (!role || role.revokedAt !== null) throw new AdminMeshError(404, 'notFound', `no active AppRole ${name}`);
    const created = await createSecretId(deps.meshStore, name, credentialTtl(body.ttl, DEFAULT_SECRET_ID_TTL, 'ttl'), deps.now());
    reply.code(201).header('Cache-Control', 'no-store');
    return created;
  });

  app.delete('/admin/v1/mesh/approles/:name/secret-ids/:accessor', { schema: { response: { 200: { type: 'object', properties: { revoked: { type: 'boolean' } }, required: ['revoked'] } } } }, async (req) => {
    const { name, accessor } = req.params as { name: string; accessor: string };
    if (!(await deps.meshStore.revokeSecretId(name, accessor, deps.now()))) throw new AdminMeshError(404, 'notFound', `no active secret ID ${accessor} of AppRole ${name}`);
    return { revoked: true };
  });
}
