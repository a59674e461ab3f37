import { createHash } from 'node:crypto';
import type { Identifier, LogAppend } from '../../storage/types.js';

// Log entries are canonical JSON: object keys sorted by UTF-16 code units, no insignificant
// whitespace, only strings, safe integers, booleans, null, arrays and objects. The bytes are hashed
// and served verbatim, so an independent verifier rebuilds leaf hashes from what the API returns.
export type CanonicalValue = string | number | boolean | null | CanonicalValue[] | { [k: string]: CanonicalValue | undefined };

export function canonicalJson(v: CanonicalValue): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Error(`log entries hold only safe integers, got ${v}`);
    return String(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v).filter((k) => v[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k] as CanonicalValue)}`).join(',')}}`;
}

export const LOG_ENTRY_VERSION = 1;
const iso = (ms: number): string => new Date(ms).toISOString();
const sha256hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function entry(eventType: string, at: number, fields: Record<string, CanonicalValue | undefined>, lookupKeys: string[]): LogAppend {
  const body = canonicalJson({ v: LOG_ENTRY_VERSION, type: eventType, time: iso(at), ...fields });
  return { eventType, body: new Uint8Array(Buffer.from(body, 'utf8')), lookupKeys, at };
}

export interface IssuedFacts {
  serial: string;
  der: Uint8Array;
  issuerDer: Uint8Array;
  accountId: string;
  orderId: string;
  scope: string;
  profile: string;
  identifiers: Identifier[];
  uris?: string[];
  notBefore: number;
  notAfter: number;
  policy: { decision: 'allow'; version: string; reasons: string[] };
}

/** certificate.issued: everything an auditor needs, including the certificate itself. */
export function certificateIssuedEntry(f: IssuedFacts, at: number): LogAppend {
  const certSha256 = sha256hex(f.der);
  return entry('certificate.issued', at, {
    serial: f.serial,
    certificate: { sha256: certSha256, der: Buffer.from(f.der).toString('base64') },
    issuer: { sha256: sha256hex(f.issuerDer) },
    account: f.accountId,
    order: f.orderId,
    scope: f.scope,
    profile: f.profile,
    identifiers: f.identifiers.map((i) => ({ type: i.type, value: i.value })),
    uris: f.uris && f.uris.length > 0 ? f.uris : undefined,
    notBefore: iso(f.notBefore),
    notAfter: iso(f.notAfter),
    policy: { decision: f.policy.decision, version: f.policy.version, reasons: f.policy.reasons },
  }, [`serial:${f.serial}`, `cert:${certSha256}`, `account:${f.accountId}`, `scope:${f.scope}`, ...f.identifiers.map((i) => `id:${i.value}`)]);
}

export type RevokedBy = { kind: 'account'; id: string } | { kind: 'certificate-key' } | { kind: 'operator'; id: string };

export function certificateRevokedEntry(f: { serial: string; der: Uint8Array; accountId: string; reason: number; by: RevokedBy }, at: number): LogAppend {
  const certSha256 = sha256hex(f.der);
  return entry('certificate.revoked', at, {
    serial: f.serial, certificate: { sha256: certSha256 }, account: f.accountId, reason: f.reason, by: f.by as unknown as CanonicalValue,
  }, [`serial:${f.serial}`, `cert:${certSha256}`, `account:${f.accountId}`]);
}

export type CaKeyEvent = 'ca.intermediate.created' | 'ca.intermediate.imported' | 'ca.intermediate.rotated';

/** crl.signed: which CRL an issuer published, so a relying party can check it is the latest. */
export function crlSignedEntry(f: { issuerId: string; number: number; thisUpdate: number; nextUpdate: number; entries: number; sha256: string }, at: number): LogAppend {
  return entry('crl.signed', at, {
    issuer: { sha256: f.issuerId }, number: f.number, thisUpdate: iso(f.thisUpdate), nextUpdate: iso(f.nextUpdate), entries: f.entries, crl: { sha256: f.sha256 },
  }, [`crl:${f.issuerId}`]);
}

/** ari.renew_now: an operator asked a selection of certificates to renew early. */
export function renewNowEntry(f: { selector: Record<string, CanonicalValue | undefined>; serials: string[]; reason: string; actor: string }, at: number): LogAppend {
  return entry('ari.renew_now', at, { selector: f.selector, serials: f.serials, count: f.serials.length, reason: f.reason, actor: f.actor }, ['renew-now', ...f.serials.map((s) => `serial:${s}`)]);
}

export function caKeyEventEntry(type: CaKeyEvent, f: { der: Uint8Array; subject: string; notAfter: number; actor: string }, at: number): LogAppend {
  const certSha256 = sha256hex(f.der);
  return entry(type, at, {
    certificate: { sha256: certSha256, der: Buffer.from(f.der).toString('base64') },
    subject: f.subject, notAfter: iso(f.notAfter), actor: f.actor,
  }, [`cert:${certSha256}`, 'ca-event']);
}

export interface DenialFacts {
  accountId: string;
  scope: string;
  profile: string | null;
  stage: 'newOrder' | 'finalize' | 'rateLimit';
  problem: string;
  detail: string;
  identifiers: Identifier[];
  denials: Array<{ identifier: string; rule: string; detail: string }>;
  policyVersion: string;
}

/** policy.denied: which rule refused what, for whom — auditable like an issuance. */
export function policyDeniedEntry(f: DenialFacts, at: number): LogAppend {
  return entry('policy.denied', at, {
    account: f.accountId, scope: f.scope, profile: f.profile ?? undefined, stage: f.stage, problem: f.problem, detail: f.detail,
    identifiers: f.identifiers.map((i) => ({ type: i.type, value: i.value })),
    denials: f.denials.map((d) => ({ identifier: d.identifier, rule: d.rule, detail: d.detail })),
    policy: { version: f.policyVersion },
  }, [`account:${f.accountId}`, `scope:${f.scope}`, 'policy-denied']);
}
