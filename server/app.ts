import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { acmePlugin } from './acme/plugin.js';
import type { AcmeContext } from './acme/context.js';
import { logRoutes, type LogRouteDeps } from './log/routes.js';
import { caCertRoutes, opsRoutes, type CaCertDeps, type OpsDeps } from './ops/routes.js';
import type { Metrics } from './ops/metrics.js';
import { adminRoutes, type AdminDeps } from './admin/routes.js';
import { registerMeshAdminRoutes, registerMeshRoutes, type MeshDeps } from './mesh/plugin.js';

export interface AppOptions {
  /** clientCa: ask clients for an optional certificate and verify it against these PEMs (mesh.clientCertAuth). */
  tls: { certPem: string; keyPem: string; clientCa?: string[] } | null;
  log: Logger;
  acme: AcmeContext;
  ops: OpsDeps;
  caCerts: CaCertDeps;
  /** When set, ops and admin routes are served by a separate app (the ops listener) instead. */
  separateOps?: boolean;
  /** The issuance log read API under /log/ (`log` is taken by the logger). */
  logApi?: LogRouteDeps;
  admin?: AdminDeps;
  /** Mesh signing fronts (native + Vault API) and their credential admin routes. */
  mesh?: MeshDeps;
  /** Filled with every registered route, so tests can compare them with openapi.yaml. */
  routes?: RouteInfo[];
}

export interface RouteInfo { method: string; url: string; schema?: Record<string, unknown> }

// fastify's own incoming/completed lines are replaced by the single line logged in countRequests.
const quietRequests = (): LogController => new LogController({ disableRequestLogging: true });

/** One access-log line and the request metrics per response (instead of fastify's two lines). */
function countRequests(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ route, method: req.method, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ route, method: req.method }, reply.elapsedTime / 1000);
    req.log.info({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, remote: req.ip }, 'request');
  });
}

async function registerOps(app: FastifyInstance, o: AppOptions): Promise<void> {
  await app.register(async (scope) => opsRoutes(scope, o.ops));
  if (o.admin) await app.register(async (scope) => adminRoutes(scope, o.admin!));
  if (o.mesh) await registerMeshAdminRoutes(app, o.mesh);
}

/** The ops listener's app (health, readiness, metrics, admin), on its own address. */
export async function buildOpsApp(o: AppOptions, tls: { certPem: string; keyPem: string; clientCa?: string[] } | null): Promise<FastifyInstance> {
  const https = tls ? { cert: tls.certPem, key: tls.keyPem, ...(tls.clientCa ? { requestCert: true, rejectUnauthorized: false, ca: tls.clientCa } : {}) } : null;
  const app = Fastify({ loggerInstance: o.log, ...(https ? { https } : {}), exposeHeadRoutes: false, return503OnClosing: true, logController: quietRequests() }) as unknown as FastifyInstance;
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) o.routes?.push({ method, url: r.url, schema: r.schema as Record<string, unknown> | undefined });
  });
  countRequests(app, o.acme.metrics);
  await registerOps(app, o);
  return app;
}

/** Plain HTTP for CRLs and the CA certificates: relying parties fetch them without TLS (RFC 5280 §4.2.1.13). */
export async function buildCrlApp(o: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: o.log, exposeHeadRoutes: false, return503OnClosing: true, logController: quietRequests() }) as unknown as FastifyInstance;
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) o.routes?.push({ method, url: r.url, schema: r.schema as Record<string, unknown> | undefined });
  });
  countRequests(app, o.acme.metrics);
  await app.register(async (scope) => caCertRoutes(scope, o.caCerts));
  return app;
}

/** Wires the components into one fastify app; holds no logic of its own. */
export async function buildApp(o: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: o.log,
    ...(o.tls ? { https: { cert: o.tls.certPem, key: o.tls.keyPem, ...(o.tls.clientCa ? { requestCert: true, rejectUnauthorized: false, ca: o.tls.clientCa } : {}) } } : {}),
    exposeHeadRoutes: false,
    bodyLimit: o.acme.config.acme.maxBodyBytes,
    keepAliveTimeout: 65_000,
    requestIdHeader: false,
    return503OnClosing: true,
    logController: quietRequests(),
  }) as unknown as FastifyInstance;
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) o.routes?.push({ method, url: r.url, schema: r.schema as Record<string, unknown> | undefined });
  });
  await app.register(async (scope) => acmePlugin(scope, o.acme));
  countRequests(app, o.acme.metrics);
  await app.register(async (scope) => caCertRoutes(scope, o.caCerts));
  if (!o.separateOps) await registerOps(app, o);
  if (o.logApi) await app.register(async (scope) => logRoutes(scope, o.logApi!));
  if (o.mesh) await registerMeshRoutes(app, o.mesh);
  return app;
}
