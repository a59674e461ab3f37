/**
 * The Vault PKI "signing subset" (docs/mesh.md; research note §3 R1): enough of Vault's HTTP API
 * for unmodified SPIRE (UpstreamAuthority "vault"), cert-manager's Vault issuer (and through it
 * istio-csr, Istio cacerts, Linkerd issuers) and hvac-style clients. Registered under
 * `<mesh.vaultPrefix>/v1`. Every write route takes PUT (Go's Logical().Write) and POST
 * (cert-manager, hvac); every error is `{"errors": [...]}` with a status, never an empty body
 * (the Go client turns an empty 404 into a nil secret that SPIRE dereferences).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { toPem, parsePemBlocks } from '../ca/pem.js';
import type { MeshPolicy } from './mesh-policy.js';
import { checkMeshToken, loginAppRole, matchCertRole, createMeshToken, peerNames, tokenPrincipal, TokenPurger } from './credentials.js';
import { verifiedPeerDer, type MeshDeps } from './context.js';
import { MeshError, type MeshPrincipal, type MeshSigned } from './signer.js';
import { parseBool, parseList, parseOptionalString, parsePathLength, parseTtl, VaultValueError } from './vault-values.js';

const VAULT_VERSION = '1.15.0+acme-ca';

/** An error answered as `{"errors": [message]}`. */
class VaultError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

type Body = Record<string, unknown>;

// --- response schemas (openapi.yaml repeats them; test/openapi.test.ts compares) -----------------

const errorsSchema = { type: 'object', properties: { errors: { type: 'array', items: { type: 'string' } } }, required: ['errors'] } as const;

function envelope(data: Record<string, unknown>, auth: Record<string, unknown>): Record<string, unknown> {
  return {
    type: 'object',
    properties: {
      request_id: { type: 'string' }, lease_id: { type: 'string' }, renewable: { type: 'boolean' }, lease_duration: { type: 'integer' },
      data, wrap_info: { type: 'null' }, warnings: { type: ['array', 'null'], items: { type: 'string' } }, auth,
    },
    required: ['request_id', 'lease_id', 'renewable', 'lease_duration', 'data', 'wrap_info', 'warnings', 'auth'],
  };
}

const healthSchema = {
  type: 'object',
  properties: {
    initialized: { type: 'boolean' }, sealed: { type: 'boolean' }, standby: { type: 'boolean' }, performance_standby: { type: 'boolean' },
    replication_performance_mode: { type: 'string' }, replication_dr_mode: { type: 'string' }, server_time_utc: { type: 'integer' },
    version: { type: 'string' }, cluster_name: { type: 'string' },
  },
  required: ['initialized', 'sealed', 'standby', 'version'],
} as const;

const lookupSelfSchema = envelope({
  type: 'object',
  properties: {
    accessor: { type: 'string' }, creation_time: { type: 'integer' }, creation_ttl: { type: 'integer' }, display_name: { type: 'string' },
    entity_id: { type: 'string' }, expire_time: { type: ['string', 'null'] }, explicit_max_ttl: { type: 'integer' }, id: { type: 'string' },
    issue_time: { type: 'string' }, num_uses: { type: 'integer' }, orphan: { type: 'boolean' }, path: { type: 'string' },
    policies: { type: 'array', items: { type: 'string' } }, renewable: { type: 'boolean' }, ttl: { type: 'integer' }, type: { type: 'string' },
  },
  required: ['accessor', 'id', 'policies', 'renewable', 'ttl', 'expire_time'],
}, { type: 'null' });

const loginSchema = envelope({ type: 'null' }, {
  type: 'object',
  properties: {
    client_token: { type: 'string' }, accessor: { type: 'string' }, policies: { type: 'array', items: { type: 'string' } },
    token_policies: { type: 'array', items: { type: 'string' } }, metadata: { type: 'object', additionalProperties: { type: 'string' } },
    lease_duration: { type: 'integer' }, renewable: { type: 'boolean' }, entity_id: { type: 'string' }, token_type: { type: 'string' },
    orphan: { type: 'boolean' }, num_uses: { type: 'integer' },
  },
  required: ['client_token', 'accessor', 'policies', 'token_policies', 'metadata', 'lease_duration', 'renewable'],
});

const signSchema = envelope({
  type: 'object',
  properties: {
    certificate: { type: 'string' }, issuing_ca: { type: 'string' }, ca_chain: { type: 'array', items: { type: 'string' } },
    serial_number: { type: 'string' }, expiration: { type: 'integer' },
  },
  required: ['certificate', 'issuing_ca', 'ca_chain', 'serial_number', 'expiration'],
}, { type: 'null' });

const errorResponses = { 400: errorsSchema, 403: errorsSchema, 404: errorsSchema } as const;

// --- helpers ----------------------------------------------------------------------------------

/** Vault's PEM: no trailing newline, so that the same certificate is the same string everywhere. */
const vaultPem = (der: Uint8Array): string => toPem('CERTIFICATE', der).trimEnd();

function secret(data: unknown, warnings: string[] = [], auth: unknown = null): Record<string, unknown> {
  return { request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data, wrap_info: null, warnings: warnings.length > 0 ? warnings : null, auth };
}

function colonSerial(hex: string): string {
  const even = hex.length % 2 === 1 ? `0${hex}` : hex;
  return even.match(/../g)!.join(':');
}

function presentedToken(req: FastifyRequest): string | undefined {
  const header = req.headers['x-vault-token'];
  if (typeof header === 'string' && header !== '') return header;
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return m ? m[1] : undefined;
}

function csrDer(body: Body): Uint8Array {
  const csr = body.csr;
  if (typeof csr !== 'string' || csr.trim() === '') throw new VaultError(400, 'missing required field "csr" (a PEM CERTIFICATE REQUEST)');
  const block = parsePemBlocks(csr).find((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
  if (!block) throw new VaultError(400, 'csr must hold a PEM "CERTIFICATE REQUEST" block');
  return block.der;
}

const SIGN_FIELDS = new Set(['csr', 'common_name', 'alt_names', 'ip_sans', 'uri_sans', 'other_sans', 'ttl', 'format', 'exclude_cn_from_sans',
  'use_csr_values', 'use_csr_sans', 'max_path_length', 'organization', 'ou', 'country', 'locality', 'province', 'street_address', 'postal_code',
  'permitted_dns_domains', 'permitted_uri_domains', 'private_key_format', 'serial_number', 'signature_bits', 'key_usage', 'ext_key_usage']);

function ignoredFields(body: Body): string[] {
  const unknown = Object.keys(body).filter((k) => !SIGN_FIELDS.has(k));
  return unknown.length > 0 ? [`Endpoint ignored these unrecognized parameters: [${unknown.join(' ')}]`] : [];
}

function signedData(s: MeshSigned, format: string, includeSelf: boolean): Record<string, unknown> {
  const cert = vaultPem(s.der);
  const issuing = s.issuingDers.map(vaultPem);
  const root = vaultPem(s.rootDer);
  // Root last, as SPIRE takes the last element as the upstream root and cert-manager wants the
  // self-signed root in the bundle; for a sub-CA the certificate itself comes first (Vault ≥ 1.11).
  const caChain = [...(includeSelf ? [cert] : []), ...issuing, root];
  return {
    certificate: format === 'pem_bundle' ? [cert, ...issuing].join('\n') : cert,
    issuing_ca: issuing[0],
    ca_chain: caChain,
    serial_number: colonSerial(s.serial),
    expiration: Math.floor(s.notAfter.getTime() / 1000),
  };
}

function formatOf(body: Body): string {
  const format = parseOptionalString(body.format, 'format') || 'pem';
  if (format !== 'pem' && format !== 'pem_bundle') throw new VaultError(400, `format "${format}" is not supported; use pem or pem_bundle`);
  return format;
}

// --- routes -----------------------------------------------------------------------------------

/** Registered with prefix `<vaultPrefix>/v1`; route URLs below are relative to it. */
export function vaultRoutes(app: FastifyInstance, deps: MeshDeps): void {
  const purger = deps.purger ?? new TokenPurger(deps.meshStore);

  // Vault's clients do not all send Content-Type: application/json (and some send none), so every
  // body here is read as JSON text whatever its declared type.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, text, done) => {
    const s = String(text).trim();
    if (s === '') { done(null, {}); return; }
    try {
      const v: unknown = JSON.parse(s);
      if (v === null || typeof v !== 'object' || Array.isArray(v)) { done(new VaultError(400, 'the request body must be a JSON object'), undefined); return; }
      done(null, v);
    } catch (e) {
      done(new VaultError(400, `the request body is not valid JSON: ${(e as Error).message}`), undefined);
    }
  });

  app.setErrorHandler(async (err, req, reply) => {
    if (err instanceof VaultError) return reply.code(err.status).send({ errors: [err.message] });
    if (err instanceof MeshError) return reply.code(err.status === 401 ? 403 : err.status).send({ errors: [err.message] });
    if (err instanceof VaultValueError) return reply.code(400).send({ errors: [err.message] });
    const fe = err as { statusCode?: number; message: string };
    if (fe.statusCode && fe.statusCode < 500) return reply.code(fe.statusCode).send({ errors: [fe.message] });
    req.log.error({ err }, 'vault API request failed');
    return reply.code(500).send({ errors: ['internal error; see the server log'] });
  });

  app.setNotFoundHandler(async (req, reply) => {
    const path = req.url.split('?')[0].replace(/^.*?\/v1\//, '');
    return reply.code(404).send({ errors: [`no handler for route "${path}". route entry not found.`] });
  });

  app.addHook('onRequest', async (req) => {
    const ns = req.headers['x-vault-namespace'];
    // Enterprise namespaces would be tenants; there are none here, so a named one is an error, not ignored.
    if (typeof ns === 'string' && ns !== '' && ns !== 'root' && ns !== 'root/') throw new VaultError(400, `namespace "${ns}" does not exist: this server has no Vault namespaces`);
  });

  const mesh = (): MeshPolicy => deps.signer.meshPolicy().mesh;

  const authenticate = async (req: FastifyRequest): Promise<MeshPrincipal> => {
    const check = await checkMeshToken(deps.meshStore, presentedToken(req), deps.now());
    if (!check.ok) throw new VaultError(403, `permission denied: ${check.reason}`);
    return tokenPrincipal(check.token);
  };

  const mountOf = (name: string, route: string): { trustDomain: string | null } => {
    const m = deps.policy().mesh;
    if (!m || !Object.hasOwn(m.vault.mounts, name)) throw new VaultError(404, `no handler for route "${name}/${route}". route entry not found.`);
    return m.vault.mounts[name];
  };

  app.get('/sys/health', { schema: { response: { 200: healthSchema } } }, async () => ({
    initialized: true, sealed: false, standby: false, performance_standby: false,
    replication_performance_mode: 'disabled', replication_dr_mode: 'disabled',
    server_time_utc: Math.floor(deps.now() / 1000), version: VAULT_VERSION, cluster_name: 'acme-ca',
  }));

  // hvac's read_health_status and Consul-style checks use HEAD: the status alone answers.
  app.head('/sys/health', async (_req, reply) => reply.code(200).send());

  app.get('/auth/token/lookup-self', { schema: { response: { 200: lookupSelfSchema, ...errorResponses } } }, async (req) => {
    const check = await checkMeshToken(deps.meshStore, presentedToken(req), deps.now());
    if (!check.ok) throw new VaultError(403, `permission denied: ${check.reason}`);
    const t = check.token;
    const now = deps.now();
    return secret({
      accessor: t.id, creation_time: Math.floor(t.createdAt / 1000), creation_ttl: t.expiresAt === null ? 0 : Math.round((t.expiresAt - t.createdAt) / 1000),
      display_name: t.name, entity_id: '', expire_time: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString(), explicit_max_ttl: 0,
      id: presentedToken(req)!, issue_time: new Date(t.createdAt).toISOString(), num_uses: 0, orphan: true, path: t.source === 'operator' ? 'auth/token/create' : `auth/${t.source.split(':')[0]}/login`,
      policies: ['default', `mesh-scope-${t.scope}`],
      // Non-renewable, so Vault's LifetimeWatcher never calls renew-self; ttl 0 means "no expiry".
      renewable: false, ttl: t.expiresAt === null ? 0 : Math.max(1, Math.floor((t.expiresAt - now) / 1000)), type: 'service',
    });
  });

  app.route({
    method: ['PUT', 'POST'], url: '/auth/:authMount/login',
    schema: { response: { 200: loginSchema, ...errorResponses } },
    handler: async (req) => {
      const { authMount } = req.params as { authMount: string };
      const m = deps.policy().mesh;
      const body = (req.body ?? {}) as Body;
      const now = deps.now();
      await purger.maybePurge(now).catch((e: unknown) => req.log.warn({ err: e }, 'mesh token purge failed'));
      const answer = (token: { token: string; id: string; scope: string }, ttlMs: number, metadata: Record<string, string>): Record<string, unknown> => secret(null, [], {
        client_token: token.token, accessor: token.id, policies: ['default', `mesh-scope-${token.scope}`], token_policies: ['default', `mesh-scope-${token.scope}`],
        metadata, lease_duration: Math.floor(ttlMs / 1000), renewable: false, entity_id: '', token_type: 'service', orphan: true, num_uses: 0,
      });
      if (m && m.vault.approleMounts.includes(authMount)) {
        const roleId = parseOptionalString(body.role_id, 'role_id');
        const secretId = parseOptionalString(body.secret_id, 'secret_id');
        if (!roleId) throw new VaultError(400, 'missing role_id');
        if (!secretId) throw new VaultError(400, 'missing secret_id');
        const r = await loginAppRole(deps.meshStore, roleId, secretId, now);
        if (!r.ok) throw new VaultError(400, r.reason);
        return answer(r.token, r.ttlMs, { role_name: r.role });
      }
      if (m && m.vault.certMounts.includes(authMount)) {
        if (!deps.clientCertAuth) throw new VaultError(400, 'certificate login is off on this server: set mesh.clientCertAuth: true');
        const der = verifiedPeerDer(req);
        if (!der) throw new VaultError(400, 'client certificate must be supplied (a certificate issued by this CA, on the TLS connection)');
        const role = matchCertRole(m, peerNames(der), parseOptionalString(body.name, 'name'));
        if (!role.ok) throw new VaultError(403, `permission denied: ${role.reason}`);
        const token = await createMeshToken(deps.meshStore, { name: `cert ${role.role.name}`, scope: role.role.scope, ttlMs: role.role.tokenTtlMs, source: `cert:${role.role.name}` }, now);
        return answer(token, role.role.tokenTtlMs, { cert_name: role.role.name });
      }
      throw new VaultError(404, `no handler for route "auth/${authMount}/login". route entry not found.`);
    },
  });

  app.route({
    method: ['PUT', 'POST'], url: '/:mount/root/sign-intermediate',
    schema: { response: { 200: signSchema, ...errorResponses } },
    handler: async (req) => {
      const { mount } = req.params as { mount: string };
      const who = await authenticate(req);
      mesh();
      const mt = mountOf(mount, 'root/sign-intermediate');
      const body = (req.body ?? {}) as Body;
      const der = csrDer(body);
      const format = formatOf(body);
      if (parseList(body.other_sans, 'other_sans').length > 0) throw new VaultError(400, 'other_sans are not issued');
      const useCsrValues = parseBool(body.use_csr_values, 'use_csr_values');
      const s = (k: string): string => parseOptionalString(body[k], k);
      const l = (k: string): string[] => parseList(body[k], k);
      const signed = await deps.signer.signIntermediate(who, {
        csrDer: der, trustDomain: mt.trustDomain, ttlMs: parseTtl(body.ttl), maxPathLength: parsePathLength(body.max_path_length),
        // use_csr_values: subject from the CSR alone, as Vault does.
        subject: useCsrValues ? {} : { commonName: s('common_name') || undefined, organization: l('organization'), organizationalUnit: l('ou'), country: l('country'), locality: l('locality'), province: l('province') },
        uriSans: l('uri_sans'), dnsSans: l('alt_names'), ipSans: l('ip_sans'),
        nameConstraints: l('permitted_dns_domains').length + l('permitted_uri_domains').length > 0 ? { dns: l('permitted_dns_domains'), uriDomains: l('permitted_uri_domains') } : null,
        profile: 'generic', front: 'vault',
      });
      return secret(signedData(signed, format, true), [...ignoredFields(body), ...signed.warnings]);
    },
  });

  app.route({
    method: ['PUT', 'POST'], url: '/:mount/sign/:role',
    schema: { response: { 200: signSchema, ...errorResponses } },
    handler: async (req) => {
      const { mount, role } = req.params as { mount: string; role: string };
      const who = await authenticate(req);
      const m = mesh();
      const mt = mountOf(mount, `sign/${role}`);
      if (mt.trustDomain && Object.hasOwn(m.roles, role) && m.roles[role].trustDomain !== mt.trustDomain) {
        throw new VaultError(400, `role "${role}" belongs to trust domain "${m.roles[role].trustDomain}", not to this mount's "${mt.trustDomain}"`);
      }
      const body = (req.body ?? {}) as Body;
      const der = csrDer(body);
      const format = formatOf(body);
      if (parseList(body.other_sans, 'other_sans').length > 0) throw new VaultError(400, 'other_sans are not issued');
      const signed = await deps.signer.signLeaf(who, {
        csrDer: der, role, ttlMs: parseTtl(body.ttl), commonName: parseOptionalString(body.common_name, 'common_name'),
        uriSans: parseList(body.uri_sans, 'uri_sans'), dnsSans: parseList(body.alt_names, 'alt_names'), ipSans: parseList(body.ip_sans, 'ip_sans'),
        excludeCnFromSans: parseBool(body.exclude_cn_from_sans, 'exclude_cn_from_sans'), front: 'vault',
      });
      return secret(signedData(signed, format, false), [...ignoredFields(body), ...signed.warnings]);
    },
  });

  const rawPem = (reply: FastifyReply, text: string): FastifyReply => reply.header('Content-Type', 'application/pem-file').send(text);

  app.get('/:mount/ca/pem', async (req, reply) => {
    const { mount } = req.params as { mount: string };
    mountOf(mount, 'ca/pem');
    return rawPem(reply, toPem('CERTIFICATE', deps.issuer().certDer));
  });

  app.get('/:mount/ca_chain', async (req, reply) => {
    const { mount } = req.params as { mount: string };
    mountOf(mount, 'ca_chain');
    const issuer = deps.issuer();
    const chain = parsePemBlocks(issuer.chainPem).filter((b) => b.label === 'CERTIFICATE').map((b) => b.der);
    const root = parsePemBlocks(deps.rootPem).filter((b) => b.label === 'CERTIFICATE').map((b) => b.der);
    return rawPem(reply, [...(chain.length > 0 ? chain : [issuer.certDer]), ...root.slice(0, 1)].map((d) => toPem('CERTIFICATE', d)).join(''));
  });
}
