import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { issueLeaf } from '../server/ca/leaf.js';
import { OID } from '../server/ca/certificate-builder.js';
import { createAppRole, createMeshToken, createSecretId } from '../server/mesh/credentials.js';
import {
  assertIstioAccepts, assertKumaAccepts, assertLinkerdAccepts, assertMeshIntermediateProfile, assertSpireAccepts, call, facts, FIXTURES,
  opensslCsr, opensslVerify, pemBlocks, readJson, run, signSvid, startMeshServer, type Csr, type HttpResult, type MeshServer,
} from './fixtures/mesh/harness.js';

/*
 * The Vault-compatible front, driven by replayed request fixtures (test/fixtures/mesh/*.json, one
 * per client shape in the research note) against a real HTTPS listener on loopback. Each answer
 * is read the way that client's code reads it (ports below, each citing its source), every chain
 * is checked with `openssl verify`, and each intermediate must pass the meshes' acceptance rules.
 * Every fixture runs as written and again with PUT and POST swapped.
 */

interface Exchange {
  name: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Record<string, string>;
  expect: { status: number; reader: string; isCA?: boolean; uri?: string };
}
interface Fixture {
  client: string;
  sourceRepo: string;
  sourceCommit: string;
  sourcePaths: string[];
  trustDomain: string;
  credential: { kind: 'token' | 'approle' | 'cert'; scope: string; clientCertDns?: string };
  acceptance?: string[];
  csr: { subject: string; san: string; key: 'ec-p256' | 'ec-p384' | 'rsa2048' };
  exchanges: Exchange[];
}

let s: MeshServer;
let work: string;
let clientCert: { cert: string; key: string };

before(async () => {
  s = await startMeshServer();
  work = path.join(s.tmp, 'work');
  await fsp.mkdir(work);
  // A client certificate issued by the CA under test, as an operator would get one for SPIRE.
  const key = await opensslCsr(work, 'client', { subject: '/CN=spire-server.example.org' });
  const spki = new X509Certificate(await selfSigned(key)).publicKey.export({ format: 'der', type: 'spki' });
  const leaf = await issueLeaf(s.server.ca.issuer, { spkiDer: new Uint8Array(spki), san: [{ type: 'dns', value: 'spire-server.example.org' }], notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000), extKeyUsage: [OID.clientAuth] });
  clientCert = { cert: new X509Certificate(Buffer.from(leaf.der)).toString(), key: key.keyPem };
});
after(async () => { await s?.close(); });

/** A throwaway self-signed certificate, only to read the public key of an openssl-made key. */
async function selfSigned(k: Csr): Promise<string> {
  const out = path.join(work, `ss-${randomBytes(4).toString('hex')}.pem`);
  const r = await run('openssl', ['req', '-x509', '-key', k.keyPath, '-subj', '/CN=x', '-days', '1', '-out', out]);
  assert.equal(r.code, 0, r.stderr);
  return fsp.readFile(out, 'utf8');
}

async function credentialFor(f: Fixture): Promise<Record<string, string>> {
  if (f.credential.kind === 'token') return { token: (await createMeshToken(s.mesh, { name: f.client, scope: f.credential.scope, ttlMs: 3_600_000 }, Date.now())).token };
  if (f.credential.kind === 'approle') {
    const name = `r${randomBytes(4).toString('hex')}`;
    const role = await createAppRole(s.mesh, { name, scope: f.credential.scope, tokenTtlMs: 600_000 }, Date.now());
    const secret = await createSecretId(s.mesh, name, 3_600_000, Date.now());
    return { role_id: role.roleId, secret_id: secret.secretId };
  }
  return {};
}

function fill(text: string, vars: Record<string, string>): string {
  return text.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    assert.ok(k in vars, `fixture placeholder {{${k}}} has no value`);
    return vars[k];
  });
}

// --- the clients' reading logic ----------------------------------------------------------------

interface VaultSecret { data?: Record<string, unknown> | null; auth?: Record<string, unknown> | null; warnings?: unknown }

/** Vault Go client: lookup-self is read as data.id, data.ttl, data.renewable (spire client.go). */
function vaultLookupSelf(r: HttpResult, vars: Record<string, string>): void {
  const d = (r.json as VaultSecret).data!;
  assert.equal(d.id, vars.token);
  assert.equal(d.renewable, false, 'non-renewable, so no renew-self');
  assert.equal(typeof d.ttl, 'number');
  assert.ok((d.ttl as number) > 0 && (d.ttl as number) <= 3600);
}

/** Vault Go client Secret.TokenID(): auth.client_token; auth.lease_duration and auth.renewable. */
function vaultLogin(r: HttpResult, vars: Record<string, string>): void {
  const a = (r.json as VaultSecret).auth!;
  assert.equal(typeof a.client_token, 'string');
  assert.equal(typeof a.lease_duration, 'number');
  assert.ok((a.lease_duration as number) > 0);
  assert.equal(a.renewable, false);
  vars.token = a.client_token as string;
}

/**
 * spire pkg/server/common/vault/client.go SignIntermediate + vault.go MintX509CAAndSubscribe:
 * certificate and issuing_ca required; upstream root = last of ca_chain (else issuing_ca); the
 * chain = certificate + every ca_chain element that is neither the root nor the certificate,
 * compared as exact strings. Then ValidateX509CA, and a throwaway SVID verified to the roots.
 */
async function spireMintX509CA(r: HttpResult, f: Fixture, csr: Csr): Promise<void> {
  const d = (r.json as VaultSecret).data!;
  assert.equal(typeof d.certificate, 'string', 'data.certificate is required');
  assert.equal(typeof d.issuing_ca, 'string', 'data.issuing_ca is required');
  const caChain = Array.isArray(d.ca_chain) ? d.ca_chain as string[] : [];
  const root = caChain.length > 0 ? caChain[caChain.length - 1] : d.issuing_ca as string;
  const chain = [d.certificate as string, ...caChain.filter((c) => c !== root && c !== d.certificate)];
  // Exact string comparison only works if every PEM is byte-identical wherever it appears.
  assert.equal(root, s.rootPem.trimEnd(), 'the upstream root SPIRE takes is our root');
  assert.equal(chain.length, 2, 'SPIRE\'s chain: its CA and our issuing CA, nothing duplicated');
  assert.equal(chain[1], d.issuing_ca);
  assert.ok(!(d.certificate as string).endsWith('\n'), 'Vault PEM has no trailing newline');
  assertSpireAccepts(d.certificate as string, f.trustDomain);
  // SPIRE's subject serialNumber (which keeps its CA subjects distinct) survives the O/C fields.
  assert.match(new X509Certificate(d.certificate as string).subject, /^C=US\nO=SPIFFE\nserialNumber=\d+$/);
  assertMeshIntermediateProfile(d.certificate as string, { pathLen: 0, uri: `spiffe://${f.trustDomain}` });
  const v = await opensslVerify(s.tmp, s.rootPath, d.certificate as string, chain.slice(1));
  assert.ok(v.ok, v.out);
  const svid = await signSvid(d.certificate as string, csr.keyPem, `spiffe://${f.trustDomain}/workload/test`);
  const sv = await opensslVerify(s.tmp, s.rootPath, svid, chain, 'sslserver');
  assert.ok(sv.ok, `an SVID minted by the new SPIRE CA verifies to the upstream root: ${sv.out}`);
}

/**
 * cert-manager: certutil.ParsePKIMap (certificate, issuing_ca, ca_chain, serial_number), then
 * pkg/util/pki/parse_certificate_chain.go ParseSingleCertificateChainPEM on ca_chain + certificate:
 * de-duplicate, order into one unbroken chain (else "certificate chain is malformed or broken"),
 * status.ca = the self-signed root if present, else the top certificate.
 */
async function certManagerSign(r: HttpResult, f: Fixture, csr: Csr, e: Exchange): Promise<void> {
  const d = (r.json as VaultSecret).data!;
  for (const k of ['certificate', 'issuing_ca', 'serial_number']) assert.equal(typeof d[k], 'string', `data.${k}`);
  assert.match(d.serial_number as string, /^[0-9a-f]{2}(:[0-9a-f]{2})+$/);
  const bundle = [...(d.ca_chain as string[]), d.certificate as string].join('\n');
  const unique = [...new Map(pemBlocks(bundle).map((p) => [new X509Certificate(p).fingerprint256, new X509Certificate(p)])).values()];
  // The leaf issues no other certificate of the bundle.
  const leaf = unique.find((c) => !unique.some((o) => o !== c && o.checkIssued(c)));
  assert.ok(leaf, 'one certificate issues no other: the leaf of the chain');
  const ordered = [leaf];
  for (let i = 0; i < unique.length; i++) {
    const cur = ordered[ordered.length - 1];
    if (cur.checkIssued(cur) && cur.verify(cur.publicKey)) break;
    const parent = unique.find((c) => cur.checkIssued(c) && cur.verify(c.publicKey));
    assert.ok(parent, 'certificate chain is malformed or broken');
    ordered.push(parent);
  }
  assert.equal(ordered.length, unique.length, 'every certificate of the bundle is on one chain');
  // status.ca: the self-signed root when the bundle has one, else the top certificate.
  const statusCa = ordered[ordered.length - 1];
  assert.ok(statusCa.checkIssued(statusCa), 'status.ca is the self-signed root, so Linkerd/istio-csr get our root as the anchor');
  assert.equal(statusCa.fingerprint256, new X509Certificate(s.rootPem).fingerprint256);
  const cert = d.certificate as string;
  const fx = facts(cert);
  assert.equal(fx.ca, e.expect.isCA === true);
  assert.ok(fx.x.publicKey.equals(new X509Certificate(await selfSigned(csr)).publicKey), 'signed for the CSR key');
  if (e.expect.isCA) {
    assertMeshIntermediateProfile(cert, { pathLen: 0, uri: null });
    for (const a of f.acceptance ?? []) {
      if (a === 'linkerd') assertLinkerdAccepts(cert);
      if (a === 'istio') assertIstioAccepts(cert);
      if (a === 'kuma') assertKumaAccepts([cert, ...(d.ca_chain as string[]).slice(1)].join('\n'));
    }
    assert.deepEqual(fx.nameConstraints, { dns: ['cluster.local'], uri: ['cluster.local'] }, 'the trust domain\'s name constraints');
    const v = await opensslVerify(s.tmp, s.rootPath, cert, [d.issuing_ca as string]);
    assert.ok(v.ok, v.out);
    // A Linkerd proxy certificate signed by the new issuer verifies (DNS inside the name constraints).
    const proxy = await signSvid(cert, csr.keyPem, 'spiffe://cluster.local/ns/default/sa/web', ['web.default.serviceaccount.identity.linkerd.cluster.local']);
    const pv = await opensslVerify(s.tmp, s.rootPath, proxy, [cert, d.issuing_ca as string], 'sslserver');
    assert.ok(pv.ok, pv.out);
  } else {
    // istio-csr: Go x509.Verify with KeyUsages [ClientAuth, ServerAuth] against the mesh root.
    assert.deepEqual(fx.uris, [e.expect.uri]);
    assert.ok(fx.subjectEmpty && fx.sanCritical, 'X509-SVID: empty subject, critical SAN');
    assert.deepEqual(fx.eku, [OID.serverAuth, OID.clientAuth]);
    assert.ok(fx.keyUsage.includes('digitalSignature') && !fx.keyUsage.includes('keyCertSign'));
    for (const purpose of ['sslserver', 'sslclient']) {
      const v = await opensslVerify(s.tmp, s.rootPath, cert, [d.issuing_ca as string], purpose);
      assert.ok(v.ok, v.out);
    }
    assert.ok(new Date(fx.x.validTo).getTime() - Date.now() <= 3_600_000 + 5_000, 'ttl 1h0m0s was honoured');
  }
}

// --- fixture replay -----------------------------------------------------------------------------

const fixtureFiles = fs.readdirSync(FIXTURES).filter((n) => n.endsWith('.json')).sort();

describe('replayed client fixtures', () => {
  test('there is one fixture per client shape of the research note', () => {
    assert.deepEqual(fixtureFiles, ['cert-manager-vault-intermediate.json', 'cert-manager-vault-leaf.json', 'spire-vault-approle.json', 'spire-vault-cert.json', 'spire-vault-token.json']);
  });

  for (const file of fixtureFiles) {
    for (const swap of [false, true]) {
      test(`${file}${swap ? ' (PUT and POST swapped)' : ''}`, async () => {
        const f = readJson<Fixture>(path.join(FIXTURES, file));
        assert.ok(f.sourceRepo && /^[0-9a-f]{40}$/.test(f.sourceCommit) && f.sourcePaths.length > 0, 'fixture names its source');
        const csr = await opensslCsr(work, `${file}-${swap}`, { subject: fill(f.csr.subject, { random: String(BigInt(`0x${randomBytes(8).toString('hex')}`)) }), san: f.csr.san, key: f.csr.key });
        const vars: Record<string, string> = { ...(await credentialFor(f)), csr: csr.csrPem };
        const tls = f.credential.kind === 'cert' ? clientCert : {};
        const signedBefore = await s.mesh.countCertificates();
        for (const e of f.exchanges) {
          const method = swap && e.method === 'PUT' ? 'POST' : swap && e.method === 'POST' ? 'PUT' : e.method;
          const headers = Object.fromEntries(Object.entries(e.headers).map(([k, v]) => [k, fill(v, vars)]));
          const body = e.body ? Object.fromEntries(Object.entries(e.body).map(([k, v]) => [k, fill(v, vars)])) : undefined;
          const r = await call(`${s.vault}${e.path}`, method, { headers, body, ca: s.rootPem, ...tls });
          assert.equal(r.status, e.expect.status, `${e.name}: ${r.text}`);
          if (e.expect.reader !== 'certManagerHealth') assert.match(r.contentType, /^application\/json/);
          switch (e.expect.reader) {
            case 'certManagerHealth': break; // cert-manager reads the status code only
            case 'vaultLookupSelf': vaultLookupSelf(r, vars); break;
            case 'vaultLogin': vaultLogin(r, vars); break;
            case 'spireMintX509CA': await spireMintX509CA(r, f, csr); break;
            case 'certManagerSign': await certManagerSign(r, f, csr, e); break;
            default: assert.fail(`unknown reader ${e.expect.reader}`);
          }
        }
        assert.equal(await s.mesh.countCertificates(), signedBefore + 1, 'exactly one signature per fixture');
      });
    }
  }
});

// --- refusals -----------------------------------------------------------------------------------

async function spireCsr(td: string, extraSan = ''): Promise<Csr> {
  return opensslCsr(work, `c-${randomBytes(4).toString('hex')}`, { subject: '/C=US/O=SPIFFE', san: `URI:spiffe://${td}${extraSan}` });
}

async function logSize(): Promise<number> {
  return (await s.server.store.getLogState()).size;
}

function vaultError(r: HttpResult, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, r.text);
  assert.match(r.contentType, /^application\/json/);
  const errors = (r.json as { errors?: unknown }).errors;
  assert.ok(Array.isArray(errors) && errors.length > 0 && errors.every((x) => typeof x === 'string' && x.length > 0), `a Vault error envelope: ${r.text}`);
  assert.match((errors as string[]).join('; '), pattern);
}

test('a credential scoped to trust domain A is refused trust domain B with a clear error, and nothing is signed', async () => {
  const token = (await createMeshToken(s.mesh, { name: 'spire a', scope: 'spire', ttlMs: 3_600_000 }, Date.now())).token;
  const csr = await spireCsr('other.example');
  const [certs, log] = [await s.mesh.countCertificates(), await logSize()];
  for (const method of ['PUT', 'POST']) {
    const r = await call(`${s.vault}/v1/pki/root/sign-intermediate`, method, { headers: { 'X-Vault-Token': token }, body: { csr: csr.csrPem, uri_sans: 'spiffe://other.example', ttl: '3600' }, ca: s.rootPem });
    vaultError(r, 403, /permission denied: scope "spire" may not obtain a subordinate CA for trust domain "other\.example" \(allowed: example\.org\)/);
  }
  // The same through the native API.
  const n = await call(`${s.base}/api/v1/mesh/intermediates`, 'POST', { headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: { csr: csr.csrPem, trustDomain: 'other.example' }, ca: s.rootPem });
  assert.equal(n.status, 403, n.text);
  assert.match((n.json as { detail: string }).detail, /may not obtain a subordinate CA for trust domain "other\.example"/);
  // A role outside the scope.
  const leafCsr = await opensslCsr(work, 'l-outside', { subject: '/', san: 'critical,URI:spiffe://cluster.local/ns/a/sa/b' });
  const l = await call(`${s.vault}/v1/pki/sign/istio-workload`, 'PUT', { headers: { 'X-Vault-Token': token }, body: { csr: leafCsr.csrPem }, ca: s.rootPem });
  vaultError(l, 403, /scope "spire" may not sign under role "istio-workload"/);
  assert.equal(await s.mesh.countCertificates(), certs, 'nothing was signed');
  assert.equal(await logSize(), log, 'nothing was logged as issued');
});

test('expired, unknown, malformed and revoked tokens are refused with Vault-shaped errors', async () => {
  const expired = (await createMeshToken(s.mesh, { name: 'old', scope: 'spire', ttlMs: 1000 }, Date.now() - 60_000)).token;
  const revoked = await createMeshToken(s.mesh, { name: 'gone', scope: 'spire', ttlMs: 3_600_000 }, Date.now());
  assert.ok(await s.mesh.revokeToken(revoked.id, Date.now()));
  const unknown = `acmemesh_${randomBytes(12).toString('base64url')}_${randomBytes(32).toString('base64url')}`;
  const csr = await spireCsr('example.org');
  const certs = await s.mesh.countCertificates();
  const cases: Array<[string | undefined, RegExp]> = [
    [expired, /permission denied: invalid token: the token expired at/],
    [unknown, /permission denied: invalid token: unknown token/],
    ['hvs.not-ours', /permission denied: invalid token: not a token this server issued/],
    [revoked.token, /permission denied: invalid token: the token was revoked/],
    [undefined, /permission denied: missing client token/],
  ];
  for (const [token, pattern] of cases) {
    const headers: Record<string, string> = token ? { 'X-Vault-Token': token } : {};
    vaultError(await call(`${s.vault}/v1/auth/token/lookup-self`, 'GET', { headers, ca: s.rootPem }), 403, pattern);
    vaultError(await call(`${s.vault}/v1/pki/root/sign-intermediate`, 'PUT', { headers, body: { csr: csr.csrPem }, ca: s.rootPem }), 403, pattern);
  }
  assert.equal(await s.mesh.countCertificates(), certs);
});

test('AppRole logins: wrong secret, expired secret_id and revoked role are refused', async () => {
  const role = await createAppRole(s.mesh, { name: 'expiring', scope: 'spire', tokenTtlMs: 600_000 }, Date.now());
  const old = await createSecretId(s.mesh, 'expiring', 1000, Date.now() - 60_000);
  const good = await createSecretId(s.mesh, 'expiring', 3_600_000, Date.now());
  const login = (body: Record<string, string>): Promise<HttpResult> => call(`${s.vault}/v1/auth/approle/login`, 'PUT', { body, ca: s.rootPem });
  vaultError(await login({ role_id: role.roleId, secret_id: old.secretId }), 400, /the secret_id expired/);
  vaultError(await login({ role_id: role.roleId, secret_id: `${good.secretIdAccessor}.${randomBytes(32).toString('base64url')}` }), 400, /invalid role_id or secret_id/);
  vaultError(await login({ role_id: 'nope', secret_id: good.secretId }), 400, /invalid role_id or secret_id/);
  vaultError(await login({ role_id: role.roleId }), 400, /missing secret_id/);
  const ok = await login({ role_id: role.roleId, secret_id: good.secretId });
  assert.equal(ok.status, 200, ok.text);
  const token = ((ok.json as VaultSecret).auth!.client_token) as string;
  assert.ok(await s.mesh.revokeAppRole('expiring', Date.now()));
  vaultError(await login({ role_id: role.roleId, secret_id: good.secretId }), 400, /was revoked/);
  vaultError(await call(`${s.vault}/v1/auth/token/lookup-self`, 'GET', { headers: { 'X-Vault-Token': token }, ca: s.rootPem }), 403, /revoked/);
});

test('certificate login needs a client certificate that matches a role', async () => {
  vaultError(await call(`${s.vault}/v1/auth/cert/login`, 'PUT', { body: { name: '' }, ca: s.rootPem }), 400, /client certificate must be supplied/);
  vaultError(await call(`${s.vault}/v1/auth/cert/login`, 'PUT', { body: { name: 'nobody' }, ca: s.rootPem, ...clientCert }), 403, /no certificate role "nobody"/);
  const ok = await call(`${s.vault}/v1/auth/cert/login`, 'POST', { body: { name: 'spire-server' }, ca: s.rootPem, ...clientCert });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual((ok.json as VaultSecret).auth!.metadata, { cert_name: 'spire-server' });
});

test('unknown paths, mounts, roles and methods answer Vault errors, never an empty 404', async () => {
  const token = (await createMeshToken(s.mesh, { name: 'k8s', scope: 'mesh-k8s', ttlMs: 3_600_000 }, Date.now())).token;
  const h = { 'X-Vault-Token': token };
  vaultError(await call(`${s.vault}/v1/secret/data/x`, 'GET', { headers: h, ca: s.rootPem }), 404, /no handler for route "secret\/data\/x"/);
  vaultError(await call(`${s.vault}/v1/nomount/root/sign-intermediate`, 'PUT', { headers: h, body: { csr: 'x' }, ca: s.rootPem }), 404, /no handler for route "nomount\/root\/sign-intermediate"/);
  vaultError(await call(`${s.vault}/v1/pki/ca/pem`, 'DELETE', { headers: h, ca: s.rootPem }), 404, /no handler/);
  vaultError(await call(`${s.vault}/v1/auth/ldap/login`, 'PUT', { body: {}, ca: s.rootPem }), 404, /auth\/ldap\/login/);
  const leafCsr = await opensslCsr(work, 'l-unknown', { subject: '/', san: 'critical,URI:spiffe://cluster.local/ns/a/sa/b' });
  vaultError(await call(`${s.vault}/v1/pki/sign/nope`, 'PUT', { headers: h, body: { csr: leafCsr.csrPem }, ca: s.rootPem }), 400, /unknown role "nope"/);
  vaultError(await call(`${s.vault}/v1/pki/sign/istio-workload`, 'PUT', { headers: h, rawBody: '{not json', ca: s.rootPem }), 400, /not valid JSON/);
  vaultError(await call(`${s.vault}/v1/pki/sign/istio-workload`, 'PUT', { headers: h, body: { csr: leafCsr.csrPem, ttl: '1 day' }, ca: s.rootPem }), 400, /ttl "1 day" is not a TTL/);
  vaultError(await call(`${s.vault}/v1/pki/sign/istio-workload`, 'PUT', { headers: { ...h, 'X-Vault-Namespace': 'team-a' }, body: { csr: leafCsr.csrPem }, ca: s.rootPem }), 400, /namespace "team-a" does not exist/);
  const head = await call(`${s.vault}/v1/sys/health`, 'HEAD', { ca: s.rootPem });
  assert.equal(head.status, 200);
});

test('leaves: names within the role, exactly one SPIFFE ID, TTL capped by the role', async () => {
  const token = (await createMeshToken(s.mesh, { name: 'k8s', scope: 'mesh-k8s', ttlMs: 3_600_000 }, Date.now())).token;
  const sign = async (role: string, body: Record<string, unknown>): Promise<HttpResult> => call(`${s.vault}/v1/pki/sign/${role}`, 'PUT', { headers: { 'X-Vault-Token': token }, body, ca: s.rootPem });
  const istiod = await opensslCsr(work, 'istiod', { subject: '/', san: 'DNS:istiod.istio-system.svc,URI:spiffe://cluster.local/ns/istio-system/sa/istiod' });
  const ok = await sign('istiod', { csr: istiod.csrPem, ttl: '48h' });
  assert.equal(ok.status, 200, ok.text);
  const sec = ok.json as VaultSecret;
  const f = facts(sec.data!.certificate as string);
  assert.deepEqual(f.dns, ['istiod.istio-system.svc']);
  assert.deepEqual(f.uris, ['spiffe://cluster.local/ns/istio-system/sa/istiod']);
  assert.ok(new Date(f.x.validTo).getTime() - Date.now() <= 24 * 3_600_000 + 5_000, 'capped at the role\'s maxTtl');
  assert.match(String(sec.warnings), /exceeds the policy's maximum for role istiod/);
  assert.deepEqual(sec.data!.ca_chain, [...pemBlocks(s.server.ca.issuer.chainPem), s.rootPem.trimEnd()].map((p) => p.trimEnd()), 'leaf ca_chain: issuing CA, then the root');

  const outside = await opensslCsr(work, 'outside', { subject: '/', san: 'URI:spiffe://cluster.local/team/x' });
  vaultError(await sign('istio-workload', { csr: outside.csrPem }), 403, /URI "spiffe:\/\/cluster\.local\/team\/x" is not allowed by role "istio-workload"/);
  const two = await opensslCsr(work, 'two', { subject: '/', san: 'URI:spiffe://cluster.local/ns/a/sa/b,URI:spiffe://cluster.local/ns/a/sa/c' });
  vaultError(await sign('istio-workload', { csr: two.csrPem }), 400, /exactly one spiffe:\/\/cluster\.local\/\.\.\. URI SAN, the request has 2/);
  const dnsOnly = await opensslCsr(work, 'dns', { subject: '/', san: 'DNS:web.default.svc' });
  vaultError(await sign('istio-workload', { csr: dnsOnly.csrPem }), 403, /DNS name "web\.default\.svc" is not allowed/);
  // Request SANs replace the CSR's (Vault's sign semantics when alt_names/uri_sans are given).
  const fromBody = await sign('istio-workload', { csr: dnsOnly.csrPem, uri_sans: 'spiffe://cluster.local/ns/web/sa/default', alt_names: '' });
  assert.equal(fromBody.status, 200, fromBody.text);
  assert.deepEqual(facts((fromBody.json as VaultSecret).data!.certificate as string).uris, ['spiffe://cluster.local/ns/web/sa/default']);
});

test('intermediates: one URI without a path, pathLen within policy and our CA, TTL never beyond our intermediate', async () => {
  const token = (await createMeshToken(s.mesh, { name: 'spire', scope: 'spire', ttlMs: 3_600_000 }, Date.now())).token;
  const deep = (await createMeshToken(s.mesh, { name: 'deep', scope: 'deep', ttlMs: 3_600_000 }, Date.now())).token;
  const sign = async (t: string, body: Record<string, unknown>): Promise<HttpResult> => call(`${s.vault}/v1/pki/root/sign-intermediate`, 'PUT', { headers: { 'X-Vault-Token': t }, body, ca: s.rootPem });
  const withPath = await spireCsr('example.org', '/spire');
  vaultError(await sign(token, { csr: withPath.csrPem }), 400, /must be spiffe:\/\/<trust-domain> with no path/);
  const plain = await spireCsr('example.org');
  vaultError(await sign(token, { csr: plain.csrPem, uri_sans: 'spiffe://example.net' }), 400, /at most one URI SAN/);
  vaultError(await sign(token, { csr: plain.csrPem, max_path_length: 1 }), 403, /pathLen 1 is above the policy's maximum of 0 for trust domain "example\.org"/);
  // deep.example allows pathLen 1 by policy, but our generated intermediate has pathLen 1 itself.
  const deepCsr = await spireCsr('deep.example');
  vaultError(await sign(deep, { csr: deepCsr.csrPem, max_path_length: '1' }), 400, /impossible under our issuing CA, whose pathLen 1 allows at most 0/);
  const ok = await sign(token, { csr: plain.csrPem, ttl: '8760h0m0s', max_path_length: -1, format: 'pem_bundle' });
  assert.equal(ok.status, 200, ok.text);
  const sec = ok.json as VaultSecret;
  assert.equal(pemBlocks(sec.data!.certificate as string).length, 2, 'pem_bundle: the certificate followed by its issuer');
  const f = facts(pemBlocks(sec.data!.certificate as string)[0]);
  assert.equal(f.pathLen, 0);
  assert.ok(new Date(f.x.validTo).getTime() - Date.now() <= 720 * 3_600_000 + 5_000, 'capped at the trust domain\'s maxTtl');
  assert.ok(new Date(f.x.validTo).getTime() <= s.server.ca.issuer.notAfter.getTime());
  assert.equal(sec.data!.expiration, Math.floor(new Date(f.x.validTo).getTime() / 1000));
  assert.equal(f.x.subject, `C=US\nO=SPIFFE`, 'the subject comes from the CSR and request');
});

test('name constraints of the trust domain are enforced by openssl below the new CA', async () => {
  const token = (await createMeshToken(s.mesh, { name: 'k8s', scope: 'mesh-k8s', ttlMs: 3_600_000 }, Date.now())).token;
  const csr = await opensslCsr(work, 'nc', { subject: '/O=cluster.local/CN=istio-ca', san: 'URI:spiffe://cluster.local' });
  const r = await call(`${s.vault}/v1/pki/root/sign-intermediate`, 'POST', { headers: { 'X-Vault-Token': token }, body: { csr: csr.csrPem, permitted_dns_domains: 'svc.cluster.local' }, ca: s.rootPem });
  assert.equal(r.status, 200, r.text);
  const ca = (r.json as VaultSecret).data!.certificate as string;
  assert.deepEqual(facts(ca).nameConstraints, { dns: ['svc.cluster.local'], uri: ['cluster.local'] }, 'the request narrowed DNS; URI stays the policy\'s');
  const chain = [ca, s.server.ca.issuer.certPem];
  const inside = await signSvid(ca, csr.keyPem, 'spiffe://cluster.local/ns/a/sa/b', ['web.a.svc.cluster.local']);
  assert.ok((await opensslVerify(s.tmp, s.rootPath, inside, chain, 'sslserver')).ok);
  const wrongTd = await signSvid(ca, csr.keyPem, 'spiffe://evil.example/ns/a/sa/b');
  const v = await opensslVerify(s.tmp, s.rootPath, wrongTd, chain, 'sslserver');
  assert.ok(!v.ok && /permitted subtree violation/.test(v.out), v.out);
  vaultError(await call(`${s.vault}/v1/pki/root/sign-intermediate`, 'POST', { headers: { 'X-Vault-Token': token }, body: { csr: csr.csrPem, permitted_dns_domains: 'example.com' }, ca: s.rootPem }), 403, /not within the policy's \(cluster\.local\)/);
});

test('every mesh signature is a mesh.certificate.issued entry in the issuance log', async () => {
  const n = await s.mesh.countCertificates();
  assert.ok(n >= 10);
  const keys = await s.server.store.findLogIndexes('mesh-scope:spire', 1000);
  const entries = await Promise.all(keys.map(async (i) => (await s.server.store.getLogEntries(i, i + 1))[0]));
  assert.ok(entries.every((e) => e.eventType === 'mesh.certificate.issued'));
  const all = [...await s.server.store.findLogIndexes('mesh-scope:spire', 1000), ...await s.server.store.findLogIndexes('mesh-scope:mesh-k8s', 1000)];
  assert.equal(all.length, n, 'one log entry per signed certificate');
  const body = JSON.parse(Buffer.from(entries[0].body).toString('utf8')) as Record<string, unknown>;
  assert.equal(body.type, 'mesh.certificate.issued');
  const cert = await s.mesh.getCertificate(String(body.serial));
  assert.ok(cert);
  assert.equal((body.certificate as { der: string }).der, Buffer.from(cert.der).toString('base64'));
  assert.equal(cert.logIndex, keys[0]);
});
