import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

// One schema is the source of the configuration's keys, environment variables, defaults,
// validation and the README reference table (see test/config.test.ts, which checks the README).

type Kind = 'string' | 'url' | 'port' | 'hostport' | 'duration' | 'boolean' | 'integer' | 'path' | 'level' | 'stringList';

interface Field {
  key: string;
  env?: string;
  kind: Kind;
  default: string | number | boolean | string[] | null;
  description: string;
  min?: number;
  max?: number;
}

export const CONFIG_FIELDS: readonly Field[] = [
  { key: 'dataDir', env: 'ACME_CA_DATA_DIR', kind: 'path', default: './data', description: 'Folder for the database, CA keys and certificates (created 0700).' },
  { key: 'listen', env: 'ACME_CA_LISTEN', kind: 'url', default: 'https://localhost:14000', description: 'HTTPS address the ACME server listens on (https://host:port).' },
  { key: 'externalUrl', env: 'ACME_CA_EXTERNAL_URL', kind: 'url', default: null, description: 'Base URL clients use to reach the server, when it differs from `listen` (e.g. behind a load balancer).' },
  { key: 'opsListen', env: 'ACME_CA_OPS_LISTEN', kind: 'url', default: null, description: 'Separate address (http:// or https://host:port) for /healthz, /readyz, /metrics and the admin API; on the ACME listener when unset.' },
  { key: 'adminClientCertNames', env: 'ACME_CA_ADMIN_CLIENT_CERT_NAMES', kind: 'stringList', default: [], description: 'Names (DNS, IP or URI SANs) of client certificates issued by this CA that may use the admin API without a token (mTLS); the listener then asks clients for an optional certificate.' },
  { key: 'logLevel', env: 'ACME_CA_LOG_LEVEL', kind: 'level', default: 'info', description: 'Log level: fatal, error, warn, info, debug, trace or silent.' },
  { key: 'serverNames', env: 'ACME_CA_SERVER_NAMES', kind: 'stringList', default: [], description: 'Extra DNS names or IPs for the server\'s own HTTPS certificate (comma-separated in the environment).' },
  { key: 'acme.termsOfService', env: 'ACME_CA_TERMS_OF_SERVICE', kind: 'url', default: null, description: 'URL of the terms of service; when set, new accounts must agree to them.' },
  { key: 'acme.website', env: 'ACME_CA_WEBSITE', kind: 'url', default: null, description: 'URL shown as `meta.website` in the directory.' },
  { key: 'acme.externalAccountRequired', env: 'ACME_CA_EAB_REQUIRED', kind: 'boolean', default: false, description: 'Advertise and require External Account Binding on newAccount.' },
  { key: 'acme.nonceLifetime', kind: 'duration', default: '1h', description: 'How long an unused nonce stays valid.' },
  { key: 'acme.orderLifetime', kind: 'duration', default: '24h', description: 'How long a pending order and its authorizations stay valid.' },
  { key: 'acme.ordersPageSize', kind: 'integer', default: 100, min: 1, max: 1000, description: 'Orders per page in an account\'s orders list.' },
  { key: 'acme.maxBodyBytes', kind: 'integer', default: 65536, min: 1024, max: 1048576, description: 'Largest accepted request body.' },
  { key: 'acme.finalizeWait', kind: 'duration', default: '2s', description: 'How long finalize waits for the signature before answering `processing` (0 answers at once).' },
  { key: 'acme.validationWait', kind: 'duration', default: '1s', description: 'How long a challenge POST waits for the validation result before answering `processing`.' },
  { key: 'acme.retryAfterSeconds', kind: 'integer', default: 1, min: 1, max: 60, description: '`Retry-After` on pending authorizations and processing orders.' },
  { key: 'policyFile', env: 'ACME_CA_POLICY_FILE', kind: 'path', default: null, description: 'Issuance policy file (profiles, scopes, rate limits; see docs/policy.md). Reloaded on SIGHUP. Built-in permissive policy when unset.' },
  { key: 'certificates.backdate', kind: 'duration', default: '1m', description: 'How far notBefore is set in the past, to absorb clock skew.' },
  { key: 'validation.http01Port', env: 'ACME_CA_HTTP01_PORT', kind: 'port', default: 80, description: 'Port the CA connects to for http-01.' },
  { key: 'validation.tlsAlpn01Port', env: 'ACME_CA_TLSALPN01_PORT', kind: 'port', default: 443, description: 'Port the CA connects to for tls-alpn-01.' },
  { key: 'validation.dnsResolver', env: 'ACME_CA_DNS_RESOLVER', kind: 'hostport', default: null, description: 'DNS server (host:port) for dns-01 TXT lookups and for resolving names to validate; system resolver when unset.' },
  { key: 'validation.timeout', kind: 'duration', default: '5s', description: 'Timeout of one validation attempt.' },
  { key: 'validation.attempts', kind: 'integer', default: 3, min: 1, max: 10, description: 'Attempts per challenge before it is marked invalid.' },
  { key: 'validation.retryDelay', kind: 'duration', default: '1s', description: 'Delay between validation attempts.' },
  { key: 'log.origin', env: 'ACME_CA_LOG_ORIGIN', kind: 'string', default: null, description: 'Origin line of the issuance log\'s checkpoints and name of its key; `<externalUrl host>/issuance-log` when unset.' },
  { key: 'log.checkpointDelay', kind: 'duration', default: '1s', description: 'Longest delay between an append and the signed checkpoint that covers it (appends within it share one signature).' },
  { key: 'log.checkpointInterval', kind: 'duration', default: '60s', description: 'A checkpoint is confirmed at least this often while the log is idle.' },
  { key: 'log.readToken', env: 'ACME_CA_LOG_READ_TOKEN', kind: 'string', default: null, description: 'Bearer token required by the log query API; the API is open to anyone who can reach the server when unset.' },
  { key: 'crl.listen', env: 'ACME_CA_CRL_LISTEN', kind: 'url', default: null, description: 'Plain-HTTP address (http://host:port) serving CRLs at /crl/<issuer>.crl; CRLs are also served on the ACME listener.' },
  { key: 'crl.baseUrl', env: 'ACME_CA_CRL_BASE_URL', kind: 'url', default: null, description: 'Base URL written into CRL Distribution Points; `crl.listen` (or the external URL) when unset.' },
  { key: 'crl.lifetime', kind: 'duration', default: '24h', description: 'nextUpdate - thisUpdate of each CRL; CRLs are re-signed when half of it has passed.' },
  { key: 'crl.debounce', kind: 'duration', default: '2s', description: 'Longest delay between a revocation and the CRL that lists it.' },
  { key: 'crl.cdpThreshold', kind: 'duration', default: '7d', description: 'Certificates of profiles longer than this carry a CRL Distribution Point; shorter-lived ones omit it.' },
  { key: 'ca.organization', kind: 'string', default: 'ACME CA', description: 'Organization name in generated CA certificates.' },
  { key: 'ca.intermediateCert', env: 'ACME_CA_INTERMEDIATE_CERT', kind: 'path', default: null, description: 'PEM of an existing intermediate certificate to use instead of generating a CA; its chain up to the root may follow it.' },
  { key: 'ca.intermediateKey', env: 'ACME_CA_INTERMEDIATE_KEY', kind: 'path', default: null, description: 'PEM (PKCS#8) private key of `ca.intermediateCert`.' },
  { key: 'ca.rootCert', env: 'ACME_CA_ROOT_CERT', kind: 'path', default: null, description: 'PEM of the root that signed `ca.intermediateCert` (written to `<dataDir>/root.pem`).' },
  { key: 'mesh.vaultPrefix', env: 'ACME_CA_MESH_VAULT_PREFIX', kind: 'string', default: '/vault', description: 'Path under which the Vault-compatible signing API is served (clients set `VAULT_ADDR=https://host:port/vault`); `/` serves it at the root. See docs/mesh.md.' },
  { key: 'mesh.clientCertAuth', env: 'ACME_CA_MESH_CLIENT_CERT_AUTH', kind: 'boolean', default: false, description: 'Ask HTTPS clients for a certificate (optional for them) so that mesh credentials can log in with certificates issued by this CA (`mesh.certRoles`).' },
];

export interface Config {
  dataDir: string;
  listen: URL;
  externalUrl: URL;
  opsListen: URL | null;
  adminClientCertNames: string[];
  logLevel: string;
  serverNames: string[];
  acme: {
    termsOfService: string | null;
    website: string | null;
    externalAccountRequired: boolean;
    nonceLifetimeMs: number;
    orderLifetimeMs: number;
    ordersPageSize: number;
    maxBodyBytes: number;
    retryAfterSeconds: number;
    finalizeWaitMs: number;
    validationWaitMs: number;
  };
  policyFile: string | null;
  certificates: { backdateMs: number };
  validation: {
    http01Port: number;
    tlsAlpn01Port: number;
    dnsResolver: string | null;
    timeoutMs: number;
    attempts: number;
    retryDelayMs: number;
  };
  log: {
    origin: string;
    checkpointDelayMs: number;
    checkpointIntervalMs: number;
    readToken: string | null;
  };
  crl: {
    listen: URL | null;
    baseUrl: string;
    lifetimeMs: number;
    debounceMs: number;
    cdpThresholdMs: number;
  };
  ca: {
    organization: string;
    intermediateCert: string | null;
    intermediateKey: string | null;
    rootCert: string | null;
  };
  mesh: { vaultPrefix: string; clientCertAuth: boolean };
  /** Where the configuration file was read from, if any. */
  configFile: string | null;
}

export class ConfigError extends Error {}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(v: string | number): number | null {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v * 1000 : null;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  let total = 0;
  let rest = v.trim();
  if (rest === '') return null;
  // Accepts compound forms such as "1h30m" as well as "24h".
  while (rest.length > 0) {
    const m = /^(\d+)(ms|s|m|h|d)/.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * UNIT_MS[m[2]];
    rest = rest.slice(m[0].length);
  }
  return total;
}

type Raw = string | number | boolean | string[] | null;

function coerce(field: Field, value: unknown, source: string): Raw {
  const where = `${field.key} (from ${source})`;
  const fail = (what: string): never => {
    throw new ConfigError(`invalid configuration: ${where} = ${JSON.stringify(value)}: ${what}`);
  };
  if (value === null) return null;
  switch (field.kind) {
    case 'string':
    case 'path':
      if (typeof value !== 'string' || value.length === 0) fail('expected a non-empty string');
      return value as string;
    case 'level':
      if (typeof value !== 'string' || !['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(value)) fail('expected one of fatal, error, warn, info, debug, trace, silent');
      return value as string;
    case 'url': {
      if (typeof value !== 'string') fail('expected a URL');
      let u: URL | null = null;
      try { u = new URL(value as string); } catch { fail('not a valid URL'); }
      if (field.key === 'listen' && u!.protocol !== 'https:') fail('must be an https:// URL (ACME requires TLS)');
      if (u!.protocol !== 'https:' && u!.protocol !== 'http:') fail('must be an http(s) URL');
      return value as string;
    }
    case 'port': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
      if (!Number.isInteger(n) || n < 1 || n > 65535) fail('expected a port number 1-65535');
      return n;
    }
    case 'integer': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : NaN;
      if (!Number.isInteger(n)) fail('expected an integer');
      if (field.min !== undefined && n < field.min) fail(`must be at least ${field.min}`);
      if (field.max !== undefined && n > field.max) fail(`must be at most ${field.max}`);
      return n;
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1') return true;
      if (value === 'false' || value === '0') return false;
      return fail('expected true or false');
    case 'duration':
      if ((typeof value !== 'string' && typeof value !== 'number') || parseDuration(value) === null) fail('expected a duration such as 90s, 15m, 24h or 7d');
      return value as string;
    case 'hostport': {
      if (typeof value !== 'string') fail('expected host:port');
      const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(value as string);
      if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) fail('expected host:port, e.g. 127.0.0.1:53 or [::1]:53');
      return value as string;
    }
    case 'stringList':
      if (typeof value === 'string') return value.split(',').map((s) => s.trim()).filter(Boolean);
      if (Array.isArray(value) && value.every((x) => typeof x === 'string')) return value as string[];
      return fail('expected a list of strings');
  }
}

function lookup(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || !(part in cur)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function unknownKeys(obj: unknown, prefix = ''): string[] {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (CONFIG_FIELDS.some((f) => f.key === key)) continue;
    if (CONFIG_FIELDS.some((f) => f.key.startsWith(`${key}.`))) out.push(...unknownKeys(v, key));
    else out.push(key);
  }
  return out;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  const configFile = env.ACME_CA_CONFIG ? resolve(cwd, env.ACME_CA_CONFIG) : null;
  let fileValues: unknown = {};
  if (configFile) {
    let text: string;
    try { text = readFileSync(configFile, 'utf8'); } catch (e) {
      throw new ConfigError(`cannot read configuration file ${configFile} (ACME_CA_CONFIG): ${(e as Error).message}`);
    }
    try { fileValues = parseYaml(text) ?? {}; } catch (e) {
      throw new ConfigError(`configuration file ${configFile} is not valid YAML: ${(e as Error).message}`);
    }
    if (typeof fileValues !== 'object' || Array.isArray(fileValues)) throw new ConfigError(`configuration file ${configFile} must hold a mapping of keys`);
    const unknown = unknownKeys(fileValues);
    if (unknown.length > 0) throw new ConfigError(`configuration file ${configFile}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; see the configuration reference in README.md`);
  }
  const values = new Map<string, Raw>();
  for (const f of CONFIG_FIELDS) {
    let v: Raw = f.default;
    const fromFile = lookup(fileValues, f.key);
    if (fromFile !== undefined) v = coerce(f, fromFile, `file ${configFile}`);
    if (f.env && env[f.env] !== undefined && env[f.env] !== '') v = coerce(f, env[f.env], `environment ${f.env}`);
    values.set(f.key, v);
  }
  const s = (k: string): string => values.get(k) as string;
  const sn = (k: string): string | null => (values.get(k) as string | null) ?? null;
  const n = (k: string): number => values.get(k) as number;
  const d = (k: string): number => parseDuration(values.get(k) as string | number)!;
  const listen = new URL(s('listen'));
  const external = sn('externalUrl');
  const ca = {
    organization: s('ca.organization'),
    intermediateCert: sn('ca.intermediateCert') ? resolve(cwd, s('ca.intermediateCert')) : null,
    intermediateKey: sn('ca.intermediateKey') ? resolve(cwd, s('ca.intermediateKey')) : null,
    rootCert: sn('ca.rootCert') ? resolve(cwd, s('ca.rootCert')) : null,
  };
  const crlListen = sn('crl.listen');
  if (crlListen && !sn('crl.baseUrl') && ['0.0.0.0', '[::]'].includes(new URL(crlListen).hostname)) {
    throw new ConfigError(`invalid configuration: crl.listen ${crlListen} listens on every address; set crl.baseUrl to the URL clients use, as it is written into certificates`);
  }
  if ((ca.intermediateCert === null) !== (ca.intermediateKey === null)) {
    throw new ConfigError('invalid configuration: ca.intermediateCert and ca.intermediateKey must be set together');
  }
  return {
    dataDir: resolve(cwd, s('dataDir')),
    listen,
    externalUrl: external ? new URL(external) : listen,
    opsListen: sn('opsListen') ? new URL(s('opsListen')) : null,
    adminClientCertNames: values.get('adminClientCertNames') as string[],
    logLevel: s('logLevel'),
    serverNames: values.get('serverNames') as string[],
    acme: {
      termsOfService: sn('acme.termsOfService'),
      website: sn('acme.website'),
      externalAccountRequired: values.get('acme.externalAccountRequired') as boolean,
      nonceLifetimeMs: d('acme.nonceLifetime'),
      orderLifetimeMs: d('acme.orderLifetime'),
      ordersPageSize: n('acme.ordersPageSize'),
      maxBodyBytes: n('acme.maxBodyBytes'),
      retryAfterSeconds: n('acme.retryAfterSeconds'),
      finalizeWaitMs: d('acme.finalizeWait'),
      validationWaitMs: d('acme.validationWait'),
    },
    policyFile: sn('policyFile') ? resolve(cwd, s('policyFile')) : null,
    certificates: { backdateMs: d('certificates.backdate') },
    log: {
      origin: sn('log.origin') ?? `${(external ? new URL(external) : listen).host}/issuance-log`,
      checkpointDelayMs: d('log.checkpointDelay'),
      checkpointIntervalMs: d('log.checkpointInterval'),
      readToken: sn('log.readToken'),
    },
    validation: {
      http01Port: n('validation.http01Port'),
      tlsAlpn01Port: n('validation.tlsAlpn01Port'),
      dnsResolver: sn('validation.dnsResolver'),
      timeoutMs: d('validation.timeout'),
      attempts: n('validation.attempts'),
      retryDelayMs: d('validation.retryDelay'),
    },
    crl: {
      listen: sn('crl.listen') ? new URL(s('crl.listen')) : null,
      baseUrl: (sn('crl.baseUrl') ?? sn('crl.listen') ?? (external ?? s('listen'))).replace(/\/+$/, ''),
      lifetimeMs: d('crl.lifetime'),
      debounceMs: d('crl.debounce'),
      cdpThresholdMs: d('crl.cdpThreshold'),
    },
    ca,
    // '/' or '' serves the Vault API at the root; otherwise one leading slash and none trailing.
    mesh: { vaultPrefix: meshVaultPrefix(s('mesh.vaultPrefix')), clientCertAuth: values.get('mesh.clientCertAuth') as boolean },
    configFile,
  };
}

/** '/' (or '') serves the Vault API at the root; otherwise one leading slash and none trailing. */
function meshVaultPrefix(raw: string): string {
  const p = `/${raw.replace(/^\/+|\/+$/g, '')}`.replace(/^\/$/, '');
  if (!/^(\/[A-Za-z0-9._-]+)*$/.test(p)) throw new ConfigError(`invalid configuration: mesh.vaultPrefix = ${JSON.stringify(raw)}: expected a path such as /vault (letters, digits, ".", "-", "_" between slashes)`);
  return p;
}

/** Markdown table for the README, generated from the schema. */
export function configReferenceMarkdown(): string {
  const rows = CONFIG_FIELDS.map((f) => {
    const def = f.default === null ? '—' : Array.isArray(f.default) ? (f.default.length ? f.default.join(',') : '—') : String(f.default);
    return `| \`${f.key}\` | ${f.env ? `\`${f.env}\`` : '—'} | \`${def}\` | ${f.description} |`;
  });
  return ['| key | environment | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
