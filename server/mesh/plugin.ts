import type { FastifyInstance } from 'fastify';
import { meshAdminRoutes } from './admin-routes.js';
import type { MeshDeps } from './context.js';
import { nativeMeshRoutes } from './native-routes.js';
import { vaultRoutes } from './vault-routes.js';

export type { MeshDeps } from './context.js';

/** The mesh fronts on the main (ACME) listener: the native API and the Vault-compatible API. */
export async function registerMeshRoutes(app: FastifyInstance, deps: MeshDeps): Promise<void> {
  await app.register(async (scope) => nativeMeshRoutes(scope, deps));
  // A prefixed plugin, so that its not-found handler answers Vault-style errors for its paths only.
  await app.register(async (scope) => vaultRoutes(scope, deps), { prefix: `${deps.vaultPrefix}/v1` });
}

/** Mesh credential management, next to the other admin routes (on the ops listener when it is separate). */
export async function registerMeshAdminRoutes(app: FastifyInstance, deps: MeshDeps): Promise<void> {
  await app.register(async (scope) => meshAdminRoutes(scope, deps));
}
