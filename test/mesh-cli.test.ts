import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApiToken } from '../server/admin/api-tokens.js';
import { buildCertificate, OID, parseCertificate, randomSerial, subjectKeyId } from '../server/ca/certificate-builder.js';
import { issueLeaf } from '../server/ca/leaf.js';
import { toPem } from '../server/ca/pem.js';
import { generateP256Pkcs8Pem, signingKeyFromPem } from '../server/ca/signing-key.js';
import { createMeshToken } from '../server/mesh/credentials.js';
import {
  assertIstioAccepts, assertKumaAccepts, assertLinkerdAccepts, assertMeshIntermediateProfile, assertSpireAccepts, call, facts, opensslCsr,
  opensslVerify, pemBlocks, REPO, run, signSvid, startMeshServer, type HttpResult, type MeshServer,
} from './fixtures/mesh/harness.js';

/*
 * The native API (POST /api/v1/mesh/intermediates), the operator's mesh CLI (credentials on the
 * data folder; `mesh issue` writing each mesh's file layout from a key made on this machine, with
 * --renew), and the mesh credential admin API, against an in-process server on loopback HTTPS.
 */

const CLI = path.join(REPO, 'dist/clients/cli/main.js');
let s: MeshServer;
let work: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  s = await startMeshServer();
  work = path.join(s.tmp, 'work');
  await fsp.mkdir(work);
  env = { ...process.env, ACME_CA_DATA_DIR: path.join(s.tmp, 'data'), ACME_CA_POLICY_FILE: path.join(s.tmp, 'policy.yaml'), ACME_CA_CONFIG: '', ACME_CA_MESH_TOKEN: '' };
});
after(async () => { await s?.close(); });

function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args], { env: { ...env, ...extraEnv } });
}

async function cliJson<T>(args: string[]): Promise<T> {
  const r = await cli([...args, '--json']);
  assert.equal(r.code, 0, `acme-ca ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const native = (body: unknown, opts: { token?: string; cert?: string; key?: string } = {}): Promise<HttpResult> => call(`${s.base}/api/v1/mesh/intermediates`, 'POST', {
  headers: { 'Content-Type': 'application/json', ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}) }, body, ca: s.rootPem, cert: opts.cert, key: opts.key,
});

function problem(r: HttpResult, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, r.text);
  assert.match(r.contentType, /^application\/problem\+json/);
  assert.match((r.json as { detail: string }).detail, pattern);
}

describe('mesh credentials from the CLI', () => {
  test('mesh token create, list and revoke work on the data folder a running server shares', async () => {
    const created = await cliJson<{ id: string; token: string; scope: string; expiresAt: number }>(['mesh', 'token', 'create', '--scope', 'mesh-k8s', '--name', 'cli-token', '--ttl', '2h']);
    assert.match(created.token, /^acmemesh_/);
    assert.ok(created.expiresAt > Date.now() + 3_500_000 && created.expiresAt <= Date.now() + 7_200_000);
    const lookup = await call(`${s.vault}/v1/auth/token/lookup-self`, 'GET', { headers: { 'X-Vault-Token': created.token }, ca: s.rootPem });
    assert.equal(lookup.status, 200, 'the running server accepts a token the CLI wrote');
    const listed = await cliJson<{ tokens: Array<{ id: string; secretSha256?: string }> }>(['mesh', 'token', 'list']);
    assert.ok(listed.tokens.some((t) => t.id === created.id));
    assert.ok(listed.tokens.every((t) => t.secretSha256 === undefined), 'no hashes in listings');
    assert.equal((await cli(['mesh', 'token', 'revoke', created.id])).code, 0);
    assert.equal((await call(`${s.vault}/v1/auth/token/lookup-self`, 'GET', { headers: { 'X-Vault-Token': created.token }, ca: s.rootPem })).status, 403);
    const bad = await cli(['mesh', 'token', 'create', '--scope', 'nope', '--name', 'x']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /mesh scope 'nope' is not defined under mesh\.scopes; defined: spire, mesh-k8s, other, deep/);
    assert.equal((await cli(['mesh', 'token', 'create', '--name', 'x'])).code, 2);
  });

  test('mesh approle create and secret-id give a working AppRole login', async () => {
    const role = await cliJson<{ name: string; roleId: string }>(['mesh', 'approle', 'create', '--name', 'spire-prod', '--scope', 'spire', '--token-ttl', '10m']);
    const secret = await cliJson<{ secretId: string; roleId: string; expiresAt: number }>(['mesh', 'approle', 'secret-id', 'spire-prod', '--ttl', '1d']);
    assert.equal(secret.roleId, role.roleId);
    const login = await call(`${s.vault}/v1/auth/approle/login`, 'PUT', { body: { role_id: role.roleId, secret_id: secret.secretId }, ca: s.rootPem });
    assert.equal(login.status, 200, login.text);
    assert.equal((login.json as { auth: { lease_duration: number } }).auth.lease_duration, 600);
    const list = await cliJson<{ approles: Array<{ name: string }> }>(['mesh', 'approle', 'list']);
    assert.ok(list.approles.some((r) => r.name === 'spire-prod'));
    assert.equal((await cli(['mesh', 'approle', 'revoke', 'spire-prod'])).code, 0);
    assert.equal((await call(`${s.vault}/v1/auth/approle/login`, 'PUT', { body: { role_id: role.roleId, secret_id: secret.secretId }, ca: s.rootPem })).status, 400);
  });
});

describe('the native API', () => {
  test('refuses without a credential, with a bad token, and outside the policy; nothing is signed', async () => {
    const token = (await createMeshToken(s.mesh, { name: 'n', scope: 'mesh-k8s', ttlMs: 3_600_000 }, Date.now())).token;
    const p384 = await opensslCsr(work, 'p384', { subject: '/CN=linkerd', san: 'URI:spiffe://cluster.local', key: 'ec-p384' });
    const noUri = await opensslCsr(work, 'nouri', { subject: '/CN=spire' });
    const before = await s.mesh.countCertificates();
    problem(await native({ csr: p384.csrPem, trustDomain: 'cluster.local' }), 401, /send a mesh token as "Authorization: Bearer <token>" or connect with a client certificate/);
    problem(await native({ csr: p384.csrPem, trustDomain: 'cluster.local' }, { token: `acmemesh_${'x'.repeat(16)}_${'y'.repeat(43)}` }), 401, /unknown token/);
    problem(await native({ csr: p384.csrPem, trustDomain: 'cluster.local', profile: 'linkerd' }, { token }), 400, /profile linkerd needs an ECDSA P-256 issuer key .* the CSR has EC-P384/);
    problem(await native({ csr: noUri.csrPem, trustDomain: 'cluster.local', profile: 'spire' }, { token }), 400, /profile spire needs the URI SAN spiffe:\/\/cluster\.local/);
    problem(await native({ csr: noUri.csrPem, trustDomain: 'cluster.local', nameConstraints: { dns: ['example.com'] } }, { token }), 403, /requested DNS name constraint "example\.com" is not within the policy's/);
    problem(await native({ csr: noUri.csrPem, trustDomain: 'example.org' }, { token }), 403, /scope "mesh-k8s" may not obtain a subordinate CA for trust domain "example\.org"/);
    problem(await native({ csr: 'not a csr', trustDomain: 'cluster.local' }, { token }), 400, /PEM "CERTIFICATE REQUEST"/);
    problem(await native({ csr: noUri.csrPem, ttlSeconds: 30 }, { token }), 400, /must have required property 'trustDomain'/);
    problem(await native({ csr: noUri.csrPem, trustDomain: 'cluster.local', ttlSeconds: 30 }, { token }), 400, /ttlSeconds must be >= 60/);
    assert.equal(await s.mesh.countCertificates(), before);
  });

  test('accepts a client certificate issued by this CA that matches a certificate role', async () => {
    const clientKey = await opensslCsr(work, 'client', { subject: '/CN=spire-server.example.org' });
    const spki = createPublicKey(createPrivateKey(clientKey.keyPem)).export({ format: 'der', type: 'spki' });
    const issue = async (dns: string): Promise<string> => {
      const leaf = await issueLeaf(s.server.ca.issuer, { spkiDer: new Uint8Array(spki), san: [{ type: 'dns', value: dns }], notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000), extKeyUsage: [OID.clientAuth] });
      return toPem('CERTIFICATE', leaf.der);
    };
    const csr = await opensslCsr(work, 'spire-ca', { subject: '/C=US/O=SPIFFE', san: 'URI:spiffe://example.org' });
    const ok = await native({ csr: csr.csrPem, trustDomain: 'example.org', profile: 'spire', ttlSeconds: 7200 }, { cert: await issue('spire-server.example.org'), key: clientKey.keyPem });
    assert.equal(ok.status, 200, ok.text);
    const body = ok.json as { certificate: string; chain: string[]; root: string; notAfter: string; serial: string; logEntry: { index: number; leafHash: string }; trustDomain: string };
    assert.equal(body.root, s.rootPem);
    assert.equal(body.chain[body.chain.length - 1], body.root, 'root last, byte-identical');
    assertSpireAccepts(body.certificate, 'example.org');
    assert.ok(Math.abs(new Date(body.notAfter).getTime() - Date.now() - 7_200_000) < 10_000);
    const entry = (await s.server.store.getLogEntries(body.logEntry.index, body.logEntry.index + 1))[0];
    assert.match(Buffer.from(entry.body).toString(), /"credential":"cert:spire-server"/);
    const other = await native({ csr: csr.csrPem, trustDomain: 'example.org' }, { cert: await issue('stranger.example.org'), key: clientKey.keyPem });
    problem(other, 403, /matches no certificate role/);
  });
});

describe('mesh issue', () => {
  let token: string;
  before(async () => { token = (await createMeshToken(s.mesh, { name: 'issue', scope: 'mesh-k8s', ttlMs: 3_600_000 }, Date.now())).token; });

  const issueArgs = (layout: string, out: string, extra: string[] = []): string[] => ['mesh', 'issue', '--url', s.base, '--ca', s.rootPath, '--trust-domain', 'cluster.local', '--layout', layout, '--out', out, '--ttl', '720h', ...extra];

  /** The signed CA and key of a layout, after checking the key stayed private and matches. */
  function readLayout(dir: string, certFile: string, keyFile: string): { ca: string; keyPem: string } {
    const mode = fs.statSync(path.join(dir, keyFile)).mode & 0o777;
    assert.equal(mode, 0o600, `${keyFile} is 0600`);
    const keyPem = fs.readFileSync(path.join(dir, keyFile), 'utf8');
    const ca = pemBlocks(fs.readFileSync(path.join(dir, certFile), 'utf8'))[0];
    assert.ok(new X509Certificate(ca).publicKey.equals(createPublicKey(createPrivateKey(keyPem))), `${certFile} is for ${keyFile}`);
    return { ca, keyPem };
  }

  async function leafVerifies(dir: string, ca: string, keyPem: string, untrusted: string[]): Promise<void> {
    const leaf = await signSvid(ca, keyPem, 'spiffe://cluster.local/ns/default/sa/web', ['web.default.svc.cluster.local']);
    const v = await opensslVerify(dir, s.rootPath, leaf, [ca, ...untrusted], 'sslserver');
    assert.ok(v.ok, `a leaf signed by the issued intermediate verifies up to our root: ${v.out}`);
  }

  test('istio: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem', async () => {
    const dir = path.join(work, 'istio');
    const r = await cliJson<{ files: string[]; trustDomain: string; serial: string }>(issueArgs('istio', dir, ['--token', token]));
    assert.deepEqual(r.files.map((f) => path.basename(f)).sort(), ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    const { ca, keyPem } = readLayout(dir, 'ca-cert.pem', 'ca-key.pem');
    assert.equal(fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8'), s.rootPem);
    const chain = pemBlocks(fs.readFileSync(path.join(dir, 'cert-chain.pem'), 'utf8'));
    assert.equal(chain.length, 3, 'cert-chain.pem = ca-cert + our intermediate + root');
    assert.equal(chain[0], ca.trim());
    assert.equal(chain[2], s.rootPem.trim());
    assertIstioAccepts(ca);
    assertMeshIntermediateProfile(ca, { pathLen: 0, uri: 'spiffe://cluster.local' });
    assert.ok((await opensslVerify(dir, s.rootPath, ca, [chain[1]])).ok);
    await leafVerifies(dir, ca, keyPem, [chain[1]]);
  });

  test('istio-tls and linkerd: tls.crt/tls.key/ca.crt and crt.pem/key.pem/ca.crt', async () => {
    for (const [layout, cert, key] of [['istio-tls', 'tls.crt', 'tls.key'], ['linkerd', 'crt.pem', 'key.pem']]) {
      const dir = path.join(work, layout);
      // The token from the environment, as an operator's script would pass it.
      const r = await cli([...issueArgs(layout, dir), '--json'], { ACME_CA_MESH_TOKEN: token });
      assert.equal(r.code, 0, r.stderr);
      const { ca, keyPem } = readLayout(dir, cert, key);
      assert.equal(fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8'), s.rootPem, 'ca.crt is the trust anchor');
      const crt = pemBlocks(fs.readFileSync(path.join(dir, cert), 'utf8'));
      assert.equal(crt.length, 2, `${cert} = issuer + our intermediate`);
      if (layout === 'linkerd') assertLinkerdAccepts(ca);
      await leafVerifies(dir, ca, keyPem, crt.slice(1));
    }
  });

  test('kuma: every certificate of ca.pem passes Kuma\'s provided-CA check', async () => {
    const dir = path.join(work, 'kuma');
    assert.equal((await cli([...issueArgs('kuma', dir, ['--token', token, '--key-type', 'rsa2048'])])).code, 0);
    const { ca, keyPem } = readLayout(dir, 'ca.pem', 'ca-key.pem');
    const bundle = fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8');
    assert.equal(pemBlocks(bundle).length, 3);
    assertKumaAccepts(bundle);
    assert.equal(createPrivateKey(keyPem).asymmetricKeyType, 'rsa');
    assert.ok((await opensslVerify(dir, s.rootPath, ca, [pemBlocks(bundle)[1]])).ok);
  });

  test('--renew: nothing before the renewal window, a new key and certificate inside it', async () => {
    const dir = path.join(work, 'generic');
    assert.equal((await cli(issueArgs('generic', dir, ['--token', token]))).code, 0);
    const first = fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8');
    const firstKey = fs.readFileSync(path.join(dir, 'key.pem'), 'utf8');
    const again = await cli(issueArgs('generic', dir, ['--token', token]));
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists; use --renew to rotate it before it expires, or --force/);
    const notDue = await cliJson<{ renewed: boolean; reason: string }>(issueArgs('generic', dir, ['--token', token, '--renew']));
    assert.equal(notDue.renewed, false);
    assert.match(notDue.reason, /renewal starts 240h before the end/);
    assert.equal(fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8'), first, 'not due: untouched');
    const renewed = await cliJson<{ renewed: boolean; serial: string }>(issueArgs('generic', dir, ['--token', token, '--renew', '--renew-before', '800h']));
    assert.equal(renewed.renewed, true);
    const second = fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8');
    assert.notEqual(second, first);
    assert.notEqual(fs.readFileSync(path.join(dir, 'key.pem'), 'utf8'), firstKey, 'rotation makes a new key');
    assert.equal(new X509Certificate(second).serialNumber.toLowerCase().replace(/^0+/, ''), renewed.serial.replace(/^0+/, ''));
    readLayout(dir, 'cert.pem', 'key.pem');
  });

  test('refusals reach the operator; a spire-disk CA needs pathLen 1, which the generated intermediate cannot give', async () => {
    const r = await cli(issueArgs('spire-disk', path.join(work, 'spire-refused'), ['--token', token]));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HTTP 403\)|HTTP 400\)/);
    assert.match(r.stderr, /pathLen 1/);
    assert.ok(!fs.existsSync(path.join(work, 'spire-refused', 'upstream_ca.key')), 'nothing written when refused');
    const other = await cli(['mesh', 'issue', '--url', s.base, '--ca', s.rootPath, '--trust-domain', 'example.org', '--layout', 'istio', '--out', path.join(work, 'x'), '--token', token]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /scope "mesh-k8s" may not obtain a subordinate CA for trust domain "example\.org"/);
    assert.equal((await cli(['mesh', 'issue', '--url', s.base, '--trust-domain', 'cluster.local', '--layout', 'linkerd', '--out', path.join(work, 'y'), '--token', token, '--key-type', 'rsa2048'])).code, 2);
  });
});

describe('mesh credential admin API', () => {
  test('an operator token with the admin or mesh scope manages mesh credentials; read-log cannot', async () => {
    const meshOp = (await createApiToken(s.server.store, { name: 'mesh operator', scopes: ['mesh'] }, Date.now())).token;
    const reader = (await createApiToken(s.server.store, { name: 'reader', scopes: ['read-log'] }, Date.now())).token;
    const admin = (method: string, url: string, token: string, body?: unknown): Promise<HttpResult> => call(`${s.base}${url}`, method, {
      headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) }, body, ca: s.rootPem,
    });
    const t = await admin('POST', '/admin/v1/mesh/tokens', meshOp, { name: 'api', scope: 'spire', ttl: '1h' });
    assert.equal(t.status, 201, t.text);
    const tok = t.json as { id: string; token: string };
    assert.equal((await call(`${s.vault}/v1/auth/token/lookup-self`, 'GET', { headers: { 'X-Vault-Token': tok.token }, ca: s.rootPem })).status, 200);
    assert.equal((await admin('GET', '/admin/v1/mesh/tokens', reader)).status, 403);
    assert.equal((await admin('GET', '/admin/v1/mesh/tokens', 'nope')).status, 401);
    problem(await admin('POST', '/admin/v1/mesh/tokens', s.adminToken, { name: 'x', scope: 'undefined-scope' }), 400, /mesh scope 'undefined-scope' is not defined/);
    const listed = await admin('GET', '/admin/v1/mesh/tokens', s.adminToken);
    assert.ok((listed.json as { tokens: Array<{ id: string }> }).tokens.some((x) => x.id === tok.id));
    assert.equal((await admin('DELETE', `/admin/v1/mesh/tokens/${tok.id}`, s.adminToken)).status, 200);
    assert.equal((await admin('DELETE', `/admin/v1/mesh/tokens/${tok.id}`, s.adminToken)).status, 404);

    const role = await admin('POST', '/admin/v1/mesh/approles', s.adminToken, { name: 'cm', scope: 'mesh-k8s', tokenTtl: '5m' });
    assert.equal(role.status, 201, role.text);
    const roleId = (role.json as { roleId: string }).roleId;
    const sec = await admin('POST', '/admin/v1/mesh/approles/cm/secret-ids', s.adminToken, { ttl: '1h' });
    assert.equal(sec.status, 201, sec.text);
    const { secretId, secretIdAccessor } = sec.json as { secretId: string; secretIdAccessor: string };
    assert.equal((await call(`${s.vault}/v1/auth/approle/login`, 'POST', { body: { role_id: roleId, secret_id: secretId }, ca: s.rootPem })).status, 200);
    assert.equal((await admin('DELETE', `/admin/v1/mesh/approles/cm/secret-ids/${secretIdAccessor}`, s.adminToken)).status, 200);
    assert.equal((await call(`${s.vault}/v1/auth/approle/login`, 'POST', { body: { role_id: roleId, secret_id: secretId }, ca: s.rootPem })).status, 400);
    assert.equal((await admin('GET', '/admin/v1/mesh/approles', s.adminToken)).status, 200);
    assert.equal((await admin('DELETE', '/admin/v1/mesh/approles/cm', s.adminToken)).status, 200);
    assert.equal((await admin('POST', '/admin/v1/mesh/approles/cm/secret-ids', s.adminToken, {})).status, 404);
  });
});

describe('SPIRE disk UpstreamAuthority under an issuing intermediate with pathLen 2', () => {
  let deep: MeshServer;
  before(async () => {
    // An enterprise root and an intermediate with room for two CAs below it, imported at start-up.
    const dir = path.join(work, 'enterprise');
    await fsp.mkdir(dir);
    const rootKeyPem = generateP256Pkcs8Pem();
    const rootKey = await signingKeyFromPem(rootKeyPem);
    const now = Date.now();
    const rootDer = await buildCertificate({ serial: randomSerial(), subject: { organization: 'Enterprise', commonName: 'Enterprise Root' }, subjectSpkiDer: rootKey.spkiDer, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3650 * 86_400_000), ca: true, keyUsage: ['keyCertSign', 'cRLSign'] }, rootKey);
    const interKeyPem = generateP256Pkcs8Pem();
    const interKey = await signingKeyFromPem(interKeyPem);
    const root = parseCertificate(rootDer);
    const interDer = await buildCertificate({ serial: randomSerial(), subject: { organization: 'Enterprise', commonName: 'Mesh Issuing CA' }, issuerName: root.subject, issuerSpkiDer: rootKey.spkiDer, issuerKeyId: subjectKeyId(root), subjectSpkiDer: interKey.spkiDer, notBefore: new Date(now - 60_000), notAfter: new Date(now + 1000 * 86_400_000), ca: true, pathLength: 2, keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'] }, rootKey);
    await fsp.writeFile(path.join(dir, 'root.pem'), toPem('CERTIFICATE', rootDer));
    await fsp.writeFile(path.join(dir, 'inter.pem'), toPem('CERTIFICATE', interDer));
    await fsp.writeFile(path.join(dir, 'inter.key'), interKeyPem, { mode: 0o600 });
    deep = await startMeshServer({ env: { ACME_CA_INTERMEDIATE_CERT: path.join(dir, 'inter.pem'), ACME_CA_INTERMEDIATE_KEY: path.join(dir, 'inter.key'), ACME_CA_ROOT_CERT: path.join(dir, 'root.pem') } });
  });
  after(async () => { await deep?.close(); });

  test('mesh issue --layout spire-disk writes upstream_ca.pem/.key and bundle.pem; SPIRE\'s own CA and SVIDs below it verify', async () => {
    const token = (await createMeshToken(deep.mesh, { name: 'spire', scope: 'deep', ttlMs: 3_600_000 }, Date.now())).token;
    const dir = path.join(work, 'spire-disk');
    const r = await run(process.execPath, [CLI, 'mesh', 'issue', '--url', deep.base, '--ca', deep.rootPath, '--trust-domain', 'deep.example', '--layout', 'spire-disk', '--out', dir, '--token', token, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const upstream = pemBlocks(fs.readFileSync(path.join(dir, 'upstream_ca.pem'), 'utf8'));
    const keyPem = fs.readFileSync(path.join(dir, 'upstream_ca.key'), 'utf8');
    assert.equal(fs.readFileSync(path.join(dir, 'bundle.pem'), 'utf8'), deep.rootPem);
    assert.equal(upstream.length, 2, 'cert_file_path: the disk CA and the chain up to the bundle');
    assertMeshIntermediateProfile(upstream[0], { pathLen: 1, uri: 'spiffe://deep.example' });
    assertSpireAccepts(upstream[0], 'deep.example');
    // What SPIRE's disk plugin does: sign SPIRE's own X509 CA with the disk key, then SVIDs with that.
    const diskKey = await signingKeyFromPem(keyPem);
    const disk = parseCertificate(new Uint8Array(new X509Certificate(upstream[0]).raw));
    const spireKeyPem = generateP256Pkcs8Pem();
    const spireKey = await signingKeyFromPem(spireKeyPem);
    const spireCaDer = await buildCertificate({
      serial: randomSerial(), subject: { organization: 'SPIFFE' }, issuerName: disk.subject, issuerSpkiDer: diskKey.spkiDer, issuerKeyId: subjectKeyId(disk),
      subjectSpkiDer: spireKey.spkiDer, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), ca: true, pathLength: 0,
      keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'], san: [{ type: 'uri', value: 'spiffe://deep.example' }],
    }, diskKey);
    const spireCa = new X509Certificate(Buffer.from(spireCaDer)).toString();
    const svid = await signSvid(spireCa, spireKeyPem, 'spiffe://deep.example/workload');
    const v = await opensslVerify(dir, deep.rootPath, svid, [spireCa, ...upstream], 'sslclient');
    assert.ok(v.ok, `root → issuing CA (pathLen 2) → disk CA (pathLen 1) → SPIRE CA → SVID: ${v.out}`);
    assert.equal(facts(upstream[1]).pathLen, 2);
  });
});
