import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

/*
 * The operator CLI (`acme-ca eab|token|policy ...`, clients/cli/admin-commands.ts) as a separate
 * process on a data folder of its own: what it prints, what it stores (never a secret in the
 * clear), and its exit codes: 0 success or allowed, 1 operation failed or denied, 2 bad usage.
 */

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(REPO_ROOT, 'dist', 'clients', 'cli', 'main.js');

const POLICY = `# admin-cli
defaultScope: null
profiles:
  server:
    uriSans: false
scopes:
  payments:
    dns:
      allow: [.payments.test]
      deny: [.legacy.payments.test]
    ip:
      allow: [10.20.0.0/16]
    uri:
      allow: ["spiffe://corp.test/ns/payments/*"]
  web:
    dns:
      allow: [.web.test]
`;

let tmp: string;
let dataDir: string;
let policyFile: string;

interface CliResult { code: number | null; stdout: string; stderr: string }

function cliIn(dir: string, args: string[]): Promise<CliResult> {
  // Only our variables: an ACME_CA_* from the outer environment must not redirect the CLI.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ACME_CA_')));
  env.ACME_CA_DATA_DIR = dir;
  env.ACME_CA_POLICY_FILE = policyFile;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { cwd: tmp, env, timeout: 15_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') { reject(new Error(`acme-ca ${args.join(' ')}: ${err.message}\n${stderr}`)); return; }
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

const cli = (args: string[]): Promise<CliResult> => cliIn(dataDir, args);

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

async function cliJson(args: string[]): Promise<Record<string, unknown>> {
  const r = await cli([...args, '--json']);
  assert.equal(r.code, 0, `acme-ca ${args.join(' ')} --json: exit ${r.code}\n${r.stderr}`);
  assert.equal(r.stdout.trim().split('\n').length, 1, 'one JSON line');
  const v: unknown = JSON.parse(r.stdout);
  assert.ok(isRecord(v), r.stdout);
  return v;
}

function assertUsage(r: CliResult, message: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(r.stdout, '');
}

const dbFile = (): string => path.join(dataDir, 'acme-ca.sqlite');

function diskBytes(): Buffer {
  return Buffer.concat([dbFile(), `${dbFile()}-wal`].filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f)));
}

/** Every table's rows, to show a command changed nothing. */
function snapshot(): Record<string, unknown[]> {
  if (!fs.existsSync(dbFile())) return {};
  const db = new Database(dbFile(), { readonly: true, fileMustExist: true });
  try {
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as Array<{ name: string }>).map((t) => t.name);
    return Object.fromEntries(tables.map((t) => [t, db.prepare(`SELECT * FROM "${t}" ORDER BY 1`).all()]));
  } finally {
    db.close();
  }
}

interface EabRow { keyId: string; status: string; scope: string; description: string; fingerprint: string; accountId: string | null }

async function eabList(): Promise<EabRow[]> {
  const v = await cliJson(['eab', 'list']);
  assert.ok(Array.isArray(v.keys));
  return v.keys as EabRow[];
}

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-admin-cli-'));
  dataDir = path.join(tmp, 'data');
  await fsp.mkdir(dataDir, { mode: 0o700 });
  policyFile = path.join(tmp, 'policy.yaml');
  await fsp.writeFile(policyFile, POLICY);
});

after(async () => {
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

test('eab create --json prints the HMAC key once; eab list shows the key without it; nothing secret on disk', async () => {
  const created = await cliJson(['eab', 'create', '--scope', 'payments', '--description', 'payments team']);
  assert.deepEqual(Object.keys(created).sort(), ['expiresAt', 'hmacKey', 'keyId', 'scope']);
  assert.match(String(created.keyId), /^eab_[A-Za-z0-9_-]{16}$/);
  assert.equal(created.scope, 'payments');
  assert.equal(created.expiresAt, null);
  const hmacKey = String(created.hmacKey);
  const secret = Buffer.from(hmacKey, 'base64url');
  assert.equal(secret.length, 32);

  const [list, human] = await Promise.all([cli(['eab', 'list', '--json']), cli(['eab', 'list'])]);
  assert.equal(list.code, 0);
  assert.ok(!list.stdout.includes(hmacKey), 'eab list --json must not print the HMAC key');
  assert.equal(human.code, 0);
  assert.ok(!human.stdout.includes(hmacKey), 'eab list must not print the HMAC key');
  assert.match(human.stdout, new RegExp(`${String(created.keyId)}\\s+unused\\s+scope=payments`));

  const row = (await eabList()).find((k) => k.keyId === created.keyId);
  assert.ok(row);
  assert.equal(row.status, 'unused');
  assert.equal(row.description, 'payments team');
  assert.equal(row.fingerprint, createHash('sha256').update(secret).digest('hex'), 'the fingerprint identifies the key without revealing it');

  const disk = diskBytes();
  assert.equal(disk.indexOf(secret), -1, 'the raw HMAC key is in the database files');
  assert.equal(disk.indexOf(Buffer.from(hmacKey)), -1, 'the base64url HMAC key is in the database files');
});

test('eab create without --json tells the operator the key is shown once; --ttl sets an expiry', async () => {
  const r = await cli(['eab', 'create', '--scope', 'web', '--ttl', '7d']);
  assert.equal(r.code, 0, r.stderr);
  const keyId = /EAB key id:\s+(\S+)/.exec(r.stdout)?.[1];
  const hmacKey = /HMAC key:\s+(\S+)/.exec(r.stdout)?.[1];
  assert.ok(keyId && hmacKey, r.stdout);
  assert.match(r.stdout, /shown only now/);
  assert.match(r.stdout, /Scope:\s+web/);
  const row = (await eabList()).find((k) => k.keyId === keyId);
  assert.ok(row);
  assert.equal(row.scope, 'web');
  const created = (await cliJson(['eab', 'create', '--scope', 'web', '--ttl', '1h']));
  const expiresAt = Number(created.expiresAt);
  assert.ok(Math.abs(expiresAt - (Date.now() + 3_600_000)) < 60_000, `expiresAt ${expiresAt}`);
});

test('eab create refuses a scope the policy does not define (exit 1) and bad usage (exit 2)', async () => {
  const before = snapshot();
  const [unknown, noScope, badTtl, badOption] = await Promise.all([
    cli(['eab', 'create', '--scope', 'nosuch']),
    cli(['eab', 'create']),
    cli(['eab', 'create', '--scope', 'web', '--ttl', 'soon']),
    cli(['eab', 'create', '--scope', 'web', '--colour', 'red']),
  ]);
  assert.equal(unknown.code, 1, unknown.stderr);
  assert.match(unknown.stderr, /scope 'nosuch' is not defined in the policy; defined: payments, web/);
  assertUsage(noScope, /eab create needs --scope/);
  assertUsage(badTtl, /--ttl soon is not a duration/);
  assertUsage(badOption, /colour/);
  assert.deepEqual(snapshot(), before, 'refused commands changed nothing');
});

test('eab revoke: an unused key is revoked (its encrypted secret dropped); twice or unknown is exit 1; no id is exit 2', async () => {
  const created = await cliJson(['eab', 'create', '--scope', 'payments']);
  const keyId = String(created.keyId);
  const revoked = await cliJson(['eab', 'revoke', keyId]);
  assert.deepEqual(revoked, { keyId, status: 'revoked' });
  assert.equal((await eabList()).find((k) => k.keyId === keyId)?.status, 'revoked');
  const db = new Database(dbFile(), { readonly: true, fileMustExist: true });
  try {
    assert.equal((db.prepare('SELECT hmac_key_enc FROM eab_keys WHERE id = ?').get(keyId) as { hmac_key_enc: unknown }).hmac_key_enc, null);
  } finally {
    db.close();
  }

  const again = await cli(['eab', 'revoke', keyId]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, new RegExp(`EAB key ${keyId} does not exist or is not unused`));
  const missing = await cli(['eab', 'revoke', 'eab_doesnotexist']);
  assert.equal(missing.code, 1);
  assertUsage(await cli(['eab', 'revoke']), /eab revoke needs the key id/);
});

test('token create | list | revoke: shown once, stored hashed, listed without secrets', async () => {
  const created = await cliJson(['token', 'create', '--scope', 'admin', '--scope', 'read-log', '--name', 'ops']);
  const id = String(created.id);
  const token = String(created.token);
  assert.match(token, new RegExp(`^acmeca_${id}_[A-Za-z0-9_-]{43}$`));
  assert.deepEqual(created.scopes, ['admin', 'read-log']);
  const secretPart = token.slice(`acmeca_${id}_`.length);
  assert.equal(diskBytes().indexOf(Buffer.from(secretPart)), -1, 'the token secret is in the database files');

  const listed = await cli(['token', 'list', '--json']);
  assert.equal(listed.code, 0);
  assert.ok(!listed.stdout.includes(secretPart), 'token list must not print the secret');
  assert.ok(!listed.stdout.includes('secretSha256'), 'token list must not print the secret hash');
  const tokens = (JSON.parse(listed.stdout) as { tokens: Array<Record<string, unknown>> }).tokens;
  const row = tokens.find((t) => t.id === id);
  assert.ok(row);
  assert.equal(row.name, 'ops');
  assert.deepEqual(row.scopes, ['admin', 'read-log']);
  assert.equal(row.revokedAt, null);

  const human = await cli(['token', 'create', '--scope', 'mesh', '--name', 'mesh-agent', '--ttl', '90d']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /Token:\s+acmeca_/);
  assert.match(human.stdout, /shown only now/);

  assert.deepEqual(await cliJson(['token', 'revoke', id]), { id, revoked: true });
  const afterRevoke = await cli(['token', 'list']);
  assert.match(afterRevoke.stdout, new RegExp(`${id}\\s+ops\\s+scopes=admin,read-log.*REVOKED`));
  const again = await cli(['token', 'revoke', id]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /does not exist or is already revoked/);

  const [badScope, noScope, noName, noId] = await Promise.all([
    cli(['token', 'create', '--scope', 'root', '--name', 'x']),
    cli(['token', 'create', '--name', 'x']),
    cli(['token', 'create', '--scope', 'admin']),
    cli(['token', 'revoke']),
  ]);
  assertUsage(badScope, /unknown token scope "root"; use admin, read-log, mesh/);
  assertUsage(noScope, /token create needs --scope and --name/);
  assertUsage(noName, /token create needs --scope and --name/);
  assertUsage(noId, /token revoke needs the token id/);
});

test('policy check: exit 0 when allowed, 1 when denied with the rule printed, --json; it creates nothing', async () => {
  const before = snapshot();

  // Independent read-only invocations: run together to keep the suite fast.
  const [allowed, denied, deny, json, okJson, uri, noUris, profile] = await Promise.all([
    cli(['policy', 'check', '--scope', 'payments', 'api.payments.test', '10.20.1.2']),
    cli(['policy', 'check', '--scope', 'payments', 'shop.web.test', 'api.payments.test']),
    cli(['policy', 'check', '--scope', 'payments', 'db.legacy.payments.test']),
    cli(['policy', 'check', '--scope', 'web', 'a.payments.test', 'b.payments.test', '--json']),
    cli(['policy', 'check', '--scope', 'payments', '--uri', 'spiffe://corp.test/ns/payments/sa/api', 'api.payments.test', '--json']),
    cli(['policy', 'check', '--scope', 'payments', '--uri', 'spiffe://corp.test/ns/web/sa/api', 'api.payments.test']),
    cli(['policy', 'check', '--scope', 'payments', '--profile', 'server', '--uri', 'spiffe://corp.test/ns/payments/sa/api', 'api.payments.test']),
    cli(['policy', 'check', '--scope', 'payments', '--profile', 'gold', 'api.payments.test']),
  ]);
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.match(allowed.stdout, /^ALLOWED in scope 'payments' with profile 'mtls'/);
  assert.match(allowed.stdout, /api\.payments\.test: allowed by scope 'payments' rule dns\.allow \.payments\.test/);
  assert.match(allowed.stdout, /10\.20\.1\.2: allowed by scope 'payments' rule ip\.allow 10\.20\.0\.0\/16/);

  assert.equal(denied.code, 1, denied.stderr);
  assert.match(denied.stdout, /^DENIED \(rejectedIdentifier\) in scope 'payments'/);
  assert.match(denied.stdout, /shop\.web\.test.*scope 'payments' allows only \.payments\.test\s+\[rule dns\.allow\]/);

  assert.equal(deny.code, 1);
  assert.match(deny.stdout, /\[rule dns\.deny \.legacy\.payments\.test\]/);

  assert.equal(json.code, 1);
  const r: unknown = JSON.parse(json.stdout);
  assert.ok(isRecord(r));
  assert.equal(r.allowed, false);
  assert.equal(r.scope, 'web');
  assert.equal(r.problem, 'rejectedIdentifier');
  assert.deepEqual((r.denials as Array<{ identifier: string; rule: string }>).map((d) => [d.identifier, d.rule]), [['a.payments.test', 'dns.allow'], ['b.payments.test', 'dns.allow']]);
  assert.match(String(r.policyVersion), /^[0-9a-f]{64}$/);

  assert.equal(okJson.code, 0, okJson.stderr);
  const ok: unknown = JSON.parse(okJson.stdout);
  assert.ok(isRecord(ok));
  assert.equal(ok.allowed, true);
  assert.equal(ok.profile, 'mtls');
  assert.deepEqual(ok.denials, []);

  assert.equal(uri.code, 1);
  assert.match(uri.stdout, /^DENIED \(badCSR\)/);
  assert.match(uri.stdout, /\[rule uri\.allow\]/);

  assert.equal(noUris.code, 1);
  assert.match(noUris.stdout, /\[rule profile\.uriSans\]/);

  assert.equal(profile.code, 1);
  assert.match(profile.stdout, /^DENIED \(invalidProfile\) in scope 'payments': profile 'gold' is not offered/);

  assert.deepEqual(snapshot(), before, 'policy check changed the database');
});

test('policy check: bad usage exits 2 with a message', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['policy', 'check', '--scope', 'payments'], /policy check needs at least one name or IP/],
    [['policy', 'check', 'api.payments.test'], /the policy has no default scope; pass --scope/],
    [['policy', 'check', '--scope', 'payments', 'bad_name!'], /acme-ca: .*bad_name!/],
    [['policy', 'check', '--scope', 'payments', '--verbose', 'a.payments.test'], /verbose/],
    [['policy', 'frobnicate'], /unknown command "policy frobnicate"/],
    [['eab'], /unknown command "eab "/],
  ];
  const results = await Promise.all(cases.map(([args]) => cli(args)));
  results.forEach((r, i) => assertUsage(r, cases[i][1]));
});

test('an invalid policy file is a configuration error (exit 2) naming the file and key, not a denial (exit 1)', async () => {
  const good = await fsp.readFile(policyFile, 'utf8');
  try {
    await fsp.writeFile(policyFile, 'scopes:\n  payments:\n    dns:\n      allow: ["pay*.test"]\n');
    const check = await cli(['policy', 'check', '--scope', 'payments', 'a.payments.test']);
    assert.ok(check.stderr.includes(policyFile), check.stderr);
    assert.match(check.stderr, /scopes\.payments\.dns\.allow\[0\]/);
    assert.equal(check.stdout, '', 'no verdict is printed');
    // "Exit codes: 0 success, 1 operation failed, 2 bad usage or configuration": a script gating on
    // `policy check` must be able to tell a broken policy file from a denial.
    assert.equal(check.code, 2, `exit code for an invalid policy file; stderr: ${check.stderr}`);
    const create = await cli(['eab', 'create', '--scope', 'payments']);
    assert.match(create.stderr, /scopes\.payments\.dns\.allow\[0\]/);
    assert.equal(create.code, 2);
  } finally {
    await fsp.writeFile(policyFile, good);
  }
});

test('eab create and token create work on a data folder that does not exist yet', async () => {
  // An operator may hand out EAB keys and tokens before the server first starts.
  const fresh = path.join(tmp, 'fresh', 'data');
  const eab = await cliIn(fresh, ['eab', 'create', '--scope', 'payments', '--json']);
  assert.equal(eab.code, 0, `eab create on a new data folder: ${eab.stderr}`);
  const token = await cliIn(fresh, ['token', 'create', '--scope', 'admin', '--name', 'first', '--json']);
  assert.equal(token.code, 0, `token create on a new data folder: ${token.stderr}`);
});
