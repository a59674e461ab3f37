/**
 * Storage of the mesh signing fronts (server/mesh): credentials and the certificates they
 * obtained. Kept apart from the main Storage interface; the SQLite implementation is
 * storage/sqlite/mesh-store.ts, on the same database file.
 */

export interface MeshTokenRecord {
  id: string;
  name: string;
  /** A scope under `mesh.scopes` in the policy file. */
  scope: string;
  secretSha256: string;
  /** 'operator', 'approle:<name>' or 'cert:<role>'. */
  source: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

export interface MeshAppRoleRecord {
  name: string;
  /** Vault's role_id: an identifier, not a secret. */
  roleId: string;
  scope: string;
  tokenTtlMs: number;
  createdAt: number;
  revokedAt: number | null;
}

export interface MeshSecretIdRecord {
  /** The public part of the secret_id (Vault's secret_id_accessor). */
  id: string;
  roleName: string;
  secretSha256: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

export type MeshCertificateKind = 'intermediate' | 'leaf';

export interface MeshCertificateRecord {
  serial: string;
  kind: MeshCertificateKind;
  trustDomain: string;
  role: string | null;
  scope: string;
  /** Which credential asked, e.g. 'token:<id>' or 'cert:<role>'. */
  credential: string;
  /** 'native' or 'vault'. */
  front: string;
  der: Uint8Array;
  notBefore: number;
  notAfter: number;
  createdAt: number;
  logIndex: number;
}

export interface MeshStore {
  createToken(t: MeshTokenRecord): Promise<void>;
  getToken(id: string): Promise<MeshTokenRecord | null>;
  /** Operator-made tokens, and login tokens that have not expired. */
  listTokens(now: number): Promise<MeshTokenRecord[]>;
  revokeToken(id: string, at: number): Promise<boolean>;
  /** Deletes login tokens that expired before `before`; returns how many. */
  purgeExpiredTokens(before: number): Promise<number>;

  createAppRole(r: MeshAppRoleRecord): Promise<void>;
  getAppRole(name: string): Promise<MeshAppRoleRecord | null>;
  getAppRoleByRoleId(roleId: string): Promise<MeshAppRoleRecord | null>;
  listAppRoles(): Promise<MeshAppRoleRecord[]>;
  /** Revokes the role, its secret IDs and the tokens it issued, in one transaction. */
  revokeAppRole(name: string, at: number): Promise<boolean>;
  createSecretId(s: MeshSecretIdRecord): Promise<void>;
  getSecretId(id: string): Promise<MeshSecretIdRecord | null>;
  listSecretIds(roleName: string): Promise<MeshSecretIdRecord[]>;
  revokeSecretId(roleName: string, id: string, at: number): Promise<boolean>;

  recordCertificate(c: MeshCertificateRecord): Promise<void>;
  getCertificate(serial: string): Promise<MeshCertificateRecord | null>;
  countCertificates(): Promise<number>;
}
