import type { FastifyInstance } from 'fastify';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { AccountRecord } from '../../storage/types.js';
import type { AcmeContext } from './context.js';
import { newId } from './ids.js';
import { keyFromJwk, parseFlattenedJws, parseProtectedHeader, publicJwk, verifySignature } from './jws.js';
import { payloadObject, postJws, requireOwner, signer } from './jws-route.js';
import { problem } from './problems.js';
import { accountJson } from './resources.js';
import { eabKeyId, verifyExternalAccountBinding } from './eab.js';

const MAX_CONTACTS = 10;
// One mailbox per mailto URL; hfields (?subject=...) and lists are refused (RFC 8555 §7.3).
const MAILTO = /^mailto:([^@\s,?<>]+)@([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+)$/i;

export function checkContacts(raw: unknown): string[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw problem('malformed', '"contact" must be an array of URLs');
  if (raw.length > MAX_CONTACTS) throw problem('invalidContact', `at most ${MAX_CONTACTS} contacts are accepted`);
  return raw.map((c) => {
    if (typeof c !== 'string') throw problem('invalidContact', 'each contact must be a string URL such as "mailto:team@example.com"');
    if (!c.toLowerCase().startsWith('mailto:')) throw problem('unsupportedContact', `contact ${JSON.stringify(c)} is not supported; only mailto: URLs are`);
    if (!MAILTO.test(c)) throw problem('invalidContact', `contact ${JSON.stringify(c)} is not a single valid email address (mailto:name@domain, no "?" fields)`);
    return c;
  });
}

export function accountRoutes(app: FastifyInstance, ctx: AcmeContext): void {
  postJws(app, ctx, '/acme/new-account', 'jwk', async (v, req, reply) => {
    const p = payloadObject(v);
    const existing = await ctx.store.getAccountByThumbprint(v.thumbprint);
    if (existing) {
      if (existing.status !== 'valid') throw problem('unauthorized', `the account of this key is ${existing.status}; it can no longer be used (RFC 8555 §7.3.6)`, 401);
      reply.header('Location', ctx.urls.account(existing.id)).code(200);
      return accountJson(existing, ctx.urls);
    }
    if (p.onlyReturnExisting === true) throw problem('accountDoesNotExist', 'no account exists for this key; omit onlyReturnExisting to create one');
    if (ctx.config.acme.externalAccountRequired && p.externalAccountBinding === undefined) {
      throw problem('externalAccountRequired', 'this CA requires External Account Binding: ask the CA operator for an EAB key id and HMAC key and pass them to your client');
    }
    if (ctx.config.acme.termsOfService && p.termsOfServiceAgreed !== true) {
      throw problem('userActionRequired', `you must agree to the terms of service at ${ctx.config.acme.termsOfService} (set termsOfServiceAgreed to true)`);
    }
    const contact = checkContacts(p.contact);
    const account: AccountRecord = {
      id: newId(), status: 'valid', jwk: JSON.stringify(v.jwk), thumbprint: v.thumbprint, contact,
      termsOfServiceAgreed: p.termsOfServiceAgreed === true, createdAt: ctx.now(), scope: ctx.policy.current().defaultScope ?? '', eabKeyId: null,
    };
    // An EAB binding (required or offered) ties the account to the scope of the operator's key.
    if (p.externalAccountBinding !== undefined) {
      const keyId = eabKeyId(p.externalAccountBinding);
      const key = await ctx.store.getEabKey(keyId);
      await verifyExternalAccountBinding(p.externalAccountBinding, key, v.jwk, ctx.urls.newAccount(), ctx.secrets, ctx.now());
      account.scope = key!.scope;
      account.eabKeyId = keyId;
      if (!(await ctx.store.createAccountWithEab(account, keyId, ctx.now()))) {
        throw problem('unauthorized', 'the EAB key was used by a concurrent request; each EAB key binds exactly one account');
      }
      req.log.info({ accountId: account.id, scope: account.scope, eabKeyId: keyId }, 'account created with external account binding');
      reply.header('Location', ctx.urls.account(account.id)).code(201);
      return accountJson(account, ctx.urls);
    }
    try {
      await ctx.store.createAccount(account);
    } catch (e) {
      // Two concurrent newAccount requests with one key: the loser returns the winner's account.
      const winner = await ctx.store.getAccountByThumbprint(v.thumbprint);
      if (!winner) throw e;
      reply.header('Location', ctx.urls.account(winner.id)).code(200);
      return accountJson(winner, ctx.urls);
    }
    req.log.info({ accountId: account.id }, 'account created');
    reply.header('Location', ctx.urls.account(account.id)).code(201);
    return accountJson(account, ctx.urls);
  });

  postJws(app, ctx, '/acme/account/:id', 'kid', async (v, req) => {
    const { id } = req.params as { id: string };
    let account = requireOwner(v, id, 'account');
    if (v.payload === null) return accountJson(account, ctx.urls);
    const p = payloadObject(v);
    if (p.status !== undefined) {
      if (p.status !== 'deactivated') throw problem('malformed', 'the only status a client may set is "deactivated"');
      account = await ctx.store.updateAccount(id, { status: 'deactivated', ...(p.contact !== undefined ? { contact: checkContacts(p.contact) } : {}) });
      req.log.info({ accountId: id }, 'account deactivated');
      return accountJson(account, ctx.urls);
    }
    if (p.contact !== undefined) account = await ctx.store.updateAccount(id, { contact: checkContacts(p.contact) });
    return accountJson(account, ctx.urls);
  });

  postJws(app, ctx, '/acme/account/:id/orders', 'kid', async (v, req, reply) => {
    const { id } = req.params as { id: string };
    requireOwner(v, id, 'orders list');
    const { cursor } = req.query as { cursor?: string };
    if (cursor !== undefined && !/^\d{1,18}$/.test(cursor)) throw problem('malformed', 'the "cursor" query parameter is not one this server handed out');
    const page = await ctx.store.listOrderIds(id, cursor ?? null, ctx.config.acme.ordersPageSize);
    if (page.next) reply.header('Link', `<${ctx.urls.accountOrders(id, page.next)}>;rel="next"`);
    return { orders: page.items.map((o) => ctx.urls.order(o)) };
  });

  // RFC 8555 §7.3.5: the outer JWS proves the old key, the inner JWS proves the new one.
  postJws(app, ctx, '/acme/key-change', 'kid', async (v, req) => {
    const account = signer(v);
    const inner = parseFlattenedJws(v.payload);
    const innerHeader = parseProtectedHeader(inner);
    if (!innerHeader.jwk) throw problem('malformed', 'the inner JWS of keyChange must carry the new key as "jwk"');
    if (innerHeader.kid) throw problem('malformed', 'the inner JWS of keyChange must not carry "kid"');
    if (innerHeader.nonce !== undefined) throw problem('malformed', 'the inner JWS of keyChange must not carry a "nonce"');
    if (innerHeader.url !== v.header.url) throw problem('malformed', 'the inner JWS "url" must equal the outer JWS "url"');
    const newJwk = publicJwk(innerHeader.jwk);
    const newKey = keyFromJwk(newJwk);
    const innerPayload = await verifySignature(inner, innerHeader, newKey);
    if (innerPayload === null || typeof innerPayload !== 'object') throw problem('malformed', 'the inner keyChange payload must be an object with "account" and "oldKey"');
    const { account: accountUrl, oldKey } = innerPayload as { account?: unknown; oldKey?: unknown };
    if (accountUrl !== v.header.kid) throw problem('malformed', 'the inner payload "account" must equal the outer "kid"');
    if (oldKey === null || typeof oldKey !== 'object') throw problem('malformed', 'the inner payload needs "oldKey", the account\'s current public key');
    let oldThumb: string;
    try { oldThumb = await calculateJwkThumbprint(publicJwk(oldKey as JWK), 'sha256'); } catch { throw problem('malformed', '"oldKey" is not a valid public JWK'); }
    if (oldThumb !== account.thumbprint) throw problem('unauthorized', '"oldKey" is not the account\'s current key');
    const newThumb = await calculateJwkThumbprint(newJwk, 'sha256');
    if (newThumb === account.thumbprint) throw problem('malformed', 'the new key is the same as the current key');
    const holder = await ctx.store.getAccountByThumbprint(newThumb);
    if (holder) {
      const p = problem('malformed', 'the new key is already in use by another account', 409);
      p.headers.Location = ctx.urls.account(holder.id);
      throw p;
    }
    const changed = await ctx.store.changeAccountKey(account.id, account.thumbprint, JSON.stringify(newJwk), newThumb);
    if (!changed) throw problem('malformed', 'the account key changed concurrently or the new key is already in use; retry', 409);
    req.log.info({ accountId: account.id }, 'account key changed');
    const updated = await ctx.store.getAccount(account.id);
    return accountJson(updated!, ctx.urls);
  });
}
