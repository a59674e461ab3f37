import type Database from 'better-sqlite3';
import type {
  MeshAppRoleRecord, MeshCertificateKind, MeshCertificateRecord, MeshSecretIdRecord, MeshStore, MeshTokenRecord,
} from '../mesh-types.js';
import { StatementCache } from './statement-cache.js';

type Row = Record<string, unknown>;
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function toToken(r: Row): MeshTokenRecord {
  return {
    id: String(r.id), name: String(r.name), scope: String(r.scope), secretSha256: String(r.secret_sha256), source: String(r.source),
    createdAt: Number(r.created_at), expiresAt: numOrNull(r.expires_at), revokedAt: numOrNull(r.revoked_at),
  };
}
function toAppRole(r: Row): MeshAppRoleRecord {
  return { name: String(r.name), roleId: String(r.role_id), scope: String(r.scope), tokenTtlMs: Number(r.token_ttl_ms), createdAt: Number(r.created_at), revokedAt: numOrNull(r.revoked_at) };
}
function toSecretId(r: Row): MeshSecretIdRecord {
  return { id: String(r.id), roleName: String(r.role_name), secretSha256: String(r.secret_sha256), createdAt: Number(r.created_at), expiresAt: numOrNull(r.expires_at), revokedAt: numOrNull(r.revoked_at) };
}
function toCertificate(r: Row): MeshCertificateRecord {
  return {
    serial: String(r.serial), kind: String(r.kind) as MeshCertificateKind, trustDomain: String(r.trust_domain), role: r.role === null ? null : String(r.role),
    scope: String(r.scope), credential: String(r.credential), front: String(r.front), der: new Uint8Array(r.der as Uint8Array),
    notBefore: Number(r.not_before), notAfter: Number(r.not_after), createdAt: Number(r.created_at), logIndex: Number(r.log_index),
  };
}

/**
 * MeshStore on the server's SQLite database (the tables of migration 5). It shares the
 * better-sqlite3 handle of SqliteStorage, so its writes are ordered with the log's by SQLite's
 * writer lock; it never writes the log itself (signatures go through Storage.appendLogEvent).
 */
export class SqliteMeshStore implements MeshStore {
  private readonly stmts: StatementCache;

  constructor(private readonly db: Database.Database) {
    this.stmts = new StatementCache(db);
  }

  private stmt(sql: string): Database.Statement {
    return this.stmts.get(sql);
  }

  async createToken(t: MeshTokenRecord): Promise<void> {
    this.stmt('INSERT INTO mesh_tokens (id, name, scope, secret_sha256, source, created_at, expires_at, revoked_at) VALUES (?,?,?,?,?,?,?,?)')
      .run(t.id, t.name, t.scope, t.secretSha256, t.source, t.createdAt, t.expiresAt, t.revokedAt);
  }
  async getToken(id: string): Promise<MeshTokenRecord | null> {
    const r = this.stmt('SELECT * FROM mesh_tokens WHERE id = ?').get(id) as Row | undefined;
    return r ? toToken(r) : null;
  }
  async listTokens(now: number): Promise<MeshTokenRecord[]> {
    return (this.stmt("SELECT * FROM mesh_tokens WHERE source = 'operator' OR expires_at IS NULL OR expires_at > ? ORDER BY created_at, id").all(now) as Row[]).map(toToken);
  }
  async revokeToken(id: string, at: number): Promise<boolean> {
    return this.stmt('UPDATE mesh_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes === 1;
  }
  async purgeExpiredTokens(before: number): Promise<number> {
    // Operator tokens stay (as revoked API tokens do) so that a listing explains why one stopped working.
    return this.stmt("DELETE FROM mesh_tokens WHERE source <> 'operator' AND expires_at IS NOT NULL AND expires_at < ?").run(before).changes;
  }

  async createAppRole(r: MeshAppRoleRecord): Promise<void> {
    this.stmt('INSERT INTO mesh_approles (name, role_id, scope, token_ttl_ms, created_at, revoked_at) VALUES (?,?,?,?,?,?)')
      .run(r.name, r.roleId, r.scope, r.tokenTtlMs, r.createdAt, r.revokedAt);
  }
  async getAppRole(name: string): Promise<MeshAppRoleRecord | null> {
    const r = this.stmt('SELECT * FROM mesh_approles WHERE name = ?').get(name) as Row | undefined;
    return r ? toAppRole(r) : null;
  }
  async getAppRoleByRoleId(roleId: string): Promise<MeshAppRoleRecord | null> {
    const r = this.stmt('SELECT * FROM mesh_approles WHERE role_id = ?').get(roleId) as Row | undefined;
    return r ? toAppRole(r) : null;
  }
  async listAppRoles(): Promise<MeshAppRoleRecord[]> {
    return (this.stmt('SELECT * FROM mesh_approles ORDER BY name').all() as Row[]).map(toAppRole);
  }
  async revokeAppRole(name: string, at: number): Promise<boolean> {
    return this.db.transaction(() => {
      const changed = this.stmt('UPDATE mesh_approles SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL').run(at, name).changes === 1;
      if (changed) {
        this.stmt('UPDATE mesh_approle_secrets SET revoked_at = ? WHERE role_name = ? AND revoked_at IS NULL').run(at, name);
        this.stmt('UPDATE mesh_tokens SET revoked_at = ? WHERE source = ? AND revoked_at IS NULL').run(at, `approle:${name}`);
      }
      return changed;
    }).immediate();
  }
  async createSecretId(s: MeshSecretIdRecord): Promise<void> {
    this.stmt('INSERT INTO mesh_approle_secrets (id, role_name, secret_sha256, created_at, expires_at, revoked_at) VALUES (?,?,?,?,?,?)')
      .run(s.id, s.roleName, s.secretSha256, s.createdAt, s.expiresAt, s.revokedAt);
  }
  async getSecretId(id: string): Promise<MeshSecretIdRecord | null> {
    const r = this.stmt('SELECT * FROM mesh_approle_secrets WHERE id = ?').get(id) as Row | undefined;
    return r ? toSecretId(r) : null;
  }
  async listSecretIds(roleName: string): Promise<MeshSecretIdRecord[]> {
    return (this.stmt('SELECT * FROM mesh_approle_secrets WHERE role_name = ? ORDER BY created_at, id').all(roleName) as Row[]).map(toSecretId);
  }
  async revokeSecretId(roleName: string, id: string, at: number): Promise<boolean> {
    return this.stmt('UPDATE mesh_approle_secrets SET revoked_at = ? WHERE id = ? AND role_name = ? AND revoked_at IS NULL').run(at, id, roleName).changes === 1;
  }

  async recordCertificate(c: MeshCertificateRecord): Promise<void> {
    this.stmt(`INSERT INTO mesh_certificates (serial, kind, trust_domain, role, scope, credential, front, der, not_before, not_after, created_at, log_index)
      VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`).run(c.serial, c.kind, c.trustDomain, c.role, c.scope, c.credential, c.front, Buffer.from(c.der), c.notBefore, c.notAfter, c.createdAt, c.logIndex);
  }
  async getCertificate(serial: string): Promise<MeshCertificateRecord | null> {
    const r = this.stmt('SELECT * FROM mesh_certificates WHERE serial = ?').get(serial) as Row | undefined;
    return r ? toCertificate(r) : null;
  }
  async countCertificates(): Promise<number> {
    return Number((this.stmt('SELECT count(*) AS n FROM mesh_certificates').get() as Row).n);
  }
}
