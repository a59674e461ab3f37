import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { CertificateSelector, Identifier, Storage } from '../../storage/types.js';
import { normalizeSerialHex } from '../ca/certificate-builder.js';
import { renewNow, revokeSelection, selectorIsEmpty } from './operations.js';
import { checkIdentifier } from '../acme/identifiers.js';
import { parseDuration } from '../config.js';
import { evaluateCsrUris, evaluateOrder } from '../policy/evaluate.js';
import type { PolicyStore, ReloadResult } from '../policy/policy-store.js';
import { lookup } from '../policy/types.js';
import { bearer, checkApiToken } from './api-tokens.js';
import { createEabKey, eabKeyView } from './eab-keys.js';
import type { SecretBox } from './key-encryption.js';

export interface AdminDeps {
  store: Storage;
  secrets: SecretBox;
  policy: PolicyStore;
  now: () => number;
  reloadPolicy: () => ReloadResult | null;
  /** Creates a new intermediate (generated CA) and switches issuance to it; returns its id. */
  rotateIntermediate: () => Promise<string>;
  /** SANs of client certificates (issued by this CA, not revoked) accepted instead of a token. */
  clientCertNames: string[];
  issuerIds: () => string[];
  activeIssuerId: () => string;
  /** Revocations and other log appends happened: CRLs and checkpoints should follow. */
  changed: (what: { revoked?: boolean }) => void;
}

const selectorSchema = {
  type: 'object',
  properties: {
    serials: { type: 'array', items: { type: 'string', pattern: '^[0-9a-fA-F]{1,42}$' } }, account: { type: 'string' }, scope: { type: 'string' },
    identifierSuffix: { type: 'string' }, issuer: { type: 'string', pattern: '^[0-9a-f]{16,64}$' }, issuedBefore: { type: 'string', format: 'date-time' },
  },
  additionalProperties: false,
} as const;

interface SelectorBody { serials?: string[]; account?: string; scope?: string; identifierSuffix?: string; issuer?: string; issuedBefore?: string }

function toSelector(b: SelectorBody, knownIssuers: string[]): CertificateSelector {
  let issuerId: string | undefined;
  if (b.issuer) {
    issuerId = knownIssuers.find((id) => id.startsWith(b.issuer!));
    if (!issuerId) throw new AdminError(400, 'malformed', `no issuer ${b.issuer}; issuers: ${knownIssuers.map((i) => i.slice(0, 16)).join(', ')}`);
  }
  const sel: CertificateSelector = {
    ...(b.serials ? { serials: b.serials.map((x) => normalizeSerialHex(x)) } : {}),
    ...(b.account ? { accountId: b.account } : {}), ...(b.scope ? { scope: b.scope } : {}),
    ...(b.identifierSuffix ? { identifierSuffix: b.identifierSuffix } : {}), ...(issuerId ? { issuerId } : {}),
    ...(b.issuedBefore ? { issuedBefore: Date.parse(b.issuedBefore) } : {}),
  };
  if (selectorIsEmpty(sel)) throw new AdminError(400, 'malformed', 'give at least one selector (serials, account, scope, identifierSuffix, issuer, issuedBefore)');
  return sel;
}

class AdminError extends Error {
  constructor(readonly status: number, readonly kind: string, message: string) { super(message); }
}

const eabKeySchema = {
  type: 'object',
  properties: {
    keyId: { type: 'string' }, scope: { type: 'string' }, description: { type: 'string' }, status: { type: 'string', enum: ['unused', 'used', 'revoked', 'expired'] },
    createdAt: { type: 'integer' }, expiresAt: { type: ['integer', 'null'] }, usedAt: { type: ['integer', 'null'] }, accountId: { type: ['string', 'null'] }, fingerprint: { type: 'string' },
  },
  required: ['keyId', 'scope', 'status', 'createdAt', 'fingerprint'],
} as const;
const createdEabSchema = {
  type: 'object',
  properties: { keyId: { type: 'string' }, hmacKey: { type: 'string' }, scope: { type: 'string' }, expiresAt: { type: ['integer', 'null'] } },
  required: ['keyId', 'hmacKey', 'scope', 'expiresAt'],
} as const;
const decisionSchema = {
  type: 'object',
  properties: {
    allowed: { type: 'boolean' }, scope: { type: 'string' }, profile: { type: ['string', 'null'] }, problem: { type: ['string', 'null'] }, detail: { type: 'string' },
    denials: { type: 'array', items: { type: 'object', properties: { identifier: { type: 'string' }, rule: { type: 'string' }, detail: { type: 'string' } }, required: ['identifier', 'rule', 'detail'] } },
    policyVersion: { type: 'string' },
  },
  required: ['allowed', 'scope', 'profile', 'problem', 'detail', 'denials', 'policyVersion'],
} as const;
const reloadSchema = { type: 'object', properties: { ok: { type: 'boolean' }, version: { type: 'string' }, changed: { type: 'boolean' }, error: { type: 'string' } }, required: ['ok'] } as const;

export interface PolicyCheckInput { identifiers: Identifier[]; uris?: string[]; profile?: string; scope: string }
export interface PolicyCheckResult {
  allowed: boolean; scope: string; profile: string | null; problem: string | null; detail: string;
  denials: Array<{ identifier: string; rule: string; detail: string }>; policyVersion: string;
}

/** "Would this be allowed, and why not": the newOrder and finalize decisions without creating anything. */
export function checkPolicy(policy: PolicyStore, input: PolicyCheckInput): PolicyCheckResult {
  const p = policy.current();
  const d = evaluateOrder({ identifiers: input.identifiers, profile: input.profile }, { scope: input.scope, policy: p });
  if (!d.allow) {
    return { allowed: false, scope: input.scope, profile: input.profile ?? null, problem: d.problem, detail: d.detail, denials: d.denials.map((x) => ({ identifier: x.identifier.value, rule: x.rule, detail: x.detail })), policyVersion: p.version };
  }
  const uriDenials = evaluateCsrUris(input.uris ?? [], { scope: input.scope, profile: d.profile.name, policy: p });
  if (uriDenials.length > 0) {
    return { allowed: false, scope: input.scope, profile: d.profile.name, problem: 'badCSR', detail: uriDenials.map((x) => x.detail).join('; '), denials: uriDenials.map((x) => ({ identifier: x.uri, rule: x.rule, detail: x.detail })), policyVersion: p.version };
  }
  return { allowed: true, scope: input.scope, profile: d.profile.name, problem: null, detail: d.reasons.join('; '), denials: [], policyVersion: p.version };
}

/**
 * mTLS for operators: the TLS layer verified the chain to this CA; here the certificate must name
 * an allowed identity and must not be revoked. `reason` is set when a certificate was presented
 * but is not acceptable.
 */
async function adminClientCertificate(socket: unknown, deps: AdminDeps): Promise<{ ok: boolean; reason?: string }> {
  const tls = socket as TLSSocket;
  if (typeof tls.getPeerX509Certificate !== 'function') return { ok: false };
  const peer = tls.getPeerX509Certificate();
  if (!peer) return { ok: false };
  if (!tls.authorized) return { ok: false, reason: `the client certificate is not issued by this CA (${String(tls.authorizationError)})` };
  const names = (peer.subjectAltName ?? '').split(', ').map((n) => n.replace(/^(DNS|IP Address|URI):/, ''));
  if (!names.some((n) => deps.clientCertNames.includes(n))) return { ok: false, reason: `the client certificate (${names.join(', ')}) is not one of adminClientCertNames` };
  const stored = await deps.store.getCertificateBySerial(normalizeSerialHex(peer.serialNumber));
  if (stored?.status === 'revoked') return { ok: false, reason: 'the client certificate was revoked' };
  return { ok: true };
}

function sendProblem(reply: FastifyReply, status: number, kind: string, detail: string): FastifyReply {
  return reply.code(status).header('Content-Type', 'application/problem+json').send(JSON.stringify({ type: `urn:acme-ca:error:${kind}`, status, detail }));
}

/** Operator endpoints under /admin/v1, each requiring a bearer token with the "admin" scope. */
export function adminRoutes(app: FastifyInstance, deps: AdminDeps): void {
  app.addHook('onRequest', async (req, reply) => {
    const presented = bearer(req.headers.authorization);
    if (!presented && deps.clientCertNames.length > 0) {
      const cert = await adminClientCertificate(req.raw.socket, deps);
      if (cert.ok) return;
      if (cert.reason) return sendProblem(reply, 403, 'forbidden', cert.reason);
    }
    const check = await checkApiToken(deps.store, presented, 'admin', deps.now());
    if (!check.ok) {
      const missing = check.reason.startsWith('an Authorization');
      return sendProblem(reply.header('WWW-Authenticate', 'Bearer'), check.reason.includes('scope') ? 403 : 401, missing ? 'unauthorized' : 'forbidden', check.reason);
    }
  });
  app.setErrorHandler(async (err, _req, reply) => {
    if (err instanceof AdminError) return sendProblem(reply, err.status, err.kind, err.message);
    const fe = err as { validation?: unknown; statusCode?: number; message: string };
    if (fe.validation || (fe.statusCode && fe.statusCode < 500)) return sendProblem(reply, fe.statusCode ?? 400, 'malformed', fe.message);
    reply.log.error({ err }, 'admin request failed');
    return sendProblem(reply, 500, 'internal', 'internal error; see the server log');
  });

  app.post('/admin/v1/eab-keys', {
    schema: {
      body: { type: 'object', properties: { scope: { type: 'string', minLength: 1 }, description: { type: 'string' }, ttl: { type: 'string' } }, required: ['scope'], additionalProperties: false },
      response: { 201: createdEabSchema },
    },
  }, async (req, reply) => {
    const body = req.body as { scope: string; description?: string; ttl?: string };
    if (!lookup(deps.policy.current().scopes, body.scope)) throw new AdminError(400, 'malformed', `scope '${body.scope}' is not defined in the policy; defined: ${Object.keys(deps.policy.current().scopes).join(', ')}`);
    const ttlMs = body.ttl === undefined ? null : parseDuration(body.ttl);
    if (body.ttl !== undefined && !ttlMs) throw new AdminError(400, 'malformed', `ttl ${JSON.stringify(body.ttl)} is not a duration such as 24h or 7d`);
    const created = await createEabKey(deps.store, deps.secrets, { scope: body.scope, description: body.description, ttlMs }, deps.now());
    reply.code(201).header('Cache-Control', 'no-store');
    return created;
  });

  app.get('/admin/v1/eab-keys', {
    schema: { response: { 200: { type: 'object', properties: { keys: { type: 'array', items: eabKeySchema } }, required: ['keys'] } } },
  }, async () => ({ keys: (await deps.store.listEabKeys()).map((k) => eabKeyView(k, deps.now())) }));

  app.delete('/admin/v1/eab-keys/:keyId', {
    schema: { response: { 200: eabKeySchema } },
  }, async (req) => {
    const { keyId } = req.params as { keyId: string };
    const key = await deps.store.getEabKey(keyId);
    if (!key) throw new AdminError(404, 'notFound', `no EAB key ${keyId}`);
    if (!(await deps.store.revokeEabKey(keyId, deps.now()))) throw new AdminError(409, 'conflict', `EAB key ${keyId} is ${eabKeyView(key, deps.now()).status}; only unused keys can be revoked`);
    return eabKeyView((await deps.store.getEabKey(keyId))!, deps.now());
  });

  app.post('/admin/v1/policy/check', {
    schema: {
      body: {
        type: 'object',
        properties: {
          identifiers: { type: 'array', items: { type: 'object', properties: { type: { type: 'string' }, value: { type: 'string' } }, required: ['type', 'value'] }, minItems: 1 },
          uris: { type: 'array', items: { type: 'string' } }, profile: { type: 'string' }, scope: { type: 'string' }, accountId: { type: 'string' },
        },
        required: ['identifiers'], additionalProperties: false,
      },
      response: { 200: decisionSchema },
    },
  }, async (req) => {
    const body = req.body as { identifiers: unknown[]; uris?: string[]; profile?: string; scope?: string; accountId?: string };
    const identifiers: Identifier[] = body.identifiers.map((raw) => {
      const c = checkIdentifier(raw);
      if (!c.ok) throw new AdminError(400, 'malformed', c.problem.detail);
      return c.identifier;
    });
    let scope = body.scope ?? null;
    if (body.accountId) {
      const account = await deps.store.getAccount(body.accountId);
      if (!account) throw new AdminError(400, 'malformed', `no account ${body.accountId}`);
      scope = account.eabKeyId ? account.scope : deps.policy.current().defaultScope;
    }
    scope ??= deps.policy.current().defaultScope;
    if (!scope) throw new AdminError(400, 'malformed', 'give "scope" or "accountId": the policy has no default scope');
    return checkPolicy(deps.policy, { identifiers, uris: body.uris, profile: body.profile, scope });
  });

  app.post('/admin/v1/certificates/renew-now', {
    schema: {
      body: { type: 'object', properties: { selector: selectorSchema, reason: { type: 'string' } }, required: ['selector'], additionalProperties: false },
      response: { 200: { type: 'object', properties: { selected: { type: 'integer' }, serials: { type: 'array', items: { type: 'string' } }, logIndex: { type: 'integer' } }, required: ['selected', 'serials', 'logIndex'] } },
    },
  }, async (req) => {
    const body = req.body as { selector: SelectorBody; reason?: string };
    const r = await renewNow(deps.store, toSelector(body.selector, deps.issuerIds()), body.reason ?? 'operator request', 'admin-api', deps.now());
    deps.changed({});
    return r;
  });

  app.post('/admin/v1/certificates/revoke', {
    schema: {
      body: { type: 'object', properties: { selector: selectorSchema, reason: { type: 'integer', enum: [0, 1, 2, 3, 4, 5, 6, 8, 9, 10] } }, required: ['selector'], additionalProperties: false },
      response: { 200: { type: 'object', properties: { revoked: { type: 'integer' }, serials: { type: 'array', items: { type: 'string' } } }, required: ['revoked', 'serials'] } },
    },
  }, async (req) => {
    const body = req.body as { selector: SelectorBody; reason?: number };
    const r = await revokeSelection(deps.store, toSelector(body.selector, deps.issuerIds()), body.reason ?? 0, 'admin-api', deps.now());
    deps.changed({ revoked: r.revoked > 0 });
    return r;
  });

  app.post('/admin/v1/intermediates/rotate', {
    schema: { response: { 200: { type: 'object', properties: { active: { type: 'string' }, previous: { type: 'string' } }, required: ['active', 'previous'] } } },
  }, async () => {
    const previous = deps.activeIssuerId();
    try {
      return { active: await deps.rotateIntermediate(), previous };
    } catch (e) {
      throw new AdminError(409, 'conflict', (e as Error).message);
    }
  });

  app.post('/admin/v1/policy/reload', { schema: { response: { 200: reloadSchema } } }, async () => {
    const r = deps.reloadPolicy();
    if (r === null) return { ok: false, error: 'no policy file is configured (policyFile / ACME_CA_POLICY_FILE)' };
    return r;
  });
}
