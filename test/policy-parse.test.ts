import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { evaluateOrder, tokenBucket } from '../server/policy/evaluate.js';
import { parsePolicy, POLICY_FILE_KEYS, PolicyError } from '../server/policy/parse.js';
import { PolicyStore } from '../server/policy/policy-store.js';
import { DEFAULT_POLICY, type PolicyConfig } from '../server/policy/types.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLE = join(repo, 'docs/policy.example.yaml');

function withoutVersion(p: PolicyConfig): Omit<PolicyConfig, 'version'> {
  const { version: _version, ...rest } = p;
  return rest;
}

describe('the example policy', () => {
  const text = readFileSync(EXAMPLE, 'utf8');
  const policy = parsePolicy(text, 'docs/policy.example.yaml');

  test('parses, with built-ins first and the custom profile after', () => {
    assert.deepEqual(Object.keys(policy.profiles), ['mtls', 'server', 'workload']);
    assert.deepEqual(Object.keys(policy.scopes), ['payments', 'web', 'default']);
    assert.equal(policy.version, createHash('sha256').update(text).digest('hex'));
    assert.equal(policy.profiles.mtls.validityMs, 24 * 3600_000);
    assert.equal(policy.profiles.server.validityMs, 7 * 86_400_000);
    assert.deepEqual(policy.profiles.server.extKeyUsage, ['serverAuth']);
    assert.equal(policy.profiles.workload.validityMs, 3600_000);
    assert.deepEqual(policy.profiles.workload.keys, { allowed: ['EC-P256', 'EC-P384'], rsaMinBits: 2048, rsaMaxBits: 8192 });
  });

  test('has the scopes the documentation describes', () => {
    const p = policy.scopes.payments;
    assert.deepEqual(p.dns.allow, ['.payments.internal']);
    assert.deepEqual(p.ip, { allow: ['10.20.0.0/16'], deny: ['10.20.99.0/24'] });
    assert.deepEqual(p.uri.allow, ['spiffe://corp.internal/ns/payments/*']);
    assert.deepEqual(p.rateLimits, { ordersPerAccount: { count: 1000, windowMs: 3600_000 } });
    assert.deepEqual(policy.scopes.web.dns.allow, ['*.web.internal', '.web.internal']);
    assert.equal(policy.scopes.web.wildcards, true);
    assert.deepEqual(policy.scopes.default.ip.allow, ['10.99.0.0/16', 'fd00:99::/32']);
  });

  test('decides as its comments say', () => {
    const order = (scope: string, value: string, profile?: string): boolean =>
      evaluateOrder({ identifiers: [{ type: /^[\d.]+$|:/.test(value) ? 'ip' : 'dns', value }], profile }, { scope, policy }).allow;
    assert.equal(order('payments', 'api.payments.internal'), true);
    assert.equal(order('payments', '10.20.99.7'), false);
    assert.equal(order('web', '*.web.internal'), false);
    assert.equal(order('web', 'a.web.internal', 'server'), true);
    assert.equal(order('payments', 'api.payments.internal', 'server'), false);
    assert.equal(order('default', 'x.dev.internal'), true);
  });
});

test('docs/policy.md documents every key of the file', () => {
  const doc = readFileSync(join(repo, 'docs/policy.md'), 'utf8');
  const missing = Object.values(POLICY_FILE_KEYS).flat().filter((k) => !doc.includes(`\`${k}\``));
  assert.deepEqual(missing, []);
});

describe('defaults', () => {
  test('the built-in policy shown in docs/policy.md is the built-in policy', () => {
    const doc = readFileSync(join(repo, 'docs/policy.md'), 'utf8');
    const block = /## Built-in policy[\s\S]*?```yaml\n([\s\S]*?)```/.exec(doc);
    assert.ok(block, 'docs/policy.md has a "Built-in policy" YAML block');
    assert.deepEqual(withoutVersion(parsePolicy(block[1], 'docs/policy.md')), withoutVersion(DEFAULT_POLICY));
  });

  test('an empty file is the built-in policy', () => {
    const p = parsePolicy('', 'empty');
    assert.deepEqual(withoutVersion(p), withoutVersion(DEFAULT_POLICY));
    assert.equal(p.version, createHash('sha256').update('').digest('hex'));
    assert.equal(DEFAULT_POLICY.version, 'builtin');
  });

  test('the built-in profiles and scope', () => {
    const { mtls, server } = DEFAULT_POLICY.profiles;
    assert.equal(mtls.validityMs, 24 * 3600_000);
    assert.deepEqual(mtls.extKeyUsage, ['serverAuth', 'clientAuth']);
    assert.equal(server.validityMs, 7 * 24 * 3600_000);
    assert.deepEqual(server.extKeyUsage, ['serverAuth']);
    for (const p of [mtls, server]) {
      assert.deepEqual(p.identifierTypes, ['dns', 'ip']);
      assert.deepEqual(p.challengeTypes, ['http-01', 'dns-01', 'tls-alpn-01']);
      assert.equal(p.maxNames, 100);
      assert.equal(p.allowWildcards, true);
      assert.deepEqual(p.scopes, ['*']);
    }
    assert.equal(DEFAULT_POLICY.defaultProfile, 'mtls');
    assert.equal(DEFAULT_POLICY.defaultScope, 'default');
    assert.deepEqual(DEFAULT_POLICY.scopes.default.dns.allow, ['*']);
    assert.deepEqual(DEFAULT_POLICY.scopes.default.ip.allow, ['0.0.0.0/0', '::/0']);
  });

  test('overriding a built-in profile changes only the keys written', () => {
    const p = parsePolicy('profiles:\n  mtls:\n    validity: 12h\n', 'inline');
    assert.equal(p.profiles.mtls.validityMs, 12 * 3600_000);
    assert.deepEqual(p.profiles.mtls.extKeyUsage, ['serverAuth', 'clientAuth']);
    assert.equal(p.profiles.mtls.description, DEFAULT_POLICY.profiles.mtls.description);
    assert.deepEqual(p.profiles.server, DEFAULT_POLICY.profiles.server);
  });

  test('a new profile takes field defaults', () => {
    const p = parsePolicy('profiles:\n  short:\n    validity: 90m\n    extKeyUsage: [clientAuth]\n', 'inline');
    const s = p.profiles.short;
    assert.equal(s.validityMs, 90 * 60_000);
    assert.deepEqual(s.keys, { allowed: ['RSA', 'EC-P256', 'EC-P384'], rsaMinBits: 2048, rsaMaxBits: 8192 });
    assert.equal(s.maxNames, 100);
    assert.deepEqual(s.scopes, ['*']);
    assert.equal(s.uriSans, true);
    assert.equal(s.description, '');
  });

  test('null removes a built-in profile', () => {
    const p = parsePolicy('profiles:\n  server: null\n', 'inline');
    assert.deepEqual(Object.keys(p.profiles), ['mtls']);
  });

  test('written scopes replace the built-in default scope; omitted lists are empty', () => {
    const p = parsePolicy('defaultScope: web\nscopes:\n  web:\n    dns: {allow: [.web.internal]}\n', 'inline');
    assert.deepEqual(Object.keys(p.scopes), ['web']);
    assert.deepEqual(p.scopes.web.ip, { allow: [], deny: [] });
    assert.deepEqual(p.scopes.web.uri, { allow: [], deny: [] });
    assert.equal(p.scopes.web.wildcards, false);
    assert.equal(p.scopes.web.profiles, undefined);
  });

  test('defaultScope null is allowed (EAB-bound accounts only)', () => {
    assert.equal(parsePolicy('defaultScope: null\n', 'inline').defaultScope, null);
  });

  test('patterns are canonicalised', () => {
    const p = parsePolicy([
      'scopes:',
      '  default:',
      '    dns: {allow: [API.Corp.Internal, .Corp.Internal, .corp.internal]}',
      '    ip: {allow: [10.1.2.3, "FD00:0:0::/8", "::ffff:10.0.0.0/104", "2001:0db8:0000::/32"]}',
    ].join('\n'), 'inline');
    assert.deepEqual(p.scopes.default.dns.allow, ['api.corp.internal', '.corp.internal']);
    assert.deepEqual(p.scopes.default.ip.allow, ['10.1.2.3/32', 'fd00::/8', '::ffff:10.0.0.0/104', '2001:db8::/32']);
  });

  test('parsed policies are frozen', () => {
    const p = parsePolicy('', 'inline');
    assert.ok(Object.isFrozen(p) && Object.isFrozen(p.profiles.mtls.extKeyUsage) && Object.isFrozen(p.scopes.default.dns.allow));
    assert.ok(Object.isFrozen(DEFAULT_POLICY.profiles.mtls.keys.allowed));
  });
});

// Each bad file names the key path and what is allowed.
const BAD: Array<{ name: string; yaml: string; path: string; message: RegExp | string }> = [
  { name: 'not YAML', yaml: 'profiles: [', path: '', message: 'is not valid YAML' },
  { name: 'duplicate key', yaml: 'defaultProfile: mtls\ndefaultProfile: server\n', path: '', message: 'is not valid YAML' },
  { name: 'top level is a list', yaml: '- a\n- b\n', path: '(top level)', message: 'expected a mapping with keys defaultProfile' },
  { name: 'unknown top-level key', yaml: 'profile: mtls\n', path: 'profile', message: 'unknown key profile; allowed here: defaultProfile, defaultScope, profiles, scopes, rateLimits' },
  { name: 'unknown __proto__ key', yaml: '__proto__: {a: 1}\n', path: '__proto__', message: 'unknown key __proto__' },
  { name: 'unknown profile key', yaml: 'profiles:\n  mtls:\n    validty: 1h\n', path: 'profiles.mtls.validty', message: 'unknown key profiles.mtls.validty' },
  { name: 'unknown keys key', yaml: 'profiles:\n  mtls:\n    keys: {rsaBits: 2048}\n', path: 'profiles.mtls.keys.rsaBits', message: 'allowed here: allowed, rsaMinBits, rsaMaxBits' },
  { name: 'unknown scope key', yaml: 'scopes:\n  default:\n    dnss: {}\n', path: 'scopes.default.dnss', message: 'allowed here: dns, ip, uri, wildcards, profiles, rateLimits' },
  { name: 'unknown rule key', yaml: 'scopes:\n  default:\n    dns: {alow: []}\n', path: 'scopes.default.dns.alow', message: 'allowed here: allow, deny' },
  { name: 'unknown rate limit', yaml: 'rateLimits:\n  ordersPerIp: {count: 1, window: 1h}\n', path: 'rateLimits.ordersPerIp', message: 'unknown key' },
  { name: 'bad duration', yaml: 'profiles:\n  mtls:\n    validity: 24 hours\n', path: 'profiles.mtls.validity', message: 'profiles.mtls.validity = "24 hours": expected a duration such as 90s, 15m, 24h, 7d' },
  { name: 'validity too short', yaml: 'profiles:\n  mtls:\n    validity: 30s\n', path: 'profiles.mtls.validity', message: 'must be at least 1m' },
  { name: 'validity too long', yaml: 'profiles:\n  mtls:\n    validity: 400d\n', path: 'profiles.mtls.validity', message: 'must be at most 398d' },
  { name: 'bad extKeyUsage', yaml: 'profiles:\n  mtls:\n    extKeyUsage: [serverAuth, codeSigning]\n', path: 'profiles.mtls.extKeyUsage[1]', message: '"codeSigning": expected one of serverAuth, clientAuth' },
  { name: 'duplicate list entry', yaml: 'profiles:\n  mtls:\n    extKeyUsage: [serverAuth, serverAuth]\n', path: 'profiles.mtls.extKeyUsage[1]', message: 'is listed twice' },
  { name: 'bad key algorithm', yaml: 'profiles:\n  mtls:\n    keys: {allowed: [DSA]}\n', path: 'profiles.mtls.keys.allowed[0]', message: 'expected one of RSA, EC-P256, EC-P384, EC-P521, Ed25519' },
  { name: 'weak RSA minimum', yaml: 'profiles:\n  mtls:\n    keys: {rsaMinBits: 1024}\n', path: 'profiles.mtls.keys.rsaMinBits', message: 'must be at least 2048' },
  { name: 'RSA size not whole bytes', yaml: 'profiles:\n  mtls:\n    keys: {rsaMinBits: 3004}\n', path: 'profiles.mtls.keys.rsaMinBits', message: 'must be a multiple of 8' },
  { name: 'RSA min above max', yaml: 'profiles:\n  mtls:\n    keys: {rsaMinBits: 4096, rsaMaxBits: 3072}\n', path: 'profiles.mtls.keys.rsaMinBits', message: 'must not exceed rsaMaxBits (3072)' },
  { name: 'maxNames zero', yaml: 'profiles:\n  mtls:\n    maxNames: 0\n', path: 'profiles.mtls.maxNames', message: 'must be at least 1' },
  { name: 'maxNames above the server limit', yaml: 'profiles:\n  mtls:\n    maxNames: 101\n', path: 'profiles.mtls.maxNames', message: "must be at most 100 (the server's per-order limit is 100)" },
  { name: 'maxNames as a string', yaml: 'profiles:\n  mtls:\n    maxNames: "5"\n', path: 'profiles.mtls.maxNames', message: 'expected an integer' },
  { name: 'boolean as yes', yaml: 'profiles:\n  mtls:\n    allowWildcards: yes\n', path: 'profiles.mtls.allowWildcards', message: '"yes": expected true or false' },
  { name: 'bad identifier type', yaml: 'profiles:\n  mtls:\n    identifierTypes: [dns, email]\n', path: 'profiles.mtls.identifierTypes[1]', message: 'expected one of dns, ip' },
  { name: 'empty challenge list', yaml: 'profiles:\n  mtls:\n    challengeTypes: []\n', path: 'profiles.mtls.challengeTypes', message: 'must not be empty' },
  { name: 'IP without an IP-capable challenge', yaml: 'profiles:\n  mtls:\n    challengeTypes: [dns-01]\n', path: 'profiles.mtls.challengeTypes', message: 'allows no challenge that can validate an IP address' },
  { name: '* mixed with scope names', yaml: 'profiles:\n  mtls:\n    scopes: ["*", default]\n', path: 'profiles.mtls.scopes', message: 'list it alone' },
  { name: 'profile names a missing scope', yaml: 'profiles:\n  mtls:\n    scopes: [default, nosuch]\n', path: 'profiles.mtls.scopes[1]', message: '"nosuch": names no scope; scopes: default' },
  { name: 'new profile without validity', yaml: 'profiles:\n  gold:\n    extKeyUsage: [serverAuth]\n', path: 'profiles.gold.validity', message: 'a new profile must set validity' },
  { name: 'new profile without extKeyUsage', yaml: 'profiles:\n  gold:\n    validity: 1h\n', path: 'profiles.gold.extKeyUsage', message: 'a new profile must set extKeyUsage' },
  { name: 'null for a non-built-in profile', yaml: 'profiles:\n  gold: null\n', path: 'profiles.gold', message: 'null removes a built-in profile' },
  { name: 'every profile removed', yaml: 'profiles:\n  mtls: null\n  server: null\n', path: 'profiles', message: 'at least one profile must remain' },
  { name: 'bad profile name', yaml: 'profiles:\n  Gold Plan:\n    validity: 1h\n', path: 'profiles.Gold Plan', message: 'a name must start with a lower-case letter' },
  { name: 'DNS wildcard not leftmost', yaml: 'scopes:\n  default:\n    dns: {allow: [a.*.web.internal]}\n', path: 'scopes.default.dns.allow[0]', message: '"a.*.web.internal": may use "*" only as a whole leftmost label' },
  { name: 'DNS partial-label wildcard', yaml: 'scopes:\n  default:\n    dns: {allow: ["api*.web.internal"]}\n', path: 'scopes.default.dns.allow[0]', message: 'may use "*" only as a whole leftmost label' },
  { name: 'DNS double wildcard', yaml: 'scopes:\n  default:\n    dns: {allow: ["*.*.web.internal"]}\n', path: 'scopes.default.dns.allow[0]', message: 'wildcard pattern: the part after "*."' },
  { name: 'DNS trailing dot', yaml: 'scopes:\n  default:\n    dns: {deny: [web.internal.]}\n', path: 'scopes.default.dns.deny[0]', message: 'must not end with a dot' },
  { name: 'DNS lone dot', yaml: 'scopes:\n  default:\n    dns: {allow: ["."]}\n', path: 'scopes.default.dns.allow[0]', message: 'suffix pattern: the part after the leading "." is empty' },
  { name: 'DNS rule holding an IP', yaml: 'scopes:\n  default:\n    dns: {allow: [10.0.0.1]}\n', path: 'scopes.default.dns.allow[0]', message: 'is an IP address; put it under ip' },
  { name: 'DNS bad label', yaml: 'scopes:\n  default:\n    dns: {allow: [-bad.internal]}\n', path: 'scopes.default.dns.allow[0]', message: 'label "-bad" is not a valid DNS label' },
  { name: 'DNS rule not a string', yaml: 'scopes:\n  default:\n    dns: {allow: [42]}\n', path: 'scopes.default.dns.allow[0]', message: 'expected a string' },
  { name: 'CIDR prefix too long', yaml: 'scopes:\n  default:\n    ip: {allow: [10.0.0.0/33]}\n', path: 'scopes.default.ip.allow[0]', message: 'prefix length "33" must be a number from 0 to 32' },
  { name: 'CIDR IPv4 host bits', yaml: 'scopes:\n  default:\n    ip: {deny: [10.20.1.0/16]}\n', path: 'scopes.default.ip.deny[0]', message: 'host bits are set after the /16 prefix; the network is 10.20.0.0/16' },
  { name: 'CIDR IPv6 host bits', yaml: 'scopes:\n  default:\n    ip: {allow: ["fd00::1/8"]}\n', path: 'scopes.default.ip.allow[0]', message: 'the network is fd00::/8' },
  { name: 'CIDR not an address', yaml: 'scopes:\n  default:\n    ip: {allow: [corp-net]}\n', path: 'scopes.default.ip.allow[0]', message: '"corp-net" is not an IPv4 or IPv6 address' },
  { name: 'CIDR with a zone id', yaml: 'scopes:\n  default:\n    ip: {allow: ["fe80::1%eth0"]}\n', path: 'scopes.default.ip.allow[0]', message: 'is not an IPv4 or IPv6 address' },
  { name: 'CIDR leading zero prefix', yaml: 'scopes:\n  default:\n    ip: {allow: [10.0.0.0/08]}\n', path: 'scopes.default.ip.allow[0]', message: 'prefix length "08"' },
  { name: 'URI not SPIFFE', yaml: 'scopes:\n  default:\n    uri: {allow: ["https://corp.internal/x"]}\n', path: 'scopes.default.uri.allow[0]', message: 'must start with "spiffe://"' },
  { name: 'URI partial-segment wildcard', yaml: 'scopes:\n  default:\n    uri: {allow: ["spiffe://corp.internal/ns/pay*"]}\n', path: 'scopes.default.uri.allow[0]', message: '"*" must be a whole path segment, not part of "pay*"' },
  { name: 'URI wildcard trust domain', yaml: 'scopes:\n  default:\n    uri: {allow: ["spiffe://*.corp/ns/x"]}\n', path: 'scopes.default.uri.allow[0]', message: 'trust domain "*.corp"' },
  { name: 'URI without a path', yaml: 'scopes:\n  default:\n    uri: {allow: ["spiffe://corp.internal"]}\n', path: 'scopes.default.uri.allow[0]', message: 'needs a path' },
  { name: 'URI empty segment', yaml: 'scopes:\n  default:\n    uri: {deny: ["spiffe://corp.internal/ns//x"]}\n', path: 'scopes.default.uri.deny[0]', message: 'empty path segment' },
  { name: 'rules not a list', yaml: 'scopes:\n  default:\n    dns: {allow: .corp.internal}\n', path: 'scopes.default.dns.allow', message: 'expected a list' },
  { name: 'defaultProfile missing', yaml: 'defaultProfile: gold\n', path: 'defaultProfile', message: '"gold": names no profile; profiles: mtls, server' },
  { name: 'defaultScope missing after scopes are written', yaml: 'scopes:\n  web:\n    dns: {allow: [.web.internal]}\n', path: 'defaultScope', message: '"default": names no scope; scopes: web' },
  { name: 'scope names a missing profile', yaml: 'scopes:\n  default:\n    profiles: [mtls, gold]\n', path: 'scopes.default.profiles[1]', message: '"gold": names no profile' },
  { name: 'scope with no usable profile', yaml: 'profiles:\n  mtls: {scopes: [web]}\n  server: {scopes: [web]}\nscopes:\n  web: {}\n  default:\n    profiles: [mtls]\n', path: 'scopes.default', message: "none lists 'default'" },
  { name: 'rate limit count zero', yaml: 'rateLimits:\n  ordersPerAccount: {count: 0, window: 1h}\n', path: 'rateLimits.ordersPerAccount.count', message: 'must be at least 1' },
  { name: 'rate limit bad window', yaml: 'rateLimits:\n  ordersPerScope: {count: 10, window: soon}\n', path: 'rateLimits.ordersPerScope.window', message: 'expected a duration' },
  { name: 'rate limit missing window', yaml: 'rateLimits:\n  duplicateCertificates: {count: 10}\n', path: 'rateLimits.duplicateCertificates.window', message: 'needs count and window' },
  { name: 'scope rate limit unknown key', yaml: 'scopes:\n  default:\n    rateLimits:\n      ordersPerAccount: {count: 10, window: 1h, burst: 5}\n', path: 'scopes.default.rateLimits.ordersPerAccount.burst', message: 'allowed here: count, window' },
];

describe('bad policy files are refused, naming the key', () => {
  for (const c of BAD) {
    test(c.name, () => {
      assert.throws(() => parsePolicy(c.yaml, 'policy.yaml'), (e: unknown) => {
        assert.ok(e instanceof PolicyError, `not a PolicyError: ${String(e)}`);
        assert.equal(e.path, c.path);
        assert.equal(e.source, 'policy.yaml');
        assert.ok(e.message.includes('policy.yaml'), e.message);
        if (c.path !== '' && c.path !== '(top level)') assert.ok(e.message.includes(c.path), `path missing from: ${e.message}`);
        if (typeof c.message === 'string') assert.ok(e.message.includes(c.message), `"${c.message}" not in: ${e.message}`);
        else assert.match(e.message, c.message);
        return true;
      });
    });
  }
});

describe('tokenBucket', () => {
  const limit = { count: 3, windowMs: 3000 };

  test('starts full and allows count requests at once, then refuses', () => {
    let state = null;
    for (let i = 0; i < 3; i++) {
      const r = tokenBucket(state, limit, 1000);
      assert.equal(r.allowed, true, `request ${i + 1}`);
      assert.equal(r.retryAfterMs, 0);
      state = r.state;
    }
    const refused = tokenBucket(state, limit, 1000);
    assert.equal(refused.allowed, false);
    assert.equal(refused.retryAfterMs, 1000); // one token per windowMs/count
  });

  test('refills continuously, not per window', () => {
    const empty = { tokens: 0, updatedAt: 0 };
    assert.equal(tokenBucket(empty, limit, 999).allowed, false);
    assert.equal(tokenBucket(empty, limit, 999).retryAfterMs, 1);
    const r = tokenBucket(empty, limit, 1000);
    assert.equal(r.allowed, true);
    assert.ok(Math.abs(r.state.tokens) < 1e-9);
    assert.equal(tokenBucket({ tokens: 0.5, updatedAt: 0 }, limit, 250).retryAfterMs, 250);
  });

  test('never holds more than count tokens', () => {
    const r = tokenBucket({ tokens: 1, updatedAt: 0 }, limit, 1_000_000);
    assert.equal(r.allowed, true);
    assert.equal(r.state.tokens, 2);
  });

  test('a clock that goes backwards refills nothing', () => {
    const r = tokenBucket({ tokens: 0.5, updatedAt: 5000 }, limit, 1000);
    assert.equal(r.allowed, false);
    assert.deepEqual(r.state, { tokens: 0.5, updatedAt: 5000 });
  });

  test('is pure: the input state is not modified', () => {
    const state = Object.freeze({ tokens: 2, updatedAt: 0 });
    const r = tokenBucket(state, limit, 0);
    assert.deepEqual(state, { tokens: 2, updatedAt: 0 });
    assert.equal(r.state.tokens, 1);
  });
});

describe('PolicyStore', () => {
  test('starts with the built-in policy, reloads, and keeps the old policy when a reload fails', () => {
    const dir = mkdtempSync(join(tmpdir(), 'acme-ca-policy-'));
    try {
      const file = join(dir, 'policy.yaml');
      const store = new PolicyStore();
      assert.equal(store.current(), DEFAULT_POLICY);

      writeFileSync(file, 'profiles:\n  mtls:\n    validity: 12h\n');
      const ok = store.reload(file);
      assert.deepEqual(ok, { ok: true, version: store.current().version, changed: true });
      assert.equal(store.current().profiles.mtls.validityMs, 12 * 3600_000);
      const good = store.current();

      assert.deepEqual(store.reload(file), { ok: true, version: good.version, changed: false });

      writeFileSync(file, 'profiles:\n  mtls:\n    validity: forever\n');
      const bad = store.reload(file);
      assert.equal(bad.ok, false);
      assert.match(bad.ok ? '' : bad.error, /profiles\.mtls\.validity = "forever": expected a duration/);
      assert.match(bad.ok ? '' : bad.error, new RegExp(`keeping policy ${good.version}`));
      assert.equal(store.current(), good);

      const missing = store.reload(join(dir, 'nope.yaml'));
      assert.equal(missing.ok, false);
      assert.match(missing.ok ? '' : missing.error, /cannot read policy file .*nope\.yaml/);
      assert.equal(store.current(), good);

      writeFileSync(file, 'scopes: [');
      assert.match((store.reload(file) as { error: string }).error, /not valid YAML/);
      assert.equal(store.current(), good);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('reloads the example file', () => {
    const store = new PolicyStore();
    const r = store.reload(EXAMPLE);
    assert.equal(r.ok, true, r.ok ? '' : r.error);
    assert.ok('workload' in store.current().profiles);
  });
});
