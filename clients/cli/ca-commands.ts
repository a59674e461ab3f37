import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SqliteStorage } from '../../storage/sqlite/sqlite-storage.js';
import type { CertificateSearchStatus, CertificateSelector } from '../../storage/types.js';
import { renewNow, revokeSelection, selectorIsEmpty } from '../../server/admin/operations.js';
import { activeIssuerId, addAlternateChain, listIssuerIds, loadOrCreateCa, rotateGeneratedIntermediate } from '../../server/ca/ca-material.js';
import { normalizeSerialHex } from '../../server/ca/certificate-builder.js';
import { CONFIG_FIELDS, type Config } from '../../server/config.js';
import { OperationError, UsageError } from './admin-commands.js';
import { out, withStore } from './data-store.js';

export const CA_HELP = `  acme-ca init [--intermediate-cert F --intermediate-key F --root-cert F] [--config-out FILE] [--json]
                                         create the data folder and the CA (or import one), write a commented config
  acme-ca cert list [--account A] [--scope S] [--suffix .x] [--status valid|expired|revoked] [--limit N] [--json]
  acme-ca cert show SERIAL [--pem] [--json]
  acme-ca cert revoke SERIAL... | SELECTORS [--reason N] [--json]
                                         revoke by serial, or by --account/--scope/--suffix/--issuer/--issued-before
  acme-ca renew-now SERIAL... | SELECTORS [--reason TEXT] [--json]
                                         tell the clients of the selected certificates (via ARI) to renew now
  acme-ca intermediate rotate [--json]   new intermediate from the generated root; a running server switches to it
  acme-ca intermediate alternate --chain FILE [--issuer ID] [--json]
                                         add a cross-signed chain for an intermediate (offered as
                                         Link rel="alternate" after SIGHUP or a restart)
`;

const SELECTOR_OPTIONS = {
  account: { type: 'string' }, scope: { type: 'string' }, suffix: { type: 'string' }, issuer: { type: 'string' },
  'issued-before': { type: 'string' }, reason: { type: 'string' }, json: { type: 'boolean' }, status: { type: 'string' },
  limit: { type: 'string' }, pem: { type: 'boolean' }, 'intermediate-cert': { type: 'string' }, 'intermediate-key': { type: 'string' },
  'root-cert': { type: 'string' }, 'config-out': { type: 'string' }, chain: { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof SELECTOR_OPTIONS; allowPositionals: true }>>['values'];

const withExistingStore = <T>(config: Config, fn: (s: SqliteStorage) => Promise<T>): Promise<T> => withStore(config, fn, { create: false });

function selector(values: Values, serials: string[], dataDir: string): CertificateSelector {
  let issuerId: string | undefined;
  if (values.issuer) {
    issuerId = listIssuerIds(dataDir).find((id) => id.startsWith(values.issuer!));
    if (!issuerId) throw new UsageError(`no issuer ${values.issuer} in ${dataDir}`);
  }
  let issuedBefore: number | undefined;
  if (values['issued-before']) {
    issuedBefore = Date.parse(values['issued-before']);
    if (Number.isNaN(issuedBefore)) throw new UsageError(`--issued-before ${values['issued-before']} is not a date (use ISO 8601, e.g. 2026-11-26T12:00:00Z)`);
  }
  const sel: CertificateSelector = {
    ...(serials.length ? { serials: serials.map((s) => normalizeSerialHex(s.replace(/:/g, ''))) } : {}),
    ...(values.account ? { accountId: values.account } : {}), ...(values.scope ? { scope: values.scope } : {}),
    ...(values.suffix ? { identifierSuffix: values.suffix } : {}), ...(issuerId ? { issuerId } : {}),
    ...(issuedBefore !== undefined ? { issuedBefore } : {}),
  };
  if (selectorIsEmpty(sel)) throw new UsageError('select certificates by serial or with --account, --scope, --suffix, --issuer or --issued-before');
  return sel;
}

/** A commented configuration file generated from the schema, so it never disagrees with it. */
export function commentedConfig(config: Config): string {
  const lines = ['# acme-ca configuration. Every key also has a default; uncomment to change it.', '# Reference: README.md, "Configuration".', ''];
  let section = '';
  for (const f of CONFIG_FIELDS) {
    const parts = f.key.split('.');
    const top = parts.length > 1 ? parts[0] : '';
    if (top !== section) {
      section = top;
      if (top) lines.push('', `${top}:`);
    }
    const indent = parts.length > 1 ? '  ' : '';
    const name = parts[parts.length - 1];
    const value = f.key === 'dataDir' ? config.dataDir : f.default;
    const shown = value === null ? '' : Array.isArray(value) ? `[${value.join(', ')}]` : typeof value === 'string' ? JSON.stringify(value) : String(value);
    lines.push(`${indent}# ${f.description}${f.env ? ` (env ${f.env})` : ''}`);
    lines.push(`${indent}${f.key === 'dataDir' ? '' : '# '}${name}: ${shown}`.trimEnd());
  }
  return `${lines.join('\n')}\n`;
}

export async function runCaCommand(cmd: string, sub: string | undefined, args: string[], config: Config): Promise<void> {
  const all = sub && !sub.startsWith('-') && cmd !== 'renew-now' && cmd !== 'init' ? args : [...(sub ? [sub] : []), ...args];
  const { values, positionals } = parseArgs({ args: all, strict: true, allowPositionals: true, options: SELECTOR_OPTIONS });
  const json = values.json === true;
  const now = Date.now();

  if (cmd === 'init') {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const ca = await loadOrCreateCa({
      dataDir: config.dataDir, organization: config.ca.organization,
      intermediateCert: values['intermediate-cert'] ? resolve(values['intermediate-cert']) : config.ca.intermediateCert,
      intermediateKey: values['intermediate-key'] ? resolve(values['intermediate-key']) : config.ca.intermediateKey,
      rootCert: values['root-cert'] ? resolve(values['root-cert']) : config.ca.rootCert,
    });
    const store = new SqliteStorage(join(config.dataDir, 'acme-ca.sqlite'));
    await store.migrate();
    await store.close();
    const configOut = resolve(values['config-out'] ?? 'acme-ca.yaml');
    const wrote = !existsSync(configOut);
    if (wrote) writeFileSync(configOut, commentedConfig(config), { mode: 0o644 });
    out(json, { dataDir: config.dataDir, root: ca.rootPath, issuer: ca.issuer.id, generated: ca.generated, config: wrote ? configOut : null },
      `${ca.generated ? 'Generated a new root and intermediate' : 'Using the existing CA'} in ${config.dataDir}\nRoot to trust: ${ca.rootPath}\nActive intermediate: ${ca.issuer.id.slice(0, 16)}\n${wrote ? `Configuration written to ${configOut} (start with ACME_CA_CONFIG=${configOut})` : `${configOut} exists; left unchanged`}`);
    return;
  }

  if (cmd === 'intermediate' && sub === 'rotate') {
    const previous = activeIssuerId(config.dataDir);
    const id = await rotateGeneratedIntermediate(config.dataDir, config.ca.organization);
    out(json, { active: id, previous }, `New intermediate ${id.slice(0, 16)} is active (previous ${previous?.slice(0, 16) ?? 'none'}); a running server switches within a second,\nand the previous one keeps signing its CRL until its certificates expire.`);
    return;
  }

  if (cmd === 'intermediate' && sub === 'alternate') {
    if (!values.chain) throw new UsageError('intermediate alternate needs --chain FILE');
    const id = values.issuer ? listIssuerIds(config.dataDir).find((i) => i.startsWith(values.issuer!)) : activeIssuerId(config.dataDir);
    if (!id) throw new UsageError(`no issuer ${values.issuer ?? '(active)'} in ${config.dataDir}`);
    const path = addAlternateChain(config.dataDir, id, readFileSync(resolve(values.chain), 'utf8'));
    out(json, { issuer: id, file: path }, `Alternate chain for ${id.slice(0, 16)} written to ${path}; send SIGHUP to a running server to offer it.`);
    return;
  }

  if (cmd === 'cert' && sub === 'list') {
    const status = values.status as CertificateSearchStatus | undefined;
    if (status && !['valid', 'expired', 'revoked'].includes(status)) throw new UsageError('--status must be valid, expired or revoked');
    const limit = values.limit ? Number(values.limit) : 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError('--limit must be 1-10000');
    const items = await withExistingStore(config, (s) => s.searchCertificates({
      limit, now, ...(status ? { status } : {}), ...(values.account ? { accountId: values.account } : {}), ...(values.scope ? { scope: values.scope } : {}),
      ...(values.suffix ? { identifierSuffix: values.suffix } : {}),
    }));
    out(json, { certificates: items }, items.length === 0 ? 'no certificates' : items.map((c) => {
      const state = c.status === 'revoked' ? 'revoked' : c.notAfter <= now ? 'expired' : 'valid';
      return `${c.serial}  ${state.padEnd(7)}  ${new Date(c.notAfter).toISOString()}  ${c.scope ?? '-'}/${c.profile ?? '-'}  ${c.identifiers.map((i) => i.value).join(',')}`;
    }).join('\n'));
    return;
  }

  if (cmd === 'cert' && sub === 'show') {
    const serial = positionals[0];
    if (!serial) throw new UsageError('cert show needs a serial');
    const cert = await withExistingStore(config, (s) => s.getCertificateBySerial(normalizeSerialHex(serial.replace(/:/g, ''))));
    if (!cert) throw new OperationError(`no certificate with serial ${serial}`);
    const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(cert.der).toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
    const view = { serial: cert.serial, account: cert.accountId, order: cert.orderId, names: cert.nameSet.split(','), scope: cert.scope, profile: cert.profile,
      status: cert.status, notBefore: new Date(cert.notBefore).toISOString(), notAfter: new Date(cert.notAfter).toISOString(), issuer: cert.issuerId,
      logIndex: cert.logIndex, revokedAt: cert.revokedAt ? new Date(cert.revokedAt).toISOString() : null, revocationReason: cert.revocationReason,
      renewNowAt: cert.renewNowAt ? new Date(cert.renewNowAt).toISOString() : null };
    if (values.pem) { process.stdout.write(pem + cert.chainPem); return; }
    out(json, { ...view, pem }, Object.entries(view).map(([k, v]) => `${k.padEnd(17)}${Array.isArray(v) ? v.join(', ') : v ?? '-'}`).join('\n'));
    return;
  }

  if ((cmd === 'cert' && sub === 'revoke') || cmd === 'renew-now') {
    const sel = selector(values, positionals, config.dataDir);
    if (cmd === 'renew-now') {
      const r = await withExistingStore(config, (s) => renewNow(s, sel, values.reason ?? 'operator request', 'cli', now));
      out(json, r, `${r.selected} certificate(s) told to renew now (log entry ${r.logIndex}); ACME clients that poll renewalInfo will renew at their next check.`);
      return;
    }
    const reason = values.reason === undefined ? 0 : Number(values.reason);
    if (![0, 1, 2, 3, 4, 5, 6, 8, 9, 10].includes(reason)) throw new UsageError('--reason must be an RFC 5280 code 0-10 other than 7');
    const r = await withExistingStore(config, (s) => revokeSelection(s, sel, reason, 'cli', now));
    out(json, r, `${r.revoked} certificate(s) revoked; the server's CRLs list them within a minute.`);
    return;
  }
  throw new UsageError(`unknown command "${cmd} ${sub ?? ''}"`);
}
