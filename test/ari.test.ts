import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { startServer, type RunningServer } from '../server/server.js';
import { createApiToken } from '../server/admin/api-tokens.js';
import { TestDnsServer } from './support/dns-server.js';
import { freePorts } from './support/ports.js';
import {
  AcmeTestClient, asAuthorization, asOrder, asProblem, buildCsr, generateAccountKey, generateCsrKey, header, Http01Responder,
  splitPem, type AcmeOrder, type AcmeResponse, type Identifier,
} from './support/acme-test-client.js';
import { teardown } from './support/teardown.js';

/*
 * RFC 9773 (ACME Renewal Information) on an in-process server: the renewalInfo resource and its
 * certID parsing, the suggested window, operator "renew now" through the admin API with every
 * selector, newOrder "replaces" (duplicate-limit exemption, alreadyReplaced, another account's
 * certificate) and the renew-now-pending metric. Tests run in file order and share one server;
 * every certificate issued here is recorded in `known`, so each selector's expected result is
 * computed from the test's own bookkeeping rather than from the server.
 */

const ERR = 'urn:ietf:params:acme:error:';
const ZONE = 'ari.test';
const HOUR = 3_600_000;

let tmp: string;
let server: RunningServer;
let responder: Http01Responder;
let dns: TestDnsServer;
let rootPem: string;
let origin: string;
let adminToken: string;
const clients: AcmeTestClient[] = [];
let accountA: AcmeTestClient;
let accountB: AcmeTestClient;
let accountTeam: AcmeTestClient;

interface Known {
  serial: string;
  certId: string;
  accountId: string;
  names: string[];
  issuerId: string;
  createdAfter: number;
  scope: string;
  chainPem: string;
  leaf: X509Certificate;
}
/** Every certificate this file issued, by serial (lower-case hex, no sign padding). */
const known = new Map<string, Known>();
/** Serials an operator has asked to renew now. */
const marked = new Set<string>();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const lastSegment = (url: string): string => url.slice(url.lastIndexOf('/') + 1);
const normSerial = (hex: string): string => hex.toLowerCase().replace(/^(?:00)+(?=..)/, '');

/** The certID computed independently of the server and the agent: AKI from the issuer's SKI bytes. */
function certIdFor(leaf: X509Certificate, issuerPem: string): string {
  // The leaf's AKI is the issuer's subjectKeyIdentifier; read it from the issuer through openssl-compatible parsing.
  const issuer = new X509Certificate(issuerPem);
  const ski = skiOf(issuer);
  const hex = normSerial(leaf.serialNumber);
  const bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  const der = bytes[0] & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
  return `${ski.toString('base64url')}.${der.toString('base64url')}`;
}

/** subjectKeyIdentifier of a certificate, found by its OID in the DER (04 14 <20 bytes> after 2.5.29.14). */
function skiOf(cert: X509Certificate): Buffer {
  const der = cert.raw;
  const oid = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x0e]);
  const at = der.indexOf(oid);
  assert.ok(at >= 0, 'the issuer has a subjectKeyIdentifier');
  // OID, then OCTET STRING (extnValue) wrapping OCTET STRING (the key id).
  let i = at + oid.length;
  assert.equal(der[i], 0x04);
  i += 2;
  assert.equal(der[i], 0x04);
  const len = der[i + 1];
  return der.subarray(i + 2, i + 2 + len);
}

async function client(): Promise<AcmeTestClient> {
  const c = await AcmeTestClient.connect(server.directoryUrl, rootPem);
  clients.push(c);
  return c;
}

async function clientWithAccount(eab?: { keyId: string; hmacKey: string }): Promise<AcmeTestClient> {
  const c = await client();
  const key = await generateAccountKey('ES256');
  const res = eab ? await c.newAccountWithEab(key, eab) : await c.newAccount(key);
  assert.equal(res.status, 201, res.text);
  return c;
}

const accountIdOf = (c: AcmeTestClient): string => lastSegment(c.account!.url);

/** POST-as-GET until `until` holds; 50 ms between polls (faster than Retry-After, for test speed), bounded. */
async function fastPoll(c: AcmeTestClient, url: string, until: (b: unknown) => boolean, timeoutMs = 15_000): Promise<AcmeResponse> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await c.post(url, '');
    assert.ok(res.status < 400, `polling ${url}: ${res.status} ${res.text}`);
    if (until(res.body)) return res;
    const status = (res.body as { status?: string }).status;
    if (status === 'invalid') throw new Error(`polling ${url}: invalid: ${res.text}`);
    if (Date.now() > deadline) throw new Error(`polling ${url}: not done in ${timeoutMs} ms: ${res.text}`);
    await sleep(50);
  }
}

function identifiersOf(names: string[]): Identifier[] {
  return names.map((n) => (/^[\d.]+$/.test(n) ? { type: 'ip', value: n } : { type: 'dns', value: n }));
}

/** newOrder (optionally with "replaces"); returns the raw response. */
function newOrder(c: AcmeTestClient, names: string[], extra: Record<string, string> = {}): Promise<AcmeResponse> {
  return c.newOrder(identifiersOf(names), {}, extra);
}

/** Completes a created order (http-01, finalize, download) and records the certificate in `known`. */
async function completeOrder(c: AcmeTestClient, created: AcmeResponse, names: string[]): Promise<Known> {
  assert.equal(created.status, 201, created.text);
  const orderUrl = header(created, 'location')!;
  const order = asOrder(created.body);
  for (const authzUrl of order.authorizations) {
    const authz = asAuthorization((await c.getAuthz(authzUrl)).body);
    if (authz.status === 'valid') continue;
    const ch = authz.challenges.find((x) => x.type === 'http-01')!;
    responder.set(ch.token, c.keyAuthorization(ch.token));
    const r = await c.respondChallenge(ch.url);
    assert.equal(r.status, 200, r.text);
    await fastPoll(c, authzUrl, (b) => asAuthorization(b).status === 'valid');
  }
  const ready = asOrder((await fastPoll(c, orderUrl, (b) => asOrder(b).status === 'ready')).body);
  const keys = await generateCsrKey('P-256');
  const ids = identifiersOf(names);
  const csr = await buildCsr({ keys, dnsNames: ids.filter((i) => i.type === 'dns').map((i) => i.value), ipAddresses: ids.filter((i) => i.type === 'ip').map((i) => i.value) });
  const createdAfter = Date.now();
  const fin = await c.finalize(ready.finalize, csr);
  assert.equal(fin.status, 200, fin.text);
  const valid: AcmeOrder = asOrder((await fastPoll(c, orderUrl, (b) => asOrder(b).status === 'valid')).body);
  const dl = await c.downloadCert(valid.certificate!);
  assert.equal(dl.status, 200, dl.text);
  const blocks = splitPem(dl.text);
  const leaf = new X509Certificate(blocks[0]);
  const k: Known = {
    serial: normSerial(leaf.serialNumber), certId: certIdFor(leaf, blocks[1]), accountId: accountIdOf(c), names,
    issuerId: createHash('sha256').update(new X509Certificate(blocks[1]).raw).digest('hex'), createdAfter,
    scope: c === accountTeam ? 'team' : 'default', chainPem: dl.text, leaf,
  };
  known.set(k.serial, k);
  return k;
}

async function issue(c: AcmeTestClient, names: string[], extra: Record<string, string> = {}): Promise<Known> {
  return completeOrder(c, await newOrder(c, names, extra), names);
}

async function renewalInfo(certId: string): Promise<AcmeResponse> {
  const c = clients[0];
  return c.request('GET', `${origin}/acme/renewal-info/${certId}`);
}

async function windowOf(certId: string): Promise<{ start: number; end: number; retryAfter: string | undefined }> {
  const res = await renewalInfo(certId);
  assert.equal(res.status, 200, `renewalInfo ${certId}: ${res.text}`);
  const body = res.body as { suggestedWindow?: { start?: string; end?: string } };
  const start = Date.parse(body.suggestedWindow?.start ?? '');
  const end = Date.parse(body.suggestedWindow?.end ?? '');
  assert.ok(Number.isFinite(start) && Number.isFinite(end) && start < end, `window ${res.text}`);
  return { start, end, retryAfter: header(res, 'retry-after') };
}

async function admin(method: string, p: string, body?: unknown): Promise<AcmeResponse> {
  return clients[0].request(method, `${origin}${p}`, {
    headers: { Authorization: `Bearer ${adminToken}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

interface RenewNowAnswer { selected: number; serials: string[]; logIndex: number }

async function renewNow(selector: Record<string, unknown>): Promise<RenewNowAnswer> {
  const res = await admin('POST', '/admin/v1/certificates/renew-now', { selector, reason: 'test' });
  assert.equal(res.status, 200, `renew-now ${JSON.stringify(selector)}: ${res.text}`);
  return res.body as RenewNowAnswer;
}

async function metric(name: string): Promise<number> {
  const res = await clients[0].request('GET', `${origin}/metrics`);
  assert.equal(res.status, 200);
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(res.text);
  assert.ok(m, `metric ${name} not found`);
  return Number(m[1]);
}

function assertProblem(res: AcmeResponse, type: string, status: number): void {
  assert.equal(res.status, status, `expected ${status} ${type}, got ${res.status} ${res.text}`);
  assert.match(header(res, 'content-type') ?? '', /^application\/problem\+json/);
  assert.equal(asProblem(res.body).type, `${ERR}${type}`, res.text);
}

/** Every known certificate's window is in the past exactly when it was marked. */
async function assertWindowsMatchMarks(): Promise<void> {
  const now = Date.now();
  for (const k of known.values()) {
    const w = await windowOf(k.certId);
    if (marked.has(k.serial)) assert.ok(w.end < now, `${k.names.join(',')} (${k.serial}) was selected: its window must be in the past, is ${new Date(w.start).toISOString()}..${new Date(w.end).toISOString()}`);
    else assert.ok(w.start > now, `${k.names.join(',')} (${k.serial}) was not selected: its window must be in the future, is ${new Date(w.start).toISOString()}`);
  }
}

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-ari-'));
  const dataDir = path.join(tmp, 'data');
  const configFile = path.join(tmp, 'config.yaml');
  const policyFile = path.join(tmp, 'policy.yaml');
  await fsp.writeFile(configFile, 'validation:\n  retryDelay: 200ms\n  timeout: 3s\n');
  await fsp.writeFile(policyFile, [
    'defaultScope: default',
    'scopes:',
    '  default:',
    '    dns: {allow: ["*"]}',
    '    ip: {allow: [0.0.0.0/0, "::/0"]}',
    '  team:',
    `    dns: {allow: [.team.${ZONE}]}`,
    'rateLimits:',
    '  duplicateCertificates: {count: 1, window: 1h}',
    '',
  ].join('\n'));
  const [httpsPort, http01Port] = await freePorts(2);
  dns = new TestDnsServer({ suffixes: [ZONE], address: '127.0.0.1' });
  await dns.start();
  responder = new Http01Responder();
  await responder.start(http01Port);
  const config = loadConfig({
    ACME_CA_CONFIG: configFile, ACME_CA_POLICY_FILE: policyFile, ACME_CA_DATA_DIR: dataDir,
    ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`, ACME_CA_HTTP01_PORT: String(http01Port), ACME_CA_DNS_RESOLVER: dns.resolverAddress,
  }, tmp);
  server = await startServer(config, createLogger('silent'));
  origin = new URL(server.directoryUrl).origin;
  rootPem = await fsp.readFile(path.join(dataDir, 'root.pem'), 'utf8');
  adminToken = (await createApiToken(server.store, { name: 'ari-test', scopes: ['admin'] }, Date.now())).token;
  accountA = await clientWithAccount();
  accountB = await clientWithAccount();
  const eab = await admin('POST', '/admin/v1/eab-keys', { scope: 'team' });
  assert.equal(eab.status, 201, eab.text);
  accountTeam = await clientWithAccount(eab.body as { keyId: string; hmacKey: string });
});

after(() => teardown({ clients, server, responder, dns, tmp }));

test('the directory advertises renewalInfo', async () => {
  const res = await clients[0].request('GET', server.directoryUrl);
  assert.equal(res.status, 200);
  assert.equal((res.body as { renewalInfo?: string }).renewalInfo, `${origin}/acme/renewal-info`);
});

test('a fresh 24-hour certificate: the window lies in the middle third, differs per certificate, Retry-After set', async () => {
  // Two certificates finalized together; repeated (new names) in the rare case they straddle a second.
  let pair: [Known, Known] | null = null;
  for (let attempt = 0; attempt < 5 && !pair; attempt++) {
    const names = [`w${attempt}a.${ZONE}`, `w${attempt}b.${ZONE}`];
    const [a, b] = await Promise.all(names.map((n) => issue(accountA, [n])));
    if (Math.floor(Date.parse(a.leaf.validFrom) / 1000) === Math.floor(Date.parse(b.leaf.validFrom) / 1000)) pair = [a, b];
  }
  assert.ok(pair, 'could not issue two certificates within one second in 5 attempts');
  const windows = [];
  for (const k of pair) {
    const notBefore = Date.parse(k.leaf.validFrom);
    const notAfter = Date.parse(k.leaf.validTo);
    const life = notAfter - notBefore;
    assert.ok(Math.abs(life - 24 * HOUR) <= 2000, `24-hour certificate: ${k.leaf.validFrom} .. ${k.leaf.validTo}`);
    const w = await windowOf(k.certId);
    // The certificate's times have one-second precision; the server works from the stored milliseconds.
    assert.ok(w.start >= notBefore + life / 3, `window start ${new Date(w.start).toISOString()} is before 1/3 of ${k.leaf.validFrom}..${k.leaf.validTo}`);
    assert.ok(w.end <= notBefore + (2 * life) / 3 + 1000, `window end ${new Date(w.end).toISOString()} is after 2/3 of the life`);
    assert.match(w.retryAfter ?? '', /^\d+$/, 'Retry-After is delta-seconds');
    assert.ok(Number(w.retryAfter) >= 60 && Number(w.retryAfter) <= 6 * 3600, `Retry-After ${w.retryAfter}`);
    windows.push(w);
    // The same request again gives the same window: it is a function of the certificate.
    assert.deepEqual((await windowOf(k.certId)).start, w.start);
  }
  assert.notEqual(windows[0].start, windows[1].start, 'two certificates issued in the same second get different windows');
});

test('malformed and unknown certIDs give malformed problem documents', async () => {
  const k = [...known.values()][0];
  const [keyId, serial] = k.certId.split('.');
  const cases: Array<[string, string, number]> = [
    ['no dot', 'nodotatall', 400],
    ['two dots', `${keyId}.${serial}.${serial}`, 400],
    ['bad base64url', `${keyId}.ab+c`, 400],
    ['padding', `${keyId}.${serial}=`, 400],
    ['empty serial', `${keyId}.`, 400],
    ['empty key id', `.${serial}`, 400],
    ['negative serial', `${keyId}.${Buffer.from([0x80, 0x01, 0x02]).toString('base64url')}`, 400],
    ['unknown certificate', `${keyId}.${Buffer.concat([Buffer.from([0x01]), randomBytes(15)]).toString('base64url')}`, 404],
    ['known serial, wrong issuer key id', `${Buffer.from(randomBytes(20)).toString('base64url')}.${serial}`, 404],
  ];
  for (const [what, certId, status] of cases) {
    const res = await renewalInfo(certId);
    assert.equal(res.status, status, `${what} (${certId}): ${res.status} ${res.text}`);
    assert.match(header(res, 'content-type') ?? '', /^application\/problem\+json/, what);
    assert.equal(asProblem(res.body).type, `${ERR}malformed`, `${what}: ${res.text}`);
  }
});

test('renew-now: each selector reports its count and moves exactly the selected windows into the past', async () => {
  const t0 = Date.now();
  await sleep(5);
  const s1 = await issue(accountA, [`sel1.${ZONE}`]);
  await issue(accountA, [`sel2.${ZONE}`]);
  await issue(accountB, [`acct-b.${ZONE}`]);
  await issue(accountA, [`x.suffix.${ZONE}`]);
  await issue(accountA, [`y.suffix.${ZONE}`, `z.other.${ZONE}`]);
  await issue(accountA, [`notsuffix.${ZONE}`]);
  await issue(accountTeam, [`svc.team.${ZONE}`]);
  const rotated = await admin('POST', '/admin/v1/intermediates/rotate');
  assert.equal(rotated.status, 200, rotated.text);
  const { active, previous } = rotated.body as { active: string; previous: string };
  assert.notEqual(active, previous);
  await issue(accountA, [`after-rotation.${ZONE}`]);
  await issue(accountB, [`after-rotation-b.${ZONE}`]);
  await assertWindowsMatchMarks();

  const selectors: Array<[string, Record<string, unknown>, (k: Known) => boolean]> = [
    ['serial', { serials: [s1.serial.toUpperCase()] }, (k) => k.serial === s1.serial],
    ['account', { account: accountIdOf(accountB) }, (k) => k.accountId === accountIdOf(accountB)],
    ['identifierSuffix', { identifierSuffix: `.suffix.${ZONE}` }, (k) => k.names.some((n) => n.endsWith(`.suffix.${ZONE}`))],
    ['scope', { scope: 'team' }, (k) => k.scope === 'team'],
    ['issuer', { issuer: active.slice(0, 16) }, (k) => k.issuerId === active],
    ['issuedBefore', { issuedBefore: new Date(t0).toISOString() }, (k) => k.createdAfter < t0],
  ];
  for (const [what, selector, pred] of selectors) {
    const expected = [...known.values()].filter(pred).map((k) => k.serial).sort();
    assert.ok(expected.length > 0, `${what}: the fixture selects something`);
    assert.ok(expected.length < known.size, `${what}: the fixture leaves something unselected`);
    const r = await renewNow(selector);
    assert.equal(r.selected, expected.length, `${what}: count`);
    assert.deepEqual([...r.serials].map(normSerial).sort(), expected, `${what}: serials`);
    for (const s of expected) marked.add(s);
    // The operator action is in the issuance log with its selector and serials.
    const [entry] = await server.store.getLogEntries(r.logIndex, r.logIndex + 1);
    assert.equal(entry.eventType, 'ari.renew_now');
    const body = JSON.parse(Buffer.from(entry.body).toString('utf8')) as { type: string; serials: string[]; count: number; selector: Record<string, unknown> };
    assert.equal(body.type, 'ari.renew_now');
    assert.equal(body.count, expected.length);
    assert.deepEqual([...body.serials].sort(), expected);
    await assertWindowsMatchMarks();
  }
  assert.ok([...known.values()].some((k) => !marked.has(k.serial)), 'some certificates were never selected');

  // A renew-now window is in the past, so RFC 9773 clients renew at their next check.
  const w = await windowOf(s1.certId);
  assert.ok(w.end <= Date.now() - 30 * 60_000);

  const empty = await admin('POST', '/admin/v1/certificates/renew-now', { selector: {} });
  assert.equal(empty.status, 400, `an empty selector is refused: ${empty.text}`);
  const noToken = await clients[0].request('POST', `${origin}/admin/v1/certificates/renew-now`, { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ selector: { scope: 'team' } }) });
  assert.equal(noToken.status, 401);
});

test('replaces: shown on the order, exempt from the duplicate limit, alreadyReplaced, other account unauthorized', async () => {
  const names = [`dup.${ZONE}`];
  const first = await issue(accountA, names);

  // duplicateCertificates is {count: 1, window: 1h}: a plain second order for the same names is refused.
  const plain = await newOrder(accountA, names);
  assertProblem(plain, 'rateLimited', 429);
  assert.match(header(plain, 'retry-after') ?? '', /^\d+$/);

  const replacing = await newOrder(accountA, names, { replaces: first.certId });
  assert.equal(replacing.status, 201, `an order with replaces is exempt from the duplicate limit: ${replacing.text}`);
  assert.equal((replacing.body as { replaces?: string }).replaces, first.certId, 'the new order shows "replaces"');
  const second = await completeOrder(accountA, replacing, names);
  const orderAgain = await accountA.post(header(replacing, 'location')!, '');
  assert.equal((orderAgain.body as { replaces?: string }).replaces, first.certId, 'the valid order still shows "replaces"');
  assert.notEqual(second.serial, first.serial);

  assertProblem(await newOrder(accountA, names, { replaces: first.certId }), 'alreadyReplaced', 409);

  // A second replacement while the first replacing order is still pending.
  const pending = await newOrder(accountA, names, { replaces: second.certId });
  assert.equal(pending.status, 201, pending.text);
  assertProblem(await newOrder(accountA, names, { replaces: second.certId }), 'alreadyReplaced', 409);

  assertProblem(await newOrder(accountB, names, { replaces: second.certId }), 'unauthorized', 403);
  assertProblem(await newOrder(accountA, [`unrelated.${ZONE}`], { replaces: first.certId }), 'malformed', 400);
  assertProblem(await newOrder(accountA, names, { replaces: 'not-a-cert-id' }), 'malformed', 400);
});

test('acme_ca_renew_now_pending counts selected certificates until they are replaced', async () => {
  const m1 = await issue(accountA, [`m1.${ZONE}`]);
  const m2 = await issue(accountA, [`m2.${ZONE}`]);
  const before = await metric('acme_ca_renew_now_pending');
  const r = await renewNow({ serials: [m1.serial, m2.serial] });
  assert.equal(r.selected, 2);
  assert.equal(await metric('acme_ca_renew_now_pending'), before + 2);
  await issue(accountA, m1.names, { replaces: m1.certId });
  assert.equal(await metric('acme_ca_renew_now_pending'), before + 1);
  await issue(accountA, m2.names, { replaces: m2.certId });
  assert.equal(await metric('acme_ca_renew_now_pending'), before);
});

// The operator selector and the certificate search (cert list, log API) agree on suffixes.
test('renew-now identifierSuffix ".name" selects only names below it, not the name itself', async () => {
  const apex = await issue(accountA, [`apex.${ZONE}`]);
  const below = await issue(accountA, [`www.apex.${ZONE}`]);
  const r = await renewNow({ identifierSuffix: `.apex.${ZONE}` });
  for (const s of r.serials) marked.add(normSerial(s));
  assert.ok(r.serials.map(normSerial).includes(below.serial), 'www.apex is below .apex');
  assert.ok(!r.serials.map(normSerial).includes(apex.serial), `".apex.${ZONE}" also selected the certificate for apex.${ZONE} itself (serials ${r.serials.join(', ')})`);
});

// An abandoned replacing order keeps its stored status 'pending' after it expires; it must not hold
// the claim on the certificate it meant to replace.
test('an expired, abandoned replacing order does not block "replaces" for good', async () => {
  const dir = await fsp.mkdtemp(path.join(tmp, 'clock-'));
  const configFile = path.join(dir, 'config.yaml');
  await fsp.writeFile(configFile, 'acme:\n  orderLifetime: 1h\nvalidation:\n  retryDelay: 200ms\n  timeout: 3s\n');
  let offset = 0;
  const [httpsPort] = await freePorts(1);
  const config = loadConfig({
    ACME_CA_CONFIG: configFile, ACME_CA_DATA_DIR: path.join(dir, 'data'), ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`,
    ACME_CA_HTTP01_PORT: String(responder.port), ACME_CA_DNS_RESOLVER: dns.resolverAddress,
  }, dir);
  const clocked = await startServer(config, createLogger('silent'), () => Date.now() + offset);
  const c = await AcmeTestClient.connect(clocked.directoryUrl, await fsp.readFile(path.join(dir, 'data', 'root.pem'), 'utf8'));
  try {
    assert.equal((await c.newAccount(await generateAccountKey('ES256'))).status, 201);
    const names = [`clock.${ZONE}`];
    const first = await completeOrder(c, await newOrder(c, names), names);
    known.delete(first.serial);
    const abandoned = await newOrder(c, names, { replaces: first.certId });
    assert.equal(abandoned.status, 201, abandoned.text);
    offset = 2 * HOUR; // the abandoned order (1h lifetime) has expired; the 24h certificate has not
    c.resetConnections();
    const shown = await c.post(header(abandoned, 'location')!, '');
    assert.equal((shown.body as { status: string }).status, 'invalid', 'the expired order is shown as invalid');
    const retry = await newOrder(c, names, { replaces: first.certId });
    assert.equal(retry.status, 201, `replacing after the earlier replacing order expired: ${retry.status} ${retry.text}`);
  } finally {
    c.close();
    await clocked.close();
  }
});

// A selected certificate that was replaced before the operator's request is not pending.
test('acme_ca_renew_now_pending does not count a selected certificate that was already replaced', async () => {
  const names = [`sup.${ZONE}`];
  const x = await issue(accountA, names);
  await issue(accountA, names, { replaces: x.certId });
  const before = await metric('acme_ca_renew_now_pending');
  const r = await renewNow({ serials: [x.serial] });
  assert.equal(r.selected, 1, 'the superseded certificate is still valid, so it is selected');
  marked.add(x.serial);
  assert.equal(await metric('acme_ca_renew_now_pending'), before, 'a certificate replaced before the request is not pending');
});
