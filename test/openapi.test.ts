import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import SwaggerParser from '@apidevtools/swagger-parser';
import { parse } from 'yaml';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { startServer, type RunningServer } from '../server/server.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const isAcme = (url: string): boolean => url === '/directory' || url.startsWith('/acme/') || url === '*' || url === '/*';

// fastify's trailing wildcard (`/log/tile/*`, whose match spans slashes) is written `{wildcard}`
// in openapi.yaml, since OpenAPI has no multi-segment parameter; every other `{name}` is fastify's `:name`.
const toFastify = (openapiPath: string): string => openapiPath.replace(/\/\{wildcard\}$/, '/*').replace(/\{(\w+)\}/g, ':$1');
const toOpenapi = (fastifyUrl: string): string => fastifyUrl.replace(/\/\*$/, '/{wildcard}').replace(/:(\w+)/g, '{$1}');

interface OpenApi { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema?: unknown }> }> }>> }

let dir: string;
let server: RunningServer;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'acme-ca-openapi-'));
  server = await startServer(loadConfig({ ACME_CA_DATA_DIR: dir, ACME_CA_LISTEN: 'https://127.0.0.1:0' }), createLogger('silent'));
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('openapi.yaml is a valid OpenAPI 3.1 document', async () => {
  const doc = parse(readFileSync(join(repo, 'openapi.yaml'), 'utf8')) as { openapi: string };
  assert.equal(doc.openapi, '3.1.0');
  await SwaggerParser.validate(join(repo, 'openapi.yaml'));
});

test('every non-ACME route is in openapi.yaml with the same method, and nothing else is', () => {
  const doc = parse(readFileSync(join(repo, 'openapi.yaml'), 'utf8')) as OpenApi;
  const documented = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${toFastify(p)}`)));
  const served = new Set(server.routes.filter((r) => !isAcme(r.url)).map((r) => `${r.method} ${r.url}`));
  assert.ok(served.size >= 4, 'the ops routes were registered');
  assert.deepEqual([...served].filter((r) => !documented.has(r)), [], 'served but not documented');
  assert.deepEqual([...documented].filter((r) => !served.has(r)), [], 'documented but not served');
});

test('response schemas declared on routes equal those in openapi.yaml', () => {
  const doc = parse(readFileSync(join(repo, 'openapi.yaml'), 'utf8')) as OpenApi;
  let compared = 0;
  for (const r of server.routes.filter((x) => !isAcme(x.url))) {
    const responses = (r.schema?.response ?? {}) as Record<string, unknown>;
    for (const [code, schema] of Object.entries(responses)) {
      const op = doc.paths[toOpenapi(r.url)]?.[r.method.toLowerCase()];
      const documented = op?.responses[code]?.content?.['application/json']?.schema;
      assert.deepEqual(documented, schema, `${r.method} ${r.url} ${code}`);
      compared++;
    }
  }
  assert.ok(compared >= 3);
});
