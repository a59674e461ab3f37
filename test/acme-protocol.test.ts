import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { startServer, type RunningServer } from '../server/server.js';
import { randomSerial } from '../server/ca/certificate-builder.js';
import { TestDnsServer } from './support/dns-server.js';
import { freePorts } from './support/ports.js';
import {
  accountKeyFromCryptoKeyPair, AcmeTestClient, asAccount, asAuthorization, asChallenge, asOrder, asOrdersList, asProblem,
  buildCsr, completeHttp01, corruptCsrSignature, cryptoKeyPairFromAccountKey, generateAccountKey, generateCsrKey, header,
  Http01Responder, links, opensslVerifyChain, splitPem, type AccountKey, type AcmeOrder, type AcmeProblemDocument,
  type AcmeResponse, type Identifier,
} from './support/acme-test-client.js';
import { teardown } from './support/teardown.js';

/*
 * RFC 8555 protocol conformance of the server, in-process, with our own client so that every
 * request can be wrong in exactly one way. Most orders use the IP identifier 127.0.0.1, which
 * needs no DNS; names under acme.test resolve to 127.0.0.1 through a DNS server in this process.
 * The CA's http-01 port is the port of a responder in this process.
 *
 * The tests share one server and run in file order; later ones reuse the certificate issued by
 * the happy path.
 */

const ERR = 'urn:ietf:params:acme:error:';
const LOCAL: Identifier = { type: 'ip', value: '127.0.0.1' };
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

let tmp: string;
let dataDir: string;
let dbFile: string;
let rootPemPath: string;
let server: RunningServer;
let responder: Http01Responder;
let dns: TestDnsServer;
let origin: string;
const clients: AcmeTestClient[] = [];

async function client(opts: { maxSockets?: number } = {}): Promise<AcmeTestClient> {
  const c = await AcmeTestClient.connect(server.directoryUrl, await fsp.readFile(rootPemPath, 'utf8'), opts);
  clients.push(c);
  return c;
}

async function clientWithAccount(key?: AccountKey): Promise<AcmeTestClient> {
  const c = await client();
  const res = await c.newAccount(key ?? (await generateAccountKey('ES256')), { termsOfServiceAgreed: true });
  assert.equal(res.status, 201, res.text);
  return c;
}

/** Issued in the happy path, used by later tests. */
interface Issued {
  client: AcmeTestClient;
  order: AcmeOrder;
  orderUrl: string;
  challengeUrl: string;
  certDer: Uint8Array;
  certKey: AccountKey;
}
let issued: Issued | undefined;

function requireIssued(): Issued {
  if (!issued) throw new Error('the happy-path test did not issue a certificate; see its failure');
  return issued;
}

// --- database snapshots -------------------------------------------------------------------------

type Snapshot = Record<string, unknown[]>;
/** Every durable table; nonces are left out because every response issues one. */
const TABLES = ['accounts', 'orders', 'authorizations', 'challenges', 'certificates'];

function snapshot(): Snapshot {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const out: Snapshot = {};
    for (const t of TABLES) out[t] = db.prepare(`SELECT * FROM ${t} ORDER BY rowid`).all();
    return out;
  } finally {
    db.close();
  }
}

function row(table: string, id: string): Record<string, unknown> {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const r = db.prepare(`SELECT * FROM ${table} WHERE id = ?`).get(id) as Record<string, unknown> | undefined;
    if (!r) throw new Error(`no row ${id} in ${table}`);
    return r;
  } finally {
    db.close();
  }
}

/** Runs `fn` and asserts the durable state is the same afterwards. */
async function unchanged<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const before = snapshot();
  const out = await fn();
  assert.deepEqual(snapshot(), before, `${what}: the database changed`);
  return out;
}

const lastSegment = (url: string): string => url.slice(url.lastIndexOf('/') + 1);

// --- assertions -------------------------------------------------------------------------------

function assertProblem(res: AcmeResponse, type: string, status: number): AcmeProblemDocument {
  const ctx = `${res.status} ${res.text}`;
  assert.equal(res.status, status, `HTTP status; response: ${ctx}`);
  assert.match(header(res, 'content-type') ?? '', /^application\/problem\+json/, `content type; response: ${ctx}`);
  const p = asProblem(res.body);
  assert.equal(p.type, `${ERR}${type}`, `problem type; response: ${ctx}`);
  assert.ok(p.detail.trim().length > 0, 'the problem has a detail');
  assert.match(header(res, 'replay-nonce') ?? '', /^[A-Za-z0-9_-]{16,}$/, 'an error response carries a Replay-Nonce');
  return p;
}

function assertOk(res: AcmeResponse, status = 200): void {
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${res.text}`);
  assert.match(header(res, 'replay-nonce') ?? '', /^[A-Za-z0-9_-]{16,}$/, 'a response carries a Replay-Nonce');
}

const bitLength = (hex: string): number => BigInt(`0x${hex}`).toString(2).length;

async function readyOrder(c: AcmeTestClient): Promise<{ order: AcmeOrder; url: string }> {
  const res = await c.newOrder([LOCAL]);
  assertOk(res, 201);
  const url = header(res, 'location')!;
  await completeHttp01(c, asOrder(res.body), responder);
  const ready = await c.poll(url, (b) => asOrder(b).status === 'ready');
  return { order: asOrder(ready.body), url };
}

async function issue(c: AcmeTestClient): Promise<{ certDer: Uint8Array; certKey: AccountKey; chainPem: string }> {
  const { order, url } = await readyOrder(c);
  const keys = await generateCsrKey('P-256');
  assertOk(await c.finalize(order.finalize, await buildCsr({ keys, ipAddresses: ['127.0.0.1'] })));
  const valid = asOrder((await c.poll(url, (b) => asOrder(b).status === 'valid')).body);
  const dl = await c.downloadCert(valid.certificate!);
  assertOk(dl);
  const chainPem = dl.text;
  return { certDer: new Uint8Array(new X509Certificate(splitPem(chainPem)[0]).raw), certKey: await accountKeyFromCryptoKeyPair(keys), chainPem };
}

// --- server -------------------------------------------------------------------------------------

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-protocol-'));
  dataDir = path.join(tmp, 'data');
  dbFile = path.join(dataDir, 'acme-ca.sqlite');
  rootPemPath = path.join(dataDir, 'root.pem');
  const configFile = path.join(tmp, 'config.yaml');
  await fsp.writeFile(configFile, 'acme:\n  ordersPageSize: 2\nvalidation:\n  retryDelay: 200ms\n  timeout: 3s\n');
  const [httpsPort, http01Port] = await freePorts(2);
  dns = new TestDnsServer({ suffixes: ['acme.test'], address: '127.0.0.1' });
  await dns.start();
  responder = new Http01Responder();
  await responder.start(http01Port);
  const config = loadConfig({
    ACME_CA_CONFIG: configFile,
    ACME_CA_DATA_DIR: dataDir,
    ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`,
    ACME_CA_HTTP01_PORT: String(http01Port),
    // Names under acme.test resolve to 127.0.0.1 through a DNS server of our own; nothing reaches the real DNS.
    ACME_CA_DNS_RESOLVER: dns.resolverAddress,
  }, tmp);
  assert.equal(config.acme.ordersPageSize, 2);
  server = await startServer(config, createLogger('silent'));
  origin = new URL(server.directoryUrl).origin;
});

after(() => teardown({ clients, server, responder, dns, tmp }));

// --- tests ------------------------------------------------------------------------------------

test('HEAD newNonce: 200, empty, no-store, a nonce, and the connection stays open', async () => {
  const c = await client({ maxSockets: 1 });
  const head = await c.headNonce();
  assert.equal(head.status, 200);
  assert.equal(header(head, 'content-length'), '0');
  assert.equal(head.text, '');
  assert.match(header(head, 'cache-control') ?? '', /(^|,\s*)no-store(\s*,|$)/);
  assert.match(header(head, 'replay-nonce') ?? '', /^[A-Za-z0-9_-]{16,}$/);
  assert.notEqual(header(head, 'connection')?.toLowerCase(), 'close');
  assert.ok(links(head, 'index').includes(server.directoryUrl), 'newNonce links the directory (RFC 8555 §7.2)');
  // With one socket per origin, the next request can only be served by the same connection.
  const next = await c.request('GET', server.directoryUrl);
  assert.equal(next.status, 200);
  assert.equal(next.reusedSocket, true, 'the request after HEAD newNonce reused the kept-alive socket');
  const again = await c.headNonce();
  assert.equal(again.reusedSocket, true);
  assert.notEqual(header(again, 'replay-nonce'), header(head, 'replay-nonce'), 'nonces are not repeated');

  const get = await c.request('GET', c.directory.newNonce);
  assert.equal(get.status, 204);
  assert.match(header(get, 'cache-control') ?? '', /no-store/);
  assert.ok(header(get, 'replay-nonce'));
});

test('happy path: ES256 account, IP order, http-01, finalize, download, openssl verify', async () => {
  const c = await client();
  const key = await generateAccountKey('ES256');
  const acct = await c.newAccount(key, { termsOfServiceAgreed: true, contact: ['mailto:ops@example.com'] });
  assertOk(acct, 201);
  const accountUrl = header(acct, 'location');
  assert.ok(accountUrl?.startsWith(`${origin}/acme/account/`), `Location ${accountUrl}`);
  assert.equal(asAccount(acct.body).status, 'valid');
  assert.deepEqual(asAccount(acct.body).contact, ['mailto:ops@example.com']);

  const created = await c.newOrder([LOCAL]);
  assertOk(created, 201);
  const orderUrl = header(created, 'location')!;
  assert.ok(orderUrl.startsWith(`${origin}/acme/order/`));
  const order = asOrder(created.body);
  assert.equal(order.status, 'pending');
  assert.deepEqual(order.identifiers, [LOCAL]);
  assert.equal(order.authorizations.length, 1);

  const authzRes = await c.getAuthz(order.authorizations[0]);
  assertOk(authzRes);
  const authz = asAuthorization(authzRes.body);
  assert.equal(authz.status, 'pending');
  assert.deepEqual(authz.identifier, LOCAL);
  const ch = authz.challenges.find((x) => x.type === 'http-01');
  assert.ok(ch, 'an IP identifier can be proven with http-01');
  assert.ok(!authz.challenges.some((x) => x.type === 'dns-01'), 'dns-01 is not offered for IP identifiers (RFC 8738 §7)');
  assert.match(ch.token, /^[A-Za-z0-9_-]{22,}$/, 'token has at least 128 bits of base64url');

  responder.set(ch.token, c.keyAuthorization(ch.token));
  const answered = await c.respondChallenge(ch.url);
  assertOk(answered);
  assert.ok(['processing', 'valid'].includes(asChallenge(answered.body).status));
  assert.ok(links(answered, 'up').includes(order.authorizations[0]), 'challenge links its authorization');
  await c.poll(order.authorizations[0], (b) => asAuthorization(b).status === 'valid');
  const validAuthz = asAuthorization((await c.getAuthz(order.authorizations[0])).body);
  const validCh = validAuthz.challenges.find((x) => x.type === 'http-01')!;
  assert.equal(validCh.status, 'valid');
  assert.ok(validCh.validated, 'a valid challenge says when it was validated');
  assert.ok(responder.requests.includes(`/.well-known/acme-challenge/${ch.token}`));

  const ready = asOrder((await c.poll(orderUrl, (b) => asOrder(b).status === 'ready')).body);
  const certKeys = await generateCsrKey('P-256');
  const csr = await buildCsr({ keys: certKeys, ipAddresses: ['127.0.0.1'] });
  const finalizedAt = Date.now();
  const fin = await c.finalize(ready.finalize, csr);
  assertOk(fin);
  const finOrder = asOrder(fin.body);
  assert.ok(['processing', 'valid'].includes(finOrder.status), `finalize answered ${finOrder.status}`);
  if (finOrder.status === 'processing') assert.match(header(fin, 'retry-after') ?? '', /^\d+$/, 'a processing order comes with Retry-After');
  assert.equal(header(fin, 'location'), orderUrl);

  const done = asOrder((await c.poll(orderUrl, (b) => asOrder(b).status === 'valid')).body);
  const issuedAt = Date.now();
  assert.ok(done.certificate?.startsWith(`${origin}/acme/cert/`));
  const dl = await c.downloadCert(done.certificate!);
  assertOk(dl);
  assert.equal(header(dl, 'content-type')?.split(';')[0].trim(), 'application/pem-certificate-chain');
  const blocks = splitPem(dl.text);
  assert.equal(blocks.length, 2, 'leaf and intermediate');
  assert.equal(blocks[1].trim(), (await fsp.readFile(path.join(dataDir, 'intermediate.pem'), 'utf8')).trim());

  const leaf = new X509Certificate(blocks[0]);
  assert.equal(leaf.subjectAltName, 'IP Address:127.0.0.1');
  assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), [SERVER_AUTH, CLIENT_AUTH].sort(), 'EKU serverAuth + clientAuth');
  assert.equal(leaf.ca, false);
  assert.ok(leaf.publicKey.equals((await accountKeyFromCryptoKeyPair(certKeys)).publicKey), 'the leaf has the CSR key');
  // A single 128-bit random serial is below 2^96 with probability 2^-32, so this never flakes;
  // the generator itself is checked for 120+ bits in the next test.
  assert.ok(bitLength(leaf.serialNumber) >= 96, `serial ${leaf.serialNumber} has ${bitLength(leaf.serialNumber)} bits`);
  assert.ok(leaf.serialNumber.length <= 40, 'serial at most 20 octets (RFC 5280 §4.1.2.2)');
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  assert.ok(Math.abs(notAfter - notBefore - 24 * 3600_000) <= 2000, `validity is 24h: ${leaf.validFrom} .. ${leaf.validTo}`);
  assert.ok(notBefore >= finalizedAt - 60_000 - 5000 && notBefore <= issuedAt - 60_000 + 1000, `notBefore ${leaf.validFrom} is backdated about one minute`);
  assert.ok(leaf.verify(new X509Certificate(blocks[1]).publicKey), 'the intermediate signed the leaf');
  await opensslVerifyChain(rootPemPath, dl.text);

  issued = {
    client: c, order: done, orderUrl, challengeUrl: ch.url, certDer: new Uint8Array(leaf.raw),
    certKey: await accountKeyFromCryptoKeyPair(certKeys),
  };
});

test('serials come from at least 120 random bits', () => {
  const seen = new Set<string>();
  let max = 0;
  for (let i = 0; i < 256; i++) {
    const hex = Buffer.from(randomSerial()).toString('hex');
    seen.add(hex);
    max = Math.max(max, bitLength(hex));
    assert.ok(bitLength(hex) >= 100, `serial ${hex} is short`);
  }
  assert.equal(seen.size, 256);
  assert.ok(max >= 120, `the longest of 256 serials has ${max} bits`);
});

test('POST {} to an already valid challenge returns the challenge, not an error', async () => {
  const { client: c, challengeUrl } = requireIssued();
  const res = await unchanged('answering a valid challenge', () => c.respondChallenge(challengeUrl));
  assertOk(res);
  const ch = asChallenge(res.body);
  assert.equal(ch.status, 'valid');
  assert.equal(ch.url, challengeUrl);
});

test('newAccount: existing key, onlyReturnExisting, invalid and unsupported contacts', async () => {
  const { client: first } = requireIssued();
  const c = await client();
  const again = await unchanged('newAccount with an existing key', () => c.newAccount(first.account!.key, { termsOfServiceAgreed: true }));
  assertOk(again, 200);
  assert.equal(header(again, 'location'), first.account!.url);
  assert.equal(asAccount(again.body).status, 'valid');

  const onlyExisting = await unchanged('onlyReturnExisting with the existing key', () => c.newAccount(first.account!.key, { onlyReturnExisting: true }));
  assertOk(onlyExisting, 200);
  assert.equal(header(onlyExisting, 'location'), first.account!.url);

  const unknown = await generateAccountKey('ES256');
  const res = await unchanged('onlyReturnExisting with an unknown key', () => c.newAccount(unknown, { onlyReturnExisting: true }));
  assertProblem(res, 'accountDoesNotExist', 400);
  assert.equal(header(res, 'location'), undefined);

  const bad = await unchanged('an invalid mailto contact', () => c.newAccount(unknown, { termsOfServiceAgreed: true, contact: ['mailto:not-an-email'] }));
  assertProblem(bad, 'invalidContact', 400);
  const tel = await unchanged('a tel: contact', () => c.newAccount(unknown, { termsOfServiceAgreed: true, contact: ['tel:+15551234567'] }));
  assertProblem(tel, 'unsupportedContact', 400);
});

test('account update and deactivation; a deactivated account is refused', async () => {
  const c = await clientWithAccount();
  const url = c.account!.url;
  const id = lastSegment(url);

  const updated = await c.post(url, { contact: ['mailto:new@example.com'] });
  assertOk(updated);
  assert.deepEqual(asAccount(updated.body).contact, ['mailto:new@example.com']);
  assert.equal(row('accounts', id).contact, JSON.stringify(['mailto:new@example.com']));

  const badUpdate = await unchanged('an invalid contact update', () => c.post(url, { contact: ['mailto:a@b@c'] }));
  assertProblem(badUpdate, 'invalidContact', 400);

  const read = await unchanged('POST-as-GET account', () => c.post(url, ''));
  assertOk(read);
  assert.deepEqual(asAccount(read.body).contact, ['mailto:new@example.com']);

  const deactivated = await c.post(url, { status: 'deactivated' });
  assertOk(deactivated);
  assert.equal(asAccount(deactivated.body).status, 'deactivated');
  assert.equal(row('accounts', id).status, 'deactivated');

  // RFC 8555 §7.3.6: "If a server receives a POST or POST-as-GET from a deactivated account, it
  // MUST return an error response with status code 401 (Unauthorized) and type unauthorized".
  assertProblem(await unchanged('read by a deactivated account', () => c.post(url, '')), 'unauthorized', 401);
  assertProblem(await unchanged('newOrder by a deactivated account', () => c.newOrder([LOCAL])), 'unauthorized', 401);
  assertProblem(await unchanged('reactivation', () => c.post(url, { status: 'valid' })), 'unauthorized', 401);
  // "...the server MUST NOT accept further requests authorized by that account's key": newAccount
  // with that key must not hand the account back as if it were usable.
  const fresh = await client();
  const again = await unchanged('newAccount with a deactivated key', () => fresh.newAccount(c.account!.key, { termsOfServiceAgreed: true }));
  assertProblem(again, 'unauthorized', 401);
});

test('deactivating an account cancels its pending orders (RFC 8555 §7.3.6, §7.1.6)', async () => {
  const c = await clientWithAccount();
  const res = await c.newOrder([LOCAL]);
  assertOk(res, 201);
  const orderId = lastSegment(header(res, 'location')!);
  const authzId = lastSegment(asOrder(res.body).authorizations[0]);
  assertOk(await c.post(c.account!.url, { status: 'deactivated' }));
  assert.equal(row('authorizations', authzId).status, 'deactivated');
  assert.equal(row('orders', orderId).status, 'invalid', 'an order whose authorization was deactivated can never be issued');
});

test('keyChange: roll over, old key refused, new key works, conflicts and forged inner JWS', async () => {
  const c = await clientWithAccount();
  const url = c.account!.url;
  const id = lastSegment(url);
  const oldKey = c.account!.key;
  const newKey = await generateAccountKey('ES384');

  const rolled = await c.keyChange(newKey);
  assertOk(rolled);
  assert.equal(asAccount(rolled.body).status, 'valid');
  assert.equal(row('accounts', id).thumbprint, newKey.thumbprint);
  assert.equal(c.account!.key, newKey);

  // The old key no longer verifies for this kid: a signature failure, which RFC 8555 §6.2 reports as malformed.
  const old = await unchanged('a request signed by the replaced key', () => c.post(url, '', { key: oldKey }));
  assertProblem(old, 'malformed', 400);
  assertOk(await c.post(url, ''));
  const byOldJwk = await unchanged('newAccount lookup by the replaced key', () => c.newAccount(oldKey, { onlyReturnExisting: true }));
  assertProblem(byOldJwk, 'accountDoesNotExist', 400);
  c.account = { key: newKey, url };

  // A key that another account holds: 409 with that account's Location (RFC 8555 §7.3.5).
  const other = await clientWithAccount();
  const conflict = await unchanged('keyChange to a key in use', () => c.keyChange(other.account!.key));
  assertProblem(conflict, 'malformed', 409);
  assert.equal(header(conflict, 'location'), other.account!.url);
  assert.equal(c.account!.key, newKey);

  const third = await generateAccountKey('ES256');
  const wrongUrl = await unchanged('keyChange with a wrong inner url', () => c.keyChange(third, { innerUrl: c.directory.newOrder }));
  assertProblem(wrongUrl, 'malformed', 400);
  const wrongAccount = await unchanged('keyChange naming another account', () => c.keyChange(third, { innerAccount: other.account!.url }));
  assertProblem(wrongAccount, 'malformed', 400);
  assert.equal(row('accounts', id).thumbprint, newKey.thumbprint, 'the account key is unchanged');
  assertOk(await c.post(url, ''));
});

test('orders list is paged: 2 per page with Link rel="next"', async () => {
  const c = await clientWithAccount();
  const created: string[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await c.newOrder([LOCAL]);
    assertOk(res, 201);
    created.push(header(res, 'location')!);
  }
  const acct = asAccount((await c.post(c.account!.url, '')).body);
  assert.ok(acct.orders);
  const page1 = await c.post(acct.orders, '');
  assertOk(page1);
  const first = asOrdersList(page1.body).orders;
  assert.equal(first.length, 2);
  const next = links(page1, 'next');
  assert.equal(next.length, 1, `one next link: ${String(page1.headers.link)}`);
  const page2 = await c.post(next[0], '');
  assertOk(page2);
  const second = asOrdersList(page2.body).orders;
  assert.equal(second.length, 1);
  assert.deepEqual(links(page2, 'next'), []);
  assert.deepEqual([...first, ...second].sort(), [...created].sort());

  const stranger = await clientWithAccount();
  assertProblem(await stranger.post(acct.orders, ''), 'unauthorized', 403);
});

test('revocation: other account refused, bad reason, by certificate key, then alreadyRevoked', async () => {
  const { client: owner, certDer, certKey } = requireIssued();
  const certId = lastSegment(requireIssued().order.certificate!);
  const stranger = await clientWithAccount();

  const byStranger = await unchanged('revocation by an unrelated account', () => stranger.revoke(certDer, { signWith: 'account' }));
  assertProblem(byStranger, 'unauthorized', 403);
  const badReason = await unchanged('revocation with reason 7', () => stranger.revoke(certDer, { signWith: 'certKey', certKey, reason: 7 }));
  assertProblem(badReason, 'badRevocationReason', 400);

  const revoked = await stranger.revoke(certDer, { signWith: 'certKey', certKey, reason: 1 });
  assertOk(revoked);
  const r = row('certificates', certId);
  assert.equal(r.status, 'revoked');
  assert.equal(r.revocation_reason, 1);

  const twice = await unchanged('a second revocation', () => owner.revoke(certDer, { signWith: 'account', reason: 4 }));
  assertProblem(twice, 'alreadyRevoked', 400);
});

test('revocation by the issuing account succeeds', async () => {
  const c = await clientWithAccount();
  const { certDer } = await issue(c);
  assertOk(await c.revoke(certDer, { signWith: 'account', reason: 0 }));
  assertProblem(await c.revoke(certDer, { signWith: 'account' }), 'alreadyRevoked', 400);
});

test('revocation by an account holding authorizations for every identifier (RFC 8555 §7.6)', async () => {
  const ownerClient = await clientWithAccount();
  const { certDer } = await issue(ownerClient);
  const holder = await clientWithAccount();
  await readyOrder(holder); // holder now has a valid authorization for 127.0.0.1
  assertOk(await holder.revoke(certDer, { signWith: 'account', reason: 0 }));
});

test('GET on a POST-as-GET resource: 405 malformed (RFC 8555 §6.3)', async () => {
  const { client: c, orderUrl, order } = requireIssued();
  for (const url of [orderUrl, order.authorizations[0], order.certificate!, c.account!.url]) {
    const res = await unchanged(`GET ${url}`, () => c.request('GET', url));
    assertProblem(res, 'malformed', 405);
  }
});

test('DNS identifier resolved through the test DNS server, with CN', async () => {
  const c = await clientWithAccount();
  const name = 'proto.acme.test';
  const res = await c.newOrder([{ type: 'dns', value: name }, LOCAL]);
  assertOk(res, 201);
  const orderUrl = header(res, 'location')!;
  const order = asOrder(res.body);
  assert.equal(order.authorizations.length, 2);
  await completeHttp01(c, order, responder);
  const ready = asOrder((await c.poll(orderUrl, (b) => asOrder(b).status === 'ready')).body);
  const keys = await generateCsrKey('RSA2048');
  assertOk(await c.finalize(ready.finalize, await buildCsr({ keys, commonName: name, dnsNames: [name], ipAddresses: ['127.0.0.1'] })));
  const valid = asOrder((await c.poll(orderUrl, (b) => asOrder(b).status === 'valid')).body);
  const dl = await c.downloadCert(valid.certificate!);
  assertOk(dl);
  const leaf = new X509Certificate(splitPem(dl.text)[0]);
  assert.equal(leaf.subject, `CN=${name}`);
  assert.deepEqual(leaf.subjectAltName?.split(', ').sort(), [`DNS:${name}`, 'IP Address:127.0.0.1'].sort());
  assert.ok(dns.queries().some((q) => q.name === name), 'the CA resolved the name through the test DNS server');
  await opensslVerifyChain(rootPemPath, dl.text);
});

test('JWS errors are refused and change nothing', async (t) => {
  const { client: c } = requireIssued();
  const accountUrl = c.account!.url;

  await t.test('alg none: badSignatureAlgorithm with the accepted algorithms', async () => {
    const res = await unchanged('alg none', () => c.post(accountUrl, '', { alg: 'none' }));
    const p = assertProblem(res, 'badSignatureAlgorithm', 400);
    assert.ok(Array.isArray(p.algorithms) && p.algorithms.length > 0, 'the problem lists "algorithms" (RFC 8555 §6.2)');
    assert.ok(p.algorithms.includes('ES256'));
    assert.ok(!p.algorithms.includes('none'));
  });

  await t.test('HS256: badSignatureAlgorithm', async () => {
    const res = await unchanged('HS256', () => c.newOrder([LOCAL], { alg: 'HS256' }));
    const p = assertProblem(res, 'badSignatureAlgorithm', 400);
    assert.ok(Array.isArray(p.algorithms) && !p.algorithms.some((a) => a.startsWith('HS')));
  });

  await t.test('"url" that is not the request URL: unauthorized', async () => {
    const res = await unchanged('wrong url', () => c.newOrder([LOCAL], { url: accountUrl }));
    assertProblem(res, 'unauthorized', 403);
  });

  await t.test('reused nonce: badNonce, and its fresh Replay-Nonce works', async () => {
    const nonce = await c.newNonce();
    assertOk(await c.post(accountUrl, '', { nonce }));
    const replay = await unchanged('replayed nonce', () => c.newOrder([LOCAL], { nonce }));
    assertProblem(replay, 'badNonce', 400);
    const fresh = header(replay, 'replay-nonce')!;
    const retry = await c.post(accountUrl, '', { nonce: fresh });
    assertOk(retry);
    assertProblem(await unchanged('missing nonce', () => c.post(accountUrl, '', { nonce: null })), 'badNonce', 400);
    assertProblem(await unchanged('made-up nonce', () => c.post(accountUrl, '', { nonce: 'AAAAAAAAAAAAAAAAAAAAAA' })), 'badNonce', 400);
  });

  await t.test('unknown kid: accountDoesNotExist', async () => {
    const key = await generateAccountKey('ES256');
    const res = await unchanged('unknown kid', () => c.newOrder([LOCAL], { key, kid: `${origin}/acme/account/AAAAAAAAAAAAAAAA` }));
    assertProblem(res, 'accountDoesNotExist', 400);
  });

  await t.test('"jwk" where "kid" is required: malformed', async () => {
    const res = await unchanged('jwk on newOrder', () => c.newOrder([LOCAL], { jwk: true, kid: null }));
    assertProblem(res, 'malformed', 400);
  });

  await t.test('both "jwk" and "kid": malformed', async () => {
    const res = await unchanged('jwk and kid', () => c.newOrder([LOCAL], { jwk: true, kid: accountUrl }));
    assertProblem(res, 'malformed', 400);
  });

  await t.test('wrong Content-Type: malformed with 415', async () => {
    const res = await unchanged('application/json', () => c.newOrder([LOCAL], { contentType: 'application/json' }));
    assertProblem(res, 'malformed', 415);
  });

  await t.test('garbage body: malformed', async () => {
    const res = await unchanged('garbage', () => c.post(c.directory.newOrder, '', { rawBody: 'this is {not a JWS' }));
    assertProblem(res, 'malformed', 400);
    const jws = await c.jws(c.directory.newOrder, { identifiers: [LOCAL] });
    const tampered = JSON.stringify({ ...jws, payload: Buffer.from('{"identifiers":[{"type":"ip","value":"10.0.0.1"}]}').toString('base64url') });
    assertProblem(await unchanged('tampered payload', () => c.post(c.directory.newOrder, '', { rawBody: tampered })), 'malformed', 400);
  });

  await t.test('RSA 1024 account key: badPublicKey', async () => {
    const weak = await generateAccountKey('RS256', 1024);
    const fresh = await client();
    const res = await unchanged('RSA 1024 newAccount', () => fresh.newAccount(weak, { termsOfServiceAgreed: true }));
    assertProblem(res, 'badPublicKey', 400);
    assert.equal(fresh.account, null);
  });
});

test('finalize errors: not ready, foreign name, bad signature, account key', async () => {
  const c = await clientWithAccount();
  const created = await c.newOrder([LOCAL]);
  assertOk(created, 201);
  const orderUrl = header(created, 'location')!;
  const orderId = lastSegment(orderUrl);
  const order = asOrder(created.body);
  const keys = await generateCsrKey('P-256');
  const goodCsr = await buildCsr({ keys, ipAddresses: ['127.0.0.1'] });

  const early = await unchanged('finalize of a pending order', () => c.finalize(order.finalize, goodCsr));
  assertProblem(early, 'orderNotReady', 403);
  assert.equal(row('orders', orderId).status, 'pending');

  await completeHttp01(c, order, responder);
  await c.poll(orderUrl, (b) => asOrder(b).status === 'ready');

  const extraCsr = await buildCsr({ keys, ipAddresses: ['127.0.0.1'], dnsNames: ['extra.example.com'] });
  const extra = await unchanged('CSR with an extra name', () => c.finalize(order.finalize, extraCsr));
  const p = assertProblem(extra, 'badCSR', 400);
  assert.match(p.detail, /extra\.example\.com/, 'the detail names the extra identifier');
  assert.equal(asOrder((await c.post(orderUrl, '')).body).status, 'ready');
  assert.equal(row('orders', orderId).status, 'ready');

  const extraIpCsr = await buildCsr({ keys, ipAddresses: ['127.0.0.1', '10.1.2.3'] });
  const extraIp = await unchanged('CSR with an extra IP', () => c.finalize(order.finalize, extraIpCsr));
  assert.match(assertProblem(extraIp, 'badCSR', 400).detail, /10\.1\.2\.3/);

  const corrupt = await unchanged('CSR with a bad signature', () => c.finalize(order.finalize, corruptCsrSignature(goodCsr)));
  assertProblem(corrupt, 'badCSR', 400);

  const accountKeys = await cryptoKeyPairFromAccountKey(c.account!.key);
  const withAccountKey = await buildCsr({ keys: accountKeys, ipAddresses: ['127.0.0.1'] });
  assertProblem(await unchanged('CSR with the account key', () => c.finalize(order.finalize, withAccountKey)), 'badCSR', 400);
  assert.equal(row('orders', orderId).status, 'ready');

  // The order can still be finalized correctly afterwards.
  assertOk(await c.finalize(order.finalize, goodCsr));
  const valid = asOrder((await c.poll(orderUrl, (b) => asOrder(b).status === 'valid')).body);
  assert.ok(valid.certificate);
  assertProblem(await unchanged('a second finalize', () => c.finalize(order.finalize, goodCsr)), 'orderNotReady', 403);
});

