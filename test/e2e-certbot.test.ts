import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { startCa, cleanup, makeTempDir, type CaProcess } from './support/ca-process.js';
import {
  certbotCertonly,
  certbotDnsManual,
  certbotRenew,
  certbotRevoke,
  ClientError,
  type CertbotLineage,
} from './support/acme-clients.js';
import { assertIssuedFor, leafSerial, readLeaf } from './support/openssl.js';

/*
 * certbot 2.1 (Debian) against the real server process: issuance over http-01 and dns-01,
 * renewal, and revocation. certbot's account key is always RSA, so every test here also
 * exercises RS256 JWS verification.
 *
 * Tests run in order and later ones use what earlier ones issued; when a prerequisite failed
 * they skip rather than fail, so the first failure is the one to read.
 */

const CLIENT_TIMEOUT_MS = 180_000;
const TEST_TIMEOUT_MS = 240_000;

const HTTP_NAME = 'certbot-http.e2e.test';
const RSA_NAME = 'certbot-rsa.e2e.test';
const DNS_NAME = 'certbot-dns.e2e.test';

let ca: CaProcess;
let workDir: string;
let issued: CertbotLineage | undefined;
let firstSerial: string | undefined;
let renewed: CertbotLineage | undefined;
let rsaIssued: CertbotLineage | undefined;
let revoked = false;

/** Include the server's log tail in failures: the client's view alone rarely shows the cause. */
async function withServerLogs<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const logs = ca.logs();
    if (err instanceof Error) err.message += `\n--- CA logs (tail) ---\n${logs.slice(-6000)}`;
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

before(async () => {
  ca = await startCa();
  workDir = await makeTempDir('acme-ca-certbot-');
});

after(async () => {
  await cleanup();
});

test('certbot certonly, http-01 standalone, ECDSA certificate key', { timeout: TEST_TIMEOUT_MS }, async () => {
  issued = await withServerLogs(() =>
    certbotCertonly({ ca, workDir, name: HTTP_NAME, httpPort: ca.ports.http01, keyType: 'ecdsa', timeoutMs: CLIENT_TIMEOUT_MS }),
  );
  await assertIssuedFor(ca.rootPem, issued.fullchainPath, HTTP_NAME);
  const leaf = readLeaf(issued.certPath);
  assert.equal(leaf.publicKey.asymmetricKeyType, 'ec');
  firstSerial = leafSerial(issued.certPath);
});

test('certbot certonly, http-01 standalone, RSA certificate key', { timeout: TEST_TIMEOUT_MS }, async () => {
  rsaIssued = await withServerLogs(() =>
    certbotCertonly({ ca, workDir, name: RSA_NAME, httpPort: ca.ports.http01, keyType: 'rsa', timeoutMs: CLIENT_TIMEOUT_MS }),
  );
  await assertIssuedFor(ca.rootPem, rsaIssued.fullchainPath, RSA_NAME);
  assert.equal(readLeaf(rsaIssued.certPath).publicKey.asymmetricKeyType, 'rsa');
});

test('certbot certonly, dns-01 via manual hooks and the test DNS server', { timeout: TEST_TIMEOUT_MS }, async () => {
  const lineage = await withServerLogs(() =>
    certbotDnsManual({ ca, workDir, name: DNS_NAME, txtDir: ca.txtDir, timeoutMs: CLIENT_TIMEOUT_MS }),
  );
  await assertIssuedFor(ca.rootPem, lineage.fullchainPath, DNS_NAME);
  assert.ok(
    ca.dns.queries().some((q) => q.type === 'TXT' && q.name === `_acme-challenge.${DNS_NAME}`),
    'the CA never asked the test DNS server for the TXT record',
  );
});

test('certbot renew --force-renewal issues a new certificate with a new serial', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const lineage = issued;
  if (!requires(t, lineage, 'the http-01 certificate')) return;
  const next = await withServerLogs(() =>
    certbotRenew({ ca, workDir, certName: lineage.certName, httpPort: ca.ports.http01, timeoutMs: CLIENT_TIMEOUT_MS }),
  );
  await assertIssuedFor(ca.rootPem, next.fullchainPath, HTTP_NAME);
  assert.notEqual(leafSerial(next.certPath), firstSerial, 'renewal returned the same serial');
  // certbot keeps every version; the live link must now point at the second one.
  assert.equal(path.basename(await fsp.realpath(next.certPath)), 'cert2.pem');
  renewed = next;
});

test('certbot revoke --reason keycompromise, signed with the certificate key', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const lineage = renewed;
  if (!requires(t, lineage, 'the renewed certificate')) return;
  const res = await withServerLogs(() =>
    certbotRevoke({ ca, workDir, certPath: lineage.certPath, keyPath: lineage.keyPath, reason: 'keycompromise', timeoutMs: CLIENT_TIMEOUT_MS }),
  );
  assert.match(res.output, /revoked/i);
  revoked = true;
});

test('a second revoke of the same certificate fails with alreadyRevoked', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const lineage = revoked ? renewed : undefined;
  if (!requires(t, lineage, 'the revoked certificate')) return;
  await assert.rejects(
    certbotRevoke({ ca, workDir, certPath: lineage.certPath, keyPath: lineage.keyPath, reason: 'keycompromise', timeoutMs: CLIENT_TIMEOUT_MS }),
    (err: Error) => {
      assert.ok(err instanceof ClientError, err.message);
      assert.match(err.everything, /urn:ietf:params:acme:error:alreadyRevoked/, `expected alreadyRevoked in:\n${err.message}\n--- CA logs ---\n${ca.logs().slice(-4000)}`);
      return true;
    },
  );
});

test('certbot revoke with the account key (kid), reason superseded', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const lineage = rsaIssued;
  if (!requires(t, lineage, 'the RSA-key certificate')) return;
  const res = await withServerLogs(() =>
    certbotRevoke({ ca, workDir, certPath: lineage.certPath, reason: 'superseded', timeoutMs: CLIENT_TIMEOUT_MS }),
  );
  assert.match(res.output, /revoked/i);
});
