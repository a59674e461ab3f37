import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CONFIG_FIELDS, ConfigError, configReferenceMarkdown, loadConfig, parseDuration } from '../server/config.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

test('defaults: data folder ./data, https://localhost:14000, built-in policy', () => {
  const c = loadConfig({}, '/srv/ca');
  assert.equal(c.dataDir, '/srv/ca/data');
  assert.equal(c.listen.href, 'https://localhost:14000/');
  assert.equal(c.externalUrl.href, c.listen.href);
  assert.equal(c.policyFile, null);
  assert.equal(c.certificates.backdateMs, 60_000);
  assert.equal(c.validation.http01Port, 80);
  assert.equal(c.validation.tlsAlpn01Port, 443);
  assert.equal(c.validation.dnsResolver, null);
});

test('the environment variables the brief names all work', () => {
  const c = loadConfig({
    ACME_CA_DATA_DIR: '/var/lib/ca', ACME_CA_LISTEN: 'https://127.0.0.1:9443', ACME_CA_HTTP01_PORT: '5002',
    ACME_CA_TLSALPN01_PORT: '5001', ACME_CA_DNS_RESOLVER: '127.0.0.1:5353',
  });
  assert.equal(c.dataDir, '/var/lib/ca');
  assert.equal(c.listen.port, '9443');
  assert.equal(c.validation.http01Port, 5002);
  assert.equal(c.validation.tlsAlpn01Port, 5001);
  assert.equal(c.validation.dnsResolver, '127.0.0.1:5353');
});

test('a YAML file sets the same keys, and the environment overrides it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'acme-ca-config-'));
  try {
    const file = join(dir, 'ca.yaml');
    writeFileSync(file, 'listen: https://127.0.0.1:9000\nvalidation:\n  http01Port: 8080\n  dnsResolver: "[::1]:53"\ncertificates:\n  backdate: 1h30m\n');
    const c = loadConfig({ ACME_CA_CONFIG: file, ACME_CA_HTTP01_PORT: '8081' }, dir);
    assert.equal(c.listen.port, '9000');
    assert.equal(c.validation.http01Port, 8081);
    assert.equal(c.validation.dnsResolver, '[::1]:53');
    assert.equal(c.certificates.backdateMs, 90 * 60_000);
    assert.equal(c.configFile, file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad configuration names the key, the value and what is allowed', () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ ACME_CA_HTTP01_PORT: '70000' }, /validation\.http01Port .*ACME_CA_HTTP01_PORT.* = "70000": expected a port number 1-65535/],
    [{ ACME_CA_LISTEN: 'http://localhost:80' }, /listen .* must be an https:\/\/ URL/],
    [{ ACME_CA_DNS_RESOLVER: 'localhost' }, /validation\.dnsResolver .*expected host:port/],
    [{ ACME_CA_LOG_LEVEL: 'loud' }, /logLevel .*expected one of/],
    [{ ACME_CA_EAB_REQUIRED: 'maybe' }, /acme\.externalAccountRequired .*expected true or false/],
    [{ ACME_CA_INTERMEDIATE_CERT: '/x.pem' }, /ca\.intermediateCert and ca\.intermediateKey must be set together/],
  ];
  for (const [env, re] of cases) assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && re.test((e as Error).message), JSON.stringify(env));
});

test('unknown keys and unreadable files are refused with the file named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'acme-ca-config-'));
  try {
    const file = join(dir, 'ca.yaml');
    writeFileSync(file, 'validation:\n  http01port: 80\n');
    assert.throws(() => loadConfig({ ACME_CA_CONFIG: file }), /unknown key validation\.http01port/);
    writeFileSync(file, 'certificates:\n  backdate: forever\n');
    assert.throws(() => loadConfig({ ACME_CA_CONFIG: file }), /certificates\.backdate \(from file .*\) = "forever": expected a duration/);
    writeFileSync(file, 'listen: [unclosed\n');
    assert.throws(() => loadConfig({ ACME_CA_CONFIG: file }), /is not valid YAML/);
    assert.throws(() => loadConfig({ ACME_CA_CONFIG: join(dir, 'missing.yaml') }), /cannot read configuration file .*missing\.yaml/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('durations', () => {
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('7d'), 7 * 86_400_000);
  assert.equal(parseDuration('3600'), 3_600_000);
  assert.equal(parseDuration('1h0m0s'), 3_600_000);
  assert.equal(parseDuration('1y'), null);
  assert.equal(parseDuration(''), null);
});

test('the README configuration reference is generated from the schema and up to date', () => {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const m = /<!-- config-reference:start -->\n([\s\S]*?)\n<!-- config-reference:end -->/.exec(readme);
  assert.ok(m, 'README.md has the config-reference markers');
  assert.equal(m[1], configReferenceMarkdown(), 'regenerate with: npm run -s docs:config');
  for (const f of CONFIG_FIELDS) assert.ok(m[1].includes(`\`${f.key}\``));
});
