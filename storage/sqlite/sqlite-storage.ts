import Database from 'better-sqlite3';
import type {
  AccountRecord, AccountStatus, ApiTokenRecord, AuthzRecord, AuthzStatus, CertificateRecord, ChallengeRecord,
  CertificateSearch, CertificateSelector, CertificateSummary, ChallengeStatus, LogEventSearch, EabKeyRecord, NewCertificate, Identifier, LogAppend, RateLimitDecision, RateLimitState, LogCheckpointRecord, LogEntryRecord, LogTreeState, NewOrderInput,
  OrderRecord, OrderStatus, Page, ProblemRecord, Storage, TokenScope,
} from '../types.js';
import { MIGRATIONS } from './migrations.js';
import { StatementCache } from './statement-cache.js';
import { searchCertificates, searchLogEvents } from './certificate-queries.js';
// Pure tree math, shared with verifiers; the backend only decides where the nodes live.
import { leafHash, nodesToStoreOnAppend, rootAt } from '../../server/log/merkle.js';

type Row = Record<string, unknown>;

const str = (v: unknown): string => String(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const json = <T>(v: unknown): T => JSON.parse(String(v)) as T;
const jsonOrNull = <T>(v: unknown): T | null => (v === null || v === undefined ? null : json<T>(v));
const bytesOrNull = (v: unknown): Uint8Array | null => (v instanceof Uint8Array ? new Uint8Array(v) : null);

function toAccount(r: Row): AccountRecord {
  return {
    id: str(r.id), status: str(r.status) as AccountStatus, jwk: str(r.jwk), thumbprint: str(r.thumbprint),
    contact: json<string[]>(r.contact), termsOfServiceAgreed: Number(r.tos_agreed) === 1, createdAt: Number(r.created_at),
    scope: str(r.scope), eabKeyId: r.eab_key_id === null ? null : str(r.eab_key_id),
  };
}
function toOrder(r: Row): OrderRecord {
  return {
    id: str(r.id), accountId: str(r.account_id), status: str(r.status) as OrderStatus,
    identifiers: json<Identifier[]>(r.identifiers), notBefore: numOrNull(r.not_before), notAfter: numOrNull(r.not_after),
    expires: Number(r.expires), error: jsonOrNull<ProblemRecord>(r.error), csr: bytesOrNull(r.csr),
    certificateId: r.certificate_id === null ? null : str(r.certificate_id), createdAt: Number(r.created_at),
    profile: str(r.profile), scope: str(r.scope), replaces: r.replaces === null || r.replaces === undefined ? null : str(r.replaces),
  };
}
function toAuthz(r: Row): AuthzRecord {
  return {
    id: str(r.id), orderId: str(r.order_id), accountId: str(r.account_id),
    identifier: { type: str(r.identifier_type) as Identifier['type'], value: str(r.identifier_value) },
    wildcard: Number(r.wildcard) === 1, status: str(r.status) as AuthzStatus, expires: Number(r.expires),
  };
}
function toChallenge(r: Row): ChallengeRecord {
  return {
    id: str(r.id), authzId: str(r.authz_id), type: str(r.type) as ChallengeRecord['type'], token: str(r.token),
    status: str(r.status) as ChallengeStatus, validatedAt: numOrNull(r.validated_at),
    error: jsonOrNull<ProblemRecord>(r.error), attempts: Number(r.attempts),
  };
}
function toCertificate(r: Row): CertificateRecord {
  return {
    id: str(r.id), serial: str(r.serial), accountId: str(r.account_id), orderId: str(r.order_id),
    der: new Uint8Array(r.der as Uint8Array), chainPem: str(r.chain_pem), spkiSha256: str(r.spki_sha256),
    notBefore: Number(r.not_before), notAfter: Number(r.not_after), status: str(r.status) as CertificateRecord['status'],
    revokedAt: numOrNull(r.revoked_at), revocationReason: numOrNull(r.revocation_reason), createdAt: Number(r.created_at),
    logIndex: numOrNull(r.log_index), nameSet: str(r.name_set), issuerId: str(r.issuer_id), scope: str(r.scope), profile: str(r.profile),
    replacedByOrder: r.replaced_by_order === null ? null : str(r.replaced_by_order), renewNowAt: numOrNull(r.renew_now_at),
    renewNowReason: r.renew_now_reason === null ? null : str(r.renew_now_reason),
  };
}
function toEabKey(r: Row): EabKeyRecord {
  return {
    id: str(r.id), scope: str(r.scope), description: str(r.description), hmacKeyEnc: bytesOrNull(r.hmac_key_enc),
    hmacKeySha256: str(r.hmac_key_sha256), createdAt: Number(r.created_at), expiresAt: numOrNull(r.expires_at),
    revokedAt: numOrNull(r.revoked_at), usedAt: numOrNull(r.used_at), accountId: r.account_id === null ? null : str(r.account_id),
  };
}
function toApiToken(r: Row): ApiTokenRecord {
  return {
    id: str(r.id), name: str(r.name), scopes: json<TokenScope[]>(r.scopes), secretSha256: str(r.secret_sha256),
    createdAt: Number(r.created_at), expiresAt: numOrNull(r.expires_at), revokedAt: numOrNull(r.revoked_at),
  };
}
function toLogEntry(r: Row): LogEntryRecord {
  return { index: Number(r.idx), leafHash: new Uint8Array(r.leaf_hash as Uint8Array), body: new Uint8Array(r.body as Uint8Array), eventType: str(r.event_type), createdAt: Number(r.created_at) };
}
function toCheckpoint(r: Row): LogCheckpointRecord {
  return { size: Number(r.size), root: new Uint8Array(r.root as Uint8Array), note: str(r.note), signedAt: Number(r.signed_at) };
}

const placeholders = (n: number): string => Array.from({ length: n }, () => '?').join(',');

export interface SqliteOptions {
  /** 'FULL' survives power loss; 'NORMAL' (WAL) survives process crashes. Default FULL. */
  synchronous?: 'FULL' | 'NORMAL';
}

export class SqliteStorage implements Storage {
  readonly db: Database.Database;
  /**
   * A second connection for nonces, without fsync on commit: a nonce lost to a power cut only
   * costs a client one badNonce retry, and the hot path saves two durable commits per request.
   * WAL mode keeps it consistent with the main connection; replicas still share the nonces.
   */
  private readonly nonceDb: Database.Database;
  private readonly stmts: StatementCache;

  constructor(readonly file: string, opts: SqliteOptions = {}) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${opts.synchronous ?? 'FULL'}`);
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    // Without it, INSERT OR REPLACE deletes a log row without firing the no-delete trigger.
    this.db.pragma('recursive_triggers = ON');
    // Erased secrets (used EAB keys) must not linger in free pages.
    this.db.pragma('secure_delete = ON');
    this.nonceDb = new Database(file);
    this.nonceDb.pragma('synchronous = OFF');
    this.nonceDb.pragma('busy_timeout = 5000');
    this.stmts = new StatementCache(this.db);
    this.nonceStmts = new StatementCache(this.nonceDb);
  }

  private readonly nonceStmts: StatementCache;
  private nonceStmt(sql: string): Database.Statement {
    return this.nonceStmts.get(sql);
  }

  /** Moves the WAL into the main file and truncates it, so overwritten bytes leave the WAL too. */
  private flushWal(): void {
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  private stmt(sql: string): Database.Statement {
    return this.stmts.get(sql);
  }
  private get<T>(sql: string, map: (r: Row) => T, ...params: unknown[]): T | null {
    const r = this.stmt(sql).get(...params) as Row | undefined;
    return r ? map(r) : null;
  }
  private all<T>(sql: string, map: (r: Row) => T, ...params: unknown[]): T[] {
    return (this.stmt(sql).all(...params) as Row[]).map(map);
  }

  async migrate(): Promise<void> {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const applied = new Set((this.db.prepare('SELECT version FROM schema_migrations').all() as Row[]).map((r) => Number(r.version)));
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
      })();
    }
  }

  async close(): Promise<void> {
    if (this.nonceDb.open) this.nonceDb.close();
    if (this.db.open) this.db.close();
  }

  async ping(): Promise<void> {
    this.db.transaction(() => {
      this.db.exec('CREATE TABLE IF NOT EXISTS health_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)');
      this.db.prepare('INSERT OR REPLACE INTO health_probe (id, at) VALUES (1, ?)').run(Date.now());
    })();
  }

  async createNonce(value: string, expiresAt: number): Promise<void> {
    this.nonceStmt('INSERT INTO nonces (value, expires_at) VALUES (?, ?)').run(value, expiresAt);
  }
  async consumeNonce(value: string, now: number): Promise<boolean> {
    return this.nonceStmt('DELETE FROM nonces WHERE value = ? AND expires_at > ?').run(value, now).changes === 1;
  }
  async purgeExpiredNonces(now: number): Promise<number> {
    return this.nonceStmt('DELETE FROM nonces WHERE expires_at <= ?').run(now).changes;
  }

  async createAccount(a: AccountRecord): Promise<void> {
    this.insertAccount(a);
  }
  private insertAccount(a: AccountRecord): void {
    this.stmt('INSERT INTO accounts (id, status, jwk, thumbprint, contact, tos_agreed, created_at, scope, eab_key_id) VALUES (?,?,?,?,?,?,?,?,?)')
      .run(a.id, a.status, a.jwk, a.thumbprint, JSON.stringify(a.contact), a.termsOfServiceAgreed ? 1 : 0, a.createdAt, a.scope, a.eabKeyId);
  }
  async createAccountWithEab(a: AccountRecord, eabKeyId: string, now: number): Promise<boolean> {
    const bound = this.db.transaction(() => {
      const key = this.stmt('SELECT * FROM eab_keys WHERE id = ?').get(eabKeyId) as Row | undefined;
      if (!key || key.used_at !== null || key.revoked_at !== null || (key.expires_at !== null && Number(key.expires_at) <= now)) return false;
      this.insertAccount(a);
      // Single use: the encrypted HMAC key is erased the moment it binds an account.
      this.stmt('UPDATE eab_keys SET used_at = ?, account_id = ?, hmac_key_enc = NULL WHERE id = ? AND used_at IS NULL').run(now, a.id, eabKeyId);
      return true;
    }).immediate();
    if (bound) this.flushWal();
    return bound;
  }
  async createApiToken(t: ApiTokenRecord): Promise<void> {
    this.stmt('INSERT INTO api_tokens (id, name, scopes, secret_sha256, created_at, expires_at, revoked_at) VALUES (?,?,?,?,?,?,?)')
      .run(t.id, t.name, JSON.stringify(t.scopes), t.secretSha256, t.createdAt, t.expiresAt, t.revokedAt);
  }
  async getApiToken(id: string): Promise<ApiTokenRecord | null> {
    return this.get('SELECT * FROM api_tokens WHERE id = ?', toApiToken, id);
  }
  async listApiTokens(): Promise<ApiTokenRecord[]> {
    return this.all('SELECT * FROM api_tokens ORDER BY created_at', toApiToken);
  }
  async revokeApiToken(id: string, at: number): Promise<boolean> {
    return this.stmt('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes === 1;
  }
  async createEabKey(k: EabKeyRecord): Promise<void> {
    this.stmt('INSERT INTO eab_keys (id, scope, description, hmac_key_enc, hmac_key_sha256, created_at, expires_at, revoked_at, used_at, account_id) VALUES (?,?,?,?,?,?,?,?,?,?)')
      .run(k.id, k.scope, k.description, k.hmacKeyEnc ? Buffer.from(k.hmacKeyEnc) : null, k.hmacKeySha256, k.createdAt, k.expiresAt, k.revokedAt, k.usedAt, k.accountId);
  }
  async getEabKey(id: string): Promise<EabKeyRecord | null> {
    return this.get('SELECT * FROM eab_keys WHERE id = ?', toEabKey, id);
  }
  async listEabKeys(): Promise<EabKeyRecord[]> {
    return this.all('SELECT * FROM eab_keys ORDER BY created_at', toEabKey);
  }
  async revokeEabKey(id: string, at: number): Promise<boolean> {
    const revoked = this.stmt('UPDATE eab_keys SET revoked_at = ?, hmac_key_enc = NULL WHERE id = ? AND revoked_at IS NULL AND used_at IS NULL').run(at, id).changes === 1;
    if (revoked) this.flushWal();
    return revoked;
  }
  async consumeRateLimits(checks: Array<{ key: string; decide: (state: RateLimitState | null) => RateLimitDecision }>): Promise<RateLimitDecision[]> {
    // On the nonce connection: buckets survive a process restart (WAL), and an order does not pay
    // fsyncs for counters that only have to be approximately durable.
    return this.nonceDb.transaction(() => {
      const out: RateLimitDecision[] = [];
      for (const c of checks) {
        const r = this.nonceStmt('SELECT tokens, updated_at FROM rate_limit_buckets WHERE key = ?').get(c.key) as Row | undefined;
        const d = c.decide(r ? { tokens: Number(r.tokens), updatedAt: Number(r.updated_at) } : null);
        this.nonceStmt('INSERT INTO rate_limit_buckets (key, tokens, updated_at) VALUES (?,?,?) ON CONFLICT(key) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at')
          .run(c.key, d.state.tokens, d.state.updatedAt);
        out.push(d);
        if (!d.allowed) break;
      }
      return out;
    }).immediate();
  }

  async getAccount(id: string): Promise<AccountRecord | null> {
    return this.get('SELECT * FROM accounts WHERE id = ?', toAccount, id);
  }
  async getAccountByThumbprint(thumbprint: string): Promise<AccountRecord | null> {
    return this.get('SELECT * FROM accounts WHERE thumbprint = ?', toAccount, thumbprint);
  }
  async updateAccount(id: string, changes: { status?: AccountStatus; contact?: string[] }): Promise<AccountRecord> {
    this.db.transaction(() => {
      if (changes.status) this.stmt('UPDATE accounts SET status = ? WHERE id = ?').run(changes.status, id);
      if (changes.contact) this.stmt('UPDATE accounts SET contact = ? WHERE id = ?').run(JSON.stringify(changes.contact), id);
      if (changes.status === 'deactivated') {
        // RFC 8555 §7.3.6: the server should cancel pending authorizations of a deactivated account.
        this.stmt("UPDATE authorizations SET status = 'deactivated' WHERE account_id = ? AND status = 'pending'").run(id);
        this.stmt("UPDATE orders SET status = 'invalid', error = ? WHERE account_id = ? AND status IN ('pending','ready')")
          .run(JSON.stringify({ type: 'urn:ietf:params:acme:error:unauthorized', detail: 'the account was deactivated' }), id);
      }
    })();
    const a = await this.getAccount(id);
    if (!a) throw new Error(`account ${id} vanished during update`);
    return a;
  }
  async changeAccountKey(id: string, oldThumbprint: string, newJwk: string, newThumbprint: string): Promise<boolean> {
    return this.db.transaction(() => {
      const taken = this.stmt('SELECT id FROM accounts WHERE thumbprint = ?').get(newThumbprint);
      if (taken) return false;
      return this.stmt('UPDATE accounts SET jwk = ?, thumbprint = ? WHERE id = ? AND thumbprint = ?')
        .run(newJwk, newThumbprint, id, oldThumbprint).changes === 1;
    })();
  }

  async createOrder(input: NewOrderInput): Promise<boolean> {
    const o = input.order;
    return this.db.transaction(() => {
      if (input.replacesCertificateId !== undefined) {
        // A certificate is replaced once: by the first order that claims it and does not fail.
        // An earlier replacing order that failed or expired unfinished gives the claim up.
        const claimed = this.stmt(`UPDATE certificates SET replaced_by_order = ? WHERE id = ? AND (replaced_by_order IS NULL
          OR replaced_by_order IN (SELECT id FROM orders WHERE status = 'invalid' OR (status IN ('pending','ready') AND expires <= ?)))`)
          .run(o.id, input.replacesCertificateId, o.createdAt).changes === 1;
        if (!claimed) return false;
      }
      this.stmt('INSERT INTO orders (id, account_id, status, identifiers, not_before, not_after, expires, created_at, profile, scope, replaces) VALUES (?,?,?,?,?,?,?,?,?,?,?)')
        .run(o.id, o.accountId, o.status, JSON.stringify(o.identifiers), o.notBefore, o.notAfter, o.expires, o.createdAt, o.profile, o.scope, o.replaces);
      for (const { authz: z, challenges } of input.authorizations) {
        this.stmt('INSERT INTO authorizations (id, order_id, account_id, identifier_type, identifier_value, wildcard, status, expires) VALUES (?,?,?,?,?,?,?,?)')
          .run(z.id, z.orderId, z.accountId, z.identifier.type, z.identifier.value, z.wildcard ? 1 : 0, z.status, z.expires);
        for (const c of challenges) {
          this.stmt('INSERT INTO challenges (id, authz_id, type, token, status, attempts) VALUES (?,?,?,?,?,0)').run(c.id, c.authzId, c.type, c.token, c.status);
        }
      }
      return true;
    }).immediate();
  }
  async getOrder(id: string): Promise<OrderRecord | null> {
    return this.get('SELECT * FROM orders WHERE id = ?', toOrder, id);
  }
  async listOrderIds(accountId: string, cursor: string | null, limit: number): Promise<Page<string>> {
    const after = cursor === null ? 0 : Number.parseInt(cursor, 10);
    const rows = this.stmt('SELECT seq, id FROM orders WHERE account_id = ? AND seq > ? ORDER BY seq LIMIT ?')
      .all(accountId, Number.isFinite(after) ? after : 0, limit + 1) as Row[];
    const more = rows.length > limit;
    const page = rows.slice(0, limit);
    return { items: page.map((r) => str(r.id)), next: more ? String(page[page.length - 1].seq) : null };
  }
  async transitionOrder(id: string, from: OrderStatus[], to: OrderStatus, changes: { error?: ProblemRecord | null; csr?: Uint8Array | null } = {}): Promise<boolean> {
    const sets = ['status = ?'];
    const params: unknown[] = [to];
    if (changes.error !== undefined) { sets.push('error = ?'); params.push(changes.error ? JSON.stringify(changes.error) : null); }
    if (changes.csr !== undefined) { sets.push('csr = ?'); params.push(changes.csr ? Buffer.from(changes.csr) : null); }
    const sql = `UPDATE orders SET ${sets.join(', ')} WHERE id = ? AND status IN (${placeholders(from.length)})`;
    return this.stmt(sql).run(...params, id, ...from).changes === 1;
  }
  async listOrdersByStatus(status: OrderStatus, limit: number): Promise<OrderRecord[]> {
    return this.all('SELECT * FROM orders WHERE status = ? ORDER BY seq LIMIT ?', toOrder, status, limit);
  }

  async hasValidAuthorizations(accountId: string, identifiers: Identifier[], now: number): Promise<boolean> {
    return identifiers.every((i) => {
      const wildcard = i.type === 'dns' && i.value.startsWith('*.');
      const value = wildcard ? i.value.slice(2) : i.value;
      return this.stmt(`SELECT 1 FROM authorizations WHERE account_id = ? AND identifier_type = ? AND identifier_value = ?
        AND wildcard = ? AND status = 'valid' AND expires > ? LIMIT 1`).get(accountId, i.type, value, wildcard ? 1 : 0, now) !== undefined;
    });
  }
  async getAuthz(id: string): Promise<AuthzRecord | null> {
    return this.get('SELECT * FROM authorizations WHERE id = ?', toAuthz, id);
  }
  async listAuthzByOrder(orderId: string): Promise<AuthzRecord[]> {
    return this.all('SELECT * FROM authorizations WHERE order_id = ? ORDER BY rowid', toAuthz, orderId);
  }
  async updateAuthzStatus(id: string, from: AuthzStatus[], to: AuthzStatus): Promise<boolean> {
    return this.db.transaction(() => {
      const ok = this.stmt(`UPDATE authorizations SET status = ? WHERE id = ? AND status IN (${placeholders(from.length)})`)
        .run(to, id, ...from).changes === 1;
      if (ok && to !== 'valid') this.invalidateOrderOfAuthz(id);
      return ok;
    })();
  }

  // An order whose authorization can no longer become valid is invalid (RFC 8555 §7.1.6).
  private invalidateOrderOfAuthz(authzId: string): void {
    this.stmt("UPDATE orders SET status = 'invalid' WHERE id = (SELECT order_id FROM authorizations WHERE id = ?) AND status IN ('pending','ready')").run(authzId);
  }

  async getChallenge(id: string): Promise<ChallengeRecord | null> {
    return this.get('SELECT * FROM challenges WHERE id = ?', toChallenge, id);
  }
  async listChallengesByAuthz(authzId: string): Promise<ChallengeRecord[]> {
    return this.all('SELECT * FROM challenges WHERE authz_id = ? ORDER BY rowid', toChallenge, authzId);
  }
  async listChallengesByStatus(status: ChallengeStatus, limit: number): Promise<ChallengeRecord[]> {
    return this.all('SELECT * FROM challenges WHERE status = ? LIMIT ?', toChallenge, status, limit);
  }
  async transitionChallenge(id: string, from: ChallengeStatus[], to: ChallengeStatus, changes: { error?: ProblemRecord | null; validatedAt?: number | null; attempts?: number } = {}): Promise<boolean> {
    const sets = ['status = ?'];
    const params: unknown[] = [to];
    if (changes.error !== undefined) { sets.push('error = ?'); params.push(changes.error ? JSON.stringify(changes.error) : null); }
    if (changes.validatedAt !== undefined) { sets.push('validated_at = ?'); params.push(changes.validatedAt); }
    if (changes.attempts !== undefined) { sets.push('attempts = ?'); params.push(changes.attempts); }
    const sql = `UPDATE challenges SET ${sets.join(', ')} WHERE id = ? AND status IN (${placeholders(from.length)})`;
    return this.stmt(sql).run(...params, id, ...from).changes === 1;
  }
  async completeChallenge(r: { challengeId: string; valid: boolean; error: ProblemRecord | null; at: number }): Promise<void> {
    this.db.transaction(() => {
      const changed = this.stmt("UPDATE challenges SET status = ?, error = ?, validated_at = ? WHERE id = ? AND status = 'processing'")
        .run(r.valid ? 'valid' : 'invalid', r.error ? JSON.stringify(r.error) : null, r.valid ? r.at : null, r.challengeId).changes;
      if (changed !== 1) return;
      const ch = this.stmt('SELECT authz_id FROM challenges WHERE id = ?').get(r.challengeId) as Row;
      const authzId = str(ch.authz_id);
      const authzChanged = this.stmt("UPDATE authorizations SET status = ? WHERE id = ? AND status = 'pending'")
        .run(r.valid ? 'valid' : 'invalid', authzId).changes;
      if (authzChanged !== 1) return;
      if (!r.valid) {
        this.invalidateOrderOfAuthz(authzId);
        return;
      }
      // The order becomes ready once every one of its authorizations is valid.
      this.stmt(`UPDATE orders SET status = 'ready'
        WHERE id = (SELECT order_id FROM authorizations WHERE id = ?) AND status = 'pending'
          AND NOT EXISTS (SELECT 1 FROM authorizations a WHERE a.order_id = orders.id AND a.status <> 'valid')`).run(authzId);
    })();
  }

  async issueCertificate(c: NewCertificate, entry: LogAppend): Promise<{ logIndex: number }> {
    const logIndex = this.db.transaction(() => {
      const moved = this.stmt("UPDATE orders SET status = 'valid', certificate_id = ?, csr = NULL WHERE id = ? AND status = 'processing'")
        .run(c.id, c.orderId).changes;
      if (moved !== 1) throw new Error(`order ${c.orderId} is not processing; certificate not stored`);
      const idx = this.appendSync(entry);
      this.stmt(`INSERT INTO certificates (id, serial, account_id, order_id, der, chain_pem, spki_sha256, not_before, not_after, status, revoked_at, revocation_reason, created_at, log_index, name_set, issuer_id, scope, profile)
        VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`).run(c.id, c.serial, c.accountId, c.orderId, Buffer.from(c.der), c.chainPem, c.spkiSha256,
        c.notBefore, c.notAfter, c.status, c.revokedAt, c.revocationReason, c.createdAt, idx, c.nameSet, c.issuerId, c.scope, c.profile);
      return idx;
    }).immediate();
    return { logIndex };
  }
  async getCertificate(id: string): Promise<CertificateRecord | null> {
    return this.get('SELECT * FROM certificates WHERE id = ?', toCertificate, id);
  }
  async getCertificateBySerial(serial: string): Promise<CertificateRecord | null> {
    return this.get('SELECT * FROM certificates WHERE serial = ?', toCertificate, serial);
  }
  async revokeCertificate(id: string, reason: number, at: number, entry: LogAppend): Promise<boolean> {
    return this.db.transaction(() => {
      const changed = this.stmt("UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ? WHERE id = ? AND status = 'valid'")
        .run(at, reason, id).changes === 1;
      if (changed) this.appendSync(entry);
      return changed;
    }).immediate();
  }
  async countCertificates(): Promise<number> {
    return Number((this.stmt('SELECT count(*) AS n FROM certificates').get() as Row).n);
  }

  async searchCertificates(q: CertificateSearch): Promise<CertificateSummary[]> { return searchCertificates(this.db, q); }
  async searchLogEvents(q: LogEventSearch): Promise<LogEntryRecord[]> { return searchLogEvents(this.db, q); }
  async selectCertificates(sel: CertificateSelector, now: number, limit: number): Promise<CertificateRecord[]> {
    const where = ["status = 'valid'", 'not_after > ?'];
    const params: unknown[] = [now];
    if (sel.serials) { where.push(`serial IN (${placeholders(sel.serials.length)})`); params.push(...sel.serials); }
    if (sel.accountId) { where.push('account_id = ?'); params.push(sel.accountId); }
    if (sel.scope) { where.push('scope = ?'); params.push(sel.scope); }
    if (sel.issuerId) { where.push('issuer_id = ?'); params.push(sel.issuerId); }
    if (sel.issuedBefore !== undefined) { where.push('created_at < ?'); params.push(sel.issuedBefore); }
    if (sel.identifierSuffix) {
      // name_set is "dns:a.b,ip:1.2.3.4". ".x" selects names under x; "x" selects x and names under
      // it — the same rule as the certificate search, so what `cert list` shows is what acts.
      const suffix = sel.identifierSuffix.toLowerCase();
      const bare = suffix.replace(/^\./, '');
      const esc = (x: string): string => x.replace(/[\\%_]/g, (c) => `\\${c}`);
      const under = "(',' || name_set || ',') LIKE ? ESCAPE '\\'";
      if (suffix.startsWith('.')) {
        where.push(under);
        params.push(`%,dns:%${esc(`.${bare}`)},%`);
      } else {
        where.push(`${under} OR ${under}`);
        params.push(`%,dns:%${esc(`.${bare}`)},%`, `%,dns:${esc(bare)},%`);
      }
    }
    const sql = `SELECT * FROM certificates WHERE ${where.map((w) => `(${w})`).join(' AND ')} ORDER BY created_at LIMIT ?`;
    return (this.db.prepare(sql).all(...params, limit) as Row[]).map(toCertificate);
  }
  async markRenewNow(ids: string[], at: number, reason: string): Promise<number> {
    return this.db.transaction(() => ids.reduce((n, id) => n + this.stmt("UPDATE certificates SET renew_now_at = ?, renew_now_reason = ? WHERE id = ? AND status = 'valid'").run(at, reason, id).changes, 0)).immediate();
  }
  async countRenewNowPending(now: number): Promise<number> {
    return Number((this.stmt(`SELECT count(*) AS n FROM certificates c WHERE c.renew_now_at IS NOT NULL AND c.status = 'valid' AND c.not_after > ?
      AND NOT EXISTS (SELECT 1 FROM certificates r WHERE r.name_set = c.name_set AND r.created_at > c.created_at)`).get(now) as Row).n);
  }
  async listRevokedForCrl(issuerId: string, now: number): Promise<Array<{ serial: string; revokedAt: number; reason: number }>> {
    return (this.stmt("SELECT serial, revoked_at, revocation_reason FROM certificates WHERE issuer_id = ? AND status = 'revoked' AND not_after > ? ORDER BY revoked_at")
      .all(issuerId, now) as Row[]).map((r) => ({ serial: str(r.serial), revokedAt: Number(r.revoked_at), reason: Number(r.revocation_reason) }));
  }
  async issuerHasUnexpired(issuerId: string, now: number): Promise<boolean> {
    return this.stmt('SELECT 1 FROM certificates WHERE issuer_id = ? AND not_after > ? LIMIT 1').get(issuerId, now) !== undefined;
  }
  async saveCrl(c: { issuerId: string; number: number; thisUpdate: number; nextUpdate: number; der: Uint8Array }): Promise<void> {
    this.stmt('INSERT INTO crls (issuer_id, number, this_update, next_update, der) VALUES (?,?,?,?,?)').run(c.issuerId, c.number, c.thisUpdate, c.nextUpdate, Buffer.from(c.der));
  }
  async latestCrl(issuerId: string): Promise<{ number: number; thisUpdate: number; nextUpdate: number; der: Uint8Array } | null> {
    return this.get('SELECT * FROM crls WHERE issuer_id = ? ORDER BY number DESC LIMIT 1', (r) => ({
      number: Number(r.number), thisUpdate: Number(r.this_update), nextUpdate: Number(r.next_update), der: new Uint8Array(r.der as Uint8Array),
    }), issuerId);
  }
  async isKeyBlocked(spkiSha256: string): Promise<boolean> {
    return this.stmt("SELECT 1 FROM certificates WHERE spki_sha256 = ? AND status = 'revoked' AND revocation_reason = 1 LIMIT 1").get(spkiSha256) !== undefined;
  }
  async countExpiringWithoutReplacement(now: number, withinMs: number): Promise<number> {
    return Number((this.stmt(`SELECT count(*) AS n FROM certificates c WHERE c.status = 'valid' AND c.not_after > ? AND c.not_after <= ?
      AND NOT EXISTS (SELECT 1 FROM certificates r WHERE r.name_set = c.name_set AND r.created_at > c.created_at AND r.status = 'valid')`)
      .get(now, now + withinMs) as Row).n);
  }

  private logNode(level: number, index: number): Uint8Array | undefined {
    const r = this.stmt('SELECT hash FROM log_node WHERE level = ? AND idx = ?').get(level, index) as Row | undefined;
    return r ? new Uint8Array(r.hash as Uint8Array) : undefined;
  }

  /** Sequences and integrates one entry; must run inside a write transaction (the writer lock orders appends). */
  private appendSync(e: LogAppend): number {
    const size = Number((this.stmt('SELECT size FROM log_tree_state WHERE id = 0').get() as Row).size);
    const leaf = leafHash(e.body);
    const get = (level: number, index: number): Uint8Array | undefined => this.logNode(level, index);
    const nodes = nodesToStoreOnAppend(size, leaf, get);
    this.stmt('INSERT INTO log_entry (idx, leaf_hash, body, event_type, created_at) VALUES (?,?,?,?,?)').run(size, leaf, Buffer.from(e.body), e.eventType, e.at);
    for (const n of nodes) this.stmt('INSERT INTO log_node (level, idx, hash) VALUES (?,?,?)').run(n.level, n.index, n.hash);
    for (const k of new Set(e.lookupKeys)) this.stmt('INSERT INTO log_lookup (key, idx) VALUES (?,?)').run(k, size);
    const root = rootAt(size + 1, get);
    this.stmt('UPDATE log_tree_state SET size = ?, root = ? WHERE id = 0').run(size + 1, root);
    return size;
  }

  async appendLogEvent(entry: LogAppend): Promise<number> {
    return this.db.transaction(() => this.appendSync(entry)).immediate();
  }
  async getLogState(): Promise<LogTreeState> {
    const r = this.stmt('SELECT size, root FROM log_tree_state WHERE id = 0').get() as Row;
    return { size: Number(r.size), root: new Uint8Array(r.root as Uint8Array) };
  }
  async getLogEntries(start: number, end: number): Promise<LogEntryRecord[]> {
    return this.all('SELECT * FROM log_entry WHERE idx >= ? AND idx < ? ORDER BY idx', toLogEntry, start, end);
  }
  async getLogNodes(coords: Array<{ level: number; index: number }>): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    for (const c of coords) {
      const h = this.logNode(c.level, c.index);
      if (h) out.set(`${c.level}/${c.index}`, h);
    }
    return out;
  }
  async findLogIndexes(lookupKey: string, limit: number): Promise<number[]> {
    return (this.stmt('SELECT idx FROM log_lookup WHERE key = ? ORDER BY idx LIMIT ?').all(lookupKey, limit) as Row[]).map((r) => Number(r.idx));
  }
  async findLogIndexByLeafHash(hash: Uint8Array): Promise<number | null> {
    const r = this.stmt('SELECT idx FROM log_entry WHERE leaf_hash = ? ORDER BY idx LIMIT 1').get(Buffer.from(hash)) as Row | undefined;
    return r ? Number(r.idx) : null;
  }
  async addCheckpoint(cp: LogCheckpointRecord): Promise<boolean> {
    return this.db.transaction(() => {
      const latest = this.stmt('SELECT max(size) AS s FROM log_checkpoint').get() as Row;
      if (latest.s !== null && Number(latest.s) >= cp.size) return false;
      this.stmt('INSERT INTO log_checkpoint (size, root, note, signed_at) VALUES (?,?,?,?)').run(cp.size, Buffer.from(cp.root), cp.note, cp.signedAt);
      return true;
    }).immediate();
  }
  async latestCheckpoint(): Promise<LogCheckpointRecord | null> {
    return this.get('SELECT * FROM log_checkpoint ORDER BY size DESC LIMIT 1', toCheckpoint);
  }
  async getCheckpoint(size: number): Promise<LogCheckpointRecord | null> {
    return this.get('SELECT * FROM log_checkpoint WHERE size = ?', toCheckpoint, size);
  }
}
