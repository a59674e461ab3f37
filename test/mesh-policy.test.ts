import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MESH_POLICY_KEYS, parseMeshPolicy } from '../server/mesh/mesh-policy.js';
import { mergeNameConstraints, MeshError } from '../server/mesh/signer.js';
import { formatGoDuration, parseBool, parseGoDuration, parseList, parsePathLength, parseTtl, VaultValueError } from '../server/mesh/vault-values.js';
import { parsePolicy, PolicyError } from '../server/policy/parse.js';
import { DEFAULT_POLICY } from '../server/policy/types.js';
import { POLICY, REPO } from './fixtures/mesh/harness.js';

/*
 * The pure parts of the mesh fronts: the `mesh:` policy section, Vault's loose value forms (TTLs
 * as SPIRE, cert-manager and Consul send them), and the rule that a request may only narrow the
 * policy's name constraints.
 */

const H = 3_600_000;

describe('the mesh policy section', () => {
  test('parses inside the policy file and leaves the rest of the policy as it was', () => {
    const p = parsePolicy(POLICY, 'inline');
    assert.ok(p.mesh);
    assert.deepEqual(Object.keys(p.mesh.trustDomains), ['example.org', 'cluster.local', 'other.example', 'deep.example']);
    assert.equal(p.mesh.trustDomains['example.org'].maxTtlMs, 720 * H);
    assert.equal(p.mesh.trustDomains['example.org'].defaultTtlMs, 24 * H);
    assert.equal(p.mesh.trustDomains['other.example'].maxPathLength, 0, 'pathLen 0 unless the policy allows more');
    assert.equal(p.mesh.trustDomains['other.example'].maxTtlMs, 30 * 24 * H);
    assert.deepEqual(p.mesh.trustDomains['cluster.local'].nameConstraints, { uriDomains: ['cluster.local'], dns: ['cluster.local'] });
    assert.equal(p.mesh.trustDomains['other.example'].nameConstraints, null, 'name constraints are off by default');
    assert.deepEqual(p.mesh.roles['istio-workload'], { name: 'istio-workload', trustDomain: 'cluster.local', spiffe: true, uri: ['spiffe://cluster.local/ns/*/sa/*'], dns: [], ip: [], maxTtlMs: 24 * H, defaultTtlMs: H });
    assert.deepEqual(p.mesh.scopes['mesh-k8s'], { name: 'mesh-k8s', trustDomains: ['cluster.local'], roles: ['istio-workload', 'istiod'] });
    assert.deepEqual(p.mesh.vault, { mounts: { pki: { name: 'pki', trustDomain: null }, 'pki-mesh': { name: 'pki-mesh', trustDomain: 'cluster.local' } }, approleMounts: ['approle'], certMounts: ['cert'] });
    assert.ok(Object.isFrozen(p.mesh.scopes['mesh-k8s'].roles), 'frozen with the policy');
    const { version: _v, mesh: _m, ...rest } = p;
    const { version: _dv, ...builtin } = DEFAULT_POLICY;
    assert.deepEqual(rest, builtin);
    assert.equal('mesh' in parsePolicy('', 'empty'), false, 'no mesh key unless written');
  });

  const refused: Array<[string, RegExp]> = [
    ['mesh:\n  trustDomains:\n    Example.org: {}\n', /mesh\.trustDomains\.Example\.org = "Example\.org": a trust domain is lower-case/],
    ['mesh:\n  roles:\n    w:\n      trustDomain: nowhere\n      uri: [spiffe://nowhere/x]\n', /mesh\.roles\.w\.trustDomain = "nowhere": names no trust domain/],
    ['mesh:\n  trustDomains: {a.org: {}}\n  roles:\n    w:\n      trustDomain: a.org\n', /mesh\.roles\.w\.uri = \(missing\): a SPIFFE role needs at least one uri pattern/],
    ['mesh:\n  trustDomains: {a.org: {}}\n  roles:\n    w:\n      trustDomain: a.org\n      uri: [spiffe://b.org/x]\n', /mesh\.roles\.w\.uri\[0\] = "spiffe:\/\/b\.org\/x": must be in the role's trust domain a\.org/],
    ['mesh:\n  trustDomains: {a.org: {maxPathLength: 9}}\n', /maxPathLength = 9: expected an integer from 0 to 8/],
    ['mesh:\n  trustDomains: {a.org: {maxTtl: 1h, defaultTtl: 2h}}\n', /defaultTtl = "2h": must not exceed maxTtl/],
    ['mesh:\n  trustDomains: {a.org: {nameConstraints: {dns: ["*.a.org"]}}}\n', /expected a plain domain such as cluster\.local/],
    ['mesh:\n  scopes:\n    s:\n      trustDomains: [a.org]\n', /mesh\.scopes\.s\.trustDomains\[0\] = "a\.org": names no trust domain/],
    ['mesh:\n  trustDomains: {a.org: {}}\n  scopes: {s: {trustDomains: [a.org]}}\n  certRoles:\n    c:\n      scope: s\n', /a certificate role must match something/],
    ['mesh:\n  vault:\n    mounts: {sys: {}}\n', /"sys" is a Vault system path/],
    ['mesh:\n  vault:\n    approleMounts: [cert]\n', /an auth mount may serve one method only/],
    ['mesh:\n  typo: 1\n', /unknown key mesh\.typo; allowed here: trustDomains, roles, scopes, certRoles, vault/],
  ];
  for (const [text, pattern] of refused) {
    test(`refuses ${JSON.stringify(text.split('\n').slice(1).join(' ').slice(0, 60))}`, () => {
      assert.throws(() => parsePolicy(text, 'mesh.yaml'), (e: unknown) => e instanceof PolicyError && /^invalid policy mesh\.yaml: /.test(e.message) && pattern.test(e.message));
    });
  }

  test('docs/mesh.md documents every key of the section', () => {
    const doc = readFileSync(join(REPO, 'docs/mesh.md'), 'utf8');
    const missing = Object.values(MESH_POLICY_KEYS).flat().filter((k) => !doc.includes(`\`${k}\``));
    assert.deepEqual(missing, []);
  });

  test('the example in docs/mesh.md parses', () => {
    const doc = readFileSync(join(REPO, 'docs/mesh.md'), 'utf8');
    const block = /## Policy[\s\S]*?```yaml\n([\s\S]*?)```/.exec(doc);
    assert.ok(block, 'docs/mesh.md has a yaml example under "## Policy"');
    assert.ok(parsePolicy(block[1], 'docs/mesh.md').mesh);
    assert.ok(parseMeshPolicy({}).vault.mounts.pki, 'an empty section still has the pki mount');
  });
});

describe('Vault values', () => {
  test('TTL forms: integer seconds, Go durations, empty', () => {
    assert.equal(parseTtl('86400'), 86_400_000, 'SPIRE: preferred_ttl as a string');
    assert.equal(parseTtl(3600), 3_600_000);
    assert.equal(parseTtl('1h0m0s'), H, 'cert-manager');
    assert.equal(parseTtl('2160h0m0s'), 2160 * H);
    assert.equal(parseTtl('8760h0m0s'), 8760 * H, 'Consul');
    assert.equal(parseTtl('72h'), 72 * H);
    assert.equal(parseTtl('1.5h'), 1.5 * H);
    assert.equal(parseTtl('90m'), 90 * 60_000);
    assert.equal(parseTtl('1500ms'), 1500);
    assert.equal(parseTtl(''), null, 'empty: the default');
    assert.equal(parseTtl(undefined), null);
    assert.equal(parseTtl('0'), null, 'Vault: 0 is the default');
    for (const bad of ['1d', '1 h', '-5', 'h', '1h1', 'forever', '1e3', true]) {
      assert.throws(() => parseTtl(bad), VaultValueError, `${String(bad)} is refused`);
    }
    assert.equal(parseGoDuration('1h2m3s'), H + 2 * 60_000 + 3000);
    assert.equal(formatGoDuration(H), '1h0m0s');
    assert.equal(formatGoDuration(2160 * H), '2160h0m0s');
  });

  test('booleans, comma lists and path lengths as the clients send them', () => {
    assert.equal(parseBool('true', 'x'), true);
    assert.equal(parseBool(true, 'x'), true);
    assert.equal(parseBool('', 'x'), false);
    assert.throws(() => parseBool('yes', 'x'), VaultValueError);
    assert.deepEqual(parseList('a.example, b.example,,', 'alt_names'), ['a.example', 'b.example']);
    assert.deepEqual(parseList('', 'alt_names'), []);
    assert.deepEqual(parseList(['x'], 'alt_names'), ['x']);
    assert.equal(parsePathLength(-1), null);
    assert.equal(parsePathLength('0'), 0);
    assert.throws(() => parsePathLength('one'), VaultValueError);
  });
});

describe('name constraints', () => {
  const policy = { uriDomains: ['cluster.local'], dns: ['cluster.local'] };
  test('a request may only narrow the policy, per name type', () => {
    assert.deepEqual(mergeNameConstraints(policy, null), policy);
    assert.deepEqual(mergeNameConstraints(policy, { uriDomains: [], dns: ['svc.cluster.local'] }), { uriDomains: ['cluster.local'], dns: ['svc.cluster.local'] });
    assert.throws(() => mergeNameConstraints(policy, { uriDomains: ['other.local'], dns: [] }), MeshError);
    assert.throws(() => mergeNameConstraints(policy, { uriDomains: [], dns: ['local'] }), MeshError, 'a parent is wider, not narrower');
    assert.deepEqual(mergeNameConstraints({ uriDomains: ['.corp'], dns: [] }, { uriDomains: ['a.corp'], dns: [] }), { uriDomains: ['a.corp'], dns: [] });
    assert.equal(mergeNameConstraints(null, null), null);
    assert.deepEqual(mergeNameConstraints(null, { uriDomains: ['x.org'], dns: [] }), { uriDomains: ['x.org'], dns: [] }, 'without a policy constraint any narrowing is allowed');
  });
});
