import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Storage } from '../../storage/types.js';

export interface OpsDeps {
  metrics: Registry;
  store: Storage;
  rootPem: string;
  chainPem: () => string;
}

// Non-ACME endpoints: each is described in openapi.yaml (test/openapi.test.ts keeps them in step).
export function opsRoutes(app: FastifyInstance, deps: OpsDeps): void {
  app.get('/healthz', { schema: { response: { 200: { type: 'object', properties: { status: { type: 'string' } }, required: ['status'] } } } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { response: { 200: { type: 'object', properties: { status: { type: 'string' } }, required: ['status'] }, 503: { type: 'object', properties: { status: { type: 'string' }, detail: { type: 'string' } }, required: ['status', 'detail'] } } } }, async (_req, reply) => {
    try {
      await deps.store.ping();
      return { status: 'ready' };
    } catch (e) {
      reply.code(503);
      return { status: 'unavailable', detail: `database is not writable: ${(e as Error).message}` };
    }
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('Content-Type', deps.metrics.contentType);
    return deps.metrics.metrics();
  });

  app.get('/ca/root.pem', async (_req, reply) => {
    reply.header('Content-Type', 'application/x-pem-file');
    return deps.rootPem;
  });

  app.get('/ca/chain.pem', async (_req, reply) => {
    reply.header('Content-Type', 'application/x-pem-file');
    return deps.chainPem();
  });
}
