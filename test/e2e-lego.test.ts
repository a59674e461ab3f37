import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { startCa, cleanup, makeTempDir, type CaProcess } from './support/ca-process.js';
import { ClientError, legoRun, legoRenew, legoRevoke, type LegoCert, type LegoRunOptions } from './support/acme-clients.js';
import { assertIssuedFor, leafSerial } from './support/openssl.js';

/*
 * lego 4.9 (Debian) against the real server process: issuance over http-01, tls-alpn-01 and
 * dns-01, renewal and revocation. lego uses an EC P-256 account key, so these runs cover ES256
 * JWS while the certbot file covers RS256.
 *
 * Tests run in order; when a prerequisite failed the dependent test skips, so the first
 * failure is the one to read.
 */

const CLIENT_TIMEOUT_MS = 180_000;
const TEST_TIMEOUT_MS = 240_000;

const HTTP_NAME = 'lego-http.e2e.test';
const TLS_NAME = 'lego-tls.e2e.test';
const DNS_NAME = 'lego-dns.e2e.test';
const WILDCARD_BASE = 'lego-wild.e2e.test';

let ca: CaProcess;
let workDir: string;
let httpIssued: LegoCert | undefined;
let tlsIssued: LegoCert | undefined;
let httpSerial: string | undefined;
let renewed: LegoCert | undefined;
let revoked = false;

async function withServerLogs<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- CA logs (tail) ---\n${ca.logs().slice(-6000)}`;
    throw err;
  }
}

function requires<T>(t: TestContext, value: T | undefined, what: string): value is T {
  if (value === undefined) {
    t.skip(`needs ${what}, which failed earlier`);
    return false;
  }
  return true;
}

function httpOpts(): LegoRunOptions {
  return { ca, workDir, name: HTTP_NAME, challenge: 'http', port: ca.ports.http01, timeoutMs: CLIENT_TIMEOUT_MS };
}

before(async () => {
  ca = await startCa();
  workDir = await makeTempDir('acme-ca-lego-');
});

after(async () => {
  await cleanup();
});

test('lego run, http-01', { timeout: TEST_TIMEOUT_MS }, async () => {
  httpIssued = await withServerLogs(() => legoRun(httpOpts()));
  await assertIssuedFor(ca.rootPem, httpIssued.certPath, HTTP_NAME);
  httpSerial = leafSerial(httpIssued.certPath);
});

test('lego run, tls-alpn-01', { timeout: TEST_TIMEOUT_MS }, async () => {
  const cert = await withServerLogs(() =>
    legoRun({ ca, workDir, name: TLS_NAME, challenge: 'tls', port: ca.ports.tlsAlpn01, timeoutMs: CLIENT_TIMEOUT_MS }),
  );
  await assertIssuedFor(ca.rootPem, cert.certPath, TLS_NAME);
  tlsIssued = cert;
});

test('lego run, dns-01 via the exec provider and the test DNS server', { timeout: TEST_TIMEOUT_MS }, async () => {
  const cert = await withServerLogs(() =>
    legoRun({
      ca,
      workDir,
      name: DNS_NAME,
      challenge: 'dns',
      dnsResolver: ca.dns.resolverAddress,
      txtDir: ca.txtDir,
      timeoutMs: CLIENT_TIMEOUT_MS,
    }),
  );
  await assertIssuedFor(ca.rootPem, cert.certPath, DNS_NAME);
  assert.ok(
    ca.dns.queries().some((q) => q.type === 'TXT' && q.name === `_acme-challenge.${DNS_NAME}`),
    'the CA never asked the test DNS server for the TXT record',
  );
});

test('lego run, dns-01 for a wildcard and its base name (one TXT name, two authorizations)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const wildcard = `*.${WILDCARD_BASE}`;
  const cert = await withServerLogs(() =>
    legoRun({
      ca,
      workDir,
      name: [wildcard, WILDCARD_BASE],
      challenge: 'dns',
      dnsResolver: ca.dns.resolverAddress,
      txtDir: ca.txtDir,
      timeoutMs: CLIENT_TIMEOUT_MS,
    }),
  );
  await assertIssuedFor(ca.rootPem, cert.certPath, wildcard);
  await assertIssuedFor(ca.rootPem, cert.certPath, WILDCARD_BASE);
});

test('lego renew issues a new certificate with a new serial', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!requires(t, httpIssued, 'the http-01 certificate')) return;
  const next = await withServerLogs(() => legoRenew(httpOpts()));
  await assertIssuedFor(ca.rootPem, next.certPath, HTTP_NAME);
  assert.notEqual(leafSerial(next.certPath), httpSerial, 'renewal returned the same serial');
  renewed = next;
});

test('lego revoke --reason 1 (keyCompromise)', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!requires(t, renewed, 'the renewed certificate')) return;
  const res = await withServerLogs(() =>
    legoRevoke({ ca, workDir, name: HTTP_NAME, reason: 1, keep: true, timeoutMs: CLIENT_TIMEOUT_MS }),
  );
  assert.match(res.output, /revoked/i);
  revoked = true;
});

test('a second lego revoke of the same certificate fails with alreadyRevoked', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!requires(t, revoked ? renewed : undefined, 'the revoked certificate')) return;
  await assert.rejects(
    legoRevoke({ ca, workDir, name: HTTP_NAME, reason: 1, keep: true, timeoutMs: CLIENT_TIMEOUT_MS }),
    (err: Error) => {
      assert.ok(err instanceof ClientError, err.message);
      assert.match(err.everything, /urn:ietf:params:acme:error:alreadyRevoked/, `expected alreadyRevoked in:\n${err.message}\n--- CA logs ---\n${ca.logs().slice(-4000)}`);
      return true;
    },
  );
});

test('after a CA restart the root and the account persist: lego renews over tls-alpn-01', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const cert = tlsIssued;
  if (!requires(t, cert, 'the tls-alpn-01 certificate')) return;
  const rootBefore = await fsp.readFile(ca.rootPem, 'utf8');
  const serialBefore = leafSerial(cert.certPath);
  await ca.restart();
  assert.equal(await fsp.readFile(ca.rootPem, 'utf8'), rootBefore, 'root.pem changed across a restart');
  const next = await withServerLogs(() =>
    legoRenew({ ca, workDir, name: TLS_NAME, challenge: 'tls', port: ca.ports.tlsAlpn01, timeoutMs: CLIENT_TIMEOUT_MS }),
  );
  await assertIssuedFor(ca.rootPem, next.certPath, TLS_NAME);
  assert.notEqual(leafSerial(next.certPath), serialBefore);
  // lego registers only when it has no account on disk, so a stored account the CA forgot would fail above.
  assert.doesNotMatch(next.result.output, /Registering account/);
});
