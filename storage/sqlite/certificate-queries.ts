import type Database from 'better-sqlite3';
import type { CertificateSearch, CertificateStatus, CertificateSummary, Identifier, LogEntryRecord, LogEventSearch } from '../types.js';

// Read-only queries behind the issuance log API (server/log/routes.ts) that the generic Storage
// methods cannot answer without scanning: certificate search and audit-event search.
//
// They work on the schema as shipped (migrations 1-2): scope, profile and identifiers come from
// the certificate.issued log entry itself (json_extract over its canonical JSON body, plus the
// `id:` / `scope:` lookup keys written in the same transaction), so no column can drift from what
// the log proves. The indexes proposed for the next migration make every filter an index lookup;
// without them the queries are still correct, only slower on large stores.
//

type Row = Record<string, unknown>;

// Lookup keys written by server/log/entry.ts all start with `<kind>:`; ';' sorts right after ':',
// so [`id:`, `id;`) is exactly the identifier keys as an index range.
const ID_KEYS_LOW = 'id:';
const ID_KEYS_HIGH = 'id;';

/**
 * A top-level field of the certificate's log entry. json_valid() first: json_extract raises on
 * malformed JSON, and one corrupted (e.g. tampered) body must not break every search.
 */
function jsonField(name: 'scope' | 'profile' | 'identifiers'): string {
  return `CASE WHEN json_valid(CAST(e.body AS TEXT)) THEN json_extract(CAST(e.body AS TEXT), '$.${name}') END`;
}

export function searchCertificates(db: Database.Database, q: CertificateSearch): CertificateSummary[] {
  const where: string[] = ['c.log_index IS NOT NULL'];
  const params: unknown[] = [];
  if (q.serial !== undefined) { where.push('c.serial = ?'); params.push(q.serial); }
  if (q.accountId !== undefined) { where.push('c.account_id = ?'); params.push(q.accountId); }
  if (q.identifier !== undefined) {
    where.push('c.log_index IN (SELECT idx FROM log_lookup WHERE key = ?)');
    params.push(`id:${q.identifier}`);
  }
  if (q.identifierSuffix !== undefined) {
    // substr() instead of LIKE: identifiers may hold '_' or '%', which LIKE would treat as wildcards.
    const subdomainsOnly = q.identifierSuffix.startsWith('.');
    const base = q.identifierSuffix.replace(/^\.+/, '');
    const tail = `.${base}`;
    where.push(`c.log_index IN (SELECT idx FROM log_lookup WHERE key >= ? AND key < ?
      AND (substr(key, -?) = ?${subdomainsOnly ? '' : ' OR key = ?'}))`);
    params.push(ID_KEYS_LOW, ID_KEYS_HIGH, tail.length, tail);
    if (!subdomainsOnly) params.push(`id:${base}`);
  }
  if (q.scope !== undefined) {
    where.push('c.log_index IN (SELECT idx FROM log_lookup WHERE key = ?)');
    params.push(`scope:${q.scope}`);
  }
  if (q.profile !== undefined) { where.push(`${jsonField('profile')} = ?`); params.push(q.profile); }
  if (q.status === 'revoked') where.push("c.status = 'revoked'");
  else if (q.status === 'valid') { where.push("c.status = 'valid' AND c.not_after > ?"); params.push(q.now); }
  else if (q.status === 'expired') { where.push("c.status = 'valid' AND c.not_after <= ?"); params.push(q.now); }
  if (q.issuedAfter !== undefined) { where.push('c.created_at >= ?'); params.push(q.issuedAfter); }
  if (q.issuedBefore !== undefined) { where.push('c.created_at < ?'); params.push(q.issuedBefore); }
  if (q.expiresAfter !== undefined) { where.push('c.not_after >= ?'); params.push(q.expiresAfter); }
  if (q.expiresBefore !== undefined) { where.push('c.not_after < ?'); params.push(q.expiresBefore); }
  if (q.afterLogIndex !== undefined) { where.push('c.log_index > ?'); params.push(q.afterLogIndex); }
  params.push(q.limit);
  const sql = `SELECT c.serial, c.account_id, c.status, c.not_before, c.not_after, c.created_at, c.revoked_at,
      c.revocation_reason, c.log_index,
      ${jsonField('scope')} AS scope, ${jsonField('profile')} AS profile, ${jsonField('identifiers')} AS identifiers
    FROM certificates c JOIN log_entry e ON e.idx = c.log_index
    WHERE ${where.join(' AND ')}
    ORDER BY c.log_index LIMIT ?`;
  return (db.prepare(sql).all(...params) as Row[]).map(toSummary);
}

export function searchLogEvents(db: Database.Database, q: LogEventSearch): LogEntryRecord[] {
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.since !== undefined) { where.push('created_at >= ?'); params.push(q.since); }
  if (q.until !== undefined) { where.push('created_at < ?'); params.push(q.until); }
  if (q.afterIndex !== undefined) { where.push('idx > ?'); params.push(q.afterIndex); }
  if (q.accountId !== undefined) {
    // Revocation entries carry only serial keys; joining through the account's certificates puts
    // them in the account's audit trail too.
    where.push(`(idx IN (SELECT idx FROM log_lookup WHERE key = ?)
      OR idx IN (SELECT l.idx FROM certificates c JOIN log_lookup l ON l.key = 'serial:' || c.serial WHERE c.account_id = ?))`);
    params.push(`account:${q.accountId}`, q.accountId);
  }
  if (q.types !== undefined && q.types.length > 0) {
    const alternatives: string[] = [];
    for (const t of q.types) {
      if (t.endsWith('.*')) {
        const prefix = t.slice(0, -1); // keeps the dot: `certificate.`
        alternatives.push('substr(event_type, 1, ?) = ?');
        params.push(prefix.length, prefix);
      } else {
        alternatives.push('event_type = ?');
        params.push(t);
      }
    }
    where.push(`(${alternatives.join(' OR ')})`);
  }
  params.push(q.limit);
  const sql = `SELECT idx, leaf_hash, body, event_type, created_at FROM log_entry
    ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY idx LIMIT ?`;
  return (db.prepare(sql).all(...params) as Row[]).map((r) => ({
    index: Number(r.idx), leafHash: new Uint8Array(r.leaf_hash as Uint8Array), body: new Uint8Array(r.body as Uint8Array),
    eventType: String(r.event_type), createdAt: Number(r.created_at),
  }));
}

function toSummary(r: Row): CertificateSummary {
  return {
    serial: String(r.serial),
    accountId: String(r.account_id),
    identifiers: parseIdentifiers(r.identifiers),
    scope: typeof r.scope === 'string' ? r.scope : null,
    profile: typeof r.profile === 'string' ? r.profile : null,
    status: String(r.status) as CertificateStatus,
    notBefore: Number(r.not_before),
    notAfter: Number(r.not_after),
    issuedAt: Number(r.created_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
    revocationReason: r.revocation_reason === null ? null : Number(r.revocation_reason),
    logIndex: Number(r.log_index),
  };
}

/** The entry's identifiers; a malformed (e.g. tampered) body yields none rather than failing the query. */
function parseIdentifiers(v: unknown): Identifier[] {
  if (typeof v !== 'string') return [];
  try {
    const parsed = JSON.parse(v) as unknown;
    if (!Array.isArray(parsed)) return [];
    return parsed.filter((i): i is Identifier =>
      i !== null && typeof i === 'object' && ((i as Identifier).type === 'dns' || (i as Identifier).type === 'ip') && typeof (i as Identifier).value === 'string');
  } catch {
    return [];
  }
}
