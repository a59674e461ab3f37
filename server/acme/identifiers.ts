import { isIP } from 'node:net';
import type { Identifier, ProblemRecord } from '../../storage/types.js';
import { bytesToIp, ipToBytes } from '../ca/certificate-builder.js';
import { problemRecord } from './problems.js';

export const MAX_IDENTIFIERS = 100;
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export type IdentifierCheck = { ok: true; identifier: Identifier } | { ok: false; problem: ProblemRecord };

/** Normalises one identifier (lower case, canonical IP text) or says precisely what is wrong. */
export function checkIdentifier(raw: unknown): IdentifierCheck {
  if (raw === null || typeof raw !== 'object') return { ok: false, problem: problemRecord('malformed', 'each identifier must be an object with "type" and "value"') };
  const { type, value } = raw as { type?: unknown; value?: unknown };
  if (typeof value !== 'string' || value.length === 0) return { ok: false, problem: problemRecord('malformed', 'identifier "value" must be a non-empty string') };
  if (type === 'ip') {
    const id: Identifier = { type: 'ip', value };
    if (isIP(value) === 0) return { ok: false, problem: problemRecord('malformed', `"${value}" is not an IPv4 or IPv6 address`, id) };
    return { ok: true, identifier: { type: 'ip', value: bytesToIp(ipToBytes(value)) } };
  }
  if (type !== 'dns') {
    return { ok: false, problem: problemRecord('unsupportedIdentifier', `identifier type ${JSON.stringify(type ?? null)} is not supported; use "dns" or "ip"`, { type: 'dns', value }) };
  }
  const name = value.toLowerCase();
  const id: Identifier = { type: 'dns', value: name };
  if (name.endsWith('.')) return { ok: false, problem: problemRecord('rejectedIdentifier', `"${value}": remove the trailing dot`, id) };
  if (name.length > 253) return { ok: false, problem: problemRecord('rejectedIdentifier', `"${value}" is longer than 253 characters`, id) };
  if (isIP(name) !== 0) return { ok: false, problem: problemRecord('rejectedIdentifier', `"${value}" is an IP address; request it with type "ip"`, id) };
  const labels = name.split('.');
  const wildcard = labels[0] === '*';
  const rest = wildcard ? labels.slice(1) : labels;
  if (wildcard && rest.length < 2) return { ok: false, problem: problemRecord('rejectedIdentifier', `"${value}": a wildcard needs at least two labels after "*."`, id) };
  if (rest.some((l) => l.includes('*'))) return { ok: false, problem: problemRecord('rejectedIdentifier', `"${value}": "*" is only allowed as the whole leftmost label`, id) };
  const bad = rest.find((l) => !LABEL.test(l));
  if (bad !== undefined) return { ok: false, problem: problemRecord('rejectedIdentifier', `"${value}": label "${bad}" is not a valid DNS label (letters, digits and inner hyphens, 1-63 characters)`, id) };
  return { ok: true, identifier: id };
}

export function sameIdentifierSet(a: Identifier[], b: Identifier[]): boolean {
  const key = (i: Identifier): string => `${i.type}:${i.value}`;
  const sa = new Set(a.map(key));
  const sb = new Set(b.map(key));
  return sa.size === sb.size && [...sa].every((k) => sb.has(k));
}
