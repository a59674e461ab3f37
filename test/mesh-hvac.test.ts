import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createAppRole, createSecretId } from '../server/mesh/credentials.js';
import {
  assertIstioAccepts, assertKumaAccepts, assertLinkerdAccepts, assertMeshIntermediateProfile, assertSpireAccepts, facts, opensslCsr, opensslVerify,
  run, signSvid, startMeshServer, type MeshServer,
} from './fixtures/mesh/harness.js';

/*
 * A real third-party Vault client, hvac (Debian's python3-hvac), logs in with AppRole against the
 * Vault-compatible front on loopback HTTPS, and obtains a signed intermediate and a leaf; it also
 * sees our refusals as its own exception types. hvac uses POST for writes (our fixtures cover PUT).
 * Needs python3-hvac: apt-get install -y python3-hvac (.ci/run installs it).
 */

const HVAC_SCRIPT = String.raw`
import json, sys
import hvac
from hvac import exceptions

cfg = json.load(sys.stdin)
out = {}
c = hvac.Client(url=cfg["url"], verify=cfg["ca"])
out["health"] = c.sys.read_health_status(method="GET")
out["health_head"] = c.sys.read_health_status().status_code
c.auth.approle.login(role_id=cfg["role_id"], secret_id=cfg["secret_id"])
out["authenticated"] = c.is_authenticated()
out["lookup_self"] = c.auth.token.lookup_self()["data"]
inter = c.secrets.pki.sign_intermediate(csr=cfg["ca_csr"], common_name="istio-ca", extra_params={"ttl": "720h", "uri_sans": "spiffe://cluster.local", "organization": "cluster.local"}, mount_point="pki")
out["intermediate"] = inter["data"]
leaf = c.secrets.pki.sign_certificate(name="istio-workload", csr=cfg["leaf_csr"], common_name="", extra_params={"ttl": "1h", "exclude_cn_from_sans": True}, mount_point="pki")
out["leaf"] = leaf["data"]
try:
    c.secrets.pki.sign_intermediate(csr=cfg["other_csr"], common_name="", extra_params={"uri_sans": "spiffe://other.example"}, mount_point="pki")
    out["refused"] = None
except exceptions.Forbidden as e:
    out["refused"] = ["Forbidden", str(e)]
try:
    c.secrets.pki.sign_certificate(name="no-such-role", csr=cfg["leaf_csr"], common_name="", mount_point="pki")
    out["unknown_role"] = None
except exceptions.InvalidRequest as e:
    out["unknown_role"] = ["InvalidRequest", str(e)]
stranger = hvac.Client(url=cfg["url"], verify=cfg["ca"], token=cfg["unknown_token"])
out["stranger_authenticated"] = stranger.is_authenticated()
try:
    stranger.auth.token.lookup_self()
    out["stranger"] = None
except exceptions.Forbidden as e:
    out["stranger"] = ["Forbidden", str(e)]
print(json.dumps(out))
`;

/** The first python with hvac: Debian's /usr/bin/python3 (where python3-hvac installs), else PATH's. */
async function pythonWithHvac(): Promise<string | null> {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = await run(py, ['-c', 'import hvac']);
    if (r.code === 0) return py;
  }
  return null;
}

interface HvacOut {
  health: { initialized: boolean; sealed: boolean };
  health_head: number;
  authenticated: boolean;
  lookup_self: { ttl: number; renewable: boolean; policies: string[] };
  intermediate: { certificate: string; issuing_ca: string; ca_chain: string[]; serial_number: string };
  leaf: { certificate: string; issuing_ca: string; ca_chain: string[] };
  refused: [string, string] | null;
  unknown_role: [string, string] | null;
  stranger_authenticated: boolean;
  stranger: [string, string] | null;
}

let s: MeshServer;
before(async () => { s = await startMeshServer(); });
after(async () => { await s?.close(); });

test('hvac (python3-hvac) logs in with AppRole and obtains a signed intermediate and a leaf', async () => {
  const python = await pythonWithHvac();
  assert.ok(python, 'hvac is not installed: apt-get install -y python3-hvac');
  const work = path.join(s.tmp, 'hvac');
  await fsp.mkdir(work);
  await createAppRole(s.mesh, { name: 'istio', scope: 'mesh-k8s', tokenTtlMs: 900_000 }, Date.now());
  const secret = await createSecretId(s.mesh, 'istio', 3_600_000, Date.now());
  const caCsr = await opensslCsr(work, 'ca', { subject: '/O=cluster.local/CN=istio-ca', san: 'URI:spiffe://cluster.local' });
  const leafCsr = await opensslCsr(work, 'leaf', { subject: '/', san: 'critical,URI:spiffe://cluster.local/ns/sandbox/sa/sleep' });
  const otherCsr = await opensslCsr(work, 'other', { subject: '/O=other', san: 'URI:spiffe://other.example' });
  const script = path.join(work, 'hvac_client.py');
  await fsp.writeFile(script, HVAC_SCRIPT);
  const input = JSON.stringify({
    url: s.vault, ca: s.rootPath, role_id: secret.roleId, secret_id: secret.secretId, ca_csr: caCsr.csrPem, leaf_csr: leafCsr.csrPem, other_csr: otherCsr.csrPem,
    unknown_token: `acmemesh_${'A'.repeat(16)}_${'B'.repeat(43)}`,
  });
  const signedBefore = await s.mesh.countCertificates();
  const r = await run(python, [script], { input });
  assert.equal(r.code, 0, `hvac run failed:\n${r.stderr}`);
  const o = JSON.parse(r.stdout) as HvacOut;

  assert.deepEqual([o.health.initialized, o.health.sealed, o.health_head], [true, false, 200]);
  assert.equal(o.authenticated, true);
  assert.equal(o.lookup_self.renewable, false);
  assert.ok(o.lookup_self.ttl > 0 && o.lookup_self.ttl <= 900);
  assert.ok(o.lookup_self.policies.includes('mesh-scope-mesh-k8s'));

  const ca = o.intermediate.certificate;
  assert.equal(o.intermediate.ca_chain[o.intermediate.ca_chain.length - 1], s.rootPem.trimEnd(), 'root last in ca_chain');
  assertMeshIntermediateProfile(ca, { pathLen: 0, uri: 'spiffe://cluster.local' });
  assertSpireAccepts(ca, 'cluster.local');
  assertLinkerdAccepts(ca);
  assertIstioAccepts(ca);
  assertKumaAccepts(o.intermediate.ca_chain.join('\n'));
  assert.match(facts(ca).x.subject, /O=cluster\.local\nCN=istio-ca/);
  const v = await opensslVerify(work, s.rootPath, ca, [o.intermediate.issuing_ca]);
  assert.ok(v.ok, v.out);
  // A workload certificate minted by the hvac-obtained intermediate verifies up to our root.
  const svid = await signSvid(ca, caCsr.keyPem, 'spiffe://cluster.local/ns/sandbox/sa/sleep');
  const sv = await opensslVerify(work, s.rootPath, svid, [ca, o.intermediate.issuing_ca], 'sslclient');
  assert.ok(sv.ok, sv.out);

  const leaf = facts(o.leaf.certificate);
  assert.equal(leaf.ca, false);
  assert.deepEqual(leaf.uris, ['spiffe://cluster.local/ns/sandbox/sa/sleep']);
  const lv = await opensslVerify(work, s.rootPath, o.leaf.certificate, [o.leaf.issuing_ca], 'sslserver');
  assert.ok(lv.ok, lv.out);

  assert.ok(o.refused, 'the out-of-scope trust domain was refused');
  assert.equal(o.refused[0], 'Forbidden');
  // hvac 0.11 puts the raw error body in the exception text, so the quotes arrive JSON-escaped.
  assert.match(o.refused[1], /scope \\?"mesh-k8s\\?" may not obtain a subordinate CA for trust domain \\?"other\.example\\?"/);
  assert.ok(o.unknown_role);
  assert.match(o.unknown_role[1], /unknown role \\?"no-such-role\\?"/);
  assert.equal(o.stranger_authenticated, false);
  assert.ok(o.stranger);
  assert.match(o.stranger[1], /permission denied: invalid token: unknown token/);
  assert.equal(await s.mesh.countCertificates(), signedBefore + 2, 'exactly the intermediate and the leaf were signed');
});
