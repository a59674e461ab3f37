// What a CA (or a key file) sends is untyped JSON; these narrow it before anything trusts its shape.

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function str(o: Record<string, unknown>, k: string, what: string): string {
  const v = o[k];
  if (typeof v !== 'string') throw new Error(`${what}: "${k}" is missing or not a string`);
  return v;
}
