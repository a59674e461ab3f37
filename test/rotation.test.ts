import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { startServer, type RunningServer } from '../server/server.js';
import { createApiToken } from '../server/admin/api-tokens.js';
import { httpGet } from './support/http.js';
import { freePorts } from './support/ports.js';
import {
  AcmeTestClient, asAuthorization, asOrder, buildCsr, generateAccountKey, generateCsrKey, header, Http01Responder, opensslVerifyChain,
  splitPem, type AcmeResponse,
} from './support/acme-test-client.js';

/*
 * Intermediate rotation under load, in-process: a client keeps issuing (40 orders, 4 at a time,
 * each newOrder → http-01 → finalize → download) while the intermediate is rotated through the
 * admin API. No order may fail; every certificate verifies with openssl against the root using
 * its own downloaded chain; certificates finalized after the rotation come from the new
 * intermediate; both issuers publish CRLs signed by themselves; the rotation is in the issuance
 * log; and renew-now by the old issuer selects exactly what it issued. Then, when the CLI has
 * `intermediate rotate`, a rotation by another process is picked up by the running server.
 */

const TOTAL = 40;
const CONCURRENCY = 4;
const ROTATE_AFTER = 15;
const CLI = fileURLToPath(new URL('../clients/cli/main.js', import.meta.url));

let tmp: string;
let dataDir: string;
let configFile: string;
let rootPemPath: string;
let rootPem: string;
let server: RunningServer;
let responder: Http01Responder;
let client: AcmeTestClient;
let origin: string;
let adminToken: string;

interface Issued { index: number; finalizeAt: number; doneAt: number; chainPem: string; issuerId: string; serial: string }
const issued: Issued[] = [];
const failures: string[] = [];
let rotation: { startedAt: number; doneAt: number; previous: string; active: string } | undefined;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const normSerial = (hex: string): string => hex.toLowerCase().replace(/^(?:00)+(?=..)/, '');

async function fastPoll(url: string, until: (b: unknown) => boolean): Promise<AcmeResponse> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const res = await client.post(url, '');
    if (res.status >= 400) throw new Error(`polling ${url}: ${res.status} ${res.text}`);
    if (until(res.body)) return res;
    if ((res.body as { status?: string }).status === 'invalid') throw new Error(`polling ${url}: invalid: ${res.text}`);
    if (Date.now() > deadline) throw new Error(`polling ${url}: not done: ${res.text}`);
    await sleep(40);
  }
}

async function issueOne(index: number): Promise<Issued> {
  const created = await client.newOrder([{ type: 'ip', value: '127.0.0.1' }]);
  if (created.status !== 201) throw new Error(`newOrder: ${created.status} ${created.text}`);
  const orderUrl = header(created, 'location')!;
  for (const authzUrl of asOrder(created.body).authorizations) {
    const authz = asAuthorization((await client.getAuthz(authzUrl)).body);
    if (authz.status === 'valid') continue;
    const ch = authz.challenges.find((x) => x.type === 'http-01')!;
    responder.set(ch.token, client.keyAuthorization(ch.token));
    const r = await client.respondChallenge(ch.url);
    if (r.status !== 200) throw new Error(`challenge: ${r.status} ${r.text}`);
    await fastPoll(authzUrl, (b) => asAuthorization(b).status === 'valid');
  }
  const ready = asOrder((await fastPoll(orderUrl, (b) => asOrder(b).status === 'ready')).body);
  const keys = await generateCsrKey('P-256');
  const csr = await buildCsr({ keys, ipAddresses: ['127.0.0.1'] });
  const finalizeAt = Date.now();
  const fin = await client.finalize(ready.finalize, csr);
  if (fin.status !== 200) throw new Error(`finalize: ${fin.status} ${fin.text}`);
  const valid = asOrder((await fastPoll(orderUrl, (b) => asOrder(b).status === 'valid')).body);
  const dl = await client.downloadCert(valid.certificate!);
  if (dl.status !== 200) throw new Error(`download: ${dl.status} ${dl.text}`);
  const blocks = splitPem(dl.text);
  return {
    index, finalizeAt, doneAt: Date.now(), chainPem: dl.text,
    issuerId: createHash('sha256').update(new X509Certificate(blocks[1]).raw).digest('hex'),
    serial: normSerial(new X509Certificate(blocks[0]).serialNumber),
  };
}

function exec(file: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000, encoding: 'utf8', env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** GET /crl/<id16>.crl and `openssl crl -CAfile <issuer + root>`; returns openssl's verdict text. */
async function crlVerifies(crlIssuerId: string, verifyWithIssuerId: string): Promise<{ ok: boolean; out: string }> {
  const res = await httpGet(`${origin}/crl/${crlIssuerId.slice(0, 16)}.crl`, { ca: rootPem, timeoutMs: 5000, agent: false });
  assert.equal(res.status, 200, `CRL of ${crlIssuerId.slice(0, 16)}: ${res.status}`);
  assert.equal(res.headers['content-type'], 'application/pkix-crl');
  const der = path.join(tmp, `crl-${crlIssuerId.slice(0, 8)}-${verifyWithIssuerId.slice(0, 8)}.der`);
  const bundle = path.join(tmp, `bundle-${verifyWithIssuerId.slice(0, 8)}.pem`);
  await fsp.writeFile(der, res.body);
  await fsp.writeFile(bundle, (await fsp.readFile(path.join(dataDir, 'issuers', verifyWithIssuerId, 'cert.pem'), 'utf8')) + rootPem);
  const r = await exec('openssl', ['crl', '-inform', 'DER', '-in', der, '-CAfile', bundle, '-noout']);
  const out = r.stdout + r.stderr;
  return { ok: r.code === 0 && /verify OK/.test(out), out };
}

async function renewNowByIssuer(id: string): Promise<string[]> {
  const res = await client.request('POST', `${origin}/admin/v1/certificates/renew-now`, {
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ selector: { issuer: id.slice(0, 16) } }),
  });
  assert.equal(res.status, 200, res.text);
  const body = res.body as { selected: number; serials: string[] };
  assert.equal(body.selected, body.serials.length);
  return body.serials.map(normSerial).sort();
}

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-rotation-'));
  dataDir = path.join(tmp, 'data');
  configFile = path.join(tmp, 'config.yaml');
  await fsp.writeFile(configFile, 'validation:\n  retryDelay: 200ms\n  timeout: 3s\n');
  const [httpsPort, http01Port] = await freePorts(2);
  responder = new Http01Responder();
  await responder.start(http01Port);
  const config = loadConfig({
    ACME_CA_CONFIG: configFile, ACME_CA_DATA_DIR: dataDir, ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`, ACME_CA_HTTP01_PORT: String(http01Port),
  }, tmp);
  server = await startServer(config, createLogger('silent'));
  origin = new URL(server.directoryUrl).origin;
  rootPemPath = path.join(dataDir, 'root.pem');
  rootPem = await fsp.readFile(rootPemPath, 'utf8');
  adminToken = (await createApiToken(server.store, { name: 'rotation-test', scopes: ['admin'] }, Date.now())).token;
  client = await AcmeTestClient.connect(server.directoryUrl, rootPem, { maxSockets: CONCURRENCY + 2 });
  assert.equal((await client.newAccount(await generateAccountKey('ES256'))).status, 201);
});

after(async () => {
  client?.close();
  await server?.close();
  await responder?.close();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

test(`${TOTAL} orders, ${CONCURRENCY} at a time, with an admin-API rotation midway: none fails`, { timeout: 60_000 }, async () => {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < TOTAL) {
      const i = next++;
      try {
        issued.push(await issueOne(i));
      } catch (e) {
        failures.push(`order ${i}: ${(e as Error).message}`);
      }
    }
  };
  const rotator = async (): Promise<void> => {
    const deadline = Date.now() + 45_000;
    while (issued.length + failures.length < ROTATE_AFTER && Date.now() < deadline) await sleep(10);
    const startedAt = Date.now();
    const res = await client.request('POST', `${origin}/admin/v1/intermediates/rotate`, { headers: { Authorization: `Bearer ${adminToken}` } });
    assert.equal(res.status, 200, res.text);
    const body = res.body as { active: string; previous: string };
    rotation = { startedAt, doneAt: Date.now(), ...body };
  };
  await Promise.all([rotator(), ...Array.from({ length: CONCURRENCY }, worker)]);
  assert.deepEqual(failures, [], 'no order failed');
  assert.equal(issued.length, TOTAL);
  assert.ok(rotation);
  assert.notEqual(rotation.active, rotation.previous);
  assert.equal(server.issuers.active().id, rotation.active);
  assert.equal((await fsp.readFile(path.join(dataDir, 'active-issuer'), 'utf8')).trim(), rotation.active);
});

test('certificates from before and after the rotation verify with their own chains; later ones come from the new intermediate', { timeout: 60_000 }, async (t: TestContext) => {
  if (!rotation || issued.length !== TOTAL) { t.skip('the issuance run failed'); return; }
  const r = rotation;
  const before = issued.filter((x) => x.doneAt < r.startedAt);
  const afterRotation = issued.filter((x) => x.finalizeAt > r.doneAt);
  assert.ok(before.length >= ROTATE_AFTER - CONCURRENCY, `certificates completed before the rotation: ${before.length}`);
  assert.ok(afterRotation.length >= 5, `certificates finalized after the rotation: ${afterRotation.length}`);
  for (const x of before) assert.equal(x.issuerId, r.previous, `order ${x.index} (before) was issued by the old intermediate`);
  for (const x of afterRotation) assert.equal(x.issuerId, r.active, `order ${x.index} (after) was issued by the new intermediate`);
  for (const x of issued) assert.ok([r.previous, r.active].includes(x.issuerId));
  for (let i = 0; i < issued.length; i += 4) {
    await Promise.all(issued.slice(i, i + 4).map((x) => opensslVerifyChain(rootPemPath, x.chainPem)));
  }
});

test('both issuers\' CRLs are served and verify against their own issuer only', async (t: TestContext) => {
  if (!rotation) { t.skip('no rotation'); return; }
  // The new issuer's first CRL is signed shortly after the switch (or on first request).
  for (const id of [rotation.previous, rotation.active]) {
    const own = await crlVerifies(id, id);
    assert.ok(own.ok, `CRL of ${id.slice(0, 16)} verifies against its issuer: ${own.out}`);
  }
  const crossed = await crlVerifies(rotation.previous, rotation.active);
  assert.equal(crossed.ok, false, `the old issuer's CRL must not verify against the new issuer: ${crossed.out}`);
});

test('the rotation is in the issuance log, and renew-now by the old issuer selects exactly its certificates', async (t: TestContext) => {
  if (!rotation || issued.length !== TOTAL) { t.skip('the issuance run failed'); return; }
  const events = await server.store.searchLogEvents({ types: ['ca.intermediate.rotated'], limit: 10 });
  assert.equal(events.length, 1, 'one ca.intermediate.rotated entry');
  const body = JSON.parse(Buffer.from(events[0].body).toString('utf8')) as { type: string };
  assert.equal(body.type, 'ca.intermediate.rotated');
  const r = rotation;
  const expectedOld = issued.filter((x) => x.issuerId === r.previous).map((x) => x.serial).sort();
  assert.ok(expectedOld.length > 0 && expectedOld.length < TOTAL);
  assert.deepEqual(await renewNowByIssuer(r.previous), expectedOld);
  const expectedNew = issued.filter((x) => x.issuerId === r.active).map((x) => x.serial).sort();
  assert.deepEqual(await renewNowByIssuer(r.active), expectedNew);
});

test('a rotation by another process (CLI "intermediate rotate") is picked up by the running server', { timeout: 30_000 }, async (t: TestContext) => {
  const help = await exec(process.execPath, [CLI, 'help']);
  if (!/intermediate rotate/.test(help.stdout)) {
    t.skip('the CLI has no "intermediate rotate" yet (clients/cli/main.ts)');
    return;
  }
  const before = server.issuers.active().id;
  const env = { ACME_CA_DATA_DIR: dataDir, ACME_CA_CONFIG: configFile };
  const rotated = await exec(process.execPath, [CLI, 'intermediate', 'rotate', '--json'], env);
  assert.equal(rotated.code, 0, `${rotated.stdout}${rotated.stderr}`);
  const id = (await fsp.readFile(path.join(dataDir, 'active-issuer'), 'utf8')).trim();
  assert.notEqual(id, before);
  const deadline = Date.now() + 5000;
  while (server.issuers.active().id !== id && Date.now() < deadline) await sleep(100);
  assert.equal(server.issuers.active().id, id, 'the server switched to the CLI\'s intermediate within a few seconds');
  const x = await issueOne(TOTAL);
  assert.equal(x.issuerId, id);
  await opensslVerifyChain(rootPemPath, x.chainPem);
  const own = await crlVerifies(id, id);
  assert.ok(own.ok, own.out);
  for (const old of [rotation?.previous, rotation?.active].filter((v): v is string => v !== undefined)) {
    assert.ok((await crlVerifies(old, old)).ok, `the retired issuer ${old.slice(0, 16)} still publishes its CRL`);
  }
  const events = await server.store.searchLogEvents({ types: ['ca.intermediate.rotated'], limit: 10 });
  assert.equal(events.length, rotation ? 2 : 1, 'the CLI rotation is logged too');
});
