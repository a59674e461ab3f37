/**
 * Pure matchers for policy rules: DNS name patterns, IP CIDRs and SPIFFE ID patterns, plus the
 * syntax checks parse.ts uses so that a pattern that loads is a pattern these functions
 * understand. No I/O; nothing here throws for any string input.
 *
 * DNS patterns (names compared in lower case):
 *   `*`                any name at all (including wildcard names).
 *   `api.web.internal` exactly that name.
 *   `.web.internal`    any name strictly below web.internal (a.web.internal, a.b.web.internal),
 *                      not web.internal itself; as in step-ca, a leading dot means "subdomains".
 *   `*.web.internal`   exactly one label in place of `*` (a.web.internal, not a.b.web.internal,
 *                      not web.internal), as a certificate wildcard matches per RFC 6125 6.4.3.
 *
 * Wildcard identifiers (an order for `*.web.internal`): the requested name is treated as the set
 * of names the certificate would be valid for, i.e. every one-label name under web.internal.
 *   - An allow pattern must cover that whole set: `*`, a suffix it lies under (`.web.internal`,
 *     `.internal`) or the same wildcard (`*.web.internal`). An exact pattern never does.
 *   - A deny pattern refuses it when it covers any name in the set: besides the above, an exact
 *     deny `admin.web.internal` refuses `*.web.internal`, because that certificate would be valid
 *     for admin.web.internal. This is what makes "denials win" hold for wildcards too.
 */
import { isIP } from 'node:net';

// ---------------------------------------------------------------------------
// DNS

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Whether `name` (possibly a wildcard name such as `*.web.internal`) is covered by `pattern`. */
export function matchDns(name: string, pattern: string): boolean {
  const n = name.toLowerCase();
  const p = pattern.toLowerCase();
  if (p === '*') return true;
  if (p.startsWith('.')) return n.length > p.length && n.endsWith(p);
  if (p.startsWith('*.')) {
    const parent = p.slice(1);
    if (n.length <= parent.length || !n.endsWith(parent)) return false;
    // The one label may itself be `*`: the pattern `*.x` covers the wildcard name `*.x`.
    return !n.slice(0, n.length - parent.length).includes('.');
  }
  return n === p;
}

/**
 * Whether `pattern` covers at least one name that `name` would make a certificate valid for.
 * Equal to matchDns for ordinary names; for a wildcard name it also catches patterns that
 * name a single host under the wildcard (the reverse direction). Used for deny rules.
 */
export function dnsOverlaps(name: string, pattern: string): boolean {
  if (matchDns(name, pattern)) return true;
  const n = name.toLowerCase();
  const p = pattern.toLowerCase();
  // Suffix patterns only cover names two or more labels below the wildcard's parent when they
  // do not already cover the wildcard, so they cannot overlap it; `*` was handled above.
  return n.startsWith('*.') && !p.startsWith('.') && p !== '*' && matchDns(p, n);
}

export function isWildcardName(name: string): boolean {
  return name.startsWith('*.');
}

function checkDnsName(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (name.length > 253) return 'is longer than 253 characters';
  if (name.endsWith('.')) return 'must not end with a dot';
  if (isIP(name) !== 0) return 'is an IP address; put it under ip as a CIDR';
  const bad = name.split('.').find((l) => !LABEL.test(l));
  if (bad !== undefined) {
    if (bad.includes('*')) return 'may use "*" only as a whole leftmost label written "*." (one label), or alone to mean every name';
    return `label "${bad}" is not a valid DNS label (letters, digits and inner hyphens, 1-63 characters)`;
  }
  return null;
}

/** Syntax of a DNS pattern (already lower-cased): null when valid, else what is wrong. */
export function checkDnsPattern(pattern: string): string | null {
  if (pattern === '*') return null;
  if (pattern.startsWith('.')) {
    const why = checkDnsName(pattern.slice(1));
    return why === null ? null : `suffix pattern: the part after the leading "." ${why}`;
  }
  if (pattern.startsWith('*.')) {
    const why = checkDnsName(pattern.slice(2));
    return why === null ? null : `wildcard pattern: the part after "*." ${why}`;
  }
  return checkDnsName(pattern);
}

// ---------------------------------------------------------------------------
// IP

/** 4 bytes for IPv4, 16 for IPv6; null for anything else, including zone IDs (`fe80::1%eth0`),
 * which name an interface rather than an address a certificate can carry. */
export function parseIp(text: string): Uint8Array | null {
  if (text.includes('%')) return null;
  const family = isIP(text);
  if (family === 4) return new Uint8Array(text.split('.').map(Number));
  if (family !== 6) return null;
  const halves = text.split('::');
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').flatMap((g) => {
    if (g.includes('.')) {
      const v4 = parseIp(g) ?? new Uint8Array(4);
      return [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]];
    }
    return [Number.parseInt(g, 16)];
  }));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  return out;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), else null. */
export function mappedIpv4(bytes: Uint8Array): Uint8Array | null {
  if (bytes.length !== 16) return null;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return null;
  if (bytes[10] !== 0xff || bytes[11] !== 0xff) return null;
  return bytes.slice(12);
}

/** RFC 5952 text; IPv4-mapped addresses in the mixed form of its section 5 (::ffff:10.0.0.1). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const v4 = mappedIpv4(bytes);
  if (v4 !== null) return `::ffff:${formatIp(v4)}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export interface Cidr {
  bytes: Uint8Array;
  prefix: number;
  canonical: string;
}

/** Parses `address/prefix` (a bare address means a single host). Host bits must be zero, so
 * that `10.20.1.0/16` - usually a typo - is refused instead of silently widened. */
export function parseCidr(text: string): { ok: true; cidr: Cidr } | { ok: false; reason: string } {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const bytes = parseIp(addr);
  if (bytes === null) return { ok: false, reason: `"${addr}" is not an IPv4 or IPv6 address` };
  const max = bytes.length * 8;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > max) {
      return { ok: false, reason: `prefix length "${p}" must be a number from 0 to ${max}` };
    }
    prefix = Number(p);
  }
  const network = maskTo(bytes, prefix);
  const canonical = `${formatIp(network)}/${prefix}`;
  if (!bytesEqual(network, bytes)) {
    return { ok: false, reason: `host bits are set after the /${prefix} prefix; the network is ${canonical}` };
  }
  return { ok: true, cidr: { bytes: network, prefix, canonical } };
}

function maskTo(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = bytes[i] & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function inNetwork(addr: Uint8Array, cidr: Cidr): boolean {
  return addr.length === cidr.bytes.length && bytesEqual(maskTo(addr, cidr.prefix), cidr.bytes);
}

/**
 * Whether `ip` lies in `cidr`. Families do not mix, with one deliberate exception: an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the same host as a.b.c.d, so it also matches
 * IPv4 CIDRs. Without that, `ip.deny: [10.20.99.0/24]` could be bypassed by ordering
 * ::ffff:10.20.99.5. It still matches IPv6 CIDRs (such as ::/0) by its own bytes.
 * Plain IPv4 addresses never match IPv6 CIDRs, so `::/0` does not allow all of IPv4.
 * False for unparsable input.
 */
export function ipInCidr(ip: string, cidr: string): boolean {
  const addr = parseIp(ip);
  const parsed = parseCidr(cidr);
  if (addr === null || !parsed.ok) return false;
  if (inNetwork(addr, parsed.cidr)) return true;
  const v4 = mappedIpv4(addr);
  return v4 !== null && inNetwork(v4, parsed.cidr);
}

// ---------------------------------------------------------------------------
// URI (SPIFFE IDs)

// SPIFFE-ID spec section 2: lower-case trust domain, path segments of [A-Za-z0-9._-] that are
// not "." or "..", no query, fragment, port or user info, at most 2048 bytes.
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;
const MAX_SPIFFE_ID = 2048;

interface SpiffeParts {
  trustDomain: string;
  segments: string[];
}

function splitSpiffe(text: string): SpiffeParts | string {
  if (text.length > MAX_SPIFFE_ID) return `is longer than ${MAX_SPIFFE_ID} characters`;
  if (!text.startsWith('spiffe://')) return 'must start with "spiffe://" (lower case); only SPIFFE IDs are supported as URI SANs';
  const rest = text.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  if (!TRUST_DOMAIN.test(trustDomain)) {
    return `trust domain "${trustDomain}" must be non-empty lower-case letters, digits, ".", "-" or "_" (no port, user info or wildcard)`;
  }
  if (slash < 0) return { trustDomain, segments: [] };
  return { trustDomain, segments: rest.slice(slash + 1).split('/') };
}

/** Validity of a SPIFFE ID as it may appear in a CSR: null when valid, else what is wrong. */
export function checkSpiffeId(uri: string): string | null {
  const parts = splitSpiffe(uri);
  if (typeof parts === 'string') return parts;
  if (parts.segments.length === 0) return 'has no path; a workload SPIFFE ID names a workload under its trust domain';
  for (const s of parts.segments) {
    if (s === '') return 'has an empty path segment (a doubled or trailing "/")';
    if (s === '.' || s === '..') return `has a "${s}" path segment`;
    if (!SEGMENT.test(s)) return `path segment "${s}" may only contain letters, digits, ".", "-" and "_" (no query, fragment or percent-encoding)`;
  }
  return null;
}

/** Syntax of a SPIFFE ID pattern: null when valid, else what is wrong. */
export function checkUriPattern(pattern: string): string | null {
  const parts = splitSpiffe(pattern);
  if (typeof parts === 'string') return parts;
  if (parts.segments.length === 0) return 'needs a path, e.g. spiffe://corp.internal/ns/payments/*';
  for (const s of parts.segments) {
    if (s === '*') continue;
    if (s.includes('*')) return `"*" must be a whole path segment, not part of "${s}"`;
    if (s === '') return 'has an empty path segment (a doubled or trailing "/")';
    if (s === '.' || s === '..') return `has a "${s}" path segment`;
    if (!SEGMENT.test(s)) return `path segment "${s}" may only contain letters, digits, ".", "-" and "_"`;
  }
  return null;
}

/**
 * Whether the SPIFFE ID `uri` matches `pattern`. The trust domain must be equal (no wildcard);
 * an inner `*` segment matches exactly one segment; a trailing `*` matches one or more
 * segments, so `spiffe://corp.internal/ns/payments/*` covers .../ns/payments/sa/api but not
 * .../ns/payments itself. Literal segments compare case-sensitively (SPIFFE paths are).
 */
export function matchUri(uri: string, pattern: string): boolean {
  if (checkSpiffeId(uri) !== null || checkUriPattern(pattern) !== null) return false;
  const u = splitSpiffe(uri) as SpiffeParts;
  const p = splitSpiffe(pattern) as SpiffeParts;
  if (u.trustDomain !== p.trustDomain) return false;
  for (let i = 0; i < p.segments.length; i++) {
    const seg = p.segments[i];
    const last = i === p.segments.length - 1;
    if (seg === '*' && last) return u.segments.length > i;
    if (i >= u.segments.length) return false;
    if (seg !== '*' && seg !== u.segments[i]) return false;
  }
  return u.segments.length === p.segments.length;
}
