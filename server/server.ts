import { X509Certificate } from 'node:crypto';
import { mkdirSync, unwatchFile, watchFile } from 'node:fs';
import type { Server as TlsServer } from 'node:tls';
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
import { buildApp, buildCrlApp, buildOpsApp, type AppOptions, type RouteInfo } from './app.js';
import { readiness } from './ops/readiness.js';
import { caFiles, loadOrCreateCa, rotateGeneratedIntermediate, type CaMaterial, type Issuer } from './ca/ca-material.js';
import { IssuanceService } from './ca/issuance-service.js';
import { ensureServerCertificate } from './ca/server-certificate.js';
import type { Config } from './config.js';
import { Dns01Validator } from './validation/dns01.js';
import { Http01Validator } from './validation/http01.js';
import { ValidationResolver } from './validation/resolver.js';
import { TlsAlpn01Validator } from './validation/tls-alpn01.js';
import { ValidationService } from './validation/validation-service.js';
import { CheckpointPublisher } from './log/checkpoint-publisher.js';
import { caKeyEventEntry, type CaKeyEvent } from './log/entry.js';
import { IssuerRegistry } from './ca/issuer-registry.js';
import { CrlPublisher } from './ca/crl-publisher.js';
import { loadOrCreateLogKey, type LogKey } from './log/log-key.js';
import { SecretBox } from './admin/key-encryption.js';
import { Metrics, type CaCertificateInfo } from './ops/metrics.js';
import { PolicyStore, type ReloadResult } from './policy/policy-store.js';
import { lookup } from './policy/types.js';
import { SqliteMeshStore } from '../storage/sqlite/mesh-store.js';
import { MeshSigner } from './mesh/signer.js';
import type { MeshDeps } from './mesh/plugin.js';

export interface RunningServer {
  app: FastifyInstance;
  store: Storage;
  logKey: LogKey;
  publisher: CheckpointPublisher;
  issuers: IssuerRegistry;
  crls: CrlPublisher;
  policy: PolicyStore;
  metrics: Metrics;
  /** Re-reads the policy file; the old policy stays when the new one is invalid. */
  reloadPolicy(): ReloadResult | null;
  /** SIGHUP: the policy, and the server's own TLS certificate when it is due. */
  reload(): Promise<void>;
  opsApp: FastifyInstance | null;
  ca: CaMaterial;
  directoryUrl: string;
  routes: RouteInfo[];
  close(): Promise<void>;
}

function listenHost(config: Config): string {
  return config.listen.hostname.replace(/^\[|\]$/g, '');
}

export function serverCertificateNames(config: Config): string[] {
  return [listenHost(config), config.externalUrl.hostname.replace(/^\[|\]$/g, ''), ...(config.opsListen ? [config.opsListen.hostname.replace(/^\[|\]$/g, '')] : []), 'localhost', '127.0.0.1', '::1', hostname(), ...config.serverNames]
    .filter((n) => n !== '0.0.0.0' && n !== '::' && n !== '');
}

/** The CA's own key events go in the log once: the first time an intermediate is seen in use. */
async function recordCaKeyEvent(store: Storage, issuer: Issuer, type: CaKeyEvent, at: number): Promise<void> {
  if ((await store.findLogIndexes(`cert:${issuer.id}`, 1)).length > 0) return;
  const x = new X509Certificate(Buffer.from(issuer.certDer));
  await store.appendLogEvent(caKeyEventEntry(type, {
    der: issuer.certDer, subject: x.subject.replace(/\n/g, ', '), notAfter: issuer.notAfter.getTime(), actor: 'operator',
  }, at));
}

export function crlUrl(config: Config, issuerId: string): string {
  return `${config.crl.baseUrl}/crl/${issuerId.slice(0, 16)}.crl`;
}

export class StartupError extends Error {}

function loadPolicy(file: string | null): PolicyStore {
  try {
    return PolicyStore.load(file);
  } catch (e) {
    throw new StartupError((e as Error).message);
  }
}

function caCertificateInfo(rootPem: string, issuers: IssuerRegistry): CaCertificateInfo[] {
  const root = new X509Certificate(rootPem);
  // Only the active intermediate: a retired one expiring is expected, not an alert.
  const active = issuers.active();
  return [
    { role: 'root', subject: root.subject.replace(/\n/g, ', '), notAfter: new Date(root.validTo) },
    { role: 'intermediate', subject: new X509Certificate(Buffer.from(active.certDer)).subject.replace(/\n/g, ', '), notAfter: active.notAfter },
  ];
}

/** Start-up in dependency order: storage, CA, services, app, listen; then resume unfinished work. */
export async function startServer(config: Config, log: Logger, now: () => number = Date.now): Promise<RunningServer> {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const store = new SqliteStorage(join(config.dataDir, 'acme-ca.sqlite'));
  await store.migrate();
  const ca = await loadOrCreateCa({ dataDir: config.dataDir, ...config.ca });
  if (ca.generated) log.info({ root: ca.rootPath }, 'generated a new root and intermediate CA');
  const issuers = await IssuerRegistry.load(config.dataDir, ca.issuer);
  let tls = await ensureServerCertificate(config.dataDir, issuers.active(), serverCertificateNames(config));

  const resolver = new ValidationResolver(config.validation.dnsResolver, config.validation.timeoutMs);
  const validations = new ValidationService(store, {
    'http-01': new Http01Validator(resolver, config.validation.http01Port, config.validation.timeoutMs),
    'dns-01': new Dns01Validator(resolver),
    'tls-alpn-01': new TlsAlpn01Validator(resolver, config.validation.tlsAlpn01Port, config.validation.timeoutMs),
  }, { attempts: config.validation.attempts, retryDelayMs: config.validation.retryDelayMs, concurrency: 32 }, log.child({ component: 'validation' }), now);
  const policy = loadPolicy(config.policyFile);
  const issuance = new IssuanceService(store, () => issuers.active(), {
    backdateMs: config.certificates.backdateMs,
    crlUrl: (issuer, profile) => (profile.validityMs > config.crl.cdpThresholdMs || profile.crlDistributionPoint === true ? crlUrl(config, issuer.id) : null),
    profile: (name) => lookup(policy.current().profiles, name),
    policyVersion: () => policy.current().version,
  }, log.child({ component: 'ca' }), now);

  const logKey = loadOrCreateLogKey(config.dataDir, config.log.origin);
  await recordCaKeyEvent(store, issuers.active(), ca.generated ? 'ca.intermediate.created' : 'ca.intermediate.imported', now());
  const publisher = new CheckpointPublisher(store, logKey, { delayMs: config.log.checkpointDelayMs, intervalMs: config.log.checkpointIntervalMs }, log.child({ component: 'log' }), now);
  issuance.onIssued = () => publisher.notify();
  const crls = new CrlPublisher(store, issuers, { lifetimeMs: config.crl.lifetimeMs, debounceMs: config.crl.debounceMs }, log.child({ component: 'crl' }), now);
  crls.onSigned = () => publisher.notify();
  const metrics = new Metrics({
    store, now,
    caCertificates: () => caCertificateInfo(ca.rootPem, issuers),
    renewNowPending: () => store.countRenewNowPending(now()),
    lastCheckpointAt: () => publisher.lastPublishedAt,
  });
  issuance.metrics = metrics;
  validations.metrics = metrics;

  const urls = new Urls(config.externalUrl);
  const ctx: AcmeContext = {
    config, store, urls, log, now, rootPem: ca.rootPem,
    nonces: new NonceService(store, config.acme.nonceLifetimeMs, now),
    keyCache: new KeyCache(),
    issuer: () => issuers.active(),
    issuers,
    validations, issuance,
    logAppended: () => publisher.notify(),
    revoked: () => crls.notify(),
    policy, metrics,
    secrets: SecretBox.open(config.dataDir),
  };
  const reloadPolicy = (): ReloadResult | null => {
    if (!config.policyFile) return null;
    const r = policy.reload(config.policyFile);
    if (r.ok) log.info({ version: r.version, changed: r.changed }, 'policy reloaded');
    else log.error({ error: r.error }, 'policy reload refused');
    return r;
  };
  const meshStore = new SqliteMeshStore(store.db);
  const mesh: MeshDeps = {
    signer: new MeshSigner({ store, mesh: meshStore, issuer: () => issuers.active(), rootPem: ca.rootPem, policy: () => policy.current(), now, backdateMs: config.certificates.backdateMs, logAppended: () => publisher.notify() }),
    meshStore, store, policy: () => policy.current(), issuer: () => issuers.active(), rootPem: ca.rootPem, now,
    vaultPrefix: config.mesh.vaultPrefix, clientCertAuth: config.mesh.clientCertAuth,
  };
  // Client certificates (mesh credentials, operators) are verified against this CA only.
  const wantClientCerts = config.mesh.clientCertAuth || config.adminClientCertNames.length > 0;
  const clientCaPems = (): string[] | undefined => (wantClientCerts ? [ca.rootPem, ...issuers.all().map((i) => i.chainPem)] : undefined);
  const clientCa = clientCaPems();
  const routes: RouteInfo[] = [];
  // Every issuer has a CRL, and the log a signed checkpoint, before the first request.
  await crls.refresh(false);
  await publisher.publish();
  const appOptions: AppOptions = {
    routes, tls: { certPem: tls.certPem, keyPem: tls.keyPem, clientCa }, log, acme: ctx,
    ops: { metrics: metrics.registry, readiness: () => readiness({ store, now, issuerKey: () => issuers.active().key, lastCheckpointAt: () => publisher.lastPublishedAt, maxCheckpointAgeMs: 2 * config.log.checkpointIntervalMs + config.log.checkpointDelayMs + 30_000 }) },
    caCerts: { rootPem: ca.rootPem, chainPem: () => issuers.active().chainPem, crl: (id) => crls.current(id) },
    separateOps: config.opsListen !== null,
    admin: {
      store, secrets: ctx.secrets, policy, now, reloadPolicy: () => reloadPolicy(), clientCertNames: config.adminClientCertNames,
      issuerIds: () => issuers.all().map((i) => i.id),
      activeIssuerId: () => issuers.active().id,
      rotateIntermediate: async () => {
        await rotateGeneratedIntermediate(config.dataDir, config.ca.organization);
        await onIssuerSwitch();
        return issuers.active().id;
      },
      changed: (what) => { publisher.notify(); if (what.revoked) crls.notify(); },
    },
    logApi: { store, logKey, publisher, readToken: config.log.readToken, now },
    mesh,
  };
  const app = await buildApp(appOptions);
  await app.listen({ host: listenHost(config), port: Number(config.listen.port || 443) });
  const crlApp = config.crl.listen ? await buildCrlApp(appOptions) : null;
  if (crlApp && config.crl.listen) {
    await crlApp.listen({ host: config.crl.listen.hostname.replace(/^\[|\]$/g, ''), port: Number(config.crl.listen.port || 80) });
  }
  const opsApp = config.opsListen ? await buildOpsApp(appOptions, config.opsListen.protocol === 'https:' ? { ...tls, clientCa } : null) : null;
  if (opsApp && config.opsListen) {
    await opsApp.listen({ host: config.opsListen.hostname.replace(/^\[|\]$/g, ''), port: Number(config.opsListen.port || (config.opsListen.protocol === 'https:' ? 443 : 80)) });
  }

  // The server's own certificate is short-lived too: re-checked on SIGHUP and twice a day, and
  // swapped into the running listeners without dropping a connection.
  const reloadTls = async (): Promise<boolean> => {
    const next = await ensureServerCertificate(config.dataDir, issuers.active(), serverCertificateNames(config));
    if (next.certPem === tls.certPem) return false;
    tls = next;
    // setSecureContext replaces the whole context, so the client-certificate trust goes along.
    const ca = clientCaPems();
    (app.server as unknown as TlsServer).setSecureContext({ cert: next.certPem, key: next.keyPem, ...(ca ? { ca } : {}) });
    if (opsApp && config.opsListen?.protocol === 'https:') (opsApp.server as unknown as TlsServer).setSecureContext({ cert: next.certPem, key: next.keyPem });
    log.info({ names: next.names }, 'server TLS certificate renewed');
    return true;
  };
  // A rotation (CLI, admin API or another replica) switches the active-issuer pointer file; new
  // issuance moves to the new intermediate at once, orders being signed keep theirs.
  let switching: Promise<void> = Promise.resolve();
  const onIssuerSwitch = (): Promise<void> => {
    switching = switching.then(async () => {
      const previous = await issuers.refresh();
      if (!previous) return;
      await recordCaKeyEvent(store, issuers.active(), 'ca.intermediate.rotated', now());
      publisher.notify();
      crls.notify();
      log.info({ active: issuers.active().id.slice(0, 16), previous: previous.id.slice(0, 16) }, 'intermediate rotated');
      await reloadTls();
    }).catch((e: unknown) => log.error({ err: e }, 'switching to the new intermediate failed; still issuing with the previous one'));
    return switching;
  };
  watchFile(caFiles(config.dataDir).activeIssuer, { interval: 1000, persistent: false }, () => { void onIssuerSwitch(); });

  const tlsTimer = setInterval(() => { reloadTls().catch((e: unknown) => log.error({ err: e }, 'server TLS certificate renewal failed')); }, 12 * 3_600_000);
  tlsTimer.unref();

  publisher.start();
  crls.start();
  const resumedValidations = await validations.resume();
  const resumedOrders = await issuance.resume();
  if (resumedValidations + resumedOrders > 0) log.info({ resumedValidations, resumedOrders }, 'resumed unfinished work');
  const purge = setInterval(() => { store.purgeExpiredNonces(now()).catch((e: unknown) => log.warn({ err: e }, 'nonce purge failed')); }, 60_000);
  purge.unref();

  return {
    app, store, ca, routes, logKey, publisher, issuers, crls, policy, metrics, directoryUrl: urls.directory(),
    reloadPolicy,
    async reload() {
      reloadPolicy();
      issuers.reloadAlternates();
      await reloadTls().catch((e: unknown) => log.error({ err: e }, 'server TLS certificate renewal failed'));
    },
    opsApp,
    async close() {
      clearInterval(purge);
      clearInterval(tlsTimer);
      unwatchFile(caFiles(config.dataDir).activeIssuer);
      await switching;
      await opsApp?.close();
      await crlApp?.close();
      await app.close();
      await validations.stop();
      await issuance.drain();
      await crls.stop();
      await publisher.stop();
      await publisher.publish().catch((e: unknown) => log.error({ err: e }, 'final checkpoint failed'));
      await store.close();
    },
  };
}
