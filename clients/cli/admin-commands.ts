import { parseArgs } from 'node:util';
import { out, withStore } from './data-store.js';
import { createApiToken, TOKEN_SCOPES } from '../../server/admin/api-tokens.js';
import { createEabKey, eabKeyView } from '../../server/admin/eab-keys.js';
import { SecretBox } from '../../server/admin/key-encryption.js';
import { checkPolicy } from '../../server/admin/routes.js';
import { checkIdentifier } from '../../server/acme/identifiers.js';
import { ConfigError, parseDuration, type Config } from '../../server/config.js';
import { PolicyStore } from '../../server/policy/policy-store.js';
import { lookup } from '../../server/policy/types.js';
import type { Identifier, TokenScope } from '../../storage/types.js';

export const ADMIN_HELP = `  acme-ca eab create --scope SCOPE [--description TEXT] [--ttl 7d] [--json]
                                         create a single-use EAB key; the HMAC key is shown once
  acme-ca eab list [--json]              list EAB keys (never their secrets)
  acme-ca eab revoke KEY_ID              revoke an unused EAB key
  acme-ca token create --scope admin|read-log|mesh [--scope ...] --name NAME [--ttl 90d] [--json]
                                         create an API bearer token; shown once, stored hashed
  acme-ca token list [--json]            list API tokens
  acme-ca token revoke TOKEN_ID          revoke an API token
  acme-ca policy check [--scope S] [--profile P] [--uri URI ...] NAME|IP ...
                                         would an order for these names be allowed, and why not
`;

export class UsageError extends Error {}
export class OperationError extends Error {}


/** An invalid policy file is a configuration error (exit 2), never a "denied" (exit 1). */
export function loadPolicy(config: Config): PolicyStore {
  try {
    return PolicyStore.load(config.policyFile);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

const fmtTime = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString());

export async function runAdminCommand(cmd: string, sub: string | undefined, args: string[], config: Config): Promise<void> {
  const { values, positionals } = parseArgs({
    args, strict: true, allowPositionals: true,
    options: {
      scope: { type: 'string', multiple: true }, description: { type: 'string' }, ttl: { type: 'string' }, name: { type: 'string' },
      profile: { type: 'string' }, uri: { type: 'string', multiple: true }, json: { type: 'boolean' },
    },
  });
  const json = values.json === true;
  const ttl = (): number | null => {
    if (values.ttl === undefined) return null;
    const ms = parseDuration(values.ttl);
    if (!ms) throw new UsageError(`--ttl ${values.ttl} is not a duration such as 24h or 7d`);
    return ms;
  };
  const now = Date.now();

  if (cmd === 'eab' && sub === 'create') {
    const scope = values.scope?.[0];
    if (!scope) throw new UsageError('eab create needs --scope');
    const policy = loadPolicy(config).current();
    if (!lookup(policy.scopes, scope)) throw new OperationError(`scope '${scope}' is not defined in the policy; defined: ${Object.keys(policy.scopes).join(', ')}`);
    const created = await withStore(config, (s) => createEabKey(s, SecretBox.open(config.dataDir), { scope, description: values.description, ttlMs: ttl() }, now));
    out(json, created, `EAB key id:   ${created.keyId}\nHMAC key:     ${created.hmacKey}\nScope:        ${created.scope}\nExpires:      ${fmtTime(created.expiresAt)}\n\nThe HMAC key is shown only now. Give both to the team; e.g.\n  certbot register --eab-kid ${created.keyId} --eab-hmac-key <HMAC key> ...\n  lego --eab --kid ${created.keyId} --hmac <HMAC key> ...`);
    return;
  }
  if (cmd === 'eab' && sub === 'list') {
    const keys = await withStore(config, async (s) => (await s.listEabKeys()).map((k) => eabKeyView(k, now)));
    out(json, { keys }, keys.length === 0 ? 'no EAB keys' : keys.map((k) => `${k.keyId}  ${k.status.padEnd(7)}  scope=${k.scope}  created=${fmtTime(k.createdAt)}  expires=${fmtTime(k.expiresAt)}${k.accountId ? `  account=${k.accountId}` : ''}`).join('\n'));
    return;
  }
  if (cmd === 'eab' && sub === 'revoke') {
    const id = positionals[0];
    if (!id) throw new UsageError('eab revoke needs the key id');
    const ok = await withStore(config, (s) => s.revokeEabKey(id, now));
    if (!ok) throw new OperationError(`EAB key ${id} does not exist or is not unused`);
    out(json, { keyId: id, status: 'revoked' }, `EAB key ${id} revoked`);
    return;
  }
  if (cmd === 'token' && sub === 'create') {
    const scopes = values.scope ?? [];
    if (scopes.length === 0 || !values.name) throw new UsageError('token create needs --scope and --name');
    const bad = scopes.find((x) => !(TOKEN_SCOPES as readonly string[]).includes(x));
    if (bad) throw new UsageError(`unknown token scope "${bad}"; use ${TOKEN_SCOPES.join(', ')}`);
    const created = await withStore(config, (s) => createApiToken(s, { name: values.name!, scopes: scopes as TokenScope[], ttlMs: ttl() }, now));
    out(json, created, `Token id: ${created.id}\nToken:    ${created.token}\nScopes:   ${created.scopes.join(', ')}\nExpires:  ${fmtTime(created.expiresAt)}\n\nThe token is shown only now; send it as "Authorization: Bearer <token>".`);
    return;
  }
  if (cmd === 'token' && sub === 'list') {
    const tokens = await withStore(config, async (s) => (await s.listApiTokens()).map(({ secretSha256: _omit, ...t }) => t));
    out(json, { tokens }, tokens.length === 0 ? 'no tokens' : tokens.map((t) => `${t.id}  ${t.name}  scopes=${t.scopes.join(',')}  expires=${fmtTime(t.expiresAt)}${t.revokedAt ? '  REVOKED' : ''}`).join('\n'));
    return;
  }
  if (cmd === 'token' && sub === 'revoke') {
    const id = positionals[0];
    if (!id) throw new UsageError('token revoke needs the token id');
    if (!(await withStore(config, (s) => s.revokeApiToken(id, now)))) throw new OperationError(`token ${id} does not exist or is already revoked`);
    out(json, { id, revoked: true }, `token ${id} revoked`);
    return;
  }
  if (cmd === 'policy' && sub === 'check') {
    if (positionals.length === 0) throw new UsageError('policy check needs at least one name or IP');
    const identifiers: Identifier[] = positionals.map((v) => {
      const c = checkIdentifier({ type: /^[0-9.]+$|:/.test(v) ? 'ip' : 'dns', value: v });
      if (!c.ok) throw new UsageError(c.problem.detail);
      return c.identifier;
    });
    const policy = loadPolicy(config);
    const scope = values.scope?.[0] ?? policy.current().defaultScope;
    if (!scope) throw new UsageError('the policy has no default scope; pass --scope');
    const r = checkPolicy(policy, { identifiers, uris: values.uri, profile: values.profile, scope });
    out(json, r, r.allowed
      ? `ALLOWED in scope '${r.scope}' with profile '${r.profile}' (policy ${r.policyVersion.slice(0, 19)})\n${r.detail}`
      : `DENIED (${r.problem}) in scope '${r.scope}': ${r.detail}\n${r.denials.map((d) => `  ${d.detail}  [rule ${d.rule}]`).join('\n')}`);
    if (!r.allowed) process.exitCode = 1;
    return;
  }
  throw new UsageError(`unknown command "${cmd} ${sub ?? ''}"`);
}
