import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { freePorts } from './support/ports.js';
import {
  accountKeyFromCryptoKeyPair, AcmeTestClient, asAccount, asOrder, buildCsr, completeHttp01, generateAccountKey, generateCsrKey, header,
  Http01Responder, opensslVerifyChain, splitPem, type AcmeResponse, type Identifier,
} from './support/acme-test-client.js';

/*
 * Durability across restarts of the real server process (`node dist/server/main.js`): work
 * started before a graceful stop (SIGTERM) or a crash (SIGKILL) finishes afterwards with the same
 * account, order and data folder.
 */

const SERVER_ENTRY = fileURLToPath(new URL('../server/main.js', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const LOCAL: Identifier = { type: 'ip', value: '127.0.0.1' };

interface Exit { code: number | null; signal: NodeJS.Signals | null }

interface ServerProcess {
  child: ChildProcess;
  pid: number;
  exited: Promise<Exit>;
  output(): string;
}

let tmp: string;
let dataDir: string;
let rootPemPath: string;
let directoryUrl: string;
let env: NodeJS.ProcessEnv;
let responder: Http01Responder;
let current: ServerProcess | undefined;
const started: ServerProcess[] = [];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function getStatus(url: string, ca: string, timeoutMs: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = https.request(url, { method: 'GET', ca, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Spawns the server and waits (bounded) until GET /directory answers 200 over TLS trusting root.pem. */
async function startProcess(): Promise<ServerProcess> {
  const child = spawn(process.execPath, [SERVER_ENTRY], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('the server process did not start');
  const chunks: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (s: string) => chunks.push(s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => chunks.push(s));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const proc: ServerProcess = { child, pid: child.pid, exited, output: () => chunks.join('').slice(-6000) };
  started.push(proc);
  let gone: Exit | undefined;
  void exited.then((e) => { gone = e; });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'not tried';
  while (Date.now() < deadline) {
    if (gone) throw new Error(`server exited before it was ready (${JSON.stringify(gone)}):\n${proc.output()}`);
    if (fs.existsSync(rootPemPath)) {
      try {
        if ((await getStatus(directoryUrl, fs.readFileSync(rootPemPath, 'utf8'), 1000)) === 200) {
          current = proc;
          return proc;
        }
      } catch (e) {
        last = (e as Error).message;
      }
    }
    await sleep(100);
  }
  process.kill(proc.pid, 'SIGKILL');
  throw new Error(`server not ready within ${READY_TIMEOUT_MS} ms (${last}):\n${proc.output()}`);
}

/** Sends `signal` to the server's PID and waits (bounded) for it to exit; SIGKILL as a last resort. */
async function stopProcess(proc: ServerProcess, signal: NodeJS.Signals): Promise<Exit> {
  if (proc.child.exitCode === null && proc.child.signalCode === null) process.kill(proc.pid, signal);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS); });
  const first = await Promise.race([proc.exited, timeout]);
  clearTimeout(timer);
  if (first !== 'timeout') return first;
  process.kill(proc.pid, 'SIGKILL');
  return proc.exited;
}

function assertStatus(res: AcmeResponse, status: number): void {
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${res.text}`);
}

function dbOrderStatus(orderUrl: string): string {
  const db = new Database(path.join(dataDir, 'acme-ca.sqlite'), { readonly: true, fileMustExist: true });
  try {
    const r = db.prepare('SELECT status FROM orders WHERE id = ?').get(orderUrl.slice(orderUrl.lastIndexOf('/') + 1)) as { status: string } | undefined;
    if (!r) throw new Error(`order ${orderUrl} is not in the database`);
    return r.status;
  } finally {
    db.close();
  }
}

/** Downloads the certificate of a valid order and checks it with openssl and for the CSR's key. */
async function downloadAndVerify(c: AcmeTestClient, orderUrl: string, csrKeys: CryptoKeyPair): Promise<void> {
  const order = asOrder((await c.poll(orderUrl, (b) => asOrder(b).status === 'valid')).body);
  assert.ok(order.certificate, 'a valid order links its certificate');
  const dl = await c.downloadCert(order.certificate);
  assertStatus(dl, 200);
  assert.equal(header(dl, 'content-type')?.split(';')[0].trim(), 'application/pem-certificate-chain');
  const leaf = new X509Certificate(splitPem(dl.text)[0]);
  assert.equal(leaf.subjectAltName, 'IP Address:127.0.0.1');
  assert.ok(leaf.publicKey.equals((await accountKeyFromCryptoKeyPair(csrKeys)).publicKey), 'the leaf carries the CSR key');
  await opensslVerifyChain(rootPemPath, dl.text);
}

before(async () => {
  if (!fs.existsSync(SERVER_ENTRY)) throw new Error(`${SERVER_ENTRY} is missing; build with npx tsc first`);
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-restart-'));
  dataDir = path.join(tmp, 'data');
  rootPemPath = path.join(dataDir, 'root.pem');
  const [httpsPort, http01Port, deadDnsPort] = await freePorts(3);
  responder = new Http01Responder();
  await responder.start(http01Port);
  directoryUrl = `https://127.0.0.1:${httpsPort}/directory`;
  const configFile = path.join(tmp, 'config.yaml');
  await fsp.writeFile(configFile, 'acme:\n  finalizeWait: 0s\n');
  // The test's own settings only: no ACME_CA_* variable of the caller's environment leaks in.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ACME_CA_')));
  env = {
    ...inherited,
    ACME_CA_DATA_DIR: dataDir,
    ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`,
    ACME_CA_HTTP01_PORT: String(http01Port),
    // IP identifiers only; an unanswered resolver keeps any name lookup off the real DNS.
    ACME_CA_DNS_RESOLVER: `127.0.0.1:${deadDnsPort}`,
    ACME_CA_LOG_LEVEL: 'warn',
    // Finalize answers at once, so the crash below lands while the order is still processing.
    ACME_CA_CONFIG: configFile,
  };
});

after(async () => {
  for (const p of started) await stopProcess(p, 'SIGKILL');
  await responder?.close();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

test('an account and order created before a graceful restart are completed after it', async () => {
  await startProcess();
  const c = await AcmeTestClient.connect(directoryUrl, await fsp.readFile(rootPemPath, 'utf8'));
  try {
    const created = await c.newAccount(await generateAccountKey('ES256'), { termsOfServiceAgreed: true, contact: ['mailto:restart@example.com'] });
    assertStatus(created, 201);
    const accountUrl = c.account!.url;
    const ordered = await c.newOrder([LOCAL]);
    assertStatus(ordered, 201);
    const orderUrl = header(ordered, 'location')!;
    const pendingNonce = await c.newNonce();

    const stopped = await stopProcess(current!, 'SIGTERM');
    assert.deepEqual(stopped, { code: 0, signal: null }, `graceful stop exits 0:\n${current!.output()}`);
    await startProcess();
    c.resetConnections();

    // Nonces live in the database, so one handed out before the restart is still good.
    const acct = await c.post(accountUrl, '', { nonce: pendingNonce });
    assertStatus(acct, 200);
    assert.equal(asAccount(acct.body).status, 'valid');
    assert.deepEqual(asAccount(acct.body).contact, ['mailto:restart@example.com']);
    const again = await c.newAccount(c.account!.key, { onlyReturnExisting: true });
    assertStatus(again, 200);
    assert.equal(header(again, 'location'), accountUrl);

    const order = asOrder((await c.post(orderUrl, '')).body);
    assert.equal(order.status, 'pending');
    await completeHttp01(c, order, responder);
    const ready = asOrder((await c.poll(orderUrl, (b) => asOrder(b).status === 'ready')).body);
    const keys = await generateCsrKey('P-256');
    const fin = await c.finalize(ready.finalize, await buildCsr({ keys, ipAddresses: ['127.0.0.1'] }));
    assertStatus(fin, 200);
    await downloadAndVerify(c, orderUrl, keys);
  } finally {
    c.close();
  }
});

test('an order finalized just before a crash (SIGKILL) is issued after the restart', async (t) => {
  if (!current || current.child.exitCode !== null) await startProcess();
  const c = await AcmeTestClient.connect(directoryUrl, await fsp.readFile(rootPemPath, 'utf8'));
  try {
    assertStatus(await c.newAccount(await generateAccountKey('ES256'), { termsOfServiceAgreed: true }), 201);
    const ordered = await c.newOrder([LOCAL]);
    assertStatus(ordered, 201);
    const orderUrl = header(ordered, 'location')!;
    await completeHttp01(c, asOrder(ordered.body), responder);
    const ready = asOrder((await c.poll(orderUrl, (b) => asOrder(b).status === 'ready')).body);
    const keys = await generateCsrKey('P-256');
    const csr = await buildCsr({ keys, ipAddresses: ['127.0.0.1'] });

    const fin = await c.finalize(ready.finalize, csr);
    const killed = await stopProcess(current!, 'SIGKILL');
    assertStatus(fin, 200);
    assert.ok(['processing', 'valid'].includes(asOrder(fin.body).status), `finalize answered ${asOrder(fin.body).status}`);
    assert.equal(killed.signal, 'SIGKILL');
    const atCrash = dbOrderStatus(orderUrl);
    assert.ok(['processing', 'valid'].includes(atCrash), 'the finalized order survived the crash');
    t.diagnostic(`finalize answered ${asOrder(fin.body).status}; the order was ${atCrash} in the database after the crash`);

    await startProcess();
    c.resetConnections();
    await downloadAndVerify(c, orderUrl, keys);
    assert.equal(dbOrderStatus(orderUrl), 'valid');

    const stopped = await stopProcess(current!, 'SIGTERM');
    assert.deepEqual(stopped, { code: 0, signal: null });
  } finally {
    c.close();
  }
});
