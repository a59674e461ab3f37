import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { parseCheckpoint } from '../server/log/checkpoint.js';
import { leafHash, verifyInclusion } from '../server/log/merkle.js';
import { verifyNote } from '../server/log/note.js';
import { certbotCertonly, certbotRevoke, runClientUnchecked, type CertbotLineage, type ClientResult } from './support/acme-clients.js';
import { cleanup, makeTempDir, REPO_ROOT, startCa, type CaProcess } from './support/ca-process.js';
import { httpGet, jsonBody } from './support/http.js';
import { leafSerial } from './support/openssl.js';

/*
 * The acceptance path of the issuance log with real tools: certbot issues and revokes against the
 * CA running as its own process; the log API proves both events; `acme-ca log verify --full`
 * passes; the SQLite CLI cannot rewrite history; and a byte edited in the database file behind
 * the server's back makes `log verify --full` fail naming the entry.
 *
 * Tests run in order and share state; a later test skips when what it needs failed earlier.
 */

const TOKEN = 'e2e-log-token-31d9';
const NAME = 'log-e2e.test';
const CLIENT_TIMEOUT_MS = 120_000;
const CLI = path.join(REPO_ROOT, 'dist', 'clients', 'cli', 'main.js');

let ca: CaProcess;
let workDir: string;
let dbPath: string;
let statePath: string;
let vkey: string;
let lineage: CertbotLineage | undefined;
let serial: string | undefined;
let issuedIndex: number | undefined;
let historyOk = false;
let rootPem = '';

async function getJson<T>(urlPath: string): Promise<T> {
  const res = await httpGet(`https://127.0.0.1:${ca.ports.https}${urlPath}`, {
    headers: { Authorization: `Bearer ${TOKEN}` }, ca: rootPem, agent: false, timeoutMs: 10_000,
  });
  assert.equal(res.status, 200, `GET ${urlPath}: ${res.status} ${res.text}`);
  return jsonBody(res) as T;
}

/** Polls (bounded) until the signed checkpoint covers `size` entries. */
async function checkpointAtLeast(size: number): Promise<{ size: number; note: string }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const cp = await getJson<{ size: number; note: string }>('/log/v1/checkpoint');
    if (cp.size >= size) return cp;
    if (Date.now() > deadline) throw new Error(`checkpoint stuck at size ${cp.size}, want ${size}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function logVerify(...extra: string[]): Promise<ClientResult> {
  return runClientUnchecked(process.execPath, [CLI, 'log', 'verify', '--url', `https://127.0.0.1:${ca.ports.https}`, '--vkey', vkey, '--ca', ca.rootPem, '--state', statePath, ...extra], {
    env: { ACME_CA_LOG_READ_TOKEN: TOKEN }, timeoutMs: 30_000,
  });
}

function sqlite(sql: string): Promise<ClientResult> {
  return runClientUnchecked('sqlite3', [dbPath, sql], { timeoutMs: 15_000 });
}

function requires<T>(t: TestContext, v: T | undefined, what: string): v is T {
  if (v === undefined) t.skip(`needs ${what}, which failed earlier`);
  return v !== undefined;
}

interface EntryJson { index: number; eventType: string; body: string; entry: Record<string, unknown> | null }

before(async () => {
  ca = await startCa({ env: { ACME_CA_LOG_READ_TOKEN: TOKEN } });
  rootPem = await fsp.readFile(ca.rootPem, 'utf8');
  workDir = await makeTempDir('acme-ca-log-e2e-');
  dbPath = path.join(ca.dataDir, 'acme-ca.sqlite');
  statePath = path.join(workDir, 'log-state.json');
  // The verifier key as the operator sees it at start-up, not as the API serves it.
  const m = /Issuance log verifier key: (\S+)/.exec(ca.logs());
  assert.ok(m, `the server did not print its verifier key:\n${ca.logs().slice(-2000)}`);
  vkey = m[1];
});

after(async () => {
  await cleanup();
});

test('certbot issues and revokes; the log holds both entries and proves the certificate', { timeout: 2 * CLIENT_TIMEOUT_MS }, async () => {
  lineage = await certbotCertonly({ ca, workDir, name: NAME, httpPort: ca.ports.http01, timeoutMs: CLIENT_TIMEOUT_MS });
  const s = leafSerial(lineage.certPath).toLowerCase().replace(/^(?:00)+(?=..)/, '');
  await certbotRevoke({ ca, workDir, certPath: lineage.certPath, reason: 'superseded', timeoutMs: CLIENT_TIMEOUT_MS });
  // ca.intermediate.created, the first CRL, certificate.issued, certificate.revoked.
  await checkpointAtLeast(4);

  interface Detail { certificate: { serial: string; status: string; logIndex: number; identifiers: Array<{ value: string }> }; pem: string; entry: EntryJson; relatedEntries: number[]; proof: { index: number; size: number; hashes: string[] }; checkpoint: { note: string } }
  const d = await getJson<Detail>(`/log/v1/certificates/${s}`);
  assert.equal(d.certificate.status, 'revoked');
  assert.deepEqual(d.certificate.identifiers.map((i) => i.value), [NAME]);
  assert.equal(d.pem.replace(/\s/g, ''), (await fsp.readFile(lineage.certPath, 'utf8')).replace(/\s/g, ''));
  const types: string[] = [];
  for (const i of d.relatedEntries) {
    const { entries } = await getJson<{ entries: EntryJson[] }>(`/log/v1/entries?start=${i}&end=${i + 1}`);
    assert.equal(entries[0].entry?.serial, s);
    types.push(entries[0].eventType);
  }
  assert.deepEqual(types, ['certificate.issued', 'certificate.revoked']);
  // The receipt verifies with nothing but the verifier key.
  const cp = parseCheckpoint(verifyNote(d.checkpoint.note, vkey).text);
  verifyInclusion(d.proof.index, cp.size, leafHash(Buffer.from(d.entry.body, 'base64')), d.proof.hashes.map((h) => Buffer.from(h, 'base64')), cp.rootHash);
  serial = s;
  issuedIndex = d.entry.index;
  assert.equal(issuedIndex, 2, 'the first certificate follows the CA key event and the first CRL');
});

test('acme-ca log verify --full passes, records state, and passes again', async (t) => {
  if (!requires(t, serial, 'the issued certificate')) return;
  const first = await logVerify('--full', '--json');
  assert.equal(first.code, 0, first.output);
  const out = JSON.parse(first.stdout) as { ok: boolean; size: number; entriesVerified: number; consistency: string };
  assert.equal(out.ok, true);
  assert.equal(out.consistency, 'first-run');
  assert.equal(out.entriesVerified, out.size);
  const state = JSON.parse(await fsp.readFile(statePath, 'utf8')) as { size: number };
  assert.equal(state.size, out.size);
  const again = await logVerify('--full');
  assert.equal(again.code, 0, again.output);
  assert.match(again.stdout, /unchanged since the previous run|consistent with the previously verified checkpoint/);
  // Without the token the API refuses, and the CLI reports a usage/network failure (2), not a bad log (1).
  const noToken = await runClientUnchecked(process.execPath, [CLI, 'log', 'verify', '--url', `https://127.0.0.1:${ca.ports.https}`, '--vkey', vkey, '--ca', ca.rootPem], { env: { ACME_CA_LOG_READ_TOKEN: '' }, timeoutMs: 30_000 });
  assert.equal(noToken.code, 2, noToken.output);
  assert.match(noToken.stderr, /HTTP 401/);
  const exported = path.join(workDir, 'export.jsonl');
  const exp = await runClientUnchecked(process.execPath, [CLI, 'log', 'export', '--url', `https://127.0.0.1:${ca.ports.https}`, '--ca', ca.rootPem, '--token', TOKEN, '--out', exported], { timeoutMs: 30_000 });
  assert.equal(exp.code, 0, exp.output);
  const lines = (await fsp.readFile(exported, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as EntryJson);
  // The log may have grown since verify (a CRL signed after the revocation): contiguous from 0, no shorter.
  assert.ok(lines.length >= out.size);
  assert.deepEqual(lines.map((l) => l.index), Array.from({ length: lines.length }, (_, i) => i));
  historyOk = true;
});

test('the SQLite CLI cannot rewrite the log: UPDATE, DELETE and INSERT OR REPLACE are refused', async (t) => {
  if (!requires(t, issuedIndex, 'the issued certificate')) return;
  const before = await sqlite('SELECT count(*), sum(length(body)) FROM log_entry');
  assert.equal(before.code, 0, before.output);
  const attempts: Array<[string, RegExp]> = [
    ["UPDATE log_entry SET event_type='x'", /append-only/],
    ['DELETE FROM log_entry', /append-only/],
    ['DELETE FROM log_entry WHERE idx = 1', /append-only/],
    // REPLACE would delete the old row first; the index rule (and, with recursive triggers, the delete rule) stops it.
    ["INSERT OR REPLACE INTO log_entry (idx, leaf_hash, body, event_type, created_at) VALUES (1, zeroblob(32), CAST('{}' AS BLOB), 'x', 0)", /append-only|current tree size/],
    ["UPDATE log_node SET hash = zeroblob(32) WHERE level = 0 AND idx = 1", /append-only/],
    ['DELETE FROM log_checkpoint', /append-only/],
    ['DELETE FROM log_lookup', /append-only/],
    ['UPDATE log_tree_state SET size = 1', /grows by exactly one|append-only/],
  ];
  for (const [sql, message] of attempts) {
    const r = await sqlite(sql);
    assert.notEqual(r.code, 0, `${sql} was accepted:\n${r.output}`);
    assert.match(r.output, message, sql);
  }
  const afterwards = await sqlite('SELECT count(*), sum(length(body)) FROM log_entry');
  assert.equal(afterwards.stdout, before.stdout, 'the log is unchanged');
  const v = await logVerify('--full');
  assert.equal(v.code, 0, v.output);
});

test('an entry edited in the database file makes log verify --full fail and name its index', async (t) => {
  if (!requires(t, historyOk ? issuedIndex : undefined, 'a verified log')) return;
  const index = issuedIndex as number;
  const { entries } = await getJson<{ entries: EntryJson[] }>(`/log/v1/entries?start=${index}&end=${index + 1}`);
  const order = entries[0].entry?.order;
  assert.equal(typeof order, 'string');
  // Stop cleanly (the server checkpoints its WAL on close), and make sure no WAL is left either way.
  await ca.stop();
  const wal = await sqlite('PRAGMA wal_checkpoint(TRUNCATE)');
  assert.equal(wal.code, 0, wal.output);
  const file = await fsp.readFile(dbPath);
  // `"order":"<id>"` exists only inside that entry's JSON body.
  const needle = Buffer.from(`"order":"${String(order)}"`, 'utf8');
  const at = file.indexOf(needle);
  assert.ok(at >= 0, 'the entry body is in the database file');
  assert.equal(file.indexOf(needle, at + 1), -1, 'the entry body is in the file exactly once');
  const pos = at + needle.length - 2; // last character of the order id
  file[pos] = file[pos] === 0x41 ? 0x42 : 0x41;
  await fsp.writeFile(dbPath, file);
  await ca.restart();

  // Signature and consistency alone cannot see it: the tree's nodes were not touched.
  const light = await logVerify();
  assert.equal(light.code, 0, light.output);
  const full = await logVerify('--full');
  assert.equal(full.code, 1, full.output);
  assert.match(full.stderr, new RegExp(`entry ${index}: leaf hash does not match its body`));
});
