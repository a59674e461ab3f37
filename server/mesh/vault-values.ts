/**
 * Vault's loose request values, as the mesh clients send them (docs: research note §4):
 * TTLs as integer seconds (SPIRE: "86400"), Go durations (cert-manager "1h0m0s", Consul
 * "8760h0m0s") or empty; booleans as JSON booleans or strings; SAN lists comma-joined.
 */

export class VaultValueError extends Error {}

// Go's time.ParseDuration units.
const GO_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const GO_PART = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
// Far beyond any certificate's life; stops absurd numbers before they reach Date arithmetic.
const MAX_TTL_MS = 100 * 365 * 86_400_000;

/**
 * A TTL in milliseconds, or null for "not given" (absent, empty, 0 — Vault's "use the default").
 * Throws VaultValueError naming the field for anything else.
 */
export function parseTtl(value: unknown, field = 'ttl'): number | null {
  if (value === undefined || value === null || value === '') return null;
  let ms: number | null = null;
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0) ms = value * 1000;
  } else if (typeof value === 'string') {
    const v = value.trim();
    if (/^\d+$/.test(v)) ms = Number(v) * 1000;
    else ms = parseGoDuration(v);
  }
  if (ms === null || !Number.isFinite(ms)) {
    throw new VaultValueError(`${field} ${JSON.stringify(value)} is not a TTL: give integer seconds ("3600") or a Go duration ("1h0m0s", "72h", "90m")`);
  }
  if (ms > MAX_TTL_MS) throw new VaultValueError(`${field} ${JSON.stringify(value)} is longer than 100 years`);
  return ms === 0 ? null : Math.round(ms);
}

/** Go's time.ParseDuration without a sign: "1h0m0s", "1.5h", "300ms", "0". Null when not one. */
export function parseGoDuration(text: string): number | null {
  if (text === '0') return 0;
  if (text === '') return null;
  let rest = text;
  let total = 0;
  // A duration has at most one part per unit in practice; 16 parts is a generous bound.
  for (let i = 0; i < 16 && rest.length > 0; i++) {
    const m = GO_PART.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * GO_UNIT_MS[m[2]];
    rest = rest.slice(m[0].length);
  }
  return rest.length === 0 ? total : null;
}

/** Vault's Go duration text for a TTL, e.g. 3600000 ms → "1h0m0s" (what Vault prints). */
export function formatGoDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${m}m${sec}s`;
  if (m > 0) return `${m}m${sec}s`;
  return `${sec}s`;
}

export function parseBool(value: unknown, field: string): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === '1' || value === 1) return true;
  if (value === 'false' || value === '0' || value === 0) return false;
  throw new VaultValueError(`${field} ${JSON.stringify(value)} is not a boolean`);
}

/** A comma-joined string or a JSON list of strings; empty entries dropped. */
export function parseList(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  const items = typeof value === 'string' ? value.split(',') : Array.isArray(value) && value.every((x) => typeof x === 'string') ? value as string[] : null;
  if (items === null) throw new VaultValueError(`${field} must be a comma-separated string or a list of strings`);
  return items.map((s) => s.trim()).filter((s) => s.length > 0);
}

export function parseOptionalString(value: unknown, field: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new VaultValueError(`${field} must be a string`);
  return value.trim();
}

/** Vault's max_path_length: an integer, -1 (or absent) meaning "not set". */
export function parsePathLength(value: unknown, field = 'max_path_length'): number | null {
  if (value === undefined || value === null || value === '') return null;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isInteger(n) || n < -1 || n > 16) throw new VaultValueError(`${field} ${JSON.stringify(value)} must be an integer from -1 (not set) to 16`);
  return n === -1 ? null : n;
}
