/**
 * The native mesh API (openapi.yaml): `POST /api/v1/mesh/intermediates` signs a subordinate CA
 * from a CSR for one trust domain. Authenticated with a mesh token (`Authorization: Bearer`) or a
 * client certificate issued by this CA that matches a certificate role (mesh.certRoles).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { parsePemBlocks, toPem } from '../ca/pem.js';
import { checkMeshToken, matchCertRole, peerNames, tokenPrincipal } from './credentials.js';
import { verifiedPeerDer, type MeshDeps } from './context.js';
import { MESH_PROFILES, MeshError, type MeshPrincipal, type MeshProfile } from './signer.js';

// Errors are problem documents (application/problem+json), sent as text, so no response schema here.
const intermediateBody = {
  type: 'object',
  properties: {
    csr: { type: 'string', minLength: 1 },
    trustDomain: { type: 'string', minLength: 1 },
    ttlSeconds: { type: 'integer', minimum: 60 },
    profile: { type: 'string', enum: [...MESH_PROFILES] },
    maxPathLength: { type: 'integer', minimum: 0, maximum: 16 },
    nameConstraints: {
      type: ['object', 'null'],
      properties: { uriDomains: { type: 'array', items: { type: 'string' } }, dns: { type: 'array', items: { type: 'string' } } },
      additionalProperties: false,
    },
  },
  required: ['csr', 'trustDomain'],
  additionalProperties: false,
} as const;

const intermediateResponse = {
  type: 'object',
  properties: {
    certificate: { type: 'string' },
    chain: { type: 'array', items: { type: 'string' } },
    root: { type: 'string' },
    trustDomain: { type: 'string' },
    serial: { type: 'string' },
    notBefore: { type: 'string', format: 'date-time' },
    notAfter: { type: 'string', format: 'date-time' },
    logEntry: { type: 'object', properties: { index: { type: 'integer' }, leafHash: { type: 'string' } }, required: ['index', 'leafHash'] },
    warnings: { type: 'array', items: { type: 'string' } },
  },
  required: ['certificate', 'chain', 'root', 'trustDomain', 'serial', 'notBefore', 'notAfter', 'logEntry', 'warnings'],
} as const;

class NativeError extends Error {
  constructor(readonly status: number, readonly kind: string, message: string) { super(message); }
}

function sendProblem(reply: FastifyReply, status: number, kind: string, detail: string): FastifyReply {
  return reply.code(status).header('Content-Type', 'application/problem+json').send(JSON.stringify({ type: `urn:acme-ca:error:${kind}`, status, detail }));
}

export function nativeMeshRoutes(app: FastifyInstance, deps: MeshDeps): void {
  app.setErrorHandler(async (err, req, reply) => {
    if (err instanceof NativeError) return sendProblem(reply, err.status, err.kind, err.message);
    if (err instanceof MeshError) return sendProblem(reply, err.status, err.kind, err.message);
    const fe = err as { validation?: unknown; statusCode?: number; message: string };
    if (fe.validation || (fe.statusCode && fe.statusCode < 500)) return sendProblem(reply, fe.statusCode ?? 400, 'malformed', fe.message);
    req.log.error({ err }, 'mesh API request failed');
    return sendProblem(reply, 500, 'internal', 'internal error; see the server log');
  });

  app.post('/api/v1/mesh/intermediates', {
    schema: { body: intermediateBody, response: { 200: intermediateResponse } },
  }, async (req, reply) => {
    const who = await principal(req.headers.authorization, verifiedPeerDer(req));
    const body = req.body as { csr: string; trustDomain: string; ttlSeconds?: number; profile?: MeshProfile; maxPathLength?: number; nameConstraints?: { uriDomains?: string[]; dns?: string[] } | null };
    const block = parsePemBlocks(body.csr).find((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
    if (!block) throw new NativeError(400, 'badCSR', 'csr must hold a PEM "CERTIFICATE REQUEST" block');
    const nc = body.nameConstraints ? { uriDomains: body.nameConstraints.uriDomains ?? [], dns: body.nameConstraints.dns ?? [] } : null;
    const signed = await deps.signer.signIntermediate(who, {
      csrDer: block.der, trustDomain: body.trustDomain, ttlMs: body.ttlSeconds === undefined ? null : body.ttlSeconds * 1000,
      maxPathLength: body.maxPathLength ?? null, subject: {}, uriSans: [], dnsSans: [], ipSans: [],
      nameConstraints: nc && nc.uriDomains.length + nc.dns.length > 0 ? nc : null, profile: body.profile ?? 'generic', front: 'native',
    });
    const root = toPem('CERTIFICATE', signed.rootDer);
    reply.header('Cache-Control', 'no-store');
    return {
      certificate: toPem('CERTIFICATE', signed.der),
      chain: [...signed.issuingDers.map((d) => toPem('CERTIFICATE', d)), root],
      root,
      trustDomain: signed.trustDomain,
      serial: signed.serial,
      notBefore: signed.notBefore.toISOString(),
      notAfter: signed.notAfter.toISOString(),
      logEntry: { index: signed.logIndex, leafHash: signed.logLeafHash },
      warnings: signed.warnings,
    };
  });

  async function principal(authorization: string | undefined, peerDer: Uint8Array | null): Promise<MeshPrincipal> {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (m) {
      const check = await checkMeshToken(deps.meshStore, m[1], deps.now());
      if (!check.ok) throw new NativeError(401, 'unauthorized', check.reason);
      return tokenPrincipal(check.token);
    }
    if (peerDer) {
      const mesh = deps.signer.meshPolicy().mesh;
      const role = matchCertRole(mesh, peerNames(peerDer), '');
      if (!role.ok) throw new NativeError(403, 'forbidden', role.reason);
      return { scope: role.role.scope, credential: `cert:${role.role.name}` };
    }
    throw new NativeError(401, 'unauthorized', `send a mesh token as "Authorization: Bearer <token>"${deps.clientCertAuth ? ' or connect with a client certificate issued by this CA' : ''}`);
  }
}
