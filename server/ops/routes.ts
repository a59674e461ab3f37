import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { ReadinessReport } from './readiness.js';

export interface OpsDeps {
  metrics: Registry;
  readiness: () => Promise<ReadinessReport>;
}

export interface CaCertDeps {
  rootPem: string;
  chainPem: () => string;
  /** DER CRL of an issuer by its short (16 hex digits) or full id; null when unknown. */
  crl: (issuerId: string) => Promise<Uint8Array | null>;
}

const readinessSchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ready', 'unavailable'] },
    checks: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, ok: { type: 'boolean' }, detail: { type: 'string' } }, required: ['name', 'ok', 'detail'] } },
  },
  required: ['status', 'checks'],
} as const;

// Health, readiness and metrics: on the ACME listener, or on the ops listener when one is configured.
// Each is described in openapi.yaml (test/openapi.test.ts keeps them in step).
export function opsRoutes(app: FastifyInstance, deps: OpsDeps): void {
  app.get('/healthz', { schema: { response: { 200: { type: 'object', properties: { status: { type: 'string' } }, required: ['status'] } } } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { response: { 200: readinessSchema, 503: readinessSchema } } }, async (_req, reply) => {
    const r = await deps.readiness();
    reply.code(r.ready ? 200 : 503);
    return { status: r.ready ? 'ready' : 'unavailable', checks: r.checks };
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('Content-Type', deps.metrics.contentType);
    return deps.metrics.metrics();
  });
}

/** The CA certificates clients must trust, always next to the ACME API. */
export function caCertRoutes(app: FastifyInstance, deps: CaCertDeps): void {
  app.get('/ca/root.pem', async (_req, reply) => {
    reply.header('Content-Type', 'application/x-pem-file');
    return deps.rootPem;
  });

  app.get('/ca/chain.pem', async (_req, reply) => {
    reply.header('Content-Type', 'application/x-pem-file');
    return deps.chainPem();
  });

  app.get('/crl/:file', async (req, reply) => {
    const { file } = req.params as { file: string };
    const m = /^([0-9a-f]{16}|[0-9a-f]{64})\.crl$/.exec(file);
    const der = m ? await deps.crl(m[1]) : null;
    if (!der) {
      reply.code(404).header('Content-Type', 'text/plain; charset=utf-8');
      return `no CRL ${file}; CRL URLs have the form /crl/<issuer id>.crl (see the CRL Distribution Points of a certificate)\n`;
    }
    reply.header('Content-Type', 'application/pkix-crl').header('Cache-Control', 'max-age=60');
    return Buffer.from(der);
  });
}
