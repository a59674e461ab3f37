import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createApiToken } from '../server/admin/api-tokens.js';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { startServer, type RunningServer } from '../server/server.js';
import { TestDnsServer } from './support/dns-server.js';
import { freePorts } from './support/ports.js';
import {
  AcmeTestClient, asOrder, asProblem, buildCsr, completeHttp01, cryptoKeyPairFromAccountKey, csrKeyFromPrimes,
  exponent3RsaPrimes, fermatRsaPrimes, generateAccountKey, generateCsrKey, header, Http01Responder, rocaRsaPrimes, splitPem,
  type AcmeOrder, type AcmeProblemDocument, type AcmeResponse, type EabCredentials, type Identifier, type OrderOptions,
} from './support/acme-test-client.js';
import { teardown } from './support/teardown.js';

/*
 * The issuance policy end to end over HTTPS, against an in-process server started with a policy
 * file and External Account Binding required: EAB keys made through the admin API bind accounts
 * to scopes; scopes decide names and SPIFFE IDs; profiles decide what a certificate looks like;
 * finalize refuses bad keys; rate limits refuse with Retry-After; every refusal is one
 * `policy.denied` entry in the issuance log and changes nothing else.
 *
 * Names under payments.test and web.test resolve to 127.0.0.1 through a DNS server in this
 * process; the CA's http-01 port is a responder in this process. Tests share one server and run
 * in file order (later ones reuse accounts made by earlier ones).
 */

const ERR = 'urn:ietf:params:acme:error:';
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const HOUR = 3_600_000;
const LOCAL: Identifier = { type: 'ip', value: '127.0.0.1' };
const SPIFFE_API = 'spiffe://corp.test/ns/payments/sa/api';

const POLICY = `# policy-e2e
defaultProfile: mtls
defaultScope: null
profiles:
  mtls:
    description: "Mutual TLS: 24 hours, serverAuth and clientAuth"
  server:
    description: "TLS server: 7 days, serverAuth only"
    uriSans: false
  batch:
    description: "Batch jobs: 1 hour, clientAuth only"
    validity: 1h
    extKeyUsage: [clientAuth]
    scopes: [payments]
scopes:
  payments:
    dns:
      allow: [.payments.test]
      deny: [.legacy.payments.test]
    ip:
      allow: [127.0.0.0/8]
    uri:
      allow: ["spiffe://corp.test/ns/payments/*"]
  web:
    dns:
      allow: [.web.test]
  limited:
    ip:
      allow: [127.0.0.0/8]
    rateLimits:
      ordersPerAccount: {count: 3, window: 1h}
`;

let tmp: string;
let dataDir: string;
let dbFile: string;
let policyFile: string;
let rootPem: string;
let server: RunningServer;
let responder: Http01Responder;
let dns: TestDnsServer;
let adminToken: string;
let readLogToken: string;
const clients: AcmeTestClient[] = [];

/** Made by the EAB test, used by later ones. */
let payments: AcmeTestClient | undefined;

function requirePayments(): AcmeTestClient {
  if (!payments) throw new Error('the EAB test did not create the payments account; see its failure');
  return payments;
}

async function client(): Promise<AcmeTestClient> {
  const c = await AcmeTestClient.connect(server.directoryUrl, rootPem);
  clients.push(c);
  return c;
}

// --- admin API --------------------------------------------------------------------------------

interface AdminResponse { status: number; body: unknown; text: string; headers: AcmeResponse['headers'] }

async function admin(method: 'GET' | 'POST' | 'DELETE', urlPath: string, body?: unknown, token: string | null = adminToken): Promise<AdminResponse> {
  const c = clients[0] ?? (await client());
  const headers: Record<string, string> = {};
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const url = new URL(urlPath, server.directoryUrl).toString();
  const res = await c.request(method, url, { headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: res.body, text: res.text, headers: res.headers };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function field(v: unknown, name: string): unknown {
  assert.ok(isRecord(v), `expected an object, got ${JSON.stringify(v)}`);
  return v[name];
}

interface CreatedEab extends EabCredentials { scope: string; expiresAt: number | null }

async function createEab(scope: string): Promise<CreatedEab> {
  const res = await admin('POST', '/admin/v1/eab-keys', { scope, description: `policy-e2e ${scope}` });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.headers['cache-control'], 'no-store', 'the response carrying the HMAC key must not be cached');
  const keyId = field(res.body, 'keyId');
  const hmacKey = field(res.body, 'hmacKey');
  assert.equal(typeof keyId, 'string');
  assert.equal(typeof hmacKey, 'string');
  assert.equal(field(res.body, 'scope'), scope);
  assert.equal(Buffer.from(hmacKey as string, 'base64url').length, 32, 'a 256-bit HMAC key');
  return { keyId: keyId as string, hmacKey: hmacKey as string, scope, expiresAt: field(res.body, 'expiresAt') as number | null };
}

interface EabView { keyId: string; status: string; scope: string; accountId: string | null; fingerprint: string }

async function listEab(): Promise<{ keys: EabView[]; text: string }> {
  const res = await admin('GET', '/admin/v1/eab-keys');
  assert.equal(res.status, 200, res.text);
  const keys = field(res.body, 'keys');
  assert.ok(Array.isArray(keys));
  return { keys: keys as EabView[], text: res.text };
}

async function accountWithEab(scope: string): Promise<AcmeTestClient> {
  const eab = await createEab(scope);
  const c = await client();
  const res = await c.newAccountWithEab(await generateAccountKey('ES256'), eab);
  assert.equal(res.status, 201, res.text);
  return c;
}

// --- database and log -------------------------------------------------------------------------

/** Every durable table but nonces (each response issues one) and the log (checked separately). */
const TABLES = ['accounts', 'orders', 'authorizations', 'challenges', 'certificates', 'eab_keys', 'api_tokens', 'rate_limit_buckets'] as const;
type Snapshot = Record<string, unknown[]>;

function withDb<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function snapshot(tables: readonly string[] = TABLES): Snapshot {
  return withDb((db) => Object.fromEntries(tables.map((t) => [t, db.prepare(`SELECT * FROM ${t} ORDER BY 1`).all()])));
}

function dbRow(table: string, id: string): Record<string, unknown> {
  return withDb((db) => {
    const r = db.prepare(`SELECT * FROM ${table} WHERE id = ?`).get(id) as Record<string, unknown> | undefined;
    if (!r) throw new Error(`no row ${id} in ${table}`);
    return r;
  });
}

/** The bytes of the database as they are on disk: the main file and its write-ahead log. */
function databaseFileBytes(): Buffer {
  return Buffer.concat([dbFile, `${dbFile}-wal`, `${dbFile}-journal`].filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f)));
}

interface LogEvent { index: number; type: string; body: Record<string, unknown> }

async function logSize(): Promise<number> {
  return (await server.store.getLogState()).size;
}

async function logSince(start: number): Promise<LogEvent[]> {
  const entries = await server.store.getLogEntries(start, await logSize());
  return entries.map((e) => {
    const body: unknown = JSON.parse(Buffer.from(e.body).toString('utf8'));
    assert.ok(isRecord(body));
    return { index: e.index, type: e.eventType, body };
  });
}

interface DeniedEvent {
  stage: string;
  problem: string;
  scope: string;
  account: string;
  profile?: string;
  detail: string;
  denials: Array<{ identifier: string; rule: string; detail: string }>;
  policy: { version: string };
}

function asDenied(e: LogEvent): DeniedEvent {
  assert.equal(e.type, 'policy.denied', `log entry ${e.index} is ${e.type}`);
  const b = e.body;
  assert.equal(b.type, 'policy.denied');
  assert.ok(typeof b.stage === 'string' && typeof b.problem === 'string' && typeof b.detail === 'string' && Array.isArray(b.denials), JSON.stringify(b));
  return b as unknown as DeniedEvent;
}

/** Runs `fn`; asserts it appended exactly one log entry, a policy.denied, and returns it. */
async function oneDenial<T>(fn: () => Promise<T>): Promise<{ result: T; denied: DeniedEvent }> {
  const start = await logSize();
  const result = await fn();
  const events = await logSince(start);
  assert.equal(events.length, 1, `expected exactly one new log entry, got ${JSON.stringify(events.map((e) => e.body))}`);
  return { result, denied: asDenied(events[0]) };
}

/** Runs `fn` and asserts no durable table changed (the log is checked by the caller). */
async function unchanged<T>(what: string, fn: () => Promise<T>, tables: readonly string[] = TABLES): Promise<T> {
  const before = snapshot(tables);
  const certs = await server.store.countCertificates();
  const out = await fn();
  assert.deepEqual(snapshot(tables), before, `${what}: the database changed`);
  assert.equal(await server.store.countCertificates(), certs, `${what}: a certificate was issued`);
  return out;
}

// --- ACME assertions --------------------------------------------------------------------------

function assertProblem(res: AcmeResponse, type: string, status: number, detail?: RegExp): AcmeProblemDocument {
  const ctx = `${res.status} ${res.text}`;
  assert.equal(res.status, status, `HTTP status; response: ${ctx}`);
  assert.match(header(res, 'content-type') ?? '', /^application\/problem\+json/, `content type; response: ${ctx}`);
  const p = asProblem(res.body);
  assert.equal(p.type, `${ERR}${type}`, `problem type; response: ${ctx}`);
  if (detail) assert.match(p.detail, detail, `problem detail; response: ${ctx}`);
  return p;
}

function assertCreated(res: AcmeResponse): { order: AcmeOrder; url: string } {
  assert.equal(res.status, 201, res.text);
  const url = header(res, 'location');
  assert.ok(url);
  return { order: asOrder(res.body), url };
}

async function readyOrder(c: AcmeTestClient, identifiers: Identifier[], o: OrderOptions = {}): Promise<{ order: AcmeOrder; url: string }> {
  const { order, url } = assertCreated(await c.newOrder(identifiers, o));
  await completeHttp01(c, order, responder);
  const ready = await c.poll(url, (b) => asOrder(b).status === 'ready');
  return { order: asOrder(ready.body), url };
}

async function finalizeAndDownload(c: AcmeTestClient, order: AcmeOrder, url: string, csr: Uint8Array): Promise<X509Certificate> {
  const fin = await c.finalize(order.finalize, csr);
  assert.equal(fin.status, 200, fin.text);
  const valid = asOrder((await c.poll(url, (b) => asOrder(b).status === 'valid')).body);
  assert.ok(valid.certificate);
  const dl = await c.downloadCert(valid.certificate);
  assert.equal(dl.status, 200, dl.text);
  return new X509Certificate(splitPem(dl.text)[0]);
}

function validityMs(x: X509Certificate): number {
  return Date.parse(x.validTo) - Date.parse(x.validFrom);
}

async function orderStatus(c: AcmeTestClient, url: string): Promise<string> {
  const res = await c.post(url, '');
  assert.equal(res.status, 200, res.text);
  return asOrder(res.body).status;
}

const lastSegment = (url: string): string => url.slice(url.lastIndexOf('/') + 1);

// --- server -----------------------------------------------------------------------------------

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-policy-e2e-'));
  dataDir = path.join(tmp, 'data');
  dbFile = path.join(dataDir, 'acme-ca.sqlite');
  policyFile = path.join(tmp, 'policy.yaml');
  await fsp.writeFile(policyFile, POLICY);
  const configFile = path.join(tmp, 'config.yaml');
  await fsp.writeFile(configFile, 'validation:\n  retryDelay: 200ms\n  timeout: 3s\n');
  const [httpsPort, http01Port] = await freePorts(2);
  dns = new TestDnsServer({ suffixes: ['payments.test', 'web.test'], address: '127.0.0.1' });
  await dns.start();
  responder = new Http01Responder();
  await responder.start(http01Port);
  const config = loadConfig({
    ACME_CA_CONFIG: configFile,
    ACME_CA_DATA_DIR: dataDir,
    ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`,
    ACME_CA_HTTP01_PORT: String(http01Port),
    ACME_CA_DNS_RESOLVER: dns.resolverAddress,
    ACME_CA_POLICY_FILE: policyFile,
    ACME_CA_EAB_REQUIRED: 'true',
  }, tmp);
  assert.equal(config.acme.externalAccountRequired, true);
  assert.equal(config.policyFile, policyFile);
  server = await startServer(config, createLogger('silent'));
  rootPem = await fsp.readFile(path.join(dataDir, 'root.pem'), 'utf8');
  adminToken = (await createApiToken(server.store, { name: 'policy-e2e admin', scopes: ['admin'] }, Date.now())).token;
  readLogToken = (await createApiToken(server.store, { name: 'policy-e2e reader', scopes: ['read-log'] }, Date.now())).token;
});

after(() => teardown({ clients, server, responder, dns, tmp }));

// --- tests ------------------------------------------------------------------------------------

test('the directory lists meta.profiles from the policy and requires EAB', async () => {
  const c = await client();
  const meta = c.directory.meta;
  assert.ok(meta);
  assert.equal(meta.externalAccountRequired, true);
  assert.deepEqual(meta.profiles, {
    mtls: 'Mutual TLS: 24 hours, serverAuth and clientAuth',
    server: 'TLS server: 7 days, serverAuth only',
    batch: 'Batch jobs: 1 hour, clientAuth only',
  });
  assert.deepEqual(Object.keys(meta.profiles as Record<string, string>), ['mtls', 'server', 'batch'], 'built-ins first, then file order');
});

test('admin API: 401 without or with an unknown token, 403 with a token lacking the admin scope', async () => {
  const before = snapshot();
  const calls: Array<['GET' | 'POST' | 'DELETE', string, unknown]> = [
    ['GET', '/admin/v1/eab-keys', undefined],
    ['POST', '/admin/v1/eab-keys', { scope: 'payments' }],
    ['DELETE', '/admin/v1/eab-keys/eab_nonexistent', undefined],
    ['POST', '/admin/v1/policy/check', { identifiers: [{ type: 'dns', value: 'a.payments.test' }], scope: 'payments' }],
    ['POST', '/admin/v1/policy/reload', undefined],
  ];
  for (const [method, p, body] of calls) {
    const none = await admin(method, p, body, null);
    assert.equal(none.status, 401, `${method} ${p} without a token: ${none.text}`);
    assert.equal(none.headers['www-authenticate'], 'Bearer');
    assert.match(String(field(none.body, 'detail')), /Bearer token is required/);

    const unknown = await admin(method, p, body, `acmeca_${'A'.repeat(16)}_${'B'.repeat(43)}`);
    assert.equal(unknown.status, 401, `${method} ${p} with an unknown token: ${unknown.text}`);

    const reader = await admin(method, p, body, readLogToken);
    assert.equal(reader.status, 403, `${method} ${p} with a read-log token: ${reader.text}`);
    assert.match(String(field(reader.body, 'detail')), /lacks the "admin" scope/);
  }
  assert.deepEqual(snapshot(), before, 'refused admin requests created nothing');
  assert.equal((await admin('GET', '/admin/v1/eab-keys')).status, 200, 'the admin token is accepted');
});

test('newAccount without External Account Binding is refused when EAB is required', async () => {
  const c = await client();
  const key = await generateAccountKey('ES256');
  const res = await unchanged('newAccount without EAB', () => c.newAccount(key));
  assertProblem(res, 'externalAccountRequired', 403, /External Account Binding/);
  assert.equal(c.account, null);
});

let usedEab: (EabCredentials & { encrypted: Buffer }) | undefined;

test('EAB keys: made through the admin API, HMAC key never stored in the clear, single use, revocable', async () => {
  const eab = await createEab('payments');
  const secret = Buffer.from(eab.hmacKey, 'base64url');

  // Never in the clear: neither the raw 32 bytes nor the text handed to the operator are on disk.
  const disk = databaseFileBytes();
  assert.equal(disk.indexOf(secret), -1, 'the raw HMAC key is in the database files');
  assert.equal(disk.indexOf(Buffer.from(eab.hmacKey, 'utf8')), -1, 'the base64url HMAC key is in the database files');
  const stored = dbRow('eab_keys', eab.keyId);
  assert.ok(Buffer.isBuffer(stored.hmac_key_enc), 'the encrypted HMAC key is stored until use');
  const encrypted = stored.hmac_key_enc as Buffer;
  assert.equal(encrypted.indexOf(secret), -1, 'the stored form is not the key itself');

  // Listing shows the key without its secret.
  const listed = await listEab();
  assert.ok(!listed.text.includes(eab.hmacKey), 'GET /admin/v1/eab-keys must not reveal the HMAC key');
  const view = listed.keys.find((k) => k.keyId === eab.keyId);
  assert.ok(view);
  assert.equal(view.status, 'unused');
  assert.equal(view.scope, 'payments');
  assert.equal(view.accountId, null);

  // A scope the policy does not define is refused.
  const badScope = await admin('POST', '/admin/v1/eab-keys', { scope: 'nosuch' });
  assert.equal(badScope.status, 400, badScope.text);
  assert.match(String(field(badScope.body, 'detail')), /scope 'nosuch' is not defined/);

  // Wrong MAC and a binding over another key are refused and spend nothing.
  const c = await client();
  const key = await generateAccountKey('ES256');
  const wrongMac = await unchanged('EAB with a wrong HMAC key', () =>
    c.newAccountWithEab(key, eab, undefined, undefined, { hmacKey: Buffer.alloc(32, 7).toString('base64url') }));
  assertProblem(wrongMac, 'unauthorized', 403, /MAC does not verify/);
  const other = await generateAccountKey('ES256');
  const otherKey = await unchanged('EAB binding another key', () => c.newAccountWithEab(key, eab, undefined, undefined, { payloadJwk: other.jwk }));
  assertProblem(otherKey, 'unauthorized', 403, /binds a different key/);
  const wrongUrl = await unchanged('EAB for another URL', () => c.newAccountWithEab(key, eab, undefined, undefined, { url: `${c.directory.newAccount}x` }));
  assertProblem(wrongUrl, 'malformed', 400, /"url" must be/);

  // The right binding creates an account bound to the key's scope.
  const created = await c.newAccountWithEab(key, eab);
  assert.equal(created.status, 201, created.text);
  const accountId = lastSegment(header(created, 'location')!);
  const account = dbRow('accounts', accountId);
  assert.equal(account.scope, 'payments');
  assert.equal(account.eab_key_id, eab.keyId);
  payments = c;

  const used = dbRow('eab_keys', eab.keyId);
  assert.equal(used.hmac_key_enc, null, 'the encrypted HMAC key is erased from its row once used');
  assert.equal(used.account_id, accountId);
  const afterUse = (await listEab()).keys.find((k) => k.keyId === eab.keyId);
  assert.equal(afterUse?.status, 'used');
  assert.equal(afterUse?.accountId, accountId);
  usedEab = { ...eab, encrypted };

  // Single use: the same key cannot bind a second account.
  const again = await client();
  const second = await unchanged('a second account with a used EAB key', async () => again.newAccountWithEab(await generateAccountKey('ES256'), eab));
  assertProblem(second, 'unauthorized', 403, /already used/);

  // Revocation: only unused keys; a revoked key binds nothing.
  const spare = await createEab('web');
  const revoked = await admin('DELETE', `/admin/v1/eab-keys/${spare.keyId}`);
  assert.equal(revoked.status, 200, revoked.text);
  assert.equal(field(revoked.body, 'status'), 'revoked');
  assert.equal(dbRow('eab_keys', spare.keyId).hmac_key_enc, null, 'a revoked key keeps no encrypted secret');
  assert.equal((await admin('DELETE', `/admin/v1/eab-keys/${spare.keyId}`)).status, 409);
  assert.equal((await admin('DELETE', `/admin/v1/eab-keys/${eab.keyId}`)).status, 409, 'a used key cannot be revoked');
  assert.equal((await admin('DELETE', '/admin/v1/eab-keys/eab_nonexistent')).status, 404);
  const withRevoked = await unchanged('newAccount with a revoked EAB key', async () => again.newAccountWithEab(await generateAccountKey('ES256'), spare));
  assertProblem(withRevoked, 'unauthorized', 403, /revoked/);
});

test('after its single use, the encrypted HMAC key is gone from the database files too', async () => {
  if (!usedEab) throw new Error('the EAB test did not run to completion; see its failure');
  const disk = databaseFileBytes();
  assert.equal(disk.indexOf(Buffer.from(usedEab.hmacKey, 'base64url')), -1, 'the raw HMAC key is on disk');
  assert.equal(disk.indexOf(usedEab.encrypted), -1,
    'the encrypted HMAC key is still in the database files (main file or WAL) after its use: NULLing the column leaves the old bytes in free page space and WAL frames');
});

test('scope A: an mtls certificate with a SPIFFE URI SAN of its namespace, serverAuth+clientAuth, 24 hours', async () => {
  const c = requirePayments();
  const name = 'api.payments.test';
  const { order, url } = await readyOrder(c, [{ type: 'dns', value: name }, LOCAL]);
  const keys = await generateCsrKey('P-256');

  // A SPIFFE ID outside the scope's namespace is refused at finalize, naming the rule.
  const foreign = 'spiffe://corp.test/ns/web/sa/api';
  const { result: refused, denied } = await oneDenial(() => unchanged('CSR with a foreign SPIFFE ID', async () =>
    c.finalize(order.finalize, await buildCsr({ keys, dnsNames: [name], ipAddresses: ['127.0.0.1'], uris: [foreign] }))));
  assertProblem(refused, 'badCSR', 400, /spiffe:\/\/corp\.test\/ns\/web\/sa\/api: scope 'payments' allows only URIs matching spiffe:\/\/corp\.test\/ns\/payments\/\*/);
  assert.equal(denied.stage, 'finalize');
  assert.deepEqual(denied.denials.map((d) => [d.identifier, d.rule]), [[foreign, 'uri.allow']]);
  assert.equal(await orderStatus(c, url), 'ready');

  const x = await finalizeAndDownload(c, order, url, await buildCsr({ keys, dnsNames: [name], ipAddresses: ['127.0.0.1'], uris: [SPIFFE_API] }));
  assert.deepEqual(x.subjectAltName?.split(', ').sort(), [`DNS:${name}`, 'IP Address:127.0.0.1', `URI:${SPIFFE_API}`].sort());
  assert.deepEqual([...(x.keyUsage ?? [])].sort(), [SERVER_AUTH, CLIENT_AUTH].sort(), 'extended key usage: serverAuth and clientAuth');
  assert.equal(validityMs(x), 24 * HOUR, `validity ${x.validFrom} .. ${x.validTo}`);

  const issued = (await logSince(0)).filter((e) => e.type === 'certificate.issued').at(-1);
  assert.ok(issued);
  assert.equal(issued.body.scope, 'payments');
  assert.equal(issued.body.profile, 'mtls');
  assert.deepEqual(issued.body.uris, [SPIFFE_API]);
});

test('scope A account is refused names of scope B: rejectedIdentifier, or compound with one subproblem per name', async () => {
  const c = requirePayments();
  const allowOnly = (n: string): RegExp => new RegExp(`^${n.replace(/\./g, '\\.')}: scope 'payments' allows only \\.payments\\.test$`);

  // One refused name: rejectedIdentifier with the identifier and the rule's pattern.
  const one = await oneDenial(() => unchanged('order for a web name', () => c.newOrder([{ type: 'dns', value: 'shop.web.test' }])));
  const p1 = assertProblem(one.result, 'rejectedIdentifier', 400, allowOnly('shop.web.test'));
  assert.deepEqual(p1.identifier, { type: 'dns', value: 'shop.web.test' });
  assert.equal(one.denied.stage, 'newOrder');
  assert.equal(one.denied.scope, 'payments');
  assert.deepEqual(one.denied.denials.map((d) => [d.identifier, d.rule]), [['shop.web.test', 'dns.allow']]);

  // Several refused (one allowed among them): compound, one subproblem per refused identifier.
  const ids: Identifier[] = [{ type: 'dns', value: 'a.web.test' }, { type: 'dns', value: 'ok.payments.test' }, { type: 'dns', value: 'b.web.test' }, { type: 'ip', value: '10.1.2.3' }];
  const many = await oneDenial(() => unchanged('order with several web names', () => c.newOrder(ids)));
  const p2 = assertProblem(many.result, 'compound', 400, /3 of 4 identifiers were refused/);
  assert.ok(p2.subproblems);
  assert.equal(p2.subproblems.length, 3, JSON.stringify(p2.subproblems));
  const byValue = new Map(p2.subproblems.map((s) => [s.identifier?.value, s]));
  for (const n of ['a.web.test', 'b.web.test']) {
    const s = byValue.get(n);
    assert.ok(s, `a subproblem for ${n}`);
    assert.equal(s.type, `${ERR}rejectedIdentifier`);
    assert.equal(s.status, 400);
    assert.deepEqual(s.identifier, { type: 'dns', value: n });
    assert.match(s.detail, allowOnly(n));
  }
  const ipSub = byValue.get('10.1.2.3');
  assert.ok(ipSub);
  assert.match(ipSub.detail, /^10\.1\.2\.3: scope 'payments' allows only IP addresses in 127\.0\.0\.0\/8$/);
  assert.ok(!byValue.has('ok.payments.test'), 'the allowed identifier has no subproblem');
  assert.deepEqual(many.denied.denials.map((d) => [d.identifier, d.rule]), [['a.web.test', 'dns.allow'], ['b.web.test', 'dns.allow'], ['10.1.2.3', 'ip.allow']]);

  // A deny rule is named in the detail, and wins over the allow that also matches.
  const denied = await oneDenial(() => unchanged('order for a denied name', () => c.newOrder([{ type: 'dns', value: 'db.legacy.payments.test' }])));
  assertProblem(denied.result, 'rejectedIdentifier', 400, /db\.legacy\.payments\.test: denied by scope 'payments' rule dns\.deny \.legacy\.payments\.test \(denials win over allows\)/);
  assert.deepEqual(denied.denied.denials.map((d) => d.rule), ['dns.deny .legacy.payments.test']);
});

test('scope B account with profile server: a 7-day serverAuth-only certificate; scope A names refused', async () => {
  const web = await accountWithEab('web');
  const refused = await oneDenial(() => unchanged('web account ordering a payments name', () => web.newOrder([{ type: 'dns', value: 'api.payments.test' }])));
  assertProblem(refused.result, 'rejectedIdentifier', 400, /^api\.payments\.test: scope 'web' allows only \.web\.test$/);
  assert.equal(refused.denied.scope, 'web');

  const name = 'www.web.test';
  const { order, url } = await readyOrder(web, [{ type: 'dns', value: name }], { profile: 'server' });
  const x = await finalizeAndDownload(web, order, url, await buildCsr({ keys: await generateCsrKey('P-256'), dnsNames: [name] }));
  assert.deepEqual([...(x.keyUsage ?? [])], [SERVER_AUTH], 'extended key usage: serverAuth only');
  assert.equal(validityMs(x), 7 * 24 * HOUR, `validity ${x.validFrom} .. ${x.validTo}`);
  assert.equal(x.subjectAltName, `DNS:${name}`);
  assert.equal(dbRow('orders', lastSegment(url)).profile, 'server');
});

test('an unknown profile, or one not open to the scope, is refused with invalidProfile', async () => {
  const c = requirePayments();
  const unknown = await oneDenial(() => unchanged('unknown profile', () => c.newOrder([LOCAL], { profile: 'gold' })));
  assertProblem(unknown.result, 'invalidProfile', 400, /profile 'gold' is not offered; profiles available to scope 'payments': mtls, server, batch/);
  assert.equal(unknown.denied.problem, 'invalidProfile');
  assert.equal(unknown.denied.profile, 'gold');

  const web = await accountWithEab('web');
  const closed = await oneDenial(() => unchanged('profile of another scope', () => web.newOrder([{ type: 'dns', value: 'x.web.test' }], { profile: 'batch' })));
  assertProblem(closed.result, 'invalidProfile', 400, /profile 'batch' is not available to scope 'web'; profiles available to it: mtls, server/);
  assert.equal(closed.denied.scope, 'web');
});

test('finalize refuses weak or disallowed keys, SHA-1 and the account key, writing only the audit event', async (t) => {
  const c = requirePayments();
  const { order, url } = await readyOrder(c, [LOCAL]);
  const orderId = lastSegment(url);
  const csrFor = (keys: CryptoKeyPair, hash?: 'SHA-1'): Promise<Uint8Array> => buildCsr({ keys, ipAddresses: ['127.0.0.1'], hash });

  const cases: Array<{ name: string; csr: () => Promise<Uint8Array>; type: 'badPublicKey' | 'badCSR'; detail: RegExp; rule?: string }> = [
    { name: 'RSA 1024', csr: async () => csrFor(await generateCsrKey('RSA1024')), type: 'badPublicKey', detail: /RSA key is 1024 bits; the minimum is 2048/, rule: 'profile.keys' },
    { name: 'RSA e=3', csr: async () => csrFor(await csrKeyFromPrimes(exponent3RsaPrimes())), type: 'badPublicKey', detail: /RSA public exponent must be 65537, got 3/, rule: 'profile.keys' },
    { name: 'Fermat-factorable RSA', csr: async () => csrFor(await csrKeyFromPrimes(fermatRsaPrimes())), type: 'badPublicKey', detail: /factored with Fermat's method/, rule: 'profile.keys' },
    { name: 'ROCA-vulnerable RSA', csr: async () => csrFor(await csrKeyFromPrimes(rocaRsaPrimes())), type: 'badPublicKey', detail: /ROCA fingerprint \(CVE-2017-15361\)/, rule: 'profile.keys' },
    { name: 'P-521 (not allowed by the profile)', csr: async () => csrFor(await generateCsrKey('P-521')), type: 'badPublicKey', detail: /profile 'mtls': EC curve P-521 is not allowed; allowed: RSA, EC-P256, EC-P384/, rule: 'profile.keys' },
    { name: 'the account key', csr: async () => csrFor(await cryptoKeyPairFromAccountKey(c.account!.key)), type: 'badCSR', detail: /uses the account key/, rule: 'csr.key != account.key' },
    { name: 'SHA-1 signature', csr: async () => csrFor(await generateCsrKey('RSA2048'), 'SHA-1'), type: 'badCSR', detail: /signed with sha1WithRSAEncryption; sign it with SHA-256 or better/ },
  ];
  for (const k of cases) {
    await t.test(k.name, async () => {
      const csr = await k.csr();
      const start = await logSize();
      const res = await unchanged(`finalize with ${k.name}`, () => c.finalize(order.finalize, csr));
      assertProblem(res, k.type, 400, k.detail);
      assert.equal(await orderStatus(c, url), 'ready', 'the order stays ready');
      assert.equal(dbRow('orders', orderId).csr, null, 'the refused CSR is not stored');
      const events = await logSince(start);
      assert.equal(events.length, 1, `exactly one audit event for the refusal; got ${JSON.stringify(events.map((e) => e.body))}`);
      const d = asDenied(events[0]);
      assert.equal(d.stage, 'finalize');
      assert.equal(d.problem, k.type);
      assert.equal(d.scope, 'payments');
      if (k.rule) assert.deepEqual(d.denials.map((x) => x.rule), [k.rule]);
      assert.match(d.detail, k.detail);
    });
  }

  // The refusals left the order intact: a good CSR still finalizes it.
  const x = await finalizeAndDownload(c, order, url, await csrFor(await generateCsrKey('P-256')));
  assert.equal(x.subjectAltName, 'IP Address:127.0.0.1');
});

test('rate limit: the 4th order of an account in the window is rateLimited with Retry-After', async () => {
  const c = await accountWithEab('limited');
  for (let i = 0; i < 3; i++) assertCreated(await c.newOrder([LOCAL]));
  const orderTables = ['accounts', 'orders', 'authorizations', 'challenges', 'certificates'];
  const { result: res, denied } = await oneDenial(() => unchanged('the 4th order', () => c.newOrder([LOCAL]), orderTables));
  assertProblem(res, 'rateLimited', 429, /rate limit ordersPerAccount reached: at most 3 new orders for this account per 3600s; retry after \d+s/);
  const retryAfter = header(res, 'retry-after');
  assert.match(retryAfter ?? '', /^\d+$/, 'Retry-After in seconds');
  // One token refills every window/count = 1200 s; a few seconds have passed since the first order.
  assert.ok(Number(retryAfter) > 1100 && Number(retryAfter) <= 1200, `Retry-After ${retryAfter}`);
  assert.equal(denied.stage, 'rateLimit');
  assert.equal(denied.problem, 'rateLimited');
  assert.equal(denied.scope, 'limited');

  // The limit is per account: another account of the scope may still order.
  const other = await accountWithEab('limited');
  assertCreated(await other.newOrder([LOCAL]));
});

test('POST /admin/v1/policy/check answers allowed/denied with the rule and creates nothing', async () => {
  const c = requirePayments();
  const accountId = lastSegment(c.account!.url);
  const start = await logSize();
  await unchanged('policy checks', async () => {
    const denied = await admin('POST', '/admin/v1/policy/check', { identifiers: [{ type: 'dns', value: 'a.web.test' }, { type: 'dns', value: 'ok.payments.test' }], scope: 'payments' });
    assert.equal(denied.status, 200, denied.text);
    assert.equal(field(denied.body, 'allowed'), false);
    assert.equal(field(denied.body, 'problem'), 'rejectedIdentifier');
    assert.deepEqual(field(denied.body, 'denials'), [{ identifier: 'a.web.test', rule: 'dns.allow', detail: "a.web.test: scope 'payments' allows only .payments.test" }]);
    assert.equal(field(denied.body, 'policyVersion'), server.policy.current().version);

    const allowed = await admin('POST', '/admin/v1/policy/check', { identifiers: [{ type: 'dns', value: 'ok.payments.test' }], uris: [SPIFFE_API], accountId });
    assert.equal(allowed.status, 200, allowed.text);
    assert.equal(field(allowed.body, 'allowed'), true, allowed.text);
    assert.equal(field(allowed.body, 'scope'), 'payments', 'the scope comes from the account');
    assert.equal(field(allowed.body, 'profile'), 'mtls');
    assert.match(String(field(allowed.body, 'detail')), /allowed by scope 'payments' rule dns\.allow \.payments\.test/);

    const uri = await admin('POST', '/admin/v1/policy/check', { identifiers: [LOCAL], uris: ['spiffe://corp.test/ns/web/x'], scope: 'payments' });
    assert.equal(field(uri.body, 'allowed'), false);
    assert.equal(field(uri.body, 'problem'), 'badCSR');
    assert.deepEqual((field(uri.body, 'denials') as Array<{ rule: string }>).map((d) => d.rule), ['uri.allow']);

    const profile = await admin('POST', '/admin/v1/policy/check', { identifiers: [LOCAL], profile: 'batch', scope: 'web' });
    assert.equal(field(profile.body, 'allowed'), false);
    assert.equal(field(profile.body, 'problem'), 'invalidProfile');

    const noScope = await admin('POST', '/admin/v1/policy/check', { identifiers: [LOCAL] });
    assert.equal(noScope.status, 400, 'no scope and no default scope');
    assert.match(String(field(noScope.body, 'detail')), /give "scope" or "accountId"/);
  });
  assert.equal(await logSize(), start, 'a policy check is not an audit event');
});

test('POST /admin/v1/policy/reload: a changed file takes effect; an invalid one is refused and the old policy stays', async () => {
  const c = requirePayments();
  const blocked: Identifier = { type: 'dns', value: 'blocked.payments.test' };
  const oldVersion = server.policy.current().version;
  try {
    assertCreated(await c.newOrder([blocked]));

    await fsp.writeFile(policyFile, POLICY.replace('deny: [.legacy.payments.test]', 'deny: [.legacy.payments.test, blocked.payments.test]'));
    const reloaded = await admin('POST', '/admin/v1/policy/reload');
    assert.equal(reloaded.status, 200, reloaded.text);
    assert.equal(field(reloaded.body, 'ok'), true, reloaded.text);
    assert.equal(field(reloaded.body, 'changed'), true);
    const newVersion = field(reloaded.body, 'version');
    assert.notEqual(newVersion, oldVersion);
    const refused = await oneDenial(() => unchanged('order after the reload', () => c.newOrder([blocked])));
    assertProblem(refused.result, 'rejectedIdentifier', 400, /denied by scope 'payments' rule dns\.deny blocked\.payments\.test/);
    assert.equal(refused.denied.policy.version, newVersion, 'the audit event names the policy that decided');

    // Same file again: a no-op.
    const same = await admin('POST', '/admin/v1/policy/reload');
    assert.equal(field(same.body, 'changed'), false);

    await fsp.writeFile(policyFile, 'scopes:\n  payments:\n    dns:\n      allow: ["pay*.test"]\n');
    const invalid = await admin('POST', '/admin/v1/policy/reload');
    assert.equal(invalid.status, 200, invalid.text);
    assert.equal(field(invalid.body, 'ok'), false);
    const error = String(field(invalid.body, 'error'));
    assert.ok(error.includes(policyFile), `the error names the file: ${error}`);
    assert.match(error, /scopes\.payments\.dns\.allow\[0\]/, 'the error names the key');
    assert.ok(error.includes(`keeping policy ${String(newVersion)}`), error);
    assert.equal(server.policy.current().version, newVersion, 'the old policy stays in force');
    assertProblem(await c.newOrder([blocked]), 'rejectedIdentifier', 400, /rule dns\.deny blocked\.payments\.test/);
    assertCreated(await c.newOrder([{ type: 'dns', value: 'still.payments.test' }]));
    assert.deepEqual(Object.keys((await client()).directory.meta?.profiles as Record<string, string>), ['mtls', 'server', 'batch']);
  } finally {
    await fsp.writeFile(policyFile, POLICY);
    server.reloadPolicy();
  }
  assert.equal(server.policy.current().version, oldVersion);
});
