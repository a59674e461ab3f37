import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { isIP } from 'node:net';
import { describe, test } from 'node:test';

import type { Identifier } from '../storage/types.js';
import {
  challengeTypesFor, directoryProfiles, evaluateCsrUris, evaluateKey, evaluateOrder, nameSetKey,
  type OrderDecision,
} from '../server/policy/evaluate.js';
import { dnsOverlaps, ipInCidr, matchDns, matchUri } from '../server/policy/match.js';
import { parsePolicy } from '../server/policy/parse.js';
import { DEFAULT_POLICY, rateLimitsFor, type PolicyConfig } from '../server/policy/types.js';

// One policy exercises every rule kind; each scope isolates one concern so a case's expected
// rule is unambiguous.
const FIXTURE = `
defaultProfile: mtls
defaultScope: open
profiles:
  server:
    scopes: [web, open, exact, nowild, v6, wild, restricted]
  small:
    validity: 1h
    extKeyUsage: [clientAuth]
    maxNames: 3
    identifierTypes: [dns]
    challengeTypes: [http-01, tls-alpn-01]
    allowWildcards: false
    uriSans: false
    scopes: [payments, open]
  httponly:
    validity: 2h
    extKeyUsage: [serverAuth]
    identifierTypes: [dns]
    challengeTypes: [http-01]
    scopes: [open]
scopes:
  web:
    dns:
      allow: ["*.web.internal", .web.internal]
      deny: [admin.web.internal, .secret.web.internal]
    wildcards: true
  payments:
    dns:
      allow: [.payments.internal, payments.internal]
      deny: [.legacy.payments.internal]
    ip:
      allow: [10.20.0.0/16]
      deny: [10.20.99.0/24]
    uri:
      allow: ["spiffe://corp.internal/ns/payments/*", "spiffe://corp.internal/ns/*/sa/payments-reader"]
      deny: ["spiffe://corp.internal/ns/payments/sa/admin"]
    wildcards: false
    profiles: [mtls, small]
  exact:
    dns:
      allow: [api.corp.internal]
    wildcards: true
  wild:
    dns:
      allow: ["*.w.internal"]
    wildcards: true
  nowild:
    dns:
      allow: [.nowild.internal]
    wildcards: false
  v6:
    ip:
      allow: ["fd00:20::/32", "2001:db8::/48", "::ffff:192.168.0.0/112"]
      deny: ["fd00:20:0:99::/64"]
  open:
    dns:
      allow: ["*"]
      deny: [.forbidden.internal, "*.blocked.internal"]
    ip:
      allow: [0.0.0.0/0, "::/0"]
      deny: [10.0.0.0/24, 169.254.0.0/16, "fe80::/10"]
    wildcards: true
  both:
    dns:
      allow: [.both.internal]
      deny: [.both.internal]
    ip:
      allow: [10.0.0.0/8]
      deny: [10.0.0.0/8]
  restricted:
    dns:
      allow: [.restricted.internal]
    profiles: [server]
`;

const POLICY = parsePolicy(FIXTURE, 'test fixture');

interface Case {
  name: string;
  scope: string;
  profile?: string;
  identifiers: string[];
  uris?: string[];
  /** 'builtin' evaluates against DEFAULT_POLICY instead of the fixture. */
  policy?: 'builtin';
  expect: 'allow' | { rule: RegExp | string; problem?: 'invalidProfile' | 'rejectedIdentifier' | 'unauthorized'; denials?: number };
  /** For allowed cases: text that must appear in the decision's reasons (the allowing rule). */
  because?: string;
}

const ids = (values: string[]): Identifier[] => values.map((v) => ({ type: isIP(v) !== 0 ? 'ip' : 'dns', value: v }));
const names = (n: number, suffix: string): string[] => Array.from({ length: n }, (_, i) => `h${i}.${suffix}`);

const CASES: Case[] = [
  // DNS: `*.x` single label, `.x` suffix, exact.
  { name: 'single-label wildcard pattern allows one label', scope: 'web', identifiers: ['a.web.internal'], expect: 'allow', because: 'dns.allow *.web.internal' },
  { name: 'suffix pattern allows deeper names', scope: 'web', identifiers: ['a.b.web.internal'], expect: 'allow', because: 'dns.allow .web.internal' },
  { name: 'neither suffix nor wildcard covers the apex', scope: 'web', identifiers: ['web.internal'], expect: { rule: "web.internal: scope 'web' allows only *.web.internal, .web.internal" } },
  { name: 'name outside the scope names the allowed patterns', scope: 'web', identifiers: ['db.payments.internal'], expect: { rule: "db.payments.internal: scope 'web' allows only *.web.internal, .web.internal", problem: 'rejectedIdentifier' } },
  { name: 'exact deny beats wildcard allow', scope: 'web', identifiers: ['admin.web.internal'], expect: { rule: "denied by scope 'web' rule dns.deny admin.web.internal (denials win over allows)" } },
  { name: 'suffix deny beats suffix allow', scope: 'web', identifiers: ['x.secret.web.internal'], expect: { rule: 'dns.deny .secret.web.internal' } },
  { name: 'suffix deny does not cover its own apex', scope: 'web', identifiers: ['secret.web.internal'], expect: 'allow', because: 'dns.allow *.web.internal' },
  { name: 'matching is case-insensitive', scope: 'web', identifiers: ['API.Web.Internal'], expect: 'allow', because: 'dns.allow *.web.internal' },
  { name: 'suffix matches at a label boundary only', scope: 'web', identifiers: ['evilweb.internal'], expect: { rule: 'dns.allow' } },
  { name: 'suffix does not match a name that merely ends the same', scope: 'web', identifiers: ['a.notweb.internal'], expect: { rule: "scope 'web' allows only" } },
  { name: 'exact pattern allows that name', scope: 'exact', identifiers: ['api.corp.internal'], expect: 'allow', because: 'dns.allow api.corp.internal' },
  { name: 'exact pattern does not allow subdomains', scope: 'exact', identifiers: ['www.api.corp.internal'], expect: { rule: "scope 'exact' allows only api.corp.internal" } },
  { name: 'exact pattern does not allow the parent', scope: 'exact', identifiers: ['corp.internal'], expect: { rule: 'dns.allow' } },
  { name: 'exact apex listed next to its suffix', scope: 'payments', identifiers: ['payments.internal'], expect: 'allow', because: 'dns.allow payments.internal' },
  { name: 'suffix allows one level down', scope: 'payments', identifiers: ['db.payments.internal'], expect: 'allow', because: 'dns.allow .payments.internal' },
  { name: 'suffix allows many levels down', scope: 'payments', identifiers: ['a.b.c.payments.internal'], expect: 'allow', because: 'dns.allow .payments.internal' },
  { name: 'nested suffix deny', scope: 'payments', identifiers: ['db.legacy.payments.internal'], expect: { rule: "db.legacy.payments.internal: denied by scope 'payments' rule dns.deny .legacy.payments.internal" } },
  { name: 'nested suffix deny spares its apex', scope: 'payments', identifiers: ['legacy.payments.internal'], expect: 'allow', because: 'dns.allow .payments.internal' },
  { name: 'catch-all * allows any name', scope: 'open', identifiers: ['anything.example.com'], expect: 'allow', because: 'dns.allow *' },
  { name: 'suffix deny inside catch-all', scope: 'open', identifiers: ['x.forbidden.internal'], expect: { rule: 'dns.deny .forbidden.internal' } },
  { name: 'single-label wildcard deny', scope: 'open', identifiers: ['a.blocked.internal'], expect: { rule: 'dns.deny *.blocked.internal' } },
  { name: 'single-label wildcard deny does not reach two labels down', scope: 'open', identifiers: ['a.b.blocked.internal'], expect: 'allow', because: 'dns.allow *' },
  { name: 'single-label wildcard deny does not cover its parent', scope: 'open', identifiers: ['blocked.internal'], expect: 'allow' },
  { name: 'scope with no DNS rules allows no names', scope: 'v6', identifiers: ['a.web.internal'], expect: { rule: "scope 'v6' allows no DNS names" } },

  // Order wildcards: the switch (profile and scope), coverage and overlap with denials.
  { name: 'wildcard under suffix allow', scope: 'web', identifiers: ['*.app.web.internal'], expect: 'allow', because: 'dns.allow .web.internal' },
  { name: 'wildcard refused when a deny names a host it would cover', scope: 'web', identifiers: ['*.web.internal'], expect: { rule: 'dns.deny admin.web.internal: the wildcard certificate would also be valid for admin.web.internal' } },
  { name: 'wildcard under a denied suffix', scope: 'web', identifiers: ['*.secret.web.internal'], expect: { rule: 'dns.deny .secret.web.internal' } },
  { name: 'wildcard pattern covers the same wildcard name', scope: 'wild', identifiers: ['*.w.internal'], expect: 'allow', because: 'dns.allow *.w.internal' },
  { name: 'wildcard pattern allows a plain one-label name', scope: 'wild', identifiers: ['a.w.internal'], expect: 'allow' },
  { name: 'wildcard pattern refuses two labels', scope: 'wild', identifiers: ['a.b.w.internal'], expect: { rule: "scope 'wild' allows only *.w.internal" } },
  { name: 'wildcard pattern does not cover a deeper wildcard', scope: 'wild', identifiers: ['*.a.w.internal'], expect: { rule: 'a wildcard needs a pattern that covers every name under it' } },
  { name: 'scope switch off refuses wildcards', scope: 'nowild', identifiers: ['*.nowild.internal'], expect: { rule: "*.nowild.internal: scope 'nowild' does not allow wildcard certificates" } },
  { name: 'scope switch off still allows plain names', scope: 'nowild', identifiers: ['a.nowild.internal'], expect: 'allow' },
  { name: 'scope switch off (wildcards omitted = false)', scope: 'payments', identifiers: ['*.payments.internal'], expect: { rule: 'scope.wildcards' } },
  { name: 'wildcard under catch-all with switch on', scope: 'open', profile: 'server', identifiers: ['*.example.com'], expect: 'allow', because: 'dns.allow *' },
  { name: 'profile switch off refuses wildcards', scope: 'open', profile: 'small', identifiers: ['*.example.com'], expect: { rule: "profile 'small' does not allow wildcard names" } },
  { name: 'profile without dns-01 cannot validate a wildcard', scope: 'open', profile: 'httponly', identifiers: ['*.example.com'], expect: { rule: 'profile.challengeTypes' } },
  { name: 'exact pattern never covers a wildcard', scope: 'exact', identifiers: ['*.corp.internal'], expect: { rule: 'dns.allow' } },
  { name: 'wildcard equal to a wildcard deny', scope: 'open', identifiers: ['*.blocked.internal'], expect: { rule: 'dns.deny *.blocked.internal' } },
  { name: 'wildcard under a suffix deny', scope: 'open', identifiers: ['*.forbidden.internal'], expect: { rule: 'dns.deny .forbidden.internal' } },
  { name: 'deeper wildcard does not overlap a single-label deny', scope: 'open', identifiers: ['*.sub.blocked.internal'], expect: 'allow' },

  // IPv4 CIDRs with edge addresses.
  { name: 'IPv4 network address is inside', scope: 'payments', identifiers: ['10.20.0.0'], expect: 'allow', because: 'ip.allow 10.20.0.0/16' },
  { name: 'IPv4 last address is inside', scope: 'payments', identifiers: ['10.20.255.255'], expect: 'allow', because: 'ip.allow 10.20.0.0/16' },
  { name: 'IPv4 one past the end', scope: 'payments', identifiers: ['10.21.0.0'], expect: { rule: "10.21.0.0: scope 'payments' allows only IP addresses in 10.20.0.0/16" } },
  { name: 'IPv4 one before the start', scope: 'payments', identifiers: ['10.19.255.255'], expect: { rule: 'ip.allow' } },
  { name: 'IPv4 deny at its first address', scope: 'payments', identifiers: ['10.20.99.0'], expect: { rule: "10.20.99.0: denied by scope 'payments' rule ip.deny 10.20.99.0/24 (denials win over allows)" } },
  { name: 'IPv4 deny at its last address', scope: 'payments', identifiers: ['10.20.99.255'], expect: { rule: 'ip.deny 10.20.99.0/24' } },
  { name: 'IPv4 just after the denied block', scope: 'payments', identifiers: ['10.20.100.0'], expect: 'allow' },
  { name: 'IPv4 just before the denied block', scope: 'payments', identifiers: ['10.20.98.255'], expect: 'allow' },
  { name: 'IPv4 deny inside 0.0.0.0/0', scope: 'open', identifiers: ['10.0.0.5'], expect: { rule: "10.0.0.5: denied by scope 'open' rule ip.deny 10.0.0.0/24 (denials win over allows)" } },
  { name: 'IPv4 link-local denied', scope: 'open', identifiers: ['169.254.1.1'], expect: { rule: 'ip.deny 169.254.0.0/16' } },
  { name: 'IPv4 allowed by 0.0.0.0/0', scope: 'open', identifiers: ['8.8.8.8'], expect: 'allow', because: 'ip.allow 0.0.0.0/0' },
  { name: 'scope with no IP rules allows no addresses', scope: 'web', identifiers: ['10.0.0.1'], expect: { rule: "10.0.0.1: scope 'web' allows no IP addresses" } },

  // IPv6 CIDRs with edge addresses.
  { name: 'IPv6 inside /32', scope: 'v6', identifiers: ['fd00:20::1'], expect: 'allow', because: 'ip.allow fd00:20::/32' },
  { name: 'IPv6 last address of /32', scope: 'v6', identifiers: ['fd00:20:ffff:ffff:ffff:ffff:ffff:ffff'], expect: 'allow' },
  { name: 'IPv6 first address after /32', scope: 'v6', identifiers: ['fd00:21::'], expect: { rule: "scope 'v6' allows only IP addresses in fd00:20::/32, 2001:db8::/48" } },
  { name: 'IPv6 deny /64 inside allow /32', scope: 'v6', identifiers: ['fd00:20:0:99::5'], expect: { rule: 'ip.deny fd00:20:0:99::/64' } },
  { name: 'IPv6 next /64 is allowed', scope: 'v6', identifiers: ['fd00:20:0:9a::'], expect: 'allow' },
  { name: 'IPv6 inside /48', scope: 'v6', identifiers: ['2001:db8:0:ffff::1'], expect: 'allow', because: 'ip.allow 2001:db8::/48' },
  { name: 'IPv6 outside /48', scope: 'v6', identifiers: ['2001:db8:1::'], expect: { rule: 'ip.allow' } },
  { name: 'IPv6 link-local denied (first of fe80::/10)', scope: 'open', identifiers: ['fe80::1'], expect: { rule: 'ip.deny fe80::/10' } },
  { name: 'IPv6 link-local denied (last /16 of fe80::/10)', scope: 'open', identifiers: ['febf:ffff::1'], expect: { rule: 'ip.deny fe80::/10' } },
  { name: 'IPv6 just past fe80::/10', scope: 'open', identifiers: ['fec0::1'], expect: 'allow', because: 'ip.allow ::/0' },
  { name: 'IPv6 global allowed by ::/0', scope: 'open', identifiers: ['2001:db8::1'], expect: 'allow', because: 'ip.allow ::/0' },

  // IPv4-mapped IPv6: the same host as its IPv4 address.
  { name: 'mapped address hits an IPv4 deny (dotted form)', scope: 'payments', identifiers: ['::ffff:10.20.99.5'], expect: { rule: 'IPv4-mapped, the same host as 10.20.99.5): denied by scope \'payments\' rule ip.deny 10.20.99.0/24' } },
  { name: 'mapped address hits an IPv4 deny (canonical hex form)', scope: 'payments', identifiers: ['::ffff:a14:6305'], expect: { rule: 'ip.deny 10.20.99.0/24' } },
  { name: 'mapped address allowed by an IPv4 allow', scope: 'payments', identifiers: ['::ffff:10.20.1.1'], expect: 'allow', because: 'ip.allow 10.20.0.0/16' },
  { name: 'mapped address: IPv4 deny wins over ::/0 allow', scope: 'open', identifiers: ['::ffff:10.0.0.5'], expect: { rule: 'ip.deny 10.0.0.0/24' } },
  { name: 'mapped address matches a mapped IPv6 CIDR', scope: 'v6', identifiers: ['::ffff:192.168.1.1'], expect: 'allow', because: 'ip.allow ::ffff:192.168.0.0/112' },
  { name: 'plain IPv4 does not match a mapped IPv6 CIDR', scope: 'v6', identifiers: ['192.168.1.1'], expect: { rule: 'ip.allow' } },

  // Profiles: existence, scope access, limits, identifier types.
  { name: 'no profile: the policy default', scope: 'open', identifiers: ['a.example.com'], expect: 'allow', because: "profile 'mtls' (the policy default)" },
  { name: 'requested profile', scope: 'open', profile: 'server', identifiers: ['a.example.com'], expect: 'allow', because: "profile 'server' (requested)" },
  { name: 'no profile and the default is closed to the scope: first open profile', scope: 'restricted', identifiers: ['a.restricted.internal'], expect: 'allow', because: "profile 'server' (the first profile available to scope 'restricted'" },
  { name: 'unknown profile lists the available ones', scope: 'open', profile: 'gold', identifiers: ['a.example.com'], expect: { rule: "profile 'gold' is not offered; profiles available to scope 'open': mtls, server, small, httponly", problem: 'invalidProfile' } },
  { name: 'profile closed to the scope by scope.profiles', scope: 'payments', profile: 'server', identifiers: ['db.payments.internal'], expect: { rule: "profile 'server' is not available to scope 'payments'; profiles available to it: mtls, small", problem: 'invalidProfile' } },
  { name: 'profile closed to the scope by profile.scopes', scope: 'web', profile: 'small', identifiers: ['a.web.internal'], expect: { rule: "not available to scope 'web'", problem: 'invalidProfile' } },
  { name: 'unknown scope is unauthorized', scope: 'ghost', identifiers: ['a.example.com'], expect: { rule: "scope 'ghost' is not defined", problem: 'unauthorized' } },
  { name: 'maxNames exceeded', scope: 'open', profile: 'small', identifiers: names(4, 'example.com'), expect: { rule: "the order has 4 identifiers; profile 'small' allows at most 3 (rule profile.maxNames)" } },
  { name: 'maxNames reached exactly', scope: 'open', profile: 'small', identifiers: names(3, 'example.com'), expect: 'allow' },
  { name: 'maxNames counts distinct identifiers', scope: 'open', profile: 'small', identifiers: ['a.example.com', 'a.example.com', 'b.example.com', 'c.example.com'], expect: 'allow' },
  { name: 'built-in maxNames of 100', scope: 'open', identifiers: names(101, 'example.com'), expect: { rule: 'allows at most 100 (rule profile.maxNames)' } },
  { name: 'profile refuses an identifier type', scope: 'open', profile: 'small', identifiers: ['8.8.8.8'], expect: { rule: "8.8.8.8: profile 'small' allows only dns identifiers" } },
  { name: 'empty order', scope: 'open', identifiers: [], expect: { rule: 'at least one identifier' } },

  // Deny over allow, and several refusals at once.
  { name: 'DNS deny identical to allow wins', scope: 'both', identifiers: ['x.both.internal'], expect: { rule: 'dns.deny .both.internal' } },
  { name: 'IP deny identical to allow wins', scope: 'both', identifiers: ['10.1.2.3'], expect: { rule: 'ip.deny 10.0.0.0/8' } },
  { name: 'each refused identifier is a denial', scope: 'web', identifiers: ['a.web.internal', 'admin.web.internal', 'db.payments.internal'], expect: { rule: /2 of 3 identifiers were refused: admin\.web\.internal: .*; db\.payments\.internal: /, denials: 2 } },
  { name: 'mixed DNS and IP refusals', scope: 'payments', identifiers: ['db.payments.internal', '10.20.99.1', '10.30.0.1'], expect: { rule: /ip\.deny 10\.20\.99\.0\/24.*allows only IP addresses in 10\.20\.0\.0\/16/, denials: 2 } },

  // URI SANs (SPIFFE IDs) in the CSR.
  { name: 'SPIFFE ID under a trailing-* pattern', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/ns/payments/sa/api'], expect: 'allow' },
  { name: 'trailing * matches a single segment', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/ns/payments/api'], expect: 'allow' },
  { name: 'trailing * needs at least one segment', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/ns/payments'], expect: { rule: "scope 'payments' allows only URIs matching spiffe://corp.internal/ns/payments/*" } },
  { name: 'URI deny wins over the pattern', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/ns/payments/sa/admin'], expect: { rule: "denied by scope 'payments' rule uri.deny spiffe://corp.internal/ns/payments/sa/admin (denials win over allows)" } },
  { name: 'URI of another namespace', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/ns/web/sa/api'], expect: { rule: 'uri.allow' } },
  { name: 'URI of another trust domain', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://other.internal/ns/payments/sa/api'], expect: { rule: 'uri.allow' } },
  { name: 'inner * matches one segment', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/ns/billing/sa/payments-reader'], expect: 'allow' },
  { name: 'inner * does not match two segments', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/ns/billing/x/sa/payments-reader'], expect: { rule: 'uri.allow' } },
  { name: 'SPIFFE paths are case-sensitive', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/NS/payments/sa/api'], expect: { rule: 'uri.allow' } },
  { name: 'only one SPIFFE ID per certificate', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/ns/payments/sa/a', 'spiffe://corp.internal/ns/payments/sa/b'], expect: { rule: 'spiffe://corp.internal/ns/payments/sa/b: a certificate may carry only one SPIFFE ID' } },
  { name: 'non-SPIFFE URI refused', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['https://payments.internal/'], expect: { rule: /uri\.format[\s\S]*must start with "spiffe:\/\/"/ } },
  { name: 'upper-case scheme refused', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['SPIFFE://corp.internal/ns/payments/sa/api'], expect: { rule: 'not a valid SPIFFE ID' } },
  { name: 'dot-dot segment refused', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/ns/payments/../admin'], expect: { rule: 'has a ".." path segment' } },
  { name: 'query string refused', scope: 'payments', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/ns/payments/sa/api?x=1'], expect: { rule: 'uri.format' } },
  { name: 'scope without URI rules allows none', scope: 'web', identifiers: ['a.web.internal'], uris: ['spiffe://corp.internal/ns/web/x'], expect: { rule: "scope 'web' allows no URI SANs" } },
  { name: 'profile without URI SANs', scope: 'payments', profile: 'small', identifiers: ['api.payments.internal'], uris: ['spiffe://corp.internal/ns/payments/sa/api'], expect: { rule: "profile 'small' does not allow URI SANs" } },

  // The built-in policy (no file): permissive like the server before policies, URIs off.
  { name: 'built-in: any name', policy: 'builtin', scope: 'default', identifiers: ['anything.example.org'], expect: 'allow', because: 'dns.allow *' },
  { name: 'built-in: wildcards', policy: 'builtin', scope: 'default', identifiers: ['*.example.org'], expect: 'allow' },
  { name: 'built-in: IPv4 and IPv6', policy: 'builtin', scope: 'default', identifiers: ['10.1.2.3', '2001:db8::1'], expect: 'allow', because: 'ip.allow ::/0' },
  { name: 'built-in: server profile available', policy: 'builtin', scope: 'default', profile: 'server', identifiers: ['a.example.org'], expect: 'allow' },
  { name: 'built-in: no URI SANs', policy: 'builtin', scope: 'default', identifiers: ['a.example.org'], uris: ['spiffe://corp.internal/ns/x/sa/y'], expect: { rule: "scope 'default' allows no URI SANs" } },
];

function textOf(decision: OrderDecision, uriText: string[]): string {
  if (decision.allow) return uriText.join('\n');
  return [decision.detail, ...decision.denials.flatMap((d) => [d.rule, d.detail]), ...uriText].join('\n');
}

describe('policy decisions (table)', () => {
  test('the table has at least 60 cases', () => {
    assert.ok(CASES.length >= 60, `${CASES.length} cases`);
  });

  for (const c of CASES) {
    test(c.name, () => {
      const policy: PolicyConfig = c.policy === 'builtin' ? DEFAULT_POLICY : POLICY;
      const decision = evaluateOrder({ identifiers: ids(c.identifiers), profile: c.profile }, { scope: c.scope, policy });
      const uriDenials = decision.allow && c.uris !== undefined
        ? evaluateCsrUris(c.uris, { scope: c.scope, profile: decision.profile.name, policy })
        : [];
      const uriText = uriDenials.flatMap((d) => [d.rule, d.detail]);
      if (c.expect === 'allow') {
        assert.equal(decision.allow, true, `expected allow, got: ${decision.allow ? '' : decision.detail}`);
        assert.deepEqual(uriDenials, [], `expected the URIs to be allowed: ${uriText.join(' | ')}`);
        if (c.because !== undefined && decision.allow) {
          assert.ok(decision.reasons.some((r) => r.includes(c.because!)), `reasons ${JSON.stringify(decision.reasons)} lack "${c.because}"`);
        }
        return;
      }
      const refused = !decision.allow || uriDenials.length > 0;
      assert.ok(refused, `expected a refusal matching ${String(c.expect.rule)}, got allow: ${decision.allow ? decision.reasons.join('; ') : ''}`);
      const text = textOf(decision, uriText);
      if (typeof c.expect.rule === 'string') assert.ok(text.includes(c.expect.rule), `"${c.expect.rule}" not in:\n${text}`);
      else assert.match(text, c.expect.rule);
      if (!decision.allow) {
        assert.equal(decision.problem, c.expect.problem ?? 'rejectedIdentifier');
        if (c.expect.denials !== undefined) assert.equal(decision.denials.length, c.expect.denials);
        // Every denial names its identifier first, so a subproblem reads on its own.
        for (const d of decision.denials) assert.ok(d.detail.startsWith(d.identifier.value), d.detail);
      }
      for (const d of uriDenials) assert.ok(d.detail.startsWith(d.uri), d.detail);
    });
  }
});

describe('matchers', () => {
  test('matchDns: exact, suffix, single label, catch-all', () => {
    assert.equal(matchDns('a.b.c', 'a.b.c'), true);
    assert.equal(matchDns('x.a.b.c', 'a.b.c'), false);
    assert.equal(matchDns('x.y.b.c', '.b.c'), true);
    assert.equal(matchDns('b.c', '.b.c'), false);
    assert.equal(matchDns('x.b.c', '*.b.c'), true);
    assert.equal(matchDns('*.b.c', '*.b.c'), true);
    assert.equal(matchDns('x.y.b.c', '*.b.c'), false);
    assert.equal(matchDns('b.c', '*.b.c'), false);
    assert.equal(matchDns('anything', '*'), true);
  });

  test('dnsOverlaps: a wildcard overlaps an exact name one label below it, not deeper', () => {
    assert.equal(dnsOverlaps('*.b.c', 'admin.b.c'), true);
    assert.equal(dnsOverlaps('*.b.c', 'x.admin.b.c'), false);
    assert.equal(dnsOverlaps('*.b.c', '.admin.b.c'), false);
    assert.equal(dnsOverlaps('*.b.c', 'b.c'), false);
    assert.equal(dnsOverlaps('plain.b.c', 'admin.b.c'), false);
  });

  test('ipInCidr: v4, v6, mapped, /0 and /32, garbage', () => {
    assert.equal(ipInCidr('10.0.0.1', '10.0.0.1/32'), true);
    assert.equal(ipInCidr('10.0.0.2', '10.0.0.1/32'), false);
    assert.equal(ipInCidr('255.255.255.255', '0.0.0.0/0'), true);
    assert.equal(ipInCidr('10.0.0.1', '::/0'), false);
    assert.equal(ipInCidr('::ffff:10.0.0.1', '10.0.0.0/8'), true);
    assert.equal(ipInCidr('::1', '::1/128'), true);
    assert.equal(ipInCidr('fe80::1%eth0', 'fe80::/10'), false);
    assert.equal(ipInCidr('not-an-ip', '0.0.0.0/0'), false);
    assert.equal(ipInCidr('10.0.0.1', 'garbage'), false);
  });

  test('matchUri: equal trust domain, inner and trailing *', () => {
    assert.equal(matchUri('spiffe://td/a/b', 'spiffe://td/a/b'), true);
    assert.equal(matchUri('spiffe://td/a/b', 'spiffe://td/a'), false);
    assert.equal(matchUri('spiffe://td/a/b/c', 'spiffe://td/*'), true);
    assert.equal(matchUri('spiffe://td/a/b/c', 'spiffe://td/*/b/c'), true);
    assert.equal(matchUri('spiffe://td/a/x/c', 'spiffe://td/*/b/c'), false);
    assert.equal(matchUri('spiffe://td2/a', 'spiffe://td/*'), false);
    assert.equal(matchUri('spiffe://td/a', 'spiffe://td/a*'), false);
  });
});

describe('profile helpers', () => {
  const mtls = POLICY.profiles.mtls;
  const httponly = POLICY.profiles.httponly;

  test('challengeTypesFor follows the RFCs and the profile', () => {
    assert.deepEqual(challengeTypesFor({ type: 'dns', value: 'a.example.com' }, false, mtls), ['http-01', 'dns-01', 'tls-alpn-01']);
    assert.deepEqual(challengeTypesFor({ type: 'dns', value: 'example.com' }, true, mtls), ['dns-01']);
    assert.deepEqual(challengeTypesFor({ type: 'dns', value: '*.example.com' }, false, mtls), ['dns-01']);
    assert.deepEqual(challengeTypesFor({ type: 'ip', value: '10.0.0.1' }, false, mtls), ['http-01', 'tls-alpn-01']);
    assert.deepEqual(challengeTypesFor({ type: 'dns', value: 'a.example.com' }, false, httponly), ['http-01']);
    assert.deepEqual(challengeTypesFor({ type: 'dns', value: 'example.com' }, true, httponly), []);
  });

  test('evaluateKey applies the profile key policy and names the profile', () => {
    const policy = parsePolicy('profiles:\n  ec:\n    validity: 1h\n    extKeyUsage: [clientAuth]\n    keys: {allowed: [EC-P256]}\n', 'inline');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
    assert.deepEqual(evaluateKey(ec, policy.profiles.ec), { ok: true, algorithm: 'EC-P256', bits: 256 });
    const refused = evaluateKey(rsa, policy.profiles.ec);
    assert.equal(refused.ok, false);
    assert.match(refused.ok ? '' : refused.reason, /^profile 'ec': RSA keys are not allowed; allowed: EC-P256/);
    assert.equal(evaluateKey(rsa, policy.profiles.mtls).ok, true);
  });

  test('directoryProfiles lists every profile in file order with its description', () => {
    assert.deepEqual(Object.keys(directoryProfiles(POLICY)), ['mtls', 'server', 'small', 'httponly']);
    assert.equal(directoryProfiles(POLICY).mtls, 'Mutual TLS: 24 hours, serverAuth and clientAuth');
    assert.equal(directoryProfiles(POLICY).small, '1 hour, clientAuth');
  });

  test('nameSetKey ignores order, case and duplicates', () => {
    const a = nameSetKey(ids(['B.example.com', 'a.example.com', '10.0.0.1']));
    const b = nameSetKey(ids(['10.0.0.1', 'a.example.com', 'b.example.com', 'a.example.com']));
    assert.equal(a, b);
    assert.notEqual(a, nameSetKey(ids(['a.example.com'])));
  });

  test('rateLimitsFor overlays the scope on the policy', () => {
    const policy = parsePolicy('scopes:\n  default:\n    dns: {allow: ["*"]}\n    rateLimits:\n      ordersPerAccount: {count: 5, window: 1m}\n', 'inline');
    const limits = rateLimitsFor(policy.scopes.default, policy);
    assert.deepEqual(limits.ordersPerAccount, { count: 5, windowMs: 60_000 });
    assert.deepEqual(limits.ordersPerScope, policy.rateLimits.ordersPerScope);
  });
});
