import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { startServer, type RunningServer } from '../server/server.js';
import { createApiToken } from '../server/admin/api-tokens.js';
import { certIdOf } from '../server/acme/renewal-info.js';
import { ariCertId, RenewalAgent, type AgentLogEntry, type CheckResult, type RenewedInfo } from '../clients/agent/acme-agent.js';
import { TestDnsServer } from './support/dns-server.js';
import { freePort } from './support/ports.js';
import { AcmeTestClient, opensslVerifyChain, splitPem } from './support/acme-test-client.js';

/*
 * The renewal agent (clients/agent) against an in-process CA: three agents, each with its own
 * files and its own http-01 responder address (a.agent.test → 127.0.0.1, b → 127.0.0.2, c →
 * 127.0.0.3, all on the CA's http-01 port), obtain certificates, do not renew while ARI's window
 * is ahead, and renew (with "replaces") exactly the certificates an operator selects with
 * renew-now. Then the sidecar CLI in --once mode. Tests run in file order and share state.
 */

const ZONE = 'agent.test';
const SIDECAR = fileURLToPath(new URL('../clients/agent/sidecar.js', import.meta.url));

let tmp: string;
let server: RunningServer;
let dns: TestDnsServer;
let http01Port: number;
let rootPemPath: string;
let rootPem: string;
let origin: string;
let adminToken: string;
let http: AcmeTestClient;

interface Fleet {
  name: string;
  host: string;
  dir: string;
  agent: RenewalAgent;
  renewed: RenewedInfo[];
  hooks: Array<(cert: string, key: string) => void>;
  logs: AgentLogEntry[];
  first?: RenewedInfo;
}
const fleet: Fleet[] = [];
let tlsServer: tls.Server | undefined;

function makeAgent(f: Omit<Fleet, 'agent' | 'renewed' | 'hooks' | 'logs'>, extra: { now?: () => number; random?: () => number } = {}): Fleet {
  const renewed: RenewedInfo[] = [];
  const hooks: Fleet['hooks'] = [];
  const logs: AgentLogEntry[] = [];
  const agent = new RenewalAgent({
    directoryUrl: server.directoryUrl, caPem: rootPem, accountKey: path.join(f.dir, 'account.jwk'), identifiers: [f.name],
    certPath: path.join(f.dir, 'cert.pem'), keyPath: path.join(f.dir, 'key.pem'),
    challenge: { kind: 'responder', host: f.host, port: http01Port },
    onRenewed: (cert, key, info) => { renewed.push(info); for (const h of hooks) h(cert, key); },
    log: (e) => logs.push(e),
    ...extra,
  });
  return { ...f, agent, renewed, hooks, logs };
}

/** The certID the server itself computes for a serial (issuer key id from its registry). */
async function serverCertId(serial: string): Promise<string> {
  const rec = await server.store.getCertificateBySerial(serial);
  assert.ok(rec, `the CA knows serial ${serial}`);
  return certIdOf(server.issuers.byId(rec.issuerId)!.keyId, rec.serial);
}

function run(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SIDECAR, ...args], { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-agent-'));
  const dataDir = path.join(tmp, 'data');
  const configFile = path.join(tmp, 'config.yaml');
  await fsp.writeFile(configFile, 'validation:\n  retryDelay: 200ms\n  timeout: 3s\n');
  const httpsPort = await freePort();
  http01Port = await freePort();
  dns = new TestDnsServer({ suffixes: [ZONE], address: '127.0.0.1' });
  await dns.start();
  const config = loadConfig({
    ACME_CA_CONFIG: configFile, ACME_CA_DATA_DIR: dataDir, ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`,
    ACME_CA_HTTP01_PORT: String(http01Port), ACME_CA_DNS_RESOLVER: dns.resolverAddress,
  }, tmp);
  server = await startServer(config, createLogger('silent'));
  origin = new URL(server.directoryUrl).origin;
  rootPemPath = path.join(dataDir, 'root.pem');
  rootPem = await fsp.readFile(rootPemPath, 'utf8');
  adminToken = (await createApiToken(server.store, { name: 'agent-test', scopes: ['admin'] }, Date.now())).token;
  http = await AcmeTestClient.connect(server.directoryUrl, rootPem);
  for (const [i, label] of ['a', 'b', 'c'].entries()) {
    const name = `${label}.${ZONE}`;
    const host = `127.0.0.${i + 1}`;
    dns.setAddress(name, host);
    const dir = path.join(tmp, label);
    await fsp.mkdir(dir);
    fleet.push(makeAgent({ name, host, dir }));
  }
});

after(async () => {
  for (const f of fleet) await f.agent.stop();
  if (tlsServer) await new Promise<void>((r) => tlsServer!.close(() => r()));
  http?.close();
  await server?.close();
  await dns?.close();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

test('three agents obtain their first certificates (no "replaces"), files written atomically with a 0600 key', async () => {
  const results = await Promise.all(fleet.map((f) => f.agent.checkOnce()));
  for (const [i, r] of results.entries()) {
    const f = fleet[i];
    assert.equal(r.renewed, true, `${f.name}: ${JSON.stringify(f.logs)}`);
    assert.equal(r.reason, 'missing');
    assert.ok(r.renewal);
    assert.equal(r.renewal.replaced, null, 'a first certificate replaces nothing');
    f.first = r.renewal;
    const certPem = await fsp.readFile(path.join(f.dir, 'cert.pem'), 'utf8');
    const keyPem = await fsp.readFile(path.join(f.dir, 'key.pem'), 'utf8');
    assert.equal(certPem, r.renewal.certPem);
    assert.equal(keyPem, r.renewal.keyPem);
    assert.equal(fs.statSync(path.join(f.dir, 'key.pem')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(f.dir, 'account.jwk')).mode & 0o777, 0o600, 'the account key was created 0600 on first run');
    assert.deepEqual(fs.readdirSync(f.dir).sort(), ['account.jwk', 'cert.pem', 'key.pem'], 'no temporary files are left behind');
    await opensslVerifyChain(rootPemPath, certPem);
    const leaf = new X509Certificate(splitPem(certPem)[0]);
    assert.equal(leaf.subjectAltName, `DNS:${f.name}`);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(keyPem)), 'the key file matches the certificate');
    // The agent's certID (AKI + serial parsed by pkijs) equals the one the server computes.
    assert.equal(r.certId, await serverCertId(r.renewal.serial));
    assert.equal(ariCertId(new Uint8Array(leaf.raw)), r.certId);
    assert.equal(f.renewed.length, 1, 'onRenewed fired once');
  }
  assert.equal(new Set(results.map((r) => r.serial)).size, 3);
});

test('checkOnce while the ARI window is ahead: no agent renews; a restarted agent loads its certificate', async () => {
  const now = Date.now();
  const results: CheckResult[] = await Promise.all(fleet.map((f) => f.agent.checkOnce()));
  for (const [i, r] of results.entries()) {
    const f = fleet[i];
    assert.equal(r.renewed, false, `${f.name} renewed early: ${JSON.stringify(r)}`);
    assert.equal(r.reason, 'not-due');
    assert.equal(r.serial, f.first!.serial);
    assert.ok(r.window && r.renewAt);
    assert.ok(r.window.start.getTime() > now, 'the window of a fresh certificate is ahead');
    assert.ok(r.renewAt.getTime() >= r.window.start.getTime() && r.renewAt.getTime() <= r.window.end.getTime(), 'the chosen moment is inside the window');
    assert.ok(r.nextCheckInMs >= 60_000 && r.nextCheckInMs <= r.renewAt.getTime() - now + 1000, `next check in ${r.nextCheckInMs} ms`);
    assert.equal(f.renewed.length, 1, 'onRenewed did not fire again');
  }
  // The chosen moment stays put between checks (no re-draw that would bias renewals early).
  const again = await fleet[0].agent.checkOnce();
  assert.equal(again.renewAt?.getTime(), results[0].renewAt?.getTime());

  // A new agent on the same files (a restarted service) finds the certificate and its certID.
  const w = results[0].window!;
  const restarted = makeAgent({ name: fleet[0].name, host: fleet[0].host, dir: fleet[0].dir }, { now: () => w.start.getTime() - 1000, random: () => 0 });
  try {
    const loaded = await restarted.agent.load();
    assert.equal(loaded?.certId, results[0].certId);
    // One second before the window with the earliest possible pick: still not due, and it wakes at the window start.
    const early = await restarted.agent.checkOnce();
    assert.equal(early.renewed, false);
    assert.equal(early.renewAt?.getTime(), w.start.getTime());
    assert.ok(early.nextCheckInMs <= 1000, `wakes at the chosen moment: ${early.nextCheckInMs}`);
  } finally {
    await restarted.agent.stop();
  }
  // A torn pair (a's key next to c's certificate) is not loaded: the agent would obtain a new one.
  const torn = path.join(tmp, 'torn');
  await fsp.mkdir(torn);
  await fsp.copyFile(path.join(fleet[2].dir, 'cert.pem'), path.join(torn, 'cert.pem'));
  await fsp.copyFile(path.join(fleet[0].dir, 'key.pem'), path.join(torn, 'key.pem'));
  const tornAgent = makeAgent({ name: fleet[2].name, host: fleet[2].host, dir: torn });
  assert.equal(await tornAgent.agent.load(), null, 'a key that does not match the certificate makes the pair unusable');
  assert.ok(tornAgent.logs.some((e) => e.level === 'warn' && /does not match/.test(e.msg)));
  await tornAgent.agent.stop();

  // Inside the window but before the moment drawn near its end: still not due.
  const late = makeAgent({ name: fleet[0].name, host: fleet[0].host, dir: fleet[0].dir }, { now: () => w.start.getTime() + 1000, random: () => 0.999 });
  try {
    const r = await late.agent.checkOnce();
    assert.equal(r.renewed, false, 'not renewed before the chosen moment, although inside the window');
    assert.ok(r.renewAt!.getTime() > w.start.getTime() + 1000);
  } finally {
    await late.agent.stop();
  }
});

test('renew-now selects two certificates: exactly those two agents renew, with "replaces", and onRenewed fires for them', async () => {
  const [a, b, c] = fleet;
  // Agent a serves TLS with its certificate and hot-reloads it from onRenewed.
  tlsServer = tls.createServer({ cert: a.first!.certPem, key: a.first!.keyPem });
  a.hooks.push((cert, key) => tlsServer!.setSecureContext({ cert, key }));
  await new Promise<void>((r) => tlsServer!.listen(0, '127.0.0.1', () => r()));
  const peerSerial = (): Promise<string> => new Promise((resolve, reject) => {
    const addr = tlsServer!.address() as { port: number };
    const s = tls.connect({ host: '127.0.0.1', port: addr.port, ca: rootPem, servername: a.name }, () => {
      const serial = s.getPeerCertificate().serialNumber.toLowerCase();
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
  assert.equal((await peerSerial()).replace(/^(00)+/, ''), a.first!.serial.replace(/^(00)+/, ''));

  const res = await http.request('POST', `${origin}/admin/v1/certificates/renew-now`, {
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ selector: { serials: [a.first!.serial, b.first!.serial] }, reason: 'key rotation drill' }),
  });
  assert.equal(res.status, 200, res.text);
  assert.equal((res.body as { selected: number }).selected, 2);

  const results = await Promise.all(fleet.map((f) => f.agent.checkOnce()));
  for (const [i, f] of [a, b].entries()) {
    const r = results[i];
    assert.equal(r.renewed, true, `${f.name} was selected and must renew: ${JSON.stringify(r)} ${JSON.stringify(f.logs.slice(-3))}`);
    assert.equal(r.reason, 'window');
    assert.ok(r.window && r.window.end.getTime() < Date.now(), 'the renew-now window is in the past');
    assert.notEqual(r.serial, f.first!.serial, 'a new serial');
    assert.equal(r.renewal?.replaced, f.first!.certId, 'the order named the old certificate in "replaces"');
    const orderId = r.renewal!.orderUrl.slice(r.renewal!.orderUrl.lastIndexOf('/') + 1);
    assert.equal((await server.store.getOrder(orderId))?.replaces, f.first!.certId, 'the stored order has "replaces"');
    assert.equal((await server.store.getCertificateBySerial(f.first!.serial))?.replacedByOrder, orderId);
    assert.equal(f.renewed.length, 2, 'onRenewed fired for the renewal');
    assert.equal(f.renewed[1].serial, r.serial);
    assert.equal(await fsp.readFile(path.join(f.dir, 'cert.pem'), 'utf8'), r.renewal!.certPem);
    await opensslVerifyChain(rootPemPath, r.renewal!.certPem);
    assert.equal(f.agent.certId, r.certId);
  }
  assert.equal(results[2].renewed, false, 'the unselected certificate is not renewed');
  assert.equal(results[2].serial, c.first!.serial);
  assert.equal(c.renewed.length, 1);
  assert.equal((await peerSerial()).replace(/^(00)+/, ''), results[0].serial!.replace(/^(00)+/, ''), 'the TLS server serves the renewed certificate without a restart');

  // The renewed certificates have fresh windows ahead again.
  const next = await Promise.all([a, b].map((f) => f.agent.checkOnce()));
  for (const r of next) assert.equal(r.renewed, false);
});

test('renew(): a stale nonce (badNonce) is retried once; an already replaced certificate is renewed without "replaces"', async () => {
  const c = fleet[2];
  const old = c.agent.certId!;
  // Forget every nonce the CA handed out: the agent's cached one is now unknown to the CA.
  await server.store.purgeExpiredNonces(Date.now() + 48 * 3_600_000);
  const info = await c.agent.renew('window', old);
  assert.equal(info.replaced, old);
  assert.ok(c.logs.some((e) => /badNonce/.test(e.msg)), 'the agent saw badNonce and retried');
  // Replacing the same certificate again: alreadyReplaced, then a plain order.
  const again = await c.agent.renew('window', old);
  assert.equal(again.replaced, null);
  assert.ok(c.logs.some((e) => e.level === 'warn' && /already replaced/.test(e.msg)));
  assert.notEqual(again.serial, info.serial);
  assert.equal(c.renewed.length, 3);
});

test('sidecar --once: obtains (runs --on-renew), then exits 0 when not due, and 1 on failure', async () => {
  const dir = path.join(tmp, 'sidecar');
  await fsp.mkdir(dir);
  const name = `s.${ZONE}`;
  dns.setAddress(name, '127.0.0.4');
  const marker = path.join(dir, 'reloaded');
  const args = [
    '--directory', server.directoryUrl, '--ca', rootPemPath, '--account-key', path.join(dir, 'account.jwk'), '--name', name,
    '--cert', path.join(dir, 'cert.pem'), '--key', path.join(dir, 'key.pem'), '--http01', `127.0.0.4:${http01Port}`,
    '--on-renew', `printf '%s' "$CERT_SERIAL" > '${marker}'`, '--once',
  ];
  const first = await run(args);
  assert.equal(first.code, 0, `first run: ${first.stdout}\n${first.stderr}`);
  const line = JSON.parse(first.stdout.trim().split('\n').pop()!) as { renewed: boolean; serial: string };
  assert.equal(line.renewed, true);
  assert.equal(await fsp.readFile(marker, 'utf8'), line.serial, '--on-renew ran with CERT_SERIAL');
  await opensslVerifyChain(rootPemPath, await fsp.readFile(path.join(dir, 'cert.pem'), 'utf8'));
  await fsp.rm(marker);

  const second = await run(args);
  assert.equal(second.code, 0, `second run: ${second.stdout}\n${second.stderr}`);
  assert.equal((JSON.parse(second.stdout.trim()) as { renewed: boolean }).renewed, false);
  assert.equal(fs.existsSync(marker), false, '--on-renew does not run when nothing was renewed');

  const closed = await freePort();
  const failed = await run([...args.slice(0, 1), `https://127.0.0.1:${closed}/directory`, ...args.slice(2, 8), '--cert', path.join(dir, 'other.pem'), '--key', path.join(dir, 'other.key'), '--http01', `127.0.0.4:${http01Port}`, '--once'], 30_000);
  assert.equal(failed.code, 1, `an unreachable CA is a failure: ${failed.stdout}\n${failed.stderr}`);

  const usage = await run(['--once']);
  assert.equal(usage.code, 2, 'missing options are a usage error');
});
