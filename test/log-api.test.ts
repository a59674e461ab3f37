import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { createApiToken } from '../server/admin/api-tokens.js';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { parseCheckpoint, type Checkpoint } from '../server/log/checkpoint.js';
import { leafHash, rootFromLeafHashes, verifyConsistency, verifyInclusion } from '../server/log/merkle.js';
import { verifyNote } from '../server/log/note.js';
import { decodeEntryBundle } from '../server/log/tiles.js';
import { canonicalJson } from '../server/log/entry.js';
import { startServer, type RunningServer } from '../server/server.js';
import { TestDnsServer } from './support/dns-server.js';
import { httpGet, jsonBody, type HttpGetResult } from './support/http.js';
import { freePorts } from './support/ports.js';
import {
  AcmeTestClient, asOrder, buildCsr, completeHttp01, generateAccountKey, generateCsrKey, header, Http01Responder, splitPem,
} from './support/acme-test-client.js';
import { teardown } from './support/teardown.js';

/*
 * The issuance log's read API (server/log/routes.ts) against an in-process server: certificates
 * issued and revoked through ACME with the project's test client, then every query is checked
 * against independent recomputation (signatures, proofs and roots verified client-side).
 */

const TOKEN = 'log-api-test-token-7f3c9a';
const ZONE = 'acme.test';

let tmp: string;
let server: RunningServer;
let dns: TestDnsServer;
let responder: Http01Responder;
let base: string;
let skewMs = 0;
const logLines: string[] = [];
const clients: AcmeTestClient[] = [];

interface Issued { serial: string; pem: string; name: string; account: string }
const certs: Issued[] = [];
let accountA: string;
let accountB: string;
let clientA: AcmeTestClient;
/** Checkpoints captured after phase 1 and phase 2 of the issuance. */
let cp1: { note: string; cp: Checkpoint };
let cp2: { note: string; cp: Checkpoint };

interface Res extends HttpGetResult { json: unknown }

async function get(urlPath: string, o: { token?: string | null; headers?: Record<string, string> } = {}): Promise<Res> {
  const headers: Record<string, string> = { ...o.headers };
  const token = o.token === undefined ? TOKEN : o.token;
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  const res = await httpGet(`${base}${urlPath}`, { headers, ca: server.ca.rootPem, agent: false, timeoutMs: 10_000 });
  return { ...res, json: jsonBody(res) };
}

async function getJson<T>(urlPath: string): Promise<T> {
  const res = await get(urlPath);
  assert.equal(res.status, 200, `GET ${urlPath}: ${res.status} ${res.text}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  return res.json as T;
}

function assertProblem(res: Res, status: number, detail?: RegExp): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  const p = res.json as { type: unknown; detail: unknown; status: unknown };
  assert.equal(typeof p.type, 'string');
  assert.equal(p.status, status);
  assert.equal(typeof p.detail, 'string');
  if (detail) assert.match(p.detail as string, detail);
}

const b64 = (s: string): Buffer => Buffer.from(s, 'base64');

interface EntryJson { index: number; leafHash: string; eventType: string; createdAt: string; body: string; entry: Record<string, unknown> | null }
interface CertJson { serial: string; identifiers: Array<{ type: string; value: string }>; account: string; scope: string | null; profile: string | null; status: string; notBefore: string; notAfter: string; issuedAt: string; revokedAt: string | null; logIndex: number }
interface Page<T> { items: T[]; next: string | null }

async function issue(c: AcmeTestClient, name: string): Promise<Issued> {
  const created = await c.newOrder([{ type: 'dns', value: name }]);
  assert.equal(created.status, 201, created.text);
  const url = header(created, 'location')!;
  await completeHttp01(c, asOrder(created.body), responder);
  const ready = asOrder((await c.poll(url, (b) => asOrder(b).status === 'ready')).body);
  const keys = await generateCsrKey('P-256');
  const fin = await c.finalize(ready.finalize, await buildCsr({ keys, dnsNames: [name] }));
  assert.equal(fin.status, 200, fin.text);
  const valid = asOrder((await c.poll(url, (b) => asOrder(b).status === 'valid')).body);
  const dl = await c.downloadCert(valid.certificate!);
  assert.equal(dl.status, 200, dl.text);
  const pem = splitPem(dl.text)[0];
  const serial = new X509Certificate(pem).serialNumber.toLowerCase().replace(/^(?:00)+(?=..)/, '');
  const account = c.account!.url.slice(c.account!.url.lastIndexOf('/') + 1);
  const issued = { serial, pem, name, account };
  certs.push(issued);
  return issued;
}

async function newClient(): Promise<AcmeTestClient> {
  const c = await AcmeTestClient.connect(server.directoryUrl, server.ca.rootPem);
  clients.push(c);
  const res = await c.newAccount(await generateAccountKey('ES256'));
  assert.equal(res.status, 201, res.text);
  return c;
}

async function signedCheckpoint(): Promise<{ note: string; cp: Checkpoint }> {
  await server.publisher.publish();
  const res = await get('/log/checkpoint');
  assert.equal(res.status, 200, res.text);
  return { note: res.text, cp: parseCheckpoint(verifyNote(res.text, server.logKey.vkey).text) };
}

const names = (items: CertJson[]): string[] => items.map((c) => c.identifiers.map((i) => i.value).join(','));

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-log-api-'));
  const [httpsPort, http01Port] = await freePorts(2);
  dns = new TestDnsServer({ suffixes: [ZONE], address: '127.0.0.1' });
  await dns.start();
  responder = new Http01Responder();
  await responder.start(http01Port);
  // One CRL at start-up and none after the revocation within the test, so entry positions are fixed.
  const configFile = path.join(tmp, 'config.yaml');
  await fsp.writeFile(configFile, 'crl:\n  debounce: 10m\n');
  const config = loadConfig({
    ACME_CA_DATA_DIR: path.join(tmp, 'data'),
    ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`,
    ACME_CA_HTTP01_PORT: String(http01Port),
    ACME_CA_DNS_RESOLVER: dns.resolverAddress,
    ACME_CA_LOG_READ_TOKEN: TOKEN,
    ACME_CA_CONFIG: configFile,
  }, tmp);
  // Request logging at info level, captured, to prove the token never reaches the log.
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { logLines.push(chunk.toString('utf8')); cb(); } });
  server = await startServer(config, createLogger('info', sink), () => Date.now() + skewMs);
  base = new URL(server.directoryUrl).origin;

  clientA = await newClient();
  const clientB = await newClient();
  accountA = clientA.account!.url.slice(clientA.account!.url.lastIndexOf('/') + 1);
  accountB = clientB.account!.url.slice(clientB.account!.url.lastIndexOf('/') + 1);
  await issue(clientA, `one.api.${ZONE}`);
  await issue(clientA, `two.api.${ZONE}`);
  cp1 = await signedCheckpoint();
  await issue(clientB, `three.other.${ZONE}`);
  await issue(clientB, `fourapi.${ZONE}`);
  const revoke = await clientA.revoke(new Uint8Array(new X509Certificate(certs[1].pem).raw), { signWith: 'account', reason: 4 });
  assert.equal(revoke.status, 200, revoke.text);
  cp2 = await signedCheckpoint();
});

after(() => teardown({ clients, server, responder, dns, tmp }));

test('the checkpoint is a signed note that verifies with the log key, and the JSON form agrees', async () => {
  const vkey = await get('/log/vkey');
  assert.equal(vkey.status, 200);
  assert.equal(vkey.text.trim(), server.logKey.vkey);
  assert.equal(cp2.cp.origin, server.logKey.origin);
  // ca.intermediate.created, the first CRL, four issuances, one revocation.
  assert.equal(cp2.cp.size, 7);
  assert.equal(cp1.cp.size, 4);
  const json = await getJson<{ origin: string; size: number; rootHash: string; note: string; signedAt: string }>('/log/v1/checkpoint');
  assert.equal(json.note, cp2.note);
  assert.equal(json.size, cp2.cp.size);
  assert.equal(json.rootHash, cp2.cp.rootHash.toString('base64'));
  assert.equal(json.origin, cp2.cp.origin);
  assert.ok(!Number.isNaN(Date.parse(json.signedAt)));
});

test('entries: the body bytes rebuild every leaf hash and the checkpoint root', async () => {
  const page = await getJson<{ start: number; end: number; checkpointSize: number; entries: EntryJson[] }>('/log/v1/entries?start=0&end=100');
  assert.equal(page.end, cp2.cp.size, 'end is capped at the checkpoint');
  assert.deepEqual(page.entries.map((e) => e.index), [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(page.entries.map((e) => e.eventType), ['ca.intermediate.created', 'crl.signed', 'certificate.issued', 'certificate.issued', 'certificate.issued', 'certificate.issued', 'certificate.revoked']);
  const leaves = page.entries.map((e) => {
    const body = b64(e.body);
    assert.equal(leafHash(body).toString('base64'), e.leafHash, `entry ${e.index}`);
    // body is the canonical JSON of entry, byte for byte.
    assert.equal(canonicalJson(e.entry as never), body.toString('utf8'));
    return leafHash(body);
  });
  assert.ok(rootFromLeafHashes(leaves).equals(cp2.cp.rootHash));
  const stored = await server.store.getLogEntries(0, 7);
  assert.deepEqual(stored.map((e) => Buffer.from(e.leafHash).toString('base64')), page.entries.map((e) => e.leafHash));
  // Paging and bounds.
  const second = await getJson<{ end: number; entries: EntryJson[] }>('/log/v1/entries?start=4');
  assert.deepEqual(second.entries.map((e) => e.index), [4, 5, 6]);
  assertProblem(await get('/log/v1/entries?start=7'), 404, /latest checkpoint/);
  assertProblem(await get('/log/v1/entries?start=3&end=3'), 400);
  assertProblem(await get('/log/v1/entries?start=-1'), 400);
  assertProblem(await get('/log/v1/entries'), 400, /start is required/);
  assertProblem(await get('/log/v1/entries?start=0&bogus=1'), 400, /unknown query parameter bogus/);
});

test('inclusion proofs by index and by leaf hash verify against the signed checkpoint', async () => {
  const { entries } = await getJson<{ entries: EntryJson[] }>('/log/v1/entries?start=0');
  for (const e of entries) {
    const p = await getJson<{ index: number; size: number; leafHash: string; rootHash: string; hashes: string[] }>(`/log/v1/proof/inclusion?index=${e.index}`);
    assert.equal(p.size, cp2.cp.size);
    assert.equal(p.leafHash, e.leafHash);
    verifyInclusion(e.index, p.size, b64(e.leafHash), p.hashes.map(b64), cp2.cp.rootHash);
    // By leaf hash, in base64url and in hex, for an older checkpoint's size.
    if (e.index < cp1.cp.size) {
      const urlSafe = b64(e.leafHash).toString('base64url');
      for (const form of [urlSafe, b64(e.leafHash).toString('hex')]) {
        const q = await getJson<{ index: number; size: number; hashes: string[] }>(`/log/v1/proof/inclusion?leafHash=${form}&size=${cp1.cp.size}`);
        assert.equal(q.index, e.index);
        assert.equal(q.size, cp1.cp.size);
        verifyInclusion(e.index, cp1.cp.size, b64(e.leafHash), q.hashes.map(b64), cp1.cp.rootHash);
      }
    }
  }
  assertProblem(await get(`/log/v1/proof/inclusion?index=0&size=${cp2.cp.size + 1}`), 404, /beyond the latest checkpoint/);
  assertProblem(await get('/log/v1/proof/inclusion?index=3&size=2'), 400, /out of range/);
  assertProblem(await get(`/log/v1/proof/inclusion?leafHash=${entries[5].leafHash.replace(/\+/g, '-').replace(/\//g, '_')}&size=3`), 404);
  assertProblem(await get(`/log/v1/proof/inclusion?leafHash=${'00'.repeat(32)}`), 404, /no log entry/);
  assertProblem(await get('/log/v1/proof/inclusion?index=1&leafHash=abc'), 400);
  assertProblem(await get('/log/v1/proof/inclusion'), 400, /exactly one of index or leafHash/);
});

test('consistency proofs verify between the two signed checkpoints and between every pair of sizes', async () => {
  const p = await getJson<{ from: number; to: number; hashes: string[] }>(`/log/v1/proof/consistency?from=${cp1.cp.size}&to=${cp2.cp.size}`);
  verifyConsistency(cp1.cp.size, cp2.cp.size, p.hashes.map(b64), cp1.cp.rootHash, cp2.cp.rootHash);
  const dflt = await getJson<{ to: number }>(`/log/v1/proof/consistency?from=${cp1.cp.size}`);
  assert.equal(dflt.to, cp2.cp.size);
  const { entries } = await getJson<{ entries: EntryJson[] }>('/log/v1/entries?start=0');
  const leaves = entries.map((e) => b64(e.leafHash));
  for (let m = 1; m <= leaves.length; m++) {
    for (let n = m; n <= leaves.length; n++) {
      const q = await getJson<{ hashes: string[] }>(`/log/v1/proof/consistency?from=${m}&to=${n}`);
      verifyConsistency(m, n, q.hashes.map(b64), rootFromLeafHashes(leaves.slice(0, m)), rootFromLeafHashes(leaves.slice(0, n)));
    }
  }
  assertProblem(await get('/log/v1/proof/consistency?from=4&to=3'), 400, /cannot shrink/);
  assertProblem(await get(`/log/v1/proof/consistency?from=1&to=${cp2.cp.size + 1}`), 404);
});

test('certificate search: every filter returns the right set, each with its log index', async () => {
  const search = async (qs: string): Promise<CertJson[]> => (await getJson<Page<CertJson>>(`/log/v1/certificates?${qs}`)).items;
  const all = await search('');
  assert.deepEqual(names(all), certs.map((c) => c.name));
  for (const c of all) {
    const stored = await server.store.getCertificateBySerial(c.serial);
    assert.equal(c.logIndex, stored?.logIndex, `log index of ${c.serial}`);
    const [entry] = await server.store.getLogEntries(c.logIndex, c.logIndex + 1);
    assert.equal(entry.eventType, 'certificate.issued');
    assert.equal((JSON.parse(Buffer.from(entry.body).toString('utf8')) as { serial: string }).serial, c.serial);
  }
  const [one, two, three, four] = all;
  assert.deepEqual(names(await search(`serial=${certs[0].serial}`)), [certs[0].name]);
  // Serials as openssl prints them (upper case, colons) work too.
  assert.deepEqual(names(await search(`serial=${certs[2].serial.toUpperCase().match(/../g)!.join(':')}`)), [certs[2].name]);
  assert.deepEqual(names(await search(`identifier=two.api.${ZONE}`)), [two.identifiers[0].value]);
  assert.deepEqual(names(await search(`identifier=TWO.API.${ZONE.toUpperCase()}`)), [`two.api.${ZONE}`]);
  assert.deepEqual(names(await search(`identifierSuffix=api.${ZONE}`)), [`one.api.${ZONE}`, `two.api.${ZONE}`], 'label boundary: fourapi is not under api');
  assert.deepEqual(names(await search(`identifierSuffix=.${ZONE}`)).length, 4);
  assert.deepEqual(names(await search(`identifierSuffix=other.${ZONE}`)), [`three.other.${ZONE}`]);
  assert.deepEqual(await search('identifierSuffix=example.com'), []);
  assert.deepEqual(names(await search(`account=${accountA}`)), [one, two].map((c) => c.identifiers[0].value));
  assert.deepEqual(names(await search(`account=${accountB}`)), [three, four].map((c) => c.identifiers[0].value));
  assert.ok(one.scope !== null && one.profile !== null, 'scope and profile come from the entry');
  assert.equal((await search(`scope=${encodeURIComponent(one.scope!)}`)).length, 4);
  assert.equal((await search(`profile=${encodeURIComponent(one.profile!)}`)).length, 4);
  assert.deepEqual(await search('scope=no-such-scope'), []);
  assert.deepEqual(await search('profile=no-such-profile'), []);
  assert.deepEqual(names(await search('status=revoked')), [two.identifiers[0].value]);
  assert.equal((await search('status=revoked'))[0].status, 'revoked');
  assert.deepEqual(names(await search('status=valid')), [one, three, four].map((c) => c.identifiers[0].value));
  assert.deepEqual(await search('status=expired'), []);
  // Issued and expiry windows: bounds are inclusive "after", exclusive "before".
  assert.deepEqual(names(await search(`issuedAfter=${three.issuedAt}`)), [three, four].map((c) => c.identifiers[0].value));
  assert.deepEqual(names(await search(`issuedBefore=${three.issuedAt}`)), [one, two].map((c) => c.identifiers[0].value));
  assert.deepEqual(names(await search(`issuedAfter=${two.issuedAt}&issuedBefore=${four.issuedAt}`)), [two, three].map((c) => c.identifiers[0].value));
  assert.deepEqual(names(await search(`expiresAfter=${four.notAfter}`)), [four.identifiers[0].value]);
  assert.equal((await search(`expiresBefore=${four.notAfter}`)).length, 3);
  assert.deepEqual(names(await search(`account=${accountA}&status=valid`)), [one.identifiers[0].value]);
  // A day later (the API's clock is the server's), every unrevoked certificate is expired.
  skewMs = 2 * 86_400_000;
  try {
    assert.deepEqual(names(await search('status=expired')), [one, three, four].map((c) => c.identifiers[0].value));
    assert.deepEqual(await search('status=valid'), []);
  } finally {
    skewMs = 0;
  }
  assertProblem(await get('/log/v1/certificates?status=bogus'), 400, /status must be/);
  assertProblem(await get('/log/v1/certificates?identifer=x'), 400, /unknown query parameter identifer/);
  assertProblem(await get('/log/v1/certificates?issuedAfter=yesterday'), 400, /RFC 3339/);
  assertProblem(await get('/log/v1/certificates?limit=0'), 400);
  assertProblem(await get('/log/v1/certificates?limit=1001'), 400);
});

test('certificate search pages with a cursor that stays stable while certificates are issued', async () => {
  const first = await getJson<Page<CertJson>>('/log/v1/certificates?limit=2');
  assert.equal(first.items.length, 2);
  assert.equal(first.next, String(first.items[1].logIndex));
  // A certificate issued between two page fetches does not shift the pages.
  await issue(clientA, `five.api.${ZONE}`);
  const second = await getJson<Page<CertJson>>(`/log/v1/certificates?limit=2&cursor=${first.next}`);
  assert.deepEqual(names(second.items), [certs[2].name, certs[3].name]);
  const third = await getJson<Page<CertJson>>(`/log/v1/certificates?limit=2&cursor=${second.next}`);
  assert.deepEqual(names(third.items), [`five.api.${ZONE}`]);
  assert.equal(third.next, null);
  const walked: string[] = [];
  let cursor: string | null = '';
  for (let i = 0; i < 10 && cursor !== null; i++) {
    const page: Page<CertJson> = await getJson<Page<CertJson>>(`/log/v1/certificates?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
    walked.push(...names(page.items));
    cursor = page.next;
  }
  assert.deepEqual(walked, certs.map((c) => c.name));
});

test('one certificate by serial: PEM, its entry, and an inclusion proof against the signed checkpoint', async () => {
  const revoked = certs[1];
  interface Detail { certificate: CertJson; pem: string; entry: EntryJson; relatedEntries: number[]; proof: { index: number; size: number; leafHash: string; hashes: string[] }; checkpoint: { note: string; size: number } }
  const d = await getJson<Detail>(`/log/v1/certificates/${revoked.serial.toUpperCase()}`);
  assert.equal(d.pem, revoked.pem);
  assert.equal(d.certificate.status, 'revoked');
  assert.equal(d.entry.eventType, 'certificate.issued');
  assert.equal(d.entry.index, d.certificate.logIndex);
  assert.equal(d.relatedEntries.length, 2, 'issued and revoked entries');
  const { entries } = await getJson<{ entries: EntryJson[] }>(`/log/v1/entries?start=${d.relatedEntries[1]}&end=${d.relatedEntries[1] + 1}`);
  assert.equal(entries[0].eventType, 'certificate.revoked');
  // Verify like an auditor: the note with the key, then the proof against the note's root.
  const cp = parseCheckpoint(verifyNote(d.checkpoint.note, server.logKey.vkey).text);
  assert.equal(d.proof.size, cp.size);
  verifyInclusion(d.proof.index, d.proof.size, leafHash(b64(d.entry.body)), d.proof.hashes.map(b64), cp.rootHash);

  // The newest certificate may not be under a checkpoint yet: the API signs one on demand.
  const newest = certs[certs.length - 1];
  const n = await getJson<Detail>(`/log/v1/certificates/${newest.serial}`);
  const ncp = parseCheckpoint(verifyNote(n.checkpoint.note, server.logKey.vkey).text);
  assert.ok(ncp.size > n.entry.index);
  verifyInclusion(n.proof.index, n.proof.size, leafHash(b64(n.entry.body)), n.proof.hashes.map(b64), ncp.rootHash);

  assertProblem(await get('/log/v1/certificates/0123abcd'), 404, /no certificate/);
  assertProblem(await get('/log/v1/certificates/not-hex'), 400);
});

test('audit events by type, account, time range, with a cursor', async () => {
  const events = async (qs: string): Promise<Page<EntryJson>> => getJson<Page<EntryJson>>(`/log/v1/events?${qs}`);
  const revocations = await events('type=certificate.revoked');
  assert.equal(revocations.items.length, 1);
  assert.equal(revocations.items[0].entry?.serial, certs[1].serial);
  assert.deepEqual((await events('type=ca.*')).items.map((e) => e.eventType), ['ca.intermediate.created']);
  assert.equal((await events('type=certificate.*')).items.length, 6);
  assert.equal((await events('type=ca.*,certificate.revoked')).items.length, 2);
  assert.deepEqual(await events('type=policy.denied'), { items: [], next: null });
  // The account's trail includes the revocation of its certificate (keyed by serial only).
  const a = await events(`account=${accountA}`);
  assert.deepEqual(a.items.map((e) => e.eventType), ['certificate.issued', 'certificate.issued', 'certificate.revoked', 'certificate.issued']);
  assert.deepEqual((await events(`account=${accountB}`)).items.map((e) => e.entry?.account), [accountB, accountB]);
  const all = (await events('limit=1000')).items;
  const t = all[3].createdAt;
  assert.deepEqual((await events(`since=${t}`)).items.map((e) => e.index), all.filter((e) => e.createdAt >= t).map((e) => e.index));
  assert.deepEqual((await events(`until=${t}`)).items.map((e) => e.index), all.filter((e) => e.createdAt < t).map((e) => e.index));
  const p1 = await events('limit=4');
  assert.equal(p1.next, '3');
  const p2 = await events(`limit=4&cursor=${p1.next}`);
  assert.deepEqual([...p1.items, ...p2.items].map((e) => e.index), all.map((e) => e.index));
  assertProblem(await get('/log/v1/events?type=bad%20type'), 400);
  assertProblem(await get('/log/v1/events?since=1700000000'), 400, /RFC 3339/);
});

test('the read token is required on every /log/ route, compared exactly, and never logged', async () => {
  for (const p of ['/log/checkpoint', '/log/vkey', '/log/tile/0/000.p/1', '/log/v1/checkpoint', '/log/v1/entries?start=0', '/log/v1/certificates', `/log/v1/certificates/${certs[0].serial}`, '/log/v1/events', '/log/v1/proof/consistency?from=1', '/log/nothing-here']) {
    const missing = await get(p, { token: null });
    assertProblem(missing, 401, /Authorization: Bearer/);
    assert.match(String(missing.headers['www-authenticate']), /^Bearer /);
    assertProblem(await get(p, { token: `${TOKEN}x` }), 401, /neither the log read token/);
    assertProblem(await get(p, { token: TOKEN.slice(0, -1) }), 401);
    assertProblem(await get(p, { token: null, headers: { Authorization: `Basic ${TOKEN}` } }), 401);
  }
  assert.equal((await get('/log/v1/checkpoint')).status, 200);
  assertProblem(await get('/log/nothing-here'), 404);
  // An auditor's own API token with the read-log scope works too, until it is revoked; other scopes do not.
  const auditor = await createApiToken(server.store, { name: 'auditor', scopes: ['read-log'] }, Date.now());
  const mesh = await createApiToken(server.store, { name: 'mesh-only', scopes: ['mesh'] }, Date.now());
  assert.equal((await get('/log/v1/checkpoint', { token: auditor.token })).status, 200);
  assertProblem(await get('/log/v1/checkpoint', { token: mesh.token }), 401, /read-log scope/);
  await server.store.revokeApiToken(auditor.id, Date.now());
  assertProblem(await get('/log/v1/checkpoint', { token: auditor.token }), 401);
  // The ACME API is not behind the log token.
  assert.equal((await get('/directory', { token: null })).status, 200);
  const logged = logLines.join('');
  assert.ok(logged.includes('/log/v1/checkpoint'), 'requests were logged at all');
  assert.ok(!logged.includes(TOKEN.slice(4)), 'the read token appears in the server log');
});

test('tlog-tiles: a full tile equals the stored level-0 hashes and tiles rebuild the checkpoint root', async () => {
  // Pad the log past one full tile (256 leaves) with events through the store's own append path.
  const state = await server.store.getLogState();
  for (let i = state.size; i < 300; i++) {
    const body = Buffer.from(canonicalJson({ v: 1, type: 'test.filler', time: new Date().toISOString(), n: i }), 'utf8');
    await server.store.appendLogEvent({ eventType: 'test.filler', body: new Uint8Array(body), lookupKeys: [], at: Date.now() });
  }
  const { cp } = await signedCheckpoint();
  assert.equal(cp.size, 300);

  const full = await get('/log/tile/0/000');
  assert.equal(full.status, 200, full.text);
  assert.equal(full.headers['content-type'], 'application/octet-stream');
  assert.match(String(full.headers['cache-control']), /immutable/);
  assert.equal(full.body.length, 256 * 32);
  const nodes = await server.store.getLogNodes(Array.from({ length: 256 }, (_, i) => ({ level: 0, index: i })));
  const stored = Buffer.concat(Array.from({ length: 256 }, (_, i) => Buffer.from(nodes.get(`0/${i}`)!)));
  assert.ok(full.body.equals(stored), 'full tile = stored level-0 hashes');

  const partial = await get('/log/tile/0/001.p/44');
  assert.equal(partial.status, 200, partial.text);
  assert.equal(partial.body.length, 44 * 32);
  const leaves: Buffer[] = [];
  for (const t of [full.body, partial.body]) for (let o = 0; o < t.length; o += 32) leaves.push(t.subarray(o, o + 32));
  assert.ok(rootFromLeafHashes(leaves).equals(cp.rootHash), 'tile-computed root = checkpoint root');
  // The level-1 tile holds the hash of the first 256 leaves.
  const l1 = await get('/log/tile/1/000.p/1');
  assert.equal(l1.status, 200, l1.text);
  assert.ok(l1.body.equals(rootFromLeafHashes(leaves.slice(0, 256))));

  // Entry bundles: uint16-prefixed bodies whose hashes are the tile's hashes; gzip when asked.
  const bundle = await get('/log/tile/entries/000');
  assert.equal(bundle.status, 200);
  const bodies = decodeEntryBundle(bundle.body, 256);
  bodies.forEach((b, i) => assert.ok(leafHash(b).equals(leaves[i]), `bundle entry ${i}`));
  const gz = await get('/log/tile/entries/001.p/44', { headers: { 'Accept-Encoding': 'gzip' } });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  decodeEntryBundle(gunzipSync(gz.body), 44).forEach((b, i) => assert.ok(leafHash(b).equals(leaves[256 + i]), `bundle entry ${256 + i}`));

  // Nothing beyond the checkpoint, nothing malformed.
  assertProblem(await get('/log/tile/0/001'), 404, /not within the latest checkpoint/);
  assertProblem(await get('/log/tile/0/001.p/45'), 404);
  assertProblem(await get('/log/tile/entries/002.p/1'), 404);
  assertProblem(await get('/log/tile/0/1'), 400, /malformed tile path/);
  assertProblem(await get('/log/tile/0/000.p/256'), 400);
  assertProblem(await get('/log/tile/0/x000/001'), 400, /non-canonical/);
});
