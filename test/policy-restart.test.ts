import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  AcmeTestClient, asOrder, asProblem, generateAccountKey, header, type AcmeResponse, type EabCredentials, type Identifier,
} from './support/acme-test-client.js';
import { cleanup, makeTempDir, REPO_ROOT, startCa, tail, type CaProcess } from './support/ca-process.js';

/*
 * The policy in the real server process (`node dist/server/main.js`): rate-limit buckets live in
 * the database, so a limit reached before a restart still holds after it; SIGHUP re-reads the
 * policy file, and an invalid file is refused (logged with the file and key) while the policy in
 * force stays. EAB keys and the admin token are made with the CLI against the same data folder
 * while the server runs, as an operator would.
 */

const ERR = 'urn:ietf:params:acme:error:';
const LOCAL: Identifier = { type: 'ip', value: '127.0.0.1' };
const CLI = path.join(REPO_ROOT, 'dist', 'clients', 'cli', 'main.js');

const POLICY = `# policy-restart
defaultScope: null
scopes:
  payments:
    dns:
      allow: [.payments.test]
    ip:
      allow: [127.0.0.0/8]
  limited:
    ip:
      allow: [127.0.0.0/8]
    rateLimits:
      ordersPerAccount: {count: 3, window: 1h}
`;

let ca: CaProcess;
let policyFile: string;
let rootPem: string;
const clients: AcmeTestClient[] = [];

interface CliResult { code: number | null; stdout: string; stderr: string }

/** The operator CLI against the server's data folder and policy; bounded by a timeout. */
function cli(args: string[]): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ACME_CA_')));
  env.ACME_CA_DATA_DIR = ca.dataDir;
  env.ACME_CA_POLICY_FILE = policyFile;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, env, timeout: 15_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') { reject(new Error(`acme-ca ${args.join(' ')}: ${err.message}\n${stderr}`)); return; }
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

async function cliJson(args: string[]): Promise<Record<string, unknown>> {
  const r = await cli([...args, '--json']);
  assert.equal(r.code, 0, `acme-ca ${args.join(' ')}: ${r.stderr}`);
  const v: unknown = JSON.parse(r.stdout);
  assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v));
  return v as Record<string, unknown>;
}

async function eab(scope: string): Promise<EabCredentials> {
  const created = await cliJson(['eab', 'create', '--scope', scope]);
  assert.equal(typeof created.keyId, 'string');
  assert.equal(typeof created.hmacKey, 'string');
  return { keyId: created.keyId as string, hmacKey: created.hmacKey as string };
}

async function account(scope: string): Promise<AcmeTestClient> {
  const c = await AcmeTestClient.connect(ca.directoryUrl, rootPem);
  clients.push(c);
  const res = await c.newAccountWithEab(await generateAccountKey('ES256'), await eab(scope));
  assert.equal(res.status, 201, res.text);
  return c;
}

function assertProblem(res: AcmeResponse, type: string, status: number, detail: RegExp): void {
  assert.equal(res.status, status, res.text);
  const p = asProblem(res.body);
  assert.equal(p.type, `${ERR}${type}`, res.text);
  assert.match(p.detail, detail);
}

function assertCreated(res: AcmeResponse): void {
  assert.equal(res.status, 201, res.text);
  asOrder(res.body);
}

/** Waits (bounded) until the server log written after `from` matches `re`; returns that part of the log. */
async function waitForLog(from: number, re: RegExp, timeoutMs = 5_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = ca.logs().slice(from);
    if (re.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`server log did not match ${re} within ${timeoutMs} ms; log since:\n${tail(text, 4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends SIGHUP to our own server child (by its PID) and waits for the reload's log line. */
async function sighup(expect: RegExp): Promise<string> {
  const pid = ca.pid;
  assert.ok(pid !== undefined, 'the server is running');
  const from = ca.logs().length;
  process.kill(pid, 'SIGHUP');
  return waitForLog(from, expect);
}

before(async () => {
  const dir = await makeTempDir('acme-policy-restart-');
  policyFile = path.join(dir, 'policy.yaml');
  await fsp.writeFile(policyFile, POLICY);
  ca = await startCa({
    dnsSuffixes: ['payments.test'],
    env: { ACME_CA_POLICY_FILE: policyFile, ACME_CA_EAB_REQUIRED: 'true', ACME_CA_LOG_LEVEL: 'info' },
  });
  rootPem = await fsp.readFile(ca.rootPem, 'utf8');
});

after(async () => {
  for (const c of clients) c.close();
  await cleanup();
});

test('an admin token and EAB keys made with the CLI work against the running server', async () => {
  const token = await cliJson(['token', 'create', '--scope', 'admin', '--name', 'restart-test']);
  const key = await eab('payments');
  const c = await AcmeTestClient.connect(ca.directoryUrl, rootPem);
  clients.push(c);
  const res = await c.request('GET', new URL('/admin/v1/eab-keys', ca.directoryUrl).toString(), { headers: { Authorization: `Bearer ${String(token.token)}` } });
  assert.equal(res.status, 200, res.text);
  assert.ok(res.text.includes(key.keyId), 'the server sees the key the CLI wrote');
  assert.ok(!res.text.includes(key.hmacKey), 'and not its secret');
});

test('rate limit: 3 orders, restart, the 4th is still rateLimited with Retry-After', async () => {
  const c = await account('limited');
  for (let i = 0; i < 3; i++) assertCreated(await c.newOrder([LOCAL]));
  const pidBefore = ca.pid;
  await ca.restart();
  assert.notEqual(ca.pid, pidBefore, 'a new server process');
  c.resetConnections();
  const res = await c.newOrder([LOCAL]);
  assertProblem(res, 'rateLimited', 429, /rate limit ordersPerAccount reached: at most 3 new orders for this account/);
  const retryAfter = Number(header(res, 'retry-after'));
  assert.ok(Number.isInteger(retryAfter) && retryAfter > 600 && retryAfter <= 1200, `Retry-After ${header(res, 'retry-after')}`);
});

test('SIGHUP reloads the policy file; an invalid file is refused, logged, and the old policy stays', async () => {
  const c = await account('payments');
  const blocked: Identifier = { type: 'dns', value: 'blocked.payments.test' };
  assertCreated(await c.newOrder([blocked]));

  await fsp.writeFile(policyFile, POLICY.replace('allow: [.payments.test]', 'allow: [.payments.test]\n      deny: [blocked.payments.test]'));
  await sighup(/"msg":"policy reloaded"/);
  assertProblem(await c.newOrder([blocked]), 'rejectedIdentifier', 400, /^blocked\.payments\.test: denied by scope 'payments' rule dns\.deny blocked\.payments\.test/);
  assertCreated(await c.newOrder([{ type: 'dns', value: 'ok.payments.test' }]));

  await fsp.writeFile(policyFile, 'scopes:\n  payments:\n    dns:\n      allow: ["pay*.test"]\n');
  const log = await sighup(/"msg":"policy reload refused"/);
  const line = log.split('\n').find((l) => l.includes('policy reload refused')) ?? '';
  assert.ok(line.includes(policyFile), `the log names the file: ${line}`);
  assert.match(line, /scopes\.payments\.dns\.allow\[0\]/, 'the log names the key');
  assert.match(line, /keeping policy [0-9a-f]{64}/);

  assert.ok(ca.pid !== undefined, 'the server is still running');
  c.resetConnections();
  assertProblem(await c.newOrder([blocked]), 'rejectedIdentifier', 400, /rule dns\.deny blocked\.payments\.test/);
  assertCreated(await c.newOrder([{ type: 'dns', value: 'still.payments.test' }]));
});
