import type { AccountRecord, AuthzRecord, ChallengeRecord, OrderRecord } from '../../storage/types.js';
import type { Urls } from './urls.js';

// JSON bodies of RFC 8555 §7.1 resources; pure functions of the stored records.
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export function accountJson(a: AccountRecord, urls: Urls): Record<string, unknown> {
  return { status: a.status, contact: a.contact, termsOfServiceAgreed: a.termsOfServiceAgreed, orders: urls.accountOrders(a.id) };
}

/** Pending and ready orders past their expiry are shown as invalid (RFC 8555 §7.1.6). */
export function effectiveOrderStatus(o: OrderRecord, now: number): OrderRecord['status'] {
  return (o.status === 'pending' || o.status === 'ready') && o.expires <= now ? 'invalid' : o.status;
}

export function orderJson(o: OrderRecord, authzIds: string[], urls: Urls, now: number): Record<string, unknown> {
  const status = effectiveOrderStatus(o, now);
  return {
    status,
    expires: iso(o.expires),
    identifiers: o.identifiers,
    profile: o.profile,
    ...(o.replaces ? { replaces: o.replaces } : {}),
    ...(o.notBefore !== null ? { notBefore: iso(o.notBefore) } : {}),
    ...(o.notAfter !== null ? { notAfter: iso(o.notAfter) } : {}),
    ...(o.error ? { error: o.error } : status === 'invalid' && o.status !== 'invalid' ? { error: { type: 'urn:ietf:params:acme:error:malformed', detail: 'the order expired before it was finalized' } } : {}),
    authorizations: authzIds.map((id) => urls.authz(id)),
    finalize: urls.finalize(o.id),
    ...(o.certificateId ? { certificate: urls.certificate(o.certificateId) } : {}),
  };
}

export function challengeJson(c: ChallengeRecord, urls: Urls): Record<string, unknown> {
  return {
    type: c.type, url: urls.challenge(c.id), status: c.status, token: c.token,
    ...(c.validatedAt !== null ? { validated: iso(c.validatedAt) } : {}),
    ...(c.error ? { error: c.error } : {}),
  };
}

export function effectiveAuthzStatus(z: AuthzRecord, now: number): AuthzRecord['status'] {
  return (z.status === 'pending' || z.status === 'valid') && z.expires <= now ? 'expired' : z.status;
}

export function authzJson(z: AuthzRecord, challenges: ChallengeRecord[], urls: Urls, now: number): Record<string, unknown> {
  return {
    identifier: z.identifier, status: effectiveAuthzStatus(z, now), expires: iso(z.expires),
    challenges: challenges.map((c) => challengeJson(c, urls)),
    ...(z.wildcard ? { wildcard: true } : {}),
  };
}
