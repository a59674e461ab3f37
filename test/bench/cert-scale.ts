import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { SqliteStorage } from '../../storage/sqlite/sqlite-storage.js';
import { round } from './stats.js';

/*
 * Pre-fills a fresh data folder's database with synthetic certificate rows, straight through SQL,
 * before the server starts on it: the schema comes from the storage's own migrations, the rows from
 * one INSERT ... SELECT over a recursive CTE per chunk. Sizes are a P-256 leaf's (about 480 bytes of
 * DER) and one intermediate's PEM chain (about 750 characters), so the table and its indexes have
 * a production-like footprint.
 */

export const SYNTHETIC_DER_BYTES = 480;
export const SYNTHETIC_CHAIN_CHARS = 750;

export interface PrefillResult {
  rows: number;
  seconds: number;
  fileMb: number;
  note: string;
}

export async function prefillCertificates(dataDir: string, rows: number): Promise<PrefillResult> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, 'acme-ca.sqlite');
  const store = new SqliteStorage(file);
  await store.migrate();
  await store.close();

  const t0 = performance.now();
  const db = new Database(file);
  try {
    // This connection only: no fsync and no foreign-key checks (the synthetic rows name an account
    // and order that do not exist; the server never follows those references for them).
    db.pragma('synchronous = OFF');
    db.pragma('foreign_keys = OFF');
    db.pragma('cache_size = -524288');
    const chunk = 100_000;
    const insert = db.prepare(`
      WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
      INSERT INTO certificates (id, serial, account_id, order_id, der, chain_pem, spki_sha256, not_before, not_after, status, revoked_at, revocation_reason, created_at, log_index)
      SELECT printf('synthetic-%09d', i), lower(hex(randomblob(16))), 'synthetic-account', 'synthetic-order', randomblob(${SYNTHETIC_DER_BYTES}),
             printf('%.${SYNTHETIC_CHAIN_CHARS}c', 'x'), lower(hex(randomblob(32))), 1700000000000 + i, 1700086400000 + i, 'valid', NULL, NULL, 1700000000000 + i, NULL
      FROM n`);
    for (let start = 0; start < rows; start += chunk) {
      const end = Math.min(rows, start + chunk);
      db.transaction(() => insert.run(start, end))();
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    const count = Number(db.prepare('SELECT count(*) AS n FROM certificates').pluck().get());
    if (count !== rows) throw new Error(`prefill wrote ${count} certificate rows, expected ${rows}`);
  } finally {
    db.close();
  }
  return {
    rows,
    seconds: round((performance.now() - t0) / 1000, 1),
    fileMb: round(fs.statSync(file).size / 1024 / 1024, 0),
    note: `certificates table pre-filled with ${rows} synthetic rows directly via SQL before the server started (random ${SYNTHETIC_DER_BYTES}-byte DER, `
      + `${SYNTHETIC_CHAIN_CHARS}-char chain, random serial and SPKI hash, one synthetic account/order id, foreign keys not checked for them)`,
  };
}
