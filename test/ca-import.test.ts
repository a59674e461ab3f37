import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createPublicKey } from 'node:crypto';
import { loadOrCreateCa, caFiles, issuerFiles } from '../server/ca/ca-material.js';
import { buildCertificate, parseCertificate, randomSerial } from '../server/ca/certificate-builder.js';
import { pemCertificates, toPem } from '../server/ca/pem.js';
import { signingKeyFromPem } from '../server/ca/signing-key.js';
import { ensureServerCertificate } from '../server/ca/server-certificate.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const cli = join(repo, 'dist/clients/cli/main.js');
let work: string;

function openssl(args: string[], cwd = work): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** An enterprise root made with openssl, as an operator's offline CA would be. */
function enterpriseRoot(dir: string): { cert: string; key: string } {
  const key = join(dir, 'ent-root.key');
  const cert = join(dir, 'ent-root.pem');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  openssl(['req', '-x509', '-new', '-key', key, '-subj', '/O=Enterprise/CN=Enterprise Root', '-days', '3650', '-out', cert,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { cert, key };
}

function signIntermediate(dir: string, csr: string, root: { cert: string; key: string }, opts: { ca?: boolean; days?: number; out: string }): void {
  const ext = join(dir, `ext-${Date.now()}.cnf`);
  writeFileSync(ext, opts.ca === false
    ? 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n'
    : 'basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  openssl(['x509', '-req', '-in', csr, '-CA', root.cert, '-CAkey', root.key, '-CAcreateserial', '-days', String(opts.days ?? 365), '-extfile', ext, '-out', opts.out]);
}

function runCli(args: string[], env: Record<string, string>): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

before(() => { work = mkdtempSync(join(tmpdir(), 'acme-ca-import-')); });
after(() => { rmSync(work, { recursive: true, force: true }); });

test('generated CA: keys are 0600, intermediate is a CA with room for mesh intermediates, reused on restart', async () => {
  const dataDir = join(work, 'generated');
  const first = await loadOrCreateCa({ dataDir, organization: 'Test', intermediateCert: null, intermediateKey: null, rootCert: null });
  assert.equal(first.generated, true);
  const f = caFiles(dataDir);
  assert.equal(statSync(f.rootKey).mode & 0o777, 0o600);
  assert.equal(statSync(issuerFiles(dataDir, first.issuer.id).key).mode & 0o777, 0o600);
  assert.equal(statSync(join(dataDir, 'issuers')).mode & 0o777, 0o700);
  const text = openssl(['x509', '-in', f.intermediate, '-noout', '-text']);
  assert.match(text, /CA:TRUE, pathlen:1/);
  assert.match(text, /Certificate Sign, CRL Sign/);
  assert.match(text, /ASN1 OID: prime256v1/);
  assert.match(openssl(['verify', '-CAfile', f.root, f.intermediate]), /OK/);
  const second = await loadOrCreateCa({ dataDir, organization: 'Test', intermediateCert: null, intermediateKey: null, rootCert: null });
  assert.equal(second.generated, false);
  assert.equal(second.issuer.certPem, first.issuer.certPem);
});

test('intermediate csr + import: an enterprise root signs our CSR and the server issues under it', async () => {
  const dataDir = join(work, 'csr-flow');
  const env = { ACME_CA_DATA_DIR: dataDir };
  const root = enterpriseRoot(work);
  const csrOut = runCli(['intermediate', 'csr', '--out', join(work, 'inter.csr'), '--json'], env);
  assert.equal(csrOut.code, 0, csrOut.stderr);
  const { key } = JSON.parse(csrOut.stdout) as { key: string };
  assert.equal(statSync(key).mode & 0o777, 0o600);
  const verified = spawnSync('openssl', ['req', '-in', join(work, 'inter.csr'), '-noout', '-verify'], { encoding: 'utf8' });
  assert.equal(verified.status, 0);
  assert.match(verified.stdout + verified.stderr, /self-signature verify OK/);
  signIntermediate(work, join(work, 'inter.csr'), root, { out: join(work, 'inter.pem') });

  const imported = runCli(['intermediate', 'import', '--cert', join(work, 'inter.pem'), '--root', root.cert], env);
  assert.equal(imported.code, 0, imported.stderr);
  const ca = await loadOrCreateCa({ dataDir, organization: 'x', intermediateCert: null, intermediateKey: null, rootCert: null });
  assert.equal(ca.generated, false);
  assert.equal(readFileSync(ca.rootPath, 'utf8'), readFileSync(root.cert, 'utf8'));
  // A certificate issued by the imported intermediate chains to the enterprise root.
  const tls = await ensureServerCertificate(dataDir, ca.issuer, ['localhost', '127.0.0.1']);
  writeFileSync(join(work, 'server-chain.pem'), tls.certPem);
  const [leaf, ...chain] = tls.certPem.split(/(?=-----BEGIN CERTIFICATE-----)/);
  writeFileSync(join(work, 'leaf.pem'), leaf);
  writeFileSync(join(work, 'untrusted.pem'), chain.join(''));
  assert.match(openssl(['verify', '-CAfile', root.cert, '-untrusted', join(work, 'untrusted.pem'), join(work, 'leaf.pem')]), /leaf\.pem: OK/);
});

test('import refuses a certificate that does not match the pending key, that is not a CA, or that expired', async () => {
  const dataDir = join(work, 'refusals');
  const env = { ACME_CA_DATA_DIR: dataDir };
  const root = enterpriseRoot(work);
  assert.equal(runCli(['intermediate', 'csr', '--out', join(work, 'r.csr')], env).code, 0);

  // Key mismatch: a CSR from another key, signed by the root.
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(work, 'other.key')]);
  openssl(['req', '-new', '-key', join(work, 'other.key'), '-subj', '/CN=other', '-out', join(work, 'other.csr')]);
  signIntermediate(work, join(work, 'other.csr'), root, { out: join(work, 'other.pem') });
  const mismatch = runCli(['intermediate', 'import', '--cert', join(work, 'other.pem'), '--root', root.cert], env);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /private key does not match/);

  signIntermediate(work, join(work, 'r.csr'), root, { ca: false, out: join(work, 'notca.pem') });
  const notCa = runCli(['intermediate', 'import', '--cert', join(work, 'notca.pem'), '--root', root.cert], env);
  assert.equal(notCa.code, 1);
  assert.match(notCa.stderr, /is not a CA/);

  // openssl 3.0's x509 cannot backdate, so the enterprise root's key signs an expired one with our builder.
  const rootKey = await signingKeyFromPem(readFileSync(root.key, 'utf8'));
  const rootCert = parseCertificate(pemCertificates(readFileSync(root.cert, 'utf8'))[0]);
  const pendingSpki = new Uint8Array(createPublicKey(readFileSync(join(dataDir, 'intermediate-pending.key'), 'utf8')).export({ format: 'der', type: 'spki' }));
  const expiredDer = await buildCertificate({
    serial: randomSerial(), subject: { commonName: 'Expired Intermediate' }, issuerName: rootCert.subject, issuerSpkiDer: rootKey.spkiDer,
    subjectSpkiDer: pendingSpki, notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z'),
    ca: true, pathLength: 1, keyUsage: ['keyCertSign', 'cRLSign'],
  }, rootKey);
  writeFileSync(join(work, 'expired.pem'), toPem('CERTIFICATE', expiredDer));
  const expired = runCli(['intermediate', 'import', '--cert', join(work, 'expired.pem'), '--root', root.cert], env);
  assert.equal(expired.code, 1);
  assert.match(expired.stderr, /expired/);

  // Nothing was installed by the refused imports.
  assert.throws(() => statSync(caFiles(dataDir).intermediate));
});

test('the server refuses to start from a configured intermediate that is not a CA, naming the problem', () => {
  const dir = join(work, 'cfg');
  const root = enterpriseRoot(work);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(work, 'leafish.key')]);
  openssl(['pkcs8', '-topk8', '-nocrypt', '-in', join(work, 'leafish.key'), '-out', join(work, 'leafish.p8')]);
  openssl(['req', '-new', '-key', join(work, 'leafish.key'), '-subj', '/CN=leafish', '-out', join(work, 'leafish.csr')]);
  signIntermediate(work, join(work, 'leafish.csr'), root, { ca: false, out: join(work, 'leafish.pem') });
  const r = spawnSync(process.execPath, [join(repo, 'dist/server/main.js')], {
    env: { ...process.env, ACME_CA_DATA_DIR: dir, ACME_CA_LISTEN: 'https://127.0.0.1:1', ACME_CA_INTERMEDIATE_CERT: join(work, 'leafish.pem'), ACME_CA_INTERMEDIATE_KEY: join(work, 'leafish.p8'), ACME_CA_ROOT_CERT: root.cert },
    encoding: 'utf8', timeout: 30_000,
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /is not a CA/);
});
