/**
 * Mesh credentials: bearer tokens (`X-Vault-Token` or `Authorization: Bearer`), AppRoles
 * (role_id + secret_id, exchanged for a token) and certificate roles (a client certificate
 * issued by this CA, matched by name, exchanged for a token or used directly). Each carries one
 * mesh scope; secrets are random, shown once and stored as SHA-256 only. Tokens are never
 * renewable, so Vault clients never try token/renew-self.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { MeshAppRoleRecord, MeshStore, MeshTokenRecord } from '../../storage/mesh-types.js';
import { OID, parseCertificate } from '../ca/certificate-builder.js';
import { matchDns, matchUri } from '../policy/match.js';
import type { MeshCertRole, MeshPolicy } from './mesh-policy.js';
import type { MeshPrincipal } from './signer.js';

const TOKEN_PREFIX = 'acmemesh';
const TOKEN_FORMAT = /^acmemesh_([A-Za-z0-9_-]{16})_([A-Za-z0-9_-]{43})$/;
// secret_id: "<accessor>.<secret>"; the accessor finds the row, the secret is compared by hash.
const SECRET_ID_FORMAT = /^([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$/;
const NAME = /^[a-z][a-z0-9._-]{0,63}$/;
// Vault's login tokens are short-lived by default; purge old login tokens at most this often.
const PURGE_EVERY_MS = 3_600_000;

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

export interface CreatedMeshToken { id: string; token: string; name: string; scope: string; source: string; expiresAt: number | null }

export class CredentialError extends Error {}

function newSecret(): { id: string; secret: string } {
  return { id: randomBytes(12).toString('base64url'), secret: randomBytes(32).toString('base64url') };
}

export async function createMeshToken(store: MeshStore, input: { name: string; scope: string; ttlMs: number | null; source?: string }, now: number): Promise<CreatedMeshToken> {
  const { id, secret } = newSecret();
  const expiresAt = input.ttlMs ? now + input.ttlMs : null;
  const source = input.source ?? 'operator';
  await store.createToken({ id, name: input.name, scope: input.scope, secretSha256: sha256(secret).toString('hex'), source, createdAt: now, expiresAt, revokedAt: null });
  return { id, token: `${TOKEN_PREFIX}_${id}_${secret}`, name: input.name, scope: input.scope, source, expiresAt };
}

export type MeshTokenCheck = { ok: true; token: MeshTokenRecord } | { ok: false; reason: string };

/** Checks a presented token; the secret comparison is constant-time and unknown ids cost the same. */
export async function checkMeshToken(store: MeshStore, presented: string | undefined, now: number): Promise<MeshTokenCheck> {
  if (!presented) return { ok: false, reason: 'missing client token' };
  const m = TOKEN_FORMAT.exec(presented);
  if (!m) return { ok: false, reason: 'invalid token: not a token this server issued' };
  const row = await store.getToken(m[1]);
  const stored = row ? Buffer.from(row.secretSha256, 'hex') : sha256('no such token');
  const match = timingSafeEqual(sha256(m[2]), stored) && row !== null;
  if (!match) return { ok: false, reason: 'invalid token: unknown token' };
  if (row.revokedAt !== null) return { ok: false, reason: 'invalid token: the token was revoked' };
  if (row.expiresAt !== null && row.expiresAt <= now) return { ok: false, reason: `invalid token: the token expired at ${new Date(row.expiresAt).toISOString()}` };
  return { ok: true, token: row };
}

export function tokenPrincipal(t: MeshTokenRecord): MeshPrincipal {
  return { scope: t.scope, credential: t.source === 'operator' ? `token:${t.id}` : `${t.source} (token:${t.id})` };
}

export function checkName(name: string, what: string): void {
  if (!NAME.test(name)) throw new CredentialError(`${what} "${name}" must start with a lower-case letter and use only a-z, 0-9, ".", "-" and "_" (at most 64 characters)`);
}

export function checkScopeDefined(mesh: MeshPolicy | undefined, scope: string): void {
  if (!mesh) throw new CredentialError('the policy has no mesh section, so no mesh scope exists yet (see docs/mesh.md)');
  if (!Object.hasOwn(mesh.scopes, scope)) throw new CredentialError(`mesh scope '${scope}' is not defined under mesh.scopes; defined: ${Object.keys(mesh.scopes).join(', ') || '(none)'}`);
}

export async function createAppRole(store: MeshStore, input: { name: string; scope: string; tokenTtlMs: number }, now: number): Promise<MeshAppRoleRecord> {
  checkName(input.name, 'AppRole name');
  if (await store.getAppRole(input.name)) throw new CredentialError(`AppRole "${input.name}" already exists`);
  const role: MeshAppRoleRecord = { name: input.name, roleId: randomUUID(), scope: input.scope, tokenTtlMs: input.tokenTtlMs, createdAt: now, revokedAt: null };
  await store.createAppRole(role);
  return role;
}

export interface CreatedSecretId { roleName: string; roleId: string; secretId: string; secretIdAccessor: string; expiresAt: number | null }

export async function createSecretId(store: MeshStore, roleName: string, ttlMs: number | null, now: number): Promise<CreatedSecretId> {
  const role = await store.getAppRole(roleName);
  if (!role || role.revokedAt !== null) throw new CredentialError(`no active AppRole "${roleName}"`);
  const { id, secret } = newSecret();
  const expiresAt = ttlMs ? now + ttlMs : null;
  await store.createSecretId({ id, roleName, secretSha256: sha256(secret).toString('hex'), createdAt: now, expiresAt, revokedAt: null });
  return { roleName, roleId: role.roleId, secretId: `${id}.${secret}`, secretIdAccessor: id, expiresAt };
}

/** Purges expired login tokens now and then, so a client logging in per request leaves no pile. */
export class TokenPurger {
  private last = 0;
  constructor(private readonly store: MeshStore) {}
  async maybePurge(now: number): Promise<void> {
    if (now - this.last < PURGE_EVERY_MS) return;
    this.last = now;
    await this.store.purgeExpiredTokens(now - 86_400_000);
  }
}

export type LoginResult = { ok: true; token: CreatedMeshToken; ttlMs: number; role: string } | { ok: false; reason: string };

/** AppRole login: the same answer for a bad role_id and a bad secret_id, as Vault gives. */
export async function loginAppRole(store: MeshStore, roleId: string, secretId: string, now: number): Promise<LoginResult> {
  const refused = { ok: false as const, reason: 'invalid role_id or secret_id' };
  const role = roleId ? await store.getAppRoleByRoleId(roleId) : null;
  const m = SECRET_ID_FORMAT.exec(secretId);
  const row = m ? await store.getSecretId(m[1]) : null;
  const stored = row ? Buffer.from(row.secretSha256, 'hex') : sha256('no such secret');
  const match = timingSafeEqual(sha256(m ? m[2] : secretId), stored) && row !== null;
  if (!role || !match || row.roleName !== role.name) return refused;
  if (role.revokedAt !== null) return { ok: false, reason: `AppRole "${role.name}" was revoked` };
  if (row.revokedAt !== null) return { ok: false, reason: 'the secret_id was revoked' };
  if (row.expiresAt !== null && row.expiresAt <= now) return { ok: false, reason: `the secret_id expired at ${new Date(row.expiresAt).toISOString()}` };
  const token = await createMeshToken(store, { name: `approle ${role.name}`, scope: role.scope, ttlMs: role.tokenTtlMs, source: `approle:${role.name}` }, now);
  return { ok: true, token, ttlMs: role.tokenTtlMs, role: role.name };
}

export interface PeerNames { commonName: string | null; dnsNames: string[]; uris: string[] }

/** Names of a client certificate (CN, DNS and URI SANs), parsed from its DER. */
export function peerNames(der: Uint8Array): PeerNames {
  const cert = parseCertificate(der);
  let commonName: string | null = null;
  for (const tv of cert.subject.typesAndValues) if (tv.type === OID.commonName) commonName = String(tv.value.valueBlock.value);
  const dnsNames: string[] = [];
  const uris: string[] = [];
  const ext = cert.extensions?.find((e) => e.extnID === OID.subjectAltName);
  if (ext) {
    const gns = new pkijs.GeneralNames({ schema: asn1js.fromBER(ext.extnValue.valueBlock.valueHexView).result });
    for (const gn of gns.names) {
      if (gn.type === 2) dnsNames.push(String(gn.value).toLowerCase());
      else if (gn.type === 6) uris.push(String(gn.value));
    }
  }
  return { commonName, dnsNames, uris };
}

function certRoleMatches(role: MeshCertRole, names: PeerNames): boolean {
  const dns = [...(names.commonName ? [names.commonName.toLowerCase()] : []), ...names.dnsNames];
  return dns.some((d) => role.dns.some((p) => matchDns(d, p))) || names.uris.some((u) => role.uri.some((p) => matchUri(u, p)));
}

/**
 * The certificate role a verified client certificate may use: the one named (Vault's
 * `{"name": ...}`), or the first matching one in name order when none is named.
 */
export function matchCertRole(mesh: MeshPolicy, names: PeerNames, requested: string): { ok: true; role: MeshCertRole } | { ok: false; reason: string } {
  if (requested) {
    if (!Object.hasOwn(mesh.certRoles, requested)) return { ok: false, reason: `no certificate role "${requested}" under mesh.certRoles` };
    const role = mesh.certRoles[requested];
    return certRoleMatches(role, names) ? { ok: true, role } : { ok: false, reason: `the client certificate does not match certificate role "${requested}"` };
  }
  const role = Object.values(mesh.certRoles).sort((a, b) => a.name.localeCompare(b.name)).find((r) => certRoleMatches(r, names));
  return role ? { ok: true, role } : { ok: false, reason: 'the client certificate matches no certificate role under mesh.certRoles' };
}

export function tokenView(t: MeshTokenRecord): Omit<MeshTokenRecord, 'secretSha256'> {
  const { secretSha256: _omit, ...rest } = t;
  return rest;
}
