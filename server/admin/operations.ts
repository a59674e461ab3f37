import type { CertificateRecord, CertificateSelector, Storage } from '../../storage/types.js';
import { certificateRevokedEntry, renewNowEntry } from '../log/entry.js';

// Operator actions on a selection of certificates, shared by the admin API and the CLI. Each one
// is recorded in the issuance log with the selector that chose the certificates.

export const MAX_SELECTION = 100_000;

export function describeSelector(sel: CertificateSelector): Record<string, string | number | string[] | undefined> {
  return { serials: sel.serials, account: sel.accountId, scope: sel.scope, identifierSuffix: sel.identifierSuffix, issuer: sel.issuerId, issuedBefore: sel.issuedBefore };
}

export function selectorIsEmpty(sel: CertificateSelector): boolean {
  return Object.values(describeSelector(sel)).every((v) => v === undefined || (Array.isArray(v) && v.length === 0));
}

export interface RenewNowResult { selected: number; serials: string[]; logIndex: number }

/** Moves the ARI window of every selected certificate into the past (RFC 9773 clients renew at once). */
export async function renewNow(store: Storage, sel: CertificateSelector, reason: string, actor: string, now: number): Promise<RenewNowResult> {
  if (selectorIsEmpty(sel)) throw new Error('refusing to select every certificate: give at least one selector');
  const certs = await store.selectCertificates(sel, now, MAX_SELECTION);
  await store.markRenewNow(certs.map((c) => c.id), now, reason);
  const logIndex = await store.appendLogEvent(renewNowEntry({ selector: describeSelector(sel), serials: certs.map((c) => c.serial), reason, actor }, now));
  return { selected: certs.length, serials: certs.map((c) => c.serial), logIndex };
}

export interface RevokeResult { revoked: number; serials: string[] }

/** Revokes every selected certificate, each with its own log entry, in the revocation's transaction. */
export async function revokeSelection(store: Storage, sel: CertificateSelector, reason: number, actor: string, now: number): Promise<RevokeResult> {
  if (selectorIsEmpty(sel)) throw new Error('refusing to revoke every certificate: give at least one selector');
  const certs: CertificateRecord[] = await store.selectCertificates(sel, now, MAX_SELECTION);
  const serials: string[] = [];
  for (const c of certs) {
    const entry = certificateRevokedEntry({ serial: c.serial, der: c.der, accountId: c.accountId, reason, by: { kind: 'operator', id: actor } }, now);
    if (await store.revokeCertificate(c.id, reason, now, entry)) serials.push(c.serial);
  }
  return { revoked: serials.length, serials };
}
