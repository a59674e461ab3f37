import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { cleanup, makeTempDir, startCa, type CaProcess } from './support/ca-process.js';
import { certbotCertonly, certbotRevoke, type CertbotLineage } from './support/acme-clients.js';
import { httpGet } from './support/http.js';
import { freePort } from './support/ports.js';
import {
  AcmeTestClient, asAuthorization, asOrder, buildCsr, generateAccountKey, generateCsrKey, header, Http01Responder,
  splitPem, type AcmeResponse,
} from './support/acme-test-client.js';

/*
 * CRLs end to end against the CA as a child process with a plain-HTTP CRL listener: certbot
 * obtains two certificates and revokes one with its own key (keyCompromise); the CRL of the
 * active issuer lists it, verifies with openssl, and makes `openssl verify -crl_check` refuse the
 * revoked certificate and accept the other; the CRL number grows with each revocation. A 30-day
 * profile carries a CRL Distribution Point that serves this CRL; the 24-hour default has none.
 * Tests run in order and share state; a test whose prerequisite failed skips.
 */

const CLIENT_TIMEOUT_MS = 120_000;
const CRL_WAIT_MS = 15_000;

let ca: CaProcess;
let workDir: string;
let crlPort: number;
let issuerId: string;
let intermediatePem: string;
let chainFile: string;
let revoked: CertbotLineage | undefined;
let kept: CertbotLineage | undefined;
let firstNumber: number | undefined;
let revokedNumber: number | undefined;
let long: { certPem: string; certDer: Uint8Array; client: AcmeTestClient } | undefined;
const clients: AcmeTestClient[] = [];

interface Exec { code: number; stdout: string; stderr: string }

function openssl(args: string[]): Promise<Exec> {
  return new Promise((resolve) => {
    execFile('openssl', args, { timeout: 15_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

const crlUrl = (): string => `http://127.0.0.1:${crlPort}/crl/${issuerId.slice(0, 16)}.crl`;
const normSerial = (hex: string): string => hex.toUpperCase().replace(/^(?:00)+(?=..)/, '');

interface CrlView { der: Buffer; text: string; number: number; serials: string[] }

async function fetchCrl(url = crlUrl()): Promise<CrlView> {
  const res = await httpGet(url, { timeoutMs: 5000, agent: false });
  assert.equal(res.status, 200, `GET ${url}: ${res.status} ${res.body.toString('utf8').slice(0, 200)}`);
  assert.equal(res.headers['content-type'], 'application/pkix-crl');
  const file = path.join(workDir, `crl-${Date.now()}-${Math.random().toString(16).slice(2)}.der`);
  await fsp.writeFile(file, res.body);
  const text = await openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text']);
  assert.equal(text.code, 0, text.stderr);
  await fsp.rm(file);
  const num = /X509v3 CRL Number:\s*\n\s*(\d+)/.exec(text.stdout);
  assert.ok(num, `the CRL has a CRL number:\n${text.stdout}`);
  const serials = [...text.stdout.matchAll(/Serial Number:\s*([0-9A-Fa-f]+)/g)].map((m) => normSerial(m[1]));
  return { der: res.body, text: text.stdout, number: Number(num[1]), serials };
}

/** Polls the CRL (bounded) until `until` holds. */
async function waitForCrl(until: (c: CrlView) => boolean, what: string): Promise<CrlView> {
  const deadline = Date.now() + CRL_WAIT_MS;
  let last: CrlView | undefined;
  while (Date.now() < deadline) {
    last = await fetchCrl();
    if (until(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the CRL did not ${what} within ${CRL_WAIT_MS} ms; last:\n${last?.text ?? '(none)'}\n--- CA logs ---\n${ca.logs().slice(-3000)}`);
}

function requires<T>(t: TestContext, v: T | undefined, what: string): v is T {
  if (v === undefined) { t.skip(`needs ${what}, which failed earlier`); return false; }
  return true;
}

async function cdpOf(pem: string): Promise<string | null> {
  const file = path.join(workDir, `leaf-${Math.random().toString(16).slice(2)}.pem`);
  await fsp.writeFile(file, splitPem(pem)[0]);
  const r = await openssl(['x509', '-in', file, '-noout', '-ext', 'crlDistributionPoints']);
  await fsp.rm(file);
  assert.equal(r.code, 0, r.stderr);
  if (!/CRL Distribution Points/.test(r.stdout)) return null;
  const m = /URI:(\S+)/.exec(r.stdout);
  assert.ok(m, `a distribution point with a URI: ${r.stdout}`);
  return m[1];
}

async function fastPoll(c: AcmeTestClient, url: string, until: (b: unknown) => boolean): Promise<AcmeResponse> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const res = await c.post(url, '');
    assert.ok(res.status < 400, res.text);
    if (until(res.body)) return res;
    if (Date.now() > deadline) throw new Error(`polling ${url}: ${res.text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  workDir = await makeTempDir('acme-ca-crl-');
  const configFile = path.join(workDir, 'config.yaml');
  await fsp.writeFile(configFile, 'crl:\n  debounce: 200ms\n');
  const policyFile = path.join(workDir, 'policy.yaml');
  await fsp.writeFile(policyFile, 'profiles:\n  long30d:\n    validity: 30d\n    extKeyUsage: [serverAuth]\n');
  crlPort = await freePort();
  ca = await startCa({ env: { ACME_CA_CONFIG: configFile, ACME_CA_POLICY_FILE: policyFile, ACME_CA_CRL_LISTEN: `http://127.0.0.1:${crlPort}` } });
  issuerId = (await fsp.readFile(path.join(ca.dataDir, 'active-issuer'), 'utf8')).trim();
  assert.match(issuerId, /^[0-9a-f]{64}$/);
  intermediatePem = await fsp.readFile(path.join(ca.dataDir, 'intermediate.pem'), 'utf8');
  assert.equal(issuerId, createHash('sha256').update(new X509Certificate(intermediatePem).raw).digest('hex'), 'the issuer id is the SHA-256 of the intermediate DER');
  chainFile = path.join(workDir, 'intermediate-and-root.pem');
  await fsp.writeFile(chainFile, intermediatePem + (await fsp.readFile(ca.rootPem, 'utf8')));
  await fsp.writeFile(path.join(workDir, 'intermediate.pem'), intermediatePem);
});

after(async () => {
  for (const c of clients) c.close();
  await cleanup();
});

test('the CRL of the active issuer is served over plain HTTP and verifies', async () => {
  const crl = await fetchCrl();
  firstNumber = crl.number;
  const file = path.join(workDir, 'first.crl.der');
  await fsp.writeFile(file, crl.der);
  const v = await openssl(['crl', '-inform', 'DER', '-in', file, '-CAfile', chainFile, '-noout']);
  assert.match(v.stdout + v.stderr, /verify OK/, `${v.stdout}${v.stderr}`);
  assert.equal(crl.serials.length, 0, 'nothing is revoked yet');
  const missing = await httpGet(`http://127.0.0.1:${crlPort}/crl/0123456789abcdef.crl`, { timeoutMs: 5000, agent: false });
  assert.equal(missing.status, 404);
});

test('certbot obtains two certificates; the 24-hour default profile carries no CRL Distribution Point', { timeout: 2 * CLIENT_TIMEOUT_MS }, async () => {
  const one = await certbotCertonly({ ca, workDir: path.join(workDir, 'certbot'), name: 'revoked.crl.test', httpPort: ca.ports.http01, timeoutMs: CLIENT_TIMEOUT_MS });
  const two = await certbotCertonly({ ca, workDir: path.join(workDir, 'certbot'), name: 'kept.crl.test', httpPort: ca.ports.http01, timeoutMs: CLIENT_TIMEOUT_MS });
  for (const l of [one, two]) {
    const pem = await fsp.readFile(l.certPath, 'utf8');
    const leaf = new X509Certificate(pem);
    assert.ok(Math.abs(Date.parse(leaf.validTo) - Date.parse(leaf.validFrom) - 86_400_000) <= 2000, 'the default profile is 24 hours');
    assert.equal(await cdpOf(pem), null, 'a 24-hour certificate has no CRL Distribution Point');
  }
  revoked = one;
  kept = two;
});

test('certbot revokes one with its key (keyCompromise): the CRL lists it, verifies, and openssl verify -crl_check refuses it', { timeout: CLIENT_TIMEOUT_MS + 30_000 }, async (t) => {
  if (!requires(t, revoked, 'the certbot certificates') || !requires(t, kept, 'the certbot certificates')) return;
  const lineage = revoked;
  const serial = normSerial(new X509Certificate(await fsp.readFile(lineage.certPath, 'utf8')).serialNumber);
  const res = await certbotRevoke({ ca, workDir: path.join(workDir, 'certbot'), certPath: lineage.certPath, keyPath: lineage.keyPath, reason: 'keycompromise', timeoutMs: CLIENT_TIMEOUT_MS });
  assert.match(res.output, /revoked/i);

  const crl = await waitForCrl((c) => c.serials.includes(serial), `list ${serial}`);
  assert.ok(crl.number > firstNumber!, `the CRL number grew: ${firstNumber} -> ${crl.number}`);
  revokedNumber = crl.number;
  assert.match(crl.text, new RegExp(`Serial Number: 0*${serial}[\\s\\S]*?Key Compromise`, 'i'), 'the entry has reason keyCompromise');

  const der = path.join(workDir, 'crl.der');
  const pem = path.join(workDir, 'crl.pem');
  await fsp.writeFile(der, crl.der);
  const v = await openssl(['crl', '-inform', 'DER', '-in', der, '-CAfile', chainFile, '-noout']);
  assert.match(v.stdout + v.stderr, /verify OK/, `${v.stdout}${v.stderr}`);
  assert.equal((await openssl(['crl', '-inform', 'DER', '-in', der, '-out', pem])).code, 0);

  const inter = path.join(workDir, 'intermediate.pem');
  const bad = await openssl(['verify', '-crl_check', '-CAfile', ca.rootPem, '-untrusted', inter, '-CRLfile', pem, lineage.certPath]);
  assert.notEqual(bad.code, 0, `a revoked certificate must not verify: ${bad.stdout}${bad.stderr}`);
  assert.match(bad.stdout + bad.stderr, /certificate revoked/);
  const good = await openssl(['verify', '-crl_check', '-CAfile', ca.rootPem, '-untrusted', inter, '-CRLfile', pem, kept.certPath]);
  assert.equal(good.code, 0, `${good.stdout}${good.stderr}`);
  assert.match(good.stdout, /: OK/);
});

test('a 30-day profile carries a CRL Distribution Point that serves this CRL', async () => {
  const responder = new Http01Responder();
  await responder.start(ca.ports.http01);
  try {
    const c = await AcmeTestClient.connect(ca.directoryUrl, await fsp.readFile(ca.rootPem, 'utf8'));
    clients.push(c);
    assert.equal((await c.newAccount(await generateAccountKey('ES256'))).status, 201);
    const created = await c.newOrder([{ type: 'dns', value: 'long.crl.test' }], { profile: 'long30d' });
    assert.equal(created.status, 201, created.text);
    const orderUrl = header(created, 'location')!;
    for (const authzUrl of asOrder(created.body).authorizations) {
      const authz = asAuthorization((await c.getAuthz(authzUrl)).body);
      const ch = authz.challenges.find((x) => x.type === 'http-01')!;
      responder.set(ch.token, c.keyAuthorization(ch.token));
      assert.equal((await c.respondChallenge(ch.url)).status, 200);
      await fastPoll(c, authzUrl, (b) => asAuthorization(b).status === 'valid');
    }
    const ready = asOrder((await fastPoll(c, orderUrl, (b) => asOrder(b).status === 'ready')).body);
    const keys = await generateCsrKey('P-256');
    assert.equal((await c.finalize(ready.finalize, await buildCsr({ keys, dnsNames: ['long.crl.test'] }))).status, 200);
    const valid = asOrder((await fastPoll(c, orderUrl, (b) => asOrder(b).status === 'valid')).body);
    const dl = await c.downloadCert(valid.certificate!);
    assert.equal(dl.status, 200);
    const leaf = new X509Certificate(splitPem(dl.text)[0]);
    assert.ok(Math.abs(Date.parse(leaf.validTo) - Date.parse(leaf.validFrom) - 30 * 86_400_000) <= 2000, '30-day validity');
    const cdp = await cdpOf(dl.text);
    assert.equal(cdp, crlUrl(), 'the distribution point is the issuer\'s CRL on the CRL listener');
    const viaCdp = await fetchCrl(cdp!);
    const direct = await fetchCrl();
    assert.equal(viaCdp.number, direct.number);
    assert.ok(viaCdp.der.equals(direct.der), 'the distribution point serves the issuer\'s current CRL');
    long = { certPem: dl.text, certDer: new Uint8Array(leaf.raw), client: c };
  } finally {
    await responder.close();
  }
});

test('a second revocation raises the CRL number again', async (t) => {
  if (!requires(t, long, 'the 30-day certificate') || !requires(t, revokedNumber, 'the first revocation')) return;
  const serial = normSerial(new X509Certificate(splitPem(long.certPem)[0]).serialNumber);
  const res = await long.client.revoke(long.certDer, { signWith: 'account', reason: 4 });
  assert.equal(res.status, 200, res.text);
  const crl = await waitForCrl((c) => c.serials.includes(serial), `list ${serial}`);
  assert.ok(crl.number > revokedNumber, `the CRL number grew again: ${revokedNumber} -> ${crl.number}`);
  assert.match(crl.text, /Superseded/);
  assert.ok(crl.serials.length >= 2, 'both revocations are listed');
});
