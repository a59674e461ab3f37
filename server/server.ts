import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { SqliteStorage } from '../storage/sqlite/sqlite-storage.js';
import type { Storage } from '../storage/types.js';
import type { AcmeContext } from './acme/context.js';
import { KeyCache } from './acme/jws.js';
import { NonceService } from './acme/nonces.js';
import { Urls } from './acme/urls.js';
import { buildApp, type RouteInfo } from './app.js';
import { loadOrCreateCa, type CaMaterial } from './ca/ca-material.js';
import { IssuanceService } from './ca/issuance-service.js';
import { ensureServerCertificate } from './ca/server-certificate.js';
import type { Config } from './config.js';
import { Dns01Validator } from './validation/dns01.js';
import { Http01Validator } from './validation/http01.js';
import { ValidationResolver } from './validation/resolver.js';
import { TlsAlpn01Validator } from './validation/tls-alpn01.js';
import { ValidationService } from './validation/validation-service.js';

export interface RunningServer {
  app: FastifyInstance;
  store: Storage;
  ca: CaMaterial;
  directoryUrl: string;
  routes: RouteInfo[];
  close(): Promise<void>;
}

function listenHost(config: Config): string {
  return config.listen.hostname.replace(/^\[|\]$/g, '');
}

export function serverCertificateNames(config: Config): string[] {
  return [listenHost(config), config.externalUrl.hostname.replace(/^\[|\]$/g, ''), 'localhost', '127.0.0.1', '::1', hostname(), ...config.serverNames]
    .filter((n) => n !== '0.0.0.0' && n !== '::' && n !== '');
}

/** Start-up in dependency order: storage, CA, services, app, listen; then resume unfinished work. */
export async function startServer(config: Config, log: Logger, now: () => number = Date.now): Promise<RunningServer> {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const store = new SqliteStorage(join(config.dataDir, 'acme-ca.sqlite'));
  await store.migrate();
  const ca = await loadOrCreateCa({ dataDir: config.dataDir, ...config.ca });
  if (ca.generated) log.info({ root: ca.rootPath }, 'generated a new root and intermediate CA');
  const tls = await ensureServerCertificate(config.dataDir, ca.issuer, serverCertificateNames(config));

  const resolver = new ValidationResolver(config.validation.dnsResolver, config.validation.timeoutMs);
  const validations = new ValidationService(store, {
    'http-01': new Http01Validator(resolver, config.validation.http01Port, config.validation.timeoutMs),
    'dns-01': new Dns01Validator(resolver),
    'tls-alpn-01': new TlsAlpn01Validator(resolver, config.validation.tlsAlpn01Port, config.validation.timeoutMs),
  }, { attempts: config.validation.attempts, retryDelayMs: config.validation.retryDelayMs, concurrency: 32 }, log.child({ component: 'validation' }), now);
  const issuance = new IssuanceService(store, () => ca.issuer, { validityMs: config.certificates.validityMs, backdateMs: config.certificates.backdateMs }, log.child({ component: 'ca' }), now);

  const urls = new Urls(config.externalUrl);
  const ctx: AcmeContext = {
    config, store, urls, log, now, rootPem: ca.rootPem,
    nonces: new NonceService(store, config.acme.nonceLifetimeMs, now),
    keyCache: new KeyCache(),
    issuer: () => ca.issuer,
    validations, issuance,
  };
  const routes: RouteInfo[] = [];
  const app = await buildApp({ routes, tls: { certPem: tls.certPem, keyPem: tls.keyPem }, log, acme: ctx, ops: { store, rootPem: ca.rootPem, chainPem: () => ca.issuer.chainPem } });
  await app.listen({ host: listenHost(config), port: Number(config.listen.port || 443) });

  const resumedValidations = await validations.resume();
  const resumedOrders = await issuance.resume();
  if (resumedValidations + resumedOrders > 0) log.info({ resumedValidations, resumedOrders }, 'resumed unfinished work');
  const purge = setInterval(() => { store.purgeExpiredNonces(now()).catch((e: unknown) => log.warn({ err: e }, 'nonce purge failed')); }, 60_000);
  purge.unref();

  return {
    app, store, ca, routes, directoryUrl: urls.directory(),
    async close() {
      clearInterval(purge);
      await app.close();
      await validations.stop();
      await issuance.drain();
      await store.close();
    },
  };
}
