import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, promises as fsp, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import os from 'node:os';
import path, { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { after, test } from 'node:test';
import { createApiToken } from '../server/admin/api-tokens.js';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { startServer } from '../server/server.js';
import { asOrder, AcmeTestClient, buildCsr, completeHttp01, generateAccountKey, generateCsrKey, header, Http01Responder, splitPem } from './support/acme-test-client.js';
import { cleanup, startCa } from './support/ca-process.js';
import { freePorts } from './support/ports.js';

after(async () => { await cleanup(); });

function get(url: string, ca: string | null, headers: Record<string, string> = {}, agent?: Agent): Promise<{ status: number; body: string; peerSerial: string | null; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: 'GET', headers, ...(ca ? { ca } : {}), ...(agent ? { agent } : {}), timeout: 10_000 }, (res) => {
      // Read now: a kept-alive socket is handed back to the agent once the body ends.
      const peerSerial = u.protocol === 'https:' ? (res.socket as TLSSocket).getPeerX509Certificate()?.serialNumber ?? null : null;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), peerSerial, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

function post(url: string, ca: string, token: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', ca, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test('an end-to-end issuance with EAB, admin and log API calls leaves no secret in any log line', async () => {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-redaction-'));
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString('utf8')); cb(); } });
  const [httpsPort, http01Port] = await freePorts(2);
  const responder = new Http01Responder();
  await responder.start(http01Port);
  const readToken = 'log-read-token-canary-7f3a9c2e1b';
  const server = await startServer(loadConfig({
    ACME_CA_DATA_DIR: join(tmp, 'data'), ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`, ACME_CA_HTTP01_PORT: String(http01Port),
    ACME_CA_LOG_READ_TOKEN: readToken,
  }, tmp), createLogger('trace', sink));
  try {
    const rootPem = readFileSync(join(tmp, 'data/root.pem'), 'utf8');
    const base = new URL(server.directoryUrl).origin;
    const admin = await createApiToken(server.store, { name: 'ops', scopes: ['admin'] }, Date.now());
    const eabRes = await post(`${base}/admin/v1/eab-keys`, rootPem, admin.token, { scope: 'default' });
    assert.equal(eabRes.status, 201, eabRes.body);
    const eab = JSON.parse(eabRes.body) as { keyId: string; hmacKey: string };

    const c = await AcmeTestClient.connect(server.directoryUrl, rootPem);
    const accountKey = await generateAccountKey('ES256');
    assert.equal((await c.newAccountWithEab(accountKey, eab)).status, 201);
    const res = await c.newOrder([{ type: 'ip', value: '127.0.0.1' }]);
    const url = header(res, 'location')!;
    await completeHttp01(c, asOrder(res.body), responder);
    const ready = asOrder((await c.poll(url, (b) => asOrder(b).status === 'ready')).body);
    const csrKeys = await generateCsrKey('P-256');
    await c.finalize(ready.finalize, await buildCsr({ keys: csrKeys, ipAddresses: ['127.0.0.1'] }));
    const valid = asOrder((await c.poll(url, (b) => asOrder(b).status === 'valid')).body);
    const dl = await c.downloadCert(valid.certificate!);
    const leaf = new X509Certificate(splitPem(dl.text)[0]);
    assert.equal((await c.revoke(new Uint8Array(leaf.raw), { signWith: 'account', reason: 4 })).status, 200);
    assert.equal((await get(`${base}/log/v1/checkpoint`, rootPem, { Authorization: `Bearer ${readToken}` })).status, 200);
    assert.equal((await get(`${base}/admin/v1/eab-keys`, rootPem, { Authorization: `Bearer ${admin.token}` })).status, 200);
    c.close();

    const canaries: Array<[string, string]> = [
      ['admin token', admin.token], ['admin token secret', admin.token.slice('acmeca_'.length + 17)], ['EAB HMAC key', eab.hmacKey],
      ['log read token', readToken], ['account private key', String(accountKey.privateKey.export({ format: 'jwk' }).d)],
    ];
    // Every private key in the data folder, as its base64 body.
    const dataDir = join(tmp, 'data');
    const keyFiles = ['root.key', 'server.key', 'log.key', 'secrets.kek', ...readdirSync(join(dataDir, 'issuers')).map((id) => join('issuers', id, 'key.pem'))];
    for (const f of keyFiles) {
      const text = readFileSync(join(dataDir, f), 'utf8');
      const body = text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
      canaries.push([f, body.slice(20, 60)]);
    }
    const all = lines.join('');
    assert.ok(lines.length > 20, 'the server logged the requests');
    assert.match(all, /"reqId":"req-/, 'request lines carry a request id');
    for (const [what, secret] of canaries) {
      assert.ok(secret.length >= 16, what);
      assert.ok(!all.includes(secret), `${what} appears in the log`);
    }
    // JWS signatures and Authorization headers never appear, even at trace level.
    assert.ok(!/Bearer /.test(all), 'an Authorization header value was logged');
    assert.ok(!/"signature":"[A-Za-z0-9_-]{40,}/.test(all), 'a JWS signature was logged');
  } finally {
    await server.close();
    await responder.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('SIGHUP renews the server certificate in place: a kept-alive connection survives, new ones see the new certificate', async () => {
  const ca = await startCa({ env: { ACME_CA_LOG_LEVEL: 'warn' } });
  const rootPem = readFileSync(ca.rootPem, 'utf8');
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await get(ca.directoryUrl, rootPem, {}, agent);
    assert.equal(first.status, 200);
    const before = first.peerSerial;
    // Force a renewal: without its certificate file the server issues a new one on reload.
    await fsp.rm(join(ca.dataDir, 'server.pem'));
    process.kill(ca.pid!, 'SIGHUP');
    for (let i = 0; i < 50 && !existsSync(join(ca.dataDir, 'server.pem')); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(existsSync(join(ca.dataDir, 'server.pem')), 'the server wrote a new certificate');
    const again = await get(ca.directoryUrl, rootPem, {}, agent);
    assert.equal(again.status, 200);
    assert.ok(again.reused, 'the kept-alive connection was not dropped');
    const fresh = await get(ca.directoryUrl, rootPem, {}, new Agent({ keepAlive: false }));
    const after = fresh.peerSerial;
    assert.notEqual(after, before, 'a new connection gets the renewed certificate');
    assert.equal(after, new X509Certificate(readFileSync(join(ca.dataDir, 'server.pem'))).serialNumber);
  } finally {
    agent.destroy();
    await ca.stop();
  }
});

test('a separate ops listener serves health, readiness and metrics; the ACME listener then does not', async () => {
  const [opsPort] = await freePorts(1);
  const ca = await startCa({ env: { ACME_CA_LOG_LEVEL: 'warn', ACME_CA_OPS_LISTEN: `http://127.0.0.1:${opsPort}` } });
  try {
    const rootPem = readFileSync(ca.rootPem, 'utf8');
    assert.equal((await get(`http://127.0.0.1:${opsPort}/healthz`, null)).status, 200);
    let ready = await get(`http://127.0.0.1:${opsPort}/readyz`, null);
    for (let i = 0; i < 20 && ready.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      ready = await get(`http://127.0.0.1:${opsPort}/readyz`, null);
    }
    assert.equal(ready.status, 200, ready.body);
    assert.deepEqual((JSON.parse(ready.body) as { checks: Array<{ name: string; ok: boolean }> }).checks.map((c) => [c.name, c.ok]), [['database', true], ['caKey', true], ['logCheckpoint', true]]);
    assert.match((await get(`http://127.0.0.1:${opsPort}/metrics`, null)).body, /acme_ca_ca_certificate_not_after_seconds/);
    const origin = new URL(ca.directoryUrl).origin;
    assert.notEqual((await get(`${origin}/metrics`, rootPem)).status, 200);
    assert.equal((await get(`${origin}/ca/root.pem`, rootPem)).status, 200, 'the CA certificates stay next to the ACME API');
  } finally {
    await ca.stop();
  }
});

test('the admin API accepts an operator client certificate from this CA (mTLS), and refuses revoked or foreign ones', async () => {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'acme-admin-mtls-'));
  const [httpsPort, http01Port] = await freePorts(2);
  const responder = new Http01Responder();
  await responder.start(http01Port);
  const server = await startServer(loadConfig({
    ACME_CA_DATA_DIR: join(tmp, 'data'), ACME_CA_LISTEN: `https://127.0.0.1:${httpsPort}`, ACME_CA_HTTP01_PORT: String(http01Port),
    ACME_CA_ADMIN_CLIENT_CERT_NAMES: '127.0.0.1',
  }, tmp), createLogger('silent'));
  try {
    const rootPem = readFileSync(join(tmp, 'data/root.pem'), 'utf8');
    const base = new URL(server.directoryUrl).origin;
    const c = await AcmeTestClient.connect(server.directoryUrl, rootPem);
    assert.equal((await c.newAccount(await generateAccountKey('ES256'))).status, 201);
    const res = await c.newOrder([{ type: 'ip', value: '127.0.0.1' }]);
    const url = header(res, 'location')!;
    await completeHttp01(c, asOrder(res.body), responder);
    const ready = asOrder((await c.poll(url, (b) => asOrder(b).status === 'ready')).body);
    const keys = await generateCsrKey('P-256');
    await c.finalize(ready.finalize, await buildCsr({ keys, ipAddresses: ['127.0.0.1'] }));
    const valid = asOrder((await c.poll(url, (b) => asOrder(b).status === 'valid')).body);
    const chain = (await c.downloadCert(valid.certificate!)).text;
    const { webcrypto } = await import('../server/ca/crypto-engine.js');
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64')}\n-----END PRIVATE KEY-----\n`;
    const withCert = (cert: string, key: string): Promise<{ status: number; body: string }> => new Promise((resolve, reject) => {
      const req = httpsRequest(`${base}/admin/v1/eab-keys`, { method: 'GET', ca: rootPem, cert, key, agent: false, timeout: 10_000 }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (x: Buffer) => chunks.push(x));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end();
    });
    const ok = await withCert(chain, keyPem);
    assert.equal(ok.status, 200, ok.body);
    assert.equal((await get(`${base}/admin/v1/eab-keys`, rootPem)).status, 401, 'no token and no certificate');
    // A certificate from another CA, with the allowed name, is refused.
    const { generateKeyPairSync } = await import('node:crypto');
    const foreignKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    await fsp.writeFile(join(tmp, 'foreign.key'), foreignKey);
    const { execFileSync } = await import('node:child_process');
    const foreign = execFileSync('openssl', ['req', '-x509', '-new', '-key', join(tmp, 'foreign.key'), '-subj', '/CN=intruder', '-days', '1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
    const refused = await withCert(foreign, foreignKey);
    assert.equal(refused.status, 403);
    assert.match(refused.body, /not issued by this CA/);
    // Revoked: refused although the chain is fine.
    assert.equal((await c.revoke(new Uint8Array(new X509Certificate(splitPem(chain)[0]).raw), { signWith: 'account', reason: 4 })).status, 200);
    const revoked = await withCert(chain, keyPem);
    assert.equal(revoked.status, 403);
    assert.match(revoked.body, /revoked/);
    c.close();
  } finally {
    await server.close();
    await responder.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});
