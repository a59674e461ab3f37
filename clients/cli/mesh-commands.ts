import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { writeFileAtomic } from '../../server/ca/ca-material.js';
import { OID } from '../../server/ca/certificate-builder.js';
import { subtle } from '../../server/ca/crypto-engine.js';
import { pemCertificates, toPem } from '../../server/ca/pem.js';
import { parseDuration, type Config } from '../../server/config.js';
import { appRoleView, credentialTtl, DEFAULT_APPROLE_TOKEN_TTL, DEFAULT_SECRET_ID_TTL, DEFAULT_TOKEN_TTL } from '../../server/mesh/admin-routes.js';
import { checkScopeDefined, createAppRole, createMeshToken, createSecretId, tokenView } from '../../server/mesh/credentials.js';
import { PolicyStore } from '../../server/policy/policy-store.js';
import { SqliteMeshStore } from '../../storage/sqlite/mesh-store.js';
import { out, withStore } from './data-store.js';
import { loadPolicy, OperationError, UsageError } from './admin-commands.js';

// `acme-ca mesh ...`: the operator's side of the mesh signing fronts. Credential commands work on
// the local data folder (like `acme-ca token`); `mesh issue` talks to a server over HTTPS, makes
// the intermediate's key on this machine (it is never sent anywhere) and writes the files a mesh
// reads its CA from.

export const MESH_HELP = `  acme-ca mesh token create --scope MESH_SCOPE --name NAME [--ttl 90d|never] [--json]
                                         a mesh token (Vault X-Vault-Token or Bearer); shown once
  acme-ca mesh token list [--json]       list mesh tokens
  acme-ca mesh token revoke TOKEN_ID     revoke a mesh token
  acme-ca mesh approle create --name NAME --scope MESH_SCOPE [--token-ttl 1h] [--json]
                                         an AppRole; prints its role_id
  acme-ca mesh approle secret-id NAME [--ttl 30d|never] [--json]
                                         a new secret_id for the AppRole; shown once
  acme-ca mesh approle list [--json]     list AppRoles
  acme-ca mesh approle revoke NAME       revoke an AppRole, its secret_ids and its tokens
  acme-ca mesh issue --url URL --trust-domain TD --layout LAYOUT --out DIR
                [--token T | --cert FILE --key FILE] [--ca ROOT.pem] [--ttl 720h] [--path-len N]
                [--key-type p256|p384|rsa2048|rsa3072|rsa4096] [--cn NAME] [--org NAME]
                [--renew [--renew-before 10d]] [--force] [--json]
                                         generate a CA key here, have the server sign it and write
                                         LAYOUT: istio, istio-tls, linkerd, kuma, spire-disk, generic
`;

const LAYOUTS = ['istio', 'istio-tls', 'linkerd', 'kuma', 'spire-disk', 'generic'] as const;
type Layout = typeof LAYOUTS[number];
const KEY_TYPES = ['p256', 'p384', 'rsa2048', 'rsa3072', 'rsa4096'] as const;
type KeyType = typeof KEY_TYPES[number];
const REQUEST_TIMEOUT_MS = 30_000;

const PROFILE: Record<Layout, string> = { istio: 'istio', 'istio-tls': 'istio', linkerd: 'linkerd', kuma: 'kuma', 'spire-disk': 'spire', generic: 'generic' };

/** The files each mesh reads; `cert` is the one --renew looks at. */
interface LayoutFiles { cert: string; key: string; files: Array<{ name: string; content: 'cert' | 'key' | 'certChain' | 'certFullChain' | 'root' }> }

export const LAYOUT_FILES: Record<Layout, LayoutFiles> = {
  // istiod plug-in CA (ROOT_CA_DIR / the cacerts Secret): cert-chain.pem is ca-cert + intermediates + root.
  istio: { cert: 'ca-cert.pem', key: 'ca-key.pem', files: [{ name: 'ca-key.pem', content: 'key' }, { name: 'root-cert.pem', content: 'root' }, { name: 'cert-chain.pem', content: 'certFullChain' }, { name: 'ca-cert.pem', content: 'cert' }] },
  // The same as a kubernetes.io/tls Secret, which istiod also accepts (tls.crt, tls.key, ca.crt).
  'istio-tls': { cert: 'tls.crt', key: 'tls.key', files: [{ name: 'tls.key', content: 'key' }, { name: 'ca.crt', content: 'root' }, { name: 'tls.crt', content: 'certChain' }] },
  // Linkerd identity issuer (linkerd.io/tls scheme): crt.pem may hold the chain; ca.crt is the trust anchor.
  linkerd: { cert: 'crt.pem', key: 'key.pem', files: [{ name: 'key.pem', content: 'key' }, { name: 'ca.crt', content: 'root' }, { name: 'crt.pem', content: 'certChain' }] },
  // Kuma provided CA / MeshIdentity Bundled: every certificate in the file is checked as a CA.
  kuma: { cert: 'ca.pem', key: 'ca-key.pem', files: [{ name: 'ca-key.pem', content: 'key' }, { name: 'ca.pem', content: 'certFullChain' }] },
  // SPIRE UpstreamAuthority "disk": cert_file_path, key_file_path, bundle_file_path.
  'spire-disk': { cert: 'upstream_ca.pem', key: 'upstream_ca.key', files: [{ name: 'upstream_ca.key', content: 'key' }, { name: 'bundle.pem', content: 'root' }, { name: 'upstream_ca.pem', content: 'certChain' }] },
  generic: { cert: 'cert.pem', key: 'key.pem', files: [{ name: 'key.pem', content: 'key' }, { name: 'root.pem', content: 'root' }, { name: 'chain.pem', content: 'certChain' }, { name: 'cert.pem', content: 'cert' }] },
};

const fmtTime = (ms: number | null): string => (ms === null ? 'never' : new Date(ms).toISOString());

const withMeshStore = <T>(config: Config, fn: (store: SqliteMeshStore) => Promise<T>): Promise<T> =>
  withStore(config, (store) => fn(new SqliteMeshStore(store.db)));

const meshPolicyOf = (config: Config): PolicyStore => loadPolicy(config);

function ttlOption(text: string | undefined, dflt: string, flag: string): number | null {
  try {
    return credentialTtl(text, dflt, flag);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** `acme-ca mesh <sub> ...`; config is loaded only by the commands that use the data folder. */
export async function runMeshCommand(sub: string | undefined, args: string[], config: () => Config): Promise<void> {
  if (sub === 'issue') return issue(args);
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest, strict: true, allowPositionals: true,
    options: { scope: { type: 'string' }, name: { type: 'string' }, ttl: { type: 'string' }, 'token-ttl': { type: 'string' }, json: { type: 'boolean' } },
  });
  const json = values.json === true;
  const now = Date.now();

  if (sub === 'token' && action === 'create') {
    if (!values.scope || !values.name) throw new UsageError('mesh token create needs --scope and --name');
    const c = config();
    try { checkScopeDefined(meshPolicyOf(c).current().mesh, values.scope); } catch (e) { throw new OperationError((e as Error).message); }
    const ttlMs = ttlOption(values.ttl, DEFAULT_TOKEN_TTL, '--ttl');
    const created = await withMeshStore(c, (s) => createMeshToken(s, { name: values.name!, scope: values.scope!, ttlMs }, now));
    out(json, created, `Token id:    ${created.id}\nToken:       ${created.token}\nMesh scope:  ${created.scope}\nExpires:     ${fmtTime(created.expiresAt)}\n\nThe token is shown only now. Vault clients send it as X-Vault-Token (VAULT_TOKEN); the native API as "Authorization: Bearer <token>".`);
    return;
  }
  if (sub === 'token' && action === 'list') {
    const tokens = await withMeshStore(config(), async (s) => (await s.listTokens(now)).map(tokenView));
    out(json, { tokens }, tokens.length === 0 ? 'no mesh tokens' : tokens.map((t) => `${t.id}  ${t.name}  scope=${t.scope}  source=${t.source}  expires=${fmtTime(t.expiresAt)}${t.revokedAt ? '  REVOKED' : ''}`).join('\n'));
    return;
  }
  if (sub === 'token' && action === 'revoke') {
    const id = positionals[0];
    if (!id) throw new UsageError('mesh token revoke needs the token id');
    if (!(await withMeshStore(config(), (s) => s.revokeToken(id, now)))) throw new OperationError(`mesh token ${id} does not exist or is already revoked`);
    out(json, { id, revoked: true }, `mesh token ${id} revoked`);
    return;
  }
  if (sub === 'approle' && action === 'create') {
    if (!values.scope || !values.name) throw new UsageError('mesh approle create needs --scope and --name');
    const c = config();
    try { checkScopeDefined(meshPolicyOf(c).current().mesh, values.scope); } catch (e) { throw new OperationError((e as Error).message); }
    const tokenTtlMs = ttlOption(values['token-ttl'], DEFAULT_APPROLE_TOKEN_TTL, '--token-ttl');
    if (tokenTtlMs === null) throw new UsageError('--token-ttl must be a duration: tokens from an AppRole login always expire');
    const role = await withMeshStore(c, async (s) => {
      try { return await createAppRole(s, { name: values.name!, scope: values.scope!, tokenTtlMs }, now); } catch (e) { throw new OperationError((e as Error).message); }
    });
    out(json, appRoleView(role), `AppRole:     ${role.name}\nrole_id:     ${role.roleId}\nMesh scope:  ${role.scope}\nToken TTL:   ${Math.round(role.tokenTtlMs / 1000)}s\n\nNext: acme-ca mesh approle secret-id ${role.name}`);
    return;
  }
  if (sub === 'approle' && action === 'secret-id') {
    const name = positionals[0];
    if (!name) throw new UsageError('mesh approle secret-id needs the AppRole name');
    const ttlMs = ttlOption(values.ttl, DEFAULT_SECRET_ID_TTL, '--ttl');
    const created = await withMeshStore(config(), async (s) => {
      try { return await createSecretId(s, name, ttlMs, now); } catch (e) { throw new OperationError((e as Error).message); }
    });
    out(json, created, `role_id:             ${created.roleId}\nsecret_id:           ${created.secretId}\nsecret_id_accessor:  ${created.secretIdAccessor}\nExpires:             ${fmtTime(created.expiresAt)}\n\nThe secret_id is shown only now.`);
    return;
  }
  if (sub === 'approle' && action === 'list') {
    const roles = await withMeshStore(config(), async (s) => (await s.listAppRoles()).map(appRoleView));
    out(json, { approles: roles }, roles.length === 0 ? 'no AppRoles' : roles.map((r) => `${String(r.name)}  role_id=${String(r.roleId)}  scope=${String(r.scope)}${r.revokedAt ? '  REVOKED' : ''}`).join('\n'));
    return;
  }
  if (sub === 'approle' && action === 'revoke') {
    const name = positionals[0];
    if (!name) throw new UsageError('mesh approle revoke needs the AppRole name');
    if (!(await withMeshStore(config(), (s) => s.revokeAppRole(name, now)))) throw new OperationError(`AppRole ${name} does not exist or is already revoked`);
    out(json, { name, revoked: true }, `AppRole ${name} revoked, with its secret_ids and tokens`);
    return;
  }
  throw new UsageError(`unknown command "mesh ${sub ?? ''} ${action ?? ''}"`.trimEnd());
}

// --- mesh issue ---------------------------------------------------------------------------------

function generateKey(type: KeyType): KeyObject {
  if (type === 'p256' || type === 'p384') return generateKeyPairSync('ec', { namedCurve: type === 'p256' ? 'prime256v1' : 'secp384r1' }).privateKey;
  return generateKeyPairSync('rsa', { modulusLength: Number(type.slice(3)) }).privateKey;
}

/** A PKCS#10 request for a CA: subject O/CN and the URI SAN spiffe://<trust domain>. */
async function buildCsr(key: KeyObject, subject: { commonName: string; organization?: string }, uri: string): Promise<string> {
  const ec = key.asymmetricKeyType === 'ec';
  const curve = ec ? key.export({ format: 'jwk' }).crv! : '';
  const algorithm = ec ? { name: 'ECDSA', namedCurve: curve } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const hash = curve === 'P-384' ? 'SHA-384' : 'SHA-256';
  const cryptoKey = await subtle.importKey('pkcs8', key.export({ format: 'der', type: 'pkcs8' }), algorithm, false, ['sign']);
  const csr = new pkijs.CertificationRequest();
  if (subject.organization) csr.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: OID.organization, value: new asn1js.Utf8String({ value: subject.organization }) }));
  csr.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: subject.commonName }) }));
  csr.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' })));
  const san = new pkijs.GeneralNames({ names: [new pkijs.GeneralName({ type: 6, value: uri })] });
  csr.attributes = [new pkijs.Attribute({
    type: OID.extensionRequest,
    values: [new pkijs.Extensions({ extensions: [new pkijs.Extension({ extnID: OID.subjectAltName, critical: false, extnValue: san.toSchema().toBER(false) })] }).toSchema()],
  })];
  await csr.sign(cryptoKey, hash);
  return toPem('CERTIFICATE REQUEST', new Uint8Array(csr.toSchema().toBER(false)));
}

interface IssueResponse { certificate: string; chain: string[]; root: string; serial: string; notAfter: string; trustDomain: string; warnings: string[]; logEntry: { index: number } }

function post(url: URL, body: unknown, tls: { ca?: Buffer; cert?: Buffer; key?: Buffer }, token: string | undefined): Promise<{ status: number; text: string }> {
  return new Promise((resolvePost, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = https.request(url, {
      method: 'POST', timeout: REQUEST_TIMEOUT_MS, ...tls,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length, Accept: 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolvePost({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} within ${REQUEST_TIMEOUT_MS / 1000}s`)));
    req.on('error', reject);
    req.end(data);
  });
}

/** Whether the certificate in `file` is due for renewal: within `beforeMs` of its end, or past 2/3 of its life. */
export function renewalDue(file: string, beforeMs: number | null, now: number): { due: boolean; notAfter: number; reason: string } {
  const ders = pemCertificates(readFileSync(file, 'utf8'));
  if (ders.length === 0) return { due: true, notAfter: 0, reason: `${file} holds no certificate` };
  const x = new X509Certificate(Buffer.from(ders[0]));
  const notBefore = new Date(x.validFrom).getTime();
  const notAfter = new Date(x.validTo).getTime();
  const threshold = beforeMs ?? Math.floor((notAfter - notBefore) / 3);
  const left = notAfter - now;
  return left <= threshold
    ? { due: true, notAfter, reason: `${Math.max(0, Math.floor(left / 3_600_000))}h left, renewing within ${Math.round(threshold / 3_600_000)}h of the end` }
    : { due: false, notAfter, reason: `${Math.floor(left / 3_600_000)}h left; renewal starts ${Math.round(threshold / 3_600_000)}h before the end` };
}

async function issue(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args, strict: true,
    options: {
      url: { type: 'string' }, 'trust-domain': { type: 'string' }, layout: { type: 'string' }, out: { type: 'string' },
      token: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, ca: { type: 'string' }, ttl: { type: 'string' },
      'path-len': { type: 'string' }, 'key-type': { type: 'string' }, cn: { type: 'string' }, org: { type: 'string' },
      renew: { type: 'boolean' }, 'renew-before': { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' },
    },
  });
  const json = values.json === true;
  if (!values.url || !values['trust-domain'] || !values.layout || !values.out) throw new UsageError('mesh issue needs --url, --trust-domain, --layout and --out');
  if (!(LAYOUTS as readonly string[]).includes(values.layout)) throw new UsageError(`unknown --layout "${values.layout}"; use ${LAYOUTS.join(', ')}`);
  const layout = values.layout as Layout;
  const keyType = (values['key-type'] ?? 'p256') as KeyType;
  if (!(KEY_TYPES as readonly string[]).includes(keyType)) throw new UsageError(`unknown --key-type "${keyType}"; use ${KEY_TYPES.join(', ')}`);
  if (layout === 'linkerd' && keyType !== 'p256') throw new UsageError('Linkerd issuers must use an ECDSA P-256 key (--key-type p256)');
  const td = values['trust-domain'];
  if (!/^[a-z0-9._-]+$/.test(td)) throw new UsageError(`--trust-domain "${td}" is not a SPIFFE trust domain (lower-case letters, digits, ".", "-", "_")`);
  let ttlSeconds: number | undefined;
  if (values.ttl !== undefined) {
    const ms = parseDuration(values.ttl);
    if (!ms) throw new UsageError(`--ttl ${values.ttl} is not a duration such as 720h or 30d`);
    ttlSeconds = Math.round(ms / 1000);
  }
  // SPIRE's disk UpstreamAuthority signs SPIRE's own CA below this one, so it needs pathLen ≥ 1.
  const pathLen = values['path-len'] === undefined ? (layout === 'spire-disk' ? 1 : 0) : Number(values['path-len']);
  if (!Number.isInteger(pathLen) || pathLen < 0 || pathLen > 16) throw new UsageError('--path-len must be an integer from 0 to 16');
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError('--cert and --key go together');
  const token = values.token ?? process.env.ACME_CA_MESH_TOKEN;
  if (!token && !values.cert) throw new UsageError('give --token (or ACME_CA_MESH_TOKEN) or a client certificate with --cert and --key');
  let renewBeforeMs: number | null = null;
  if (values['renew-before'] !== undefined) {
    renewBeforeMs = parseDuration(values['renew-before']);
    if (!renewBeforeMs) throw new UsageError(`--renew-before ${values['renew-before']} is not a duration such as 10d`);
  }

  const dir = resolve(values.out);
  const files = LAYOUT_FILES[layout];
  const certFile = join(dir, files.cert);
  if (existsSync(certFile)) {
    if (values.renew && !values.force) {
      const due = renewalDue(certFile, renewBeforeMs, Date.now());
      if (!due.due) {
        out(json, { layout, dir, renewed: false, notAfter: new Date(due.notAfter).toISOString(), reason: due.reason }, `not due for renewal: ${due.reason}`);
        return;
      }
    } else if (!values.renew && !values.force) {
      throw new UsageError(`${certFile} exists; use --renew to rotate it before it expires, or --force to replace it now`);
    }
  }

  let base: URL;
  try { base = new URL(values.url); } catch { throw new UsageError(`--url ${values.url} is not a URL`); }
  if (base.protocol !== 'https:') throw new UsageError('--url must be https://');
  const tls = {
    ...(values.ca ? { ca: readFileSync(resolve(values.ca)) } : {}),
    ...(values.cert ? { cert: readFileSync(resolve(values.cert)), key: readFileSync(resolve(values.key!)) } : {}),
  };

  const key = generateKey(keyType);
  const csr = await buildCsr(key, { commonName: values.cn ?? `${td} ${layout} intermediate CA`, organization: values.org }, `spiffe://${td}`);
  const url = new URL(`${base.pathname.replace(/\/+$/, '')}/api/v1/mesh/intermediates`, base);
  const res = await post(url, { csr, trustDomain: td, profile: PROFILE[layout], maxPathLength: pathLen, ...(ttlSeconds ? { ttlSeconds } : {}) }, tls, token);
  if (res.status !== 200) {
    let detail = res.text;
    try { detail = (JSON.parse(res.text) as { detail?: string }).detail ?? res.text; } catch { /* not JSON: show the text */ }
    throw new OperationError(`the server refused (HTTP ${res.status}): ${detail}`);
  }
  const r = JSON.parse(res.text) as IssueResponse;
  // Never write a certificate that is not for the key just made (a confused or hostile answer).
  const x = new X509Certificate(r.certificate);
  if (!x.publicKey.equals(createPublicKey(key))) throw new OperationError('the signed certificate does not carry the key generated for it; nothing was written');
  if (!x.ca) throw new OperationError('the signed certificate is not a CA; nothing was written');

  const keyPem = key.export({ format: 'pem', type: 'pkcs8' }).toString();
  const intermediates = r.chain.slice(0, -1);
  const content = { cert: r.certificate, key: keyPem, certChain: [r.certificate, ...intermediates].join(''), certFullChain: [r.certificate, ...intermediates, r.root].join(''), root: r.root };
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // Key first, the certificate the mesh watches last: each file is replaced atomically, and a
  // reader that sees the new certificate also finds its key.
  for (const f of files.files) writeFileAtomic(join(dir, f.name), content[f.content], f.content === 'key');
  createPrivateKey(keyPem); // the written key parses (a truncated write would throw before we report success)
  const written = files.files.map((f) => join(dir, f.name));
  out(json, { layout, dir, files: written, renewed: values.renew === true, serial: r.serial, notAfter: r.notAfter, trustDomain: r.trustDomain, logIndex: r.logEntry.index, warnings: r.warnings },
    `${values.renew ? 'Renewed' : 'Issued'} ${layout} CA for ${r.trustDomain}: serial ${r.serial}, valid until ${r.notAfter} (issuance log entry ${r.logEntry.index})\n${written.map((f) => `  ${f}`).join('\n')}${r.warnings.length > 0 ? `\nwarnings:\n${r.warnings.map((w) => `  ${w}`).join('\n')}` : ''}\nThe private key was generated here and never sent.`);
}
