import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { parseCheckpoint, type Checkpoint } from '../server/log/checkpoint.js';
import { verifyConsistency } from '../server/log/merkle.js';
import { verifyNote } from '../server/log/note.js';
import { runClientUnchecked } from './support/acme-clients.js';
import {
  AcmeTestClient, asOrder, buildCsr, completeHttp01, generateAccountKey, generateCsrKey, header, Http01Responder,
} from './support/acme-test-client.js';
import { cleanup, REPO_ROOT, startCa, type CaProcess, type ExitInfo } from './support/ca-process.js';
import { httpGet } from './support/http.js';

/*
 * Crash consistency of the issuance log: the CA process is SIGKILLed in the middle of a burst of
 * concurrent issuances. A certificate and its log entry are written in one transaction, so after
 * the restart (which also finishes the orders that were processing) the log must hold exactly one
 * entry per stored certificate plus the CA key events, and the next signed checkpoint must be
 * consistent with every checkpoint signed before the crash.
 */

const BURST = 24;
/** Certificates committed before the SIGKILL; the rest of the burst is in flight or not yet sent. */
const KILL_AFTER = 3;
const CLI = path.join(REPO_ROOT, 'dist', 'clients', 'cli', 'main.js');

let ca: CaProcess;
let responder: Http01Responder;
let client: AcmeTestClient;
let rootPem: string;
let dbPath: string;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function getJson<T>(urlPath: string): Promise<T> {
  const res = await httpGet(`https://127.0.0.1:${ca.ports.https}${urlPath}`, { ca: rootPem, agent: false, timeoutMs: 10_000 });
  if (res.status !== 200) throw new Error(`GET ${urlPath}: ${res.status} ${res.text}`);
  return JSON.parse(res.text) as T;
}

/** A short-lived connection: the server process owns the database, the test only reads it. */
function withDb<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(dbPath, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    return fn(db);
  } finally {
    db.close();
  }
}

interface DbCounts { certificates: number; entries: number; treeSize: number; caEvents: number; issuedEntries: number; processing: number }

function counts(): DbCounts {
  return withDb((db) => {
    const n = (sql: string): number => Number((db.prepare(sql).get() as { n: number }).n);
    return {
      certificates: n('SELECT count(*) AS n FROM certificates'),
      entries: n('SELECT count(*) AS n FROM log_entry'),
      treeSize: n('SELECT size AS n FROM log_tree_state WHERE id = 0'),
      // Everything the CA records besides issuance: its key events and its signed CRLs.
      caEvents: n("SELECT count(*) AS n FROM log_entry WHERE event_type LIKE 'ca.%' OR event_type = 'crl.signed'"),
      issuedEntries: n("SELECT count(*) AS n FROM log_entry WHERE event_type = 'certificate.issued'"),
      processing: n("SELECT count(*) AS n FROM orders WHERE status = 'processing'"),
    };
  });
}

function assertLogMatchesCertificates(c: DbCounts, when: string): void {
  assert.equal(c.entries, c.treeSize, `${when}: entry rows = tree size`);
  assert.equal(c.issuedEntries, c.certificates, `${when}: one certificate.issued entry per stored certificate`);
  assert.equal(c.treeSize, c.certificates + c.caEvents, `${when}: log size = certificates + CA key events + CRLs`);
  // Every certificate points at its own issuance entry.
  const orphans = withDb((db) => db.prepare(`SELECT count(*) AS n FROM certificates c LEFT JOIN log_entry e ON e.idx = c.log_index
    WHERE e.idx IS NULL OR e.event_type <> 'certificate.issued' OR json_extract(CAST(e.body AS TEXT), '$.serial') <> c.serial`).get() as { n: number });
  assert.equal(Number(orphans.n), 0, `${when}: every certificate's log_index is its certificate.issued entry`);
}

before(async () => {
  ca = await startCa();
  rootPem = await fsp.readFile(ca.rootPem, 'utf8');
  dbPath = path.join(ca.dataDir, 'acme-ca.sqlite');
  responder = new Http01Responder();
  await responder.start(ca.ports.http01);
  client = await AcmeTestClient.connect(ca.directoryUrl, rootPem, { maxSockets: 16 });
  const res = await client.newAccount(await generateAccountKey('ES256'));
  assert.equal(res.status, 201, res.text);
});

after(async () => {
  client?.close();
  await responder?.close();
  await cleanup();
});

test('SIGKILL mid-burst: log size = certificates + CA events, and the next checkpoint is consistent with all before', { timeout: 90_000 }, async (t) => {
  const vkeyMatch = /Issuance log verifier key: (\S+)/.exec(ca.logs());
  assert.ok(vkeyMatch, 'the server printed its verifier key');
  const vkey = vkeyMatch[1];

  // Ready orders and CSRs first, so the burst itself is only finalize + signing.
  const ready = await Promise.all(Array.from({ length: BURST }, async () => {
    const created = await client.newOrder([{ type: 'ip', value: '127.0.0.1' }]);
    assert.equal(created.status, 201, created.text);
    const url = header(created, 'location')!;
    await completeHttp01(client, asOrder(created.body), responder);
    const order = asOrder((await client.poll(url, (b) => asOrder(b).status === 'ready', { timeoutMs: 30_000 })).body);
    const csr = await buildCsr({ keys: await generateCsrKey('P-256'), ipAddresses: ['127.0.0.1'] });
    const jws = await client.jws(order.finalize, { csr: Buffer.from(csr).toString('base64url') });
    return { finalize: order.finalize, body: JSON.stringify(jws) };
  }));
  const beforeBurst = counts();
  assert.equal(beforeBurst.certificates, 0);

  // The burst: every finalize at once; the kill lands as soon as the first certificate is stored.
  const inFlight = Promise.allSettled(ready.map((r) => client.request('POST', r.finalize, {
    headers: { 'Content-Type': 'application/jose+json' }, body: r.body, timeoutMs: 15_000,
  })));
  // One open read-only connection polls cheaply, so the kill follows the first commit closely.
  const watch = new Database(dbPath, { readonly: true, fileMustExist: true });
  let exit: ExitInfo;
  try {
    const issued = watch.prepare('SELECT count(*) AS n FROM certificates');
    const deadline = Date.now() + 15_000;
    while (Number((issued.get() as { n: number }).n) < KILL_AFTER) {
      if (Date.now() > deadline) throw new Error(`fewer than ${KILL_AFTER} certificates were issued within 15 s:\n${ca.logs().slice(-3000)}`);
      await sleep(1);
    }
    exit = await ca.kill9();
  } finally {
    watch.close();
  }
  assert.equal(exit.signal, 'SIGKILL');
  await inFlight;
  client.resetConnections();

  const atCrash = counts();
  assertLogMatchesCertificates(atCrash, 'right after the crash');
  const checkpointsBefore = withDb((db) => db.prepare('SELECT size, note FROM log_checkpoint ORDER BY size').all() as Array<{ size: number; note: string }>);
  assert.ok(checkpointsBefore.length >= 1, 'a checkpoint was signed before the crash');
  assert.ok(atCrash.certificates < BURST, `the kill came after the whole burst (${atCrash.certificates} of ${BURST} issued); it must land in the middle`);

  // Restart: orders left processing are finished; then wait for a checkpoint covering everything.
  await ca.restart();
  let latest: { size: number; note: string } | undefined;
  const settle = Date.now() + 30_000;
  for (;;) {
    const c = counts();
    latest = await getJson<{ size: number; note: string }>('/log/v1/checkpoint');
    if (c.processing === 0 && latest.size === c.treeSize && latest.size > checkpointsBefore[checkpointsBefore.length - 1].size) break;
    if (Date.now() > settle) throw new Error(`the log did not settle: ${JSON.stringify(c)}, checkpoint ${latest.size}\n${ca.logs().slice(-3000)}`);
    await sleep(200);
  }
  const settled = counts();
  assertLogMatchesCertificates(settled, 'after the restart');
  assert.equal(latest.size, settled.certificates + settled.caEvents, 'checkpoint size = certificates + CA key events');
  const caEvents = await getJson<{ items: unknown[] }>('/log/v1/events?type=ca.*,crl.signed');
  assert.equal(caEvents.items.length, settled.caEvents);
  const certsViaApi = await getJson<{ items: Array<{ logIndex: number }>; next: string | null }>('/log/v1/certificates?limit=1000');
  assert.equal(certsViaApi.items.length, settled.certificates);
  t.diagnostic(`burst of ${BURST}: ${atCrash.certificates} certificates stored at the SIGKILL (${atCrash.processing} orders processing), ${settled.certificates} after the restart`);

  // The new checkpoint verifies and extends every checkpoint signed before (and after) the crash.
  const newest: Checkpoint = parseCheckpoint(verifyNote(latest.note, vkey).text);
  const all = withDb((db) => db.prepare('SELECT size, note FROM log_checkpoint ORDER BY size').all() as Array<{ size: number; note: string }>);
  assert.ok(all.length > checkpointsBefore.length);
  for (const old of all) {
    const cp = parseCheckpoint(verifyNote(old.note, vkey).text);
    assert.equal(cp.size, old.size);
    if (cp.size === 0 || cp.size === newest.size) continue;
    const proof = await getJson<{ hashes: string[] }>(`/log/v1/proof/consistency?from=${cp.size}&to=${newest.size}`);
    verifyConsistency(cp.size, newest.size, proof.hashes.map((h) => Buffer.from(h, 'base64')), cp.rootHash, newest.rootHash);
  }
  const verify = await runClientUnchecked(process.execPath, [CLI, 'log', 'verify', '--url', `https://127.0.0.1:${ca.ports.https}`, '--vkey', vkey, '--ca', ca.rootPem, '--full'], { timeoutMs: 30_000 });
  assert.equal(verify.code, 0, verify.output);
});
