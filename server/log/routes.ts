import { createHash, timingSafeEqual } from 'node:crypto';
import { checkApiToken } from '../admin/api-tokens.js';
import { gzipSync } from 'node:zlib';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CertificateSearch, CertificateSearchStatus, CertificateSummary, LogCheckpointRecord, LogEntryRecord, Storage } from '../../storage/types.js';
import { normalizeSerialHex } from '../ca/certificate-builder.js';
import { toPem } from '../ca/pem.js';
import { parseCheckpoint } from './checkpoint.js';
import type { CheckpointPublisher } from './checkpoint-publisher.js';
import type { LogKey } from './log-key.js';
import { HASH_SIZE } from './merkle.js';
import { storedConsistencyProof, storedInclusionProof, storedRoot } from './proofs.js';
import { encodeEntryBundle, parseTilePath, TILE_HEIGHT, TILE_WIDTH, type TileRef } from './tiles.js';

// The issuance log's read API, mounted at /log/: C2SP tlog-tiles (checkpoint, hash tiles, entry
// bundles) so standard transparency tooling can mirror and verify the log, plus JSON queries for
// auditors. Read-only: entries are only ever appended by the CA's own issuance/revocation paths.
// Every JSON route's 200 schema is repeated verbatim in openapi.yaml (test/openapi.test.ts).

export interface LogRouteDeps {
  store: Storage;
  logKey: LogKey;
  publisher: CheckpointPublisher;
  /** When set, every /log/ request needs `Authorization: Bearer <readToken>`. */
  readToken: string | null;
  now?: () => number;
}

/** Page size caps: large enough for mirroring, small enough to bound one request's work. */
export const MAX_ENTRIES_PER_PAGE = 1000;
export const MAX_SEARCH_LIMIT = 1000;
const DEFAULT_SEARCH_LIMIT = 100;
const MAX_RELATED_ENTRIES = 100;

// ---------------------------------------------------------------------------------------------
// Response schemas (identical copies live in openapi.yaml)

const nullable = (type: string): { type: string[] } => ({ type: [type, 'null'] });

export const CHECKPOINT_SCHEMA = {
  type: 'object',
  properties: {
    origin: { type: 'string', description: 'Origin line of the checkpoint (also the signing key name).' },
    size: { type: 'integer', description: 'Number of entries the checkpoint commits to.' },
    rootHash: { type: 'string', description: 'RFC 6962 Merkle tree hash at that size, standard base64.' },
    note: { type: 'string', description: 'The signed checkpoint (C2SP signed note), verbatim; verify this, not the other fields.' },
    signedAt: { type: 'string', format: 'date-time' },
  },
  required: ['origin', 'size', 'rootHash', 'note', 'signedAt'],
};

const ENTRY_SCHEMA = {
  type: 'object',
  properties: {
    index: { type: 'integer' },
    leafHash: { type: 'string', description: 'SHA-256(0x00 || body), standard base64.' },
    eventType: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    body: { type: 'string', description: 'Base64 of the exact entry bytes that are hashed into the tree.' },
    entry: { type: ['object', 'null'], additionalProperties: true, description: 'body parsed as JSON, for convenience; null if it is not a JSON object.' },
  },
  required: ['index', 'leafHash', 'eventType', 'createdAt', 'body', 'entry'],
};

export const ENTRIES_SCHEMA = {
  type: 'object',
  properties: {
    start: { type: 'integer' },
    end: { type: 'integer', description: 'Exclusive end of the returned range; continue from here.' },
    checkpointSize: { type: 'integer', description: 'Size of the latest checkpoint, which bounds every page.' },
    entries: { type: 'array', items: ENTRY_SCHEMA },
  },
  required: ['start', 'end', 'checkpointSize', 'entries'],
};

export const INCLUSION_SCHEMA = {
  type: 'object',
  properties: {
    index: { type: 'integer' },
    size: { type: 'integer' },
    leafHash: { type: 'string' },
    rootHash: { type: 'string', description: 'Root at `size`, for convenience; compare the recomputed root with a verified checkpoint.' },
    hashes: { type: 'array', items: { type: 'string' }, description: 'RFC 9162 inclusion path, leaf sibling first, standard base64.' },
  },
  required: ['index', 'size', 'leafHash', 'rootHash', 'hashes'],
};

export const CONSISTENCY_SCHEMA = {
  type: 'object',
  properties: {
    from: { type: 'integer' },
    to: { type: 'integer' },
    hashes: { type: 'array', items: { type: 'string' }, description: 'RFC 9162 consistency proof, standard base64.' },
  },
  required: ['from', 'to', 'hashes'],
};

const CERTIFICATE_SUMMARY_SCHEMA = {
  type: 'object',
  properties: {
    serial: { type: 'string', description: 'Lower-case hex, without a leading 00 sign byte.' },
    identifiers: {
      type: 'array',
      items: { type: 'object', properties: { type: { type: 'string' }, value: { type: 'string' } }, required: ['type', 'value'] },
    },
    account: { type: 'string' },
    scope: nullable('string'),
    profile: nullable('string'),
    status: { type: 'string', enum: ['valid', 'expired', 'revoked'] },
    notBefore: { type: 'string', format: 'date-time' },
    notAfter: { type: 'string', format: 'date-time' },
    issuedAt: { type: 'string', format: 'date-time' },
    revokedAt: nullable('string'),
    revocationReason: nullable('integer'),
    logIndex: { type: 'integer', description: 'Index of the certificate.issued entry.' },
  },
  required: ['serial', 'identifiers', 'account', 'scope', 'profile', 'status', 'notBefore', 'notAfter', 'issuedAt', 'revokedAt', 'revocationReason', 'logIndex'],
};

export const CERTIFICATE_LIST_SCHEMA = {
  type: 'object',
  properties: {
    items: { type: 'array', items: CERTIFICATE_SUMMARY_SCHEMA },
    next: { ...nullable('string'), description: 'Cursor for the next page (the last log index returned), null at the end.' },
  },
  required: ['items', 'next'],
};

export const CERTIFICATE_DETAIL_SCHEMA = {
  type: 'object',
  properties: {
    certificate: CERTIFICATE_SUMMARY_SCHEMA,
    pem: { type: 'string' },
    entry: ENTRY_SCHEMA,
    relatedEntries: { type: 'array', items: { type: 'integer' }, description: 'Indexes of every entry about this serial (issuance, revocation).' },
    proof: INCLUSION_SCHEMA,
    checkpoint: CHECKPOINT_SCHEMA,
  },
  required: ['certificate', 'pem', 'entry', 'relatedEntries', 'proof', 'checkpoint'],
};

export const EVENTS_SCHEMA = {
  type: 'object',
  properties: {
    items: { type: 'array', items: ENTRY_SCHEMA },
    next: { ...nullable('string'), description: 'Cursor for the next page (the last index returned), null at the end.' },
  },
  required: ['items', 'next'],
};

// ---------------------------------------------------------------------------------------------
// Problems (RFC 7807)

export const PROBLEM_TYPE_PREFIX = 'urn:acme-ca:log:';
type ProblemKind = 'badRequest' | 'unauthorized' | 'notFound' | 'serverInternal';
const PROBLEM_TITLES: Record<ProblemKind, string> = {
  badRequest: 'Bad request', unauthorized: 'Authentication required', notFound: 'Not found', serverInternal: 'Internal error',
};
const PROBLEM_STATUS: Record<ProblemKind, number> = { badRequest: 400, unauthorized: 401, notFound: 404, serverInternal: 500 };

class LogProblem extends Error {
  constructor(readonly kind: ProblemKind, readonly detail: string) {
    super(detail);
  }
  get status(): number {
    return PROBLEM_STATUS[this.kind];
  }
  toJSON(): { type: string; title: string; status: number; detail: string } {
    return { type: `${PROBLEM_TYPE_PREFIX}${this.kind}`, title: PROBLEM_TITLES[this.kind], status: this.status, detail: this.detail };
  }
}

const badRequest = (detail: string): LogProblem => new LogProblem('badRequest', detail);
const notFound = (detail: string): LogProblem => new LogProblem('notFound', detail);

function sendProblem(reply: FastifyReply, p: LogProblem): FastifyReply {
  return reply.code(p.status).header('Content-Type', 'application/problem+json').header('Cache-Control', 'no-store').send(JSON.stringify(p.toJSON()));
}

function fromFrameworkError(err: unknown): LogProblem {
  if (err instanceof LogProblem) return err;
  const fe = err as Partial<FastifyError>;
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return badRequest(fe.message ?? 'bad request');
  return new LogProblem('serverInternal', 'the log API hit an internal error; the operator can find it in the server log');
}

// ---------------------------------------------------------------------------------------------
// Query-string parsing: strict, so a typo in a filter name fails instead of silently matching all.

type RawQuery = Record<string, string | string[] | undefined>;

function readQuery(req: FastifyRequest, allowed: readonly string[]): RawQuery {
  const q = (req.query ?? {}) as RawQuery;
  const unknown = Object.keys(q).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) throw badRequest(`unknown query parameter${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; allowed: ${allowed.join(', ')}`);
  return q;
}

function single(q: RawQuery, name: string): string | undefined {
  const v = q[name];
  if (Array.isArray(v)) throw badRequest(`query parameter ${name} is given more than once`);
  if (v === '') throw badRequest(`query parameter ${name} is empty`);
  return v;
}

function intParam(q: RawQuery, name: string, min = 0): number | undefined {
  const v = single(q, name);
  if (v === undefined) return undefined;
  if (!/^(?:0|[1-9][0-9]*)$/.test(v) || !Number.isSafeInteger(Number(v))) throw badRequest(`${name} must be a non-negative decimal integer, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min) throw badRequest(`${name} must be at least ${min}, got ${n}`);
  return n;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

function timeParam(q: RawQuery, name: string): number | undefined {
  const v = single(q, name);
  if (v === undefined) return undefined;
  const t = RFC3339.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw badRequest(`${name} must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z, got ${JSON.stringify(v)}`);
  return t;
}

/** A 32-byte hash as 64 hex digits, standard base64 or base64url (query strings mangle '+'). */
function hashParam(q: RawQuery, name: string): Buffer | undefined {
  const v = single(q, name);
  if (v === undefined) return undefined;
  let out: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(v)) out = Buffer.from(v, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(v)) out = Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (out === undefined || out.length !== HASH_SIZE) throw badRequest(`${name} must be a SHA-256 hash in hex or base64, got ${JSON.stringify(v)}`);
  return out;
}

function listParam(q: RawQuery, name: string): string[] | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  const items = [v].flat().flatMap((s) => s.split(',')).map((s) => s.trim());
  if (items.some((s) => s.length === 0)) throw badRequest(`${name} has an empty item`);
  return items;
}

// ---------------------------------------------------------------------------------------------
// Shapes

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const iso = (ms: number): string => new Date(ms).toISOString();

function checkpointJson(cp: LogCheckpointRecord): Record<string, unknown> {
  // The origin comes from the signed text itself, so it is what verifiers will see.
  const text = cp.note.slice(0, cp.note.lastIndexOf('\n\n') + 1);
  return { origin: parseCheckpoint(text).origin, size: cp.size, rootHash: b64(cp.root), note: cp.note, signedAt: iso(cp.signedAt) };
}

/** Parsed body for convenience; null when the bytes are not a JSON object (auditors hash `body`, never this). */
function parseBody(body: Uint8Array): Record<string, unknown> | null {
  try {
    const v = JSON.parse(Buffer.from(body).toString('utf8')) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function entryJson(e: LogEntryRecord): Record<string, unknown> {
  return { index: e.index, leafHash: b64(e.leafHash), eventType: e.eventType, createdAt: iso(e.createdAt), body: b64(e.body), entry: parseBody(e.body) };
}

function summaryJson(c: CertificateSummary, now: number): Record<string, unknown> {
  const status: CertificateSearchStatus = c.status === 'revoked' ? 'revoked' : c.notAfter <= now ? 'expired' : 'valid';
  return {
    serial: c.serial, identifiers: c.identifiers.map((i) => ({ type: i.type, value: i.value })), account: c.accountId,
    scope: c.scope, profile: c.profile, status, notBefore: iso(c.notBefore), notAfter: iso(c.notAfter), issuedAt: iso(c.issuedAt),
    revokedAt: c.revokedAt === null ? null : iso(c.revokedAt), revocationReason: c.revocationReason, logIndex: c.logIndex,
  };
}

// ---------------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------------
// Routes

export async function logRoutes(app: FastifyInstance, deps: LogRouteDeps): Promise<void> {
  // Its own prefixed scope: the error and not-found handlers and the token check cover exactly /log/.
  await app.register(async (scope) => registerLogRoutes(scope, deps), { prefix: '/log' });
}

function registerLogRoutes(app: FastifyInstance, deps: LogRouteDeps): void {
  const { store, publisher } = deps;
  const now = deps.now ?? Date.now;
  const queries = store;
  // Authenticated responses must not sit in shared caches.
  const cacheScope = deps.readToken === null ? 'public' : 'private';

  if (deps.readToken !== null) {
    // Digests make both sides 32 bytes, so timingSafeEqual applies and no length is leaked.
    const expected = createHash('sha256').update(deps.readToken, 'utf8').digest();
    app.addHook('onRequest', async (req, reply) => {
      const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
      const presented = createHash('sha256').update(m ? m[1] : '', 'utf8').digest();
      if (m && timingSafeEqual(presented, expected)) return;
      // Auditors can also hold their own API token with the read-log scope (revocable one by one).
      if (m && m[1].startsWith('acmeca_') && (await checkApiToken(store, m[1], 'read-log', now())).ok) return;
      reply.header('WWW-Authenticate', 'Bearer realm="acme-ca issuance log"');
      return sendProblem(reply, new LogProblem('unauthorized', m
        ? 'the bearer token is neither the log read token nor a valid API token with the read-log scope'
        : 'the issuance log API needs an Authorization: Bearer <log read token or read-log API token> header'));
    });
  }

  app.setErrorHandler(async (err, req, reply) => {
    const p = fromFrameworkError(err);
    if (p.status >= 500) req.log.error({ err }, 'log API request failed');
    return sendProblem(reply, p);
  });

  app.setNotFoundHandler(async (req, reply) => sendProblem(reply, notFound(`no issuance log resource at ${req.method} ${req.url.split('?')[0]}`)));

  /** The latest signed checkpoint; on a fresh log, signs the first one rather than answering 404. */
  const latestCheckpoint = async (): Promise<LogCheckpointRecord> => {
    const cp = (await store.latestCheckpoint()) ?? (await publisher.publish());
    if (!cp) throw notFound('no checkpoint has been signed yet');
    return cp;
  };

  /**
   * A signed checkpoint that includes entry `index`. Within the publisher's batching delay the
   * entry exists but no checkpoint covers it yet; signing one now (the publisher serialises and
   * self-checks it) spares the client a retry loop.
   */
  const checkpointCovering = async (index: number): Promise<LogCheckpointRecord> => {
    const cp = await latestCheckpoint();
    if (cp.size > index) return cp;
    if ((await store.getLogState()).size <= index) throw notFound(`the log has no entry ${index}`);
    const fresh = await publisher.publish();
    if (!fresh || fresh.size <= index) throw new Error(`checkpoint publication did not cover entry ${index}`);
    return fresh;
  };

  const jsonHeaders = (reply: FastifyReply): void => {
    reply.header('Cache-Control', 'no-store');
  };

  // --- tlog-tiles -----------------------------------------------------------------------------

  app.get('/checkpoint', async (_req, reply) => {
    const cp = await latestCheckpoint();
    reply.header('Content-Type', 'text/plain; charset=utf-8').header('Cache-Control', `${cacheScope}, max-age=5`);
    return cp.note;
  });

  app.get('/vkey', async (_req, reply) => {
    reply.header('Content-Type', 'text/plain; charset=utf-8').header('Cache-Control', `${cacheScope}, max-age=300`);
    return `${deps.logKey.vkey}\n`;
  });

  app.get('/tile/*', async (req, reply) => {
    const rest = (req.params as Record<string, string | undefined>)['*'] ?? '';
    let ref: TileRef;
    try {
      ref = parseTilePath(`tile/${rest}`);
    } catch (e) {
      throw badRequest((e as Error).message);
    }
    const cp = await latestCheckpoint();
    const width = ref.partialWidth ?? TILE_WIDTH;
    const first = ref.index * TILE_WIDTH;
    // Only what the latest checkpoint commits to is served, so every tile is verifiable and immutable.
    const available = ref.kind === 'entries' ? cp.size : Math.floor(cp.size / TILE_WIDTH ** ref.level);
    if (first + width > available) {
      throw notFound(`tile ${req.url.split('?')[0]} is not within the latest checkpoint (size ${cp.size})`);
    }
    let payload: Buffer;
    if (ref.kind === 'hash') {
      const level = ref.level * TILE_HEIGHT;
      const coords = Array.from({ length: width }, (_, i) => ({ level, index: first + i }));
      const nodes = await store.getLogNodes(coords);
      payload = Buffer.concat(coords.map((c) => {
        const h = nodes.get(`${c.level}/${c.index}`);
        if (!h) throw new Error(`stored node (level ${c.level}, index ${c.index}) is missing under checkpoint size ${cp.size}`);
        return h;
      }));
    } else {
      const entries = await store.getLogEntries(first, first + width);
      if (entries.length !== width) throw new Error(`log entries ${first}..${first + width - 1} are incomplete under checkpoint size ${cp.size}`);
      payload = encodeEntryBundle(entries.map((e) => e.body));
      // tlog-tiles lets logs gzip bundles; only done when asked, so plain HTTP clients get raw bytes.
      if (/\bgzip\b/i.test(String(req.headers['accept-encoding'] ?? ''))) {
        payload = gzipSync(payload);
        reply.header('Content-Encoding', 'gzip');
      }
      reply.header('Vary', 'Accept-Encoding');
    }
    reply.header('Content-Type', 'application/octet-stream').header('Cache-Control', `${cacheScope}, max-age=31536000, immutable`);
    return payload;
  });

  // --- JSON -----------------------------------------------------------------------------------

  app.get('/v1/checkpoint', { schema: { response: { 200: CHECKPOINT_SCHEMA } } }, async (req, reply) => {
    readQuery(req, []);
    jsonHeaders(reply);
    return checkpointJson(await latestCheckpoint());
  });

  app.get('/v1/entries', { schema: { response: { 200: ENTRIES_SCHEMA } } }, async (req, reply) => {
    const q = readQuery(req, ['start', 'end']);
    const start = intParam(q, 'start');
    if (start === undefined) throw badRequest('start is required');
    const end = intParam(q, 'end') ?? start + MAX_ENTRIES_PER_PAGE;
    if (end <= start) throw badRequest(`end (${end}) must be greater than start (${start}); end is exclusive`);
    const cp = await latestCheckpoint();
    if (start >= cp.size) throw notFound(`entry ${start} is not within the latest checkpoint (size ${cp.size})`);
    const stop = Math.min(end, start + MAX_ENTRIES_PER_PAGE, cp.size);
    const entries = await store.getLogEntries(start, stop);
    if (entries.length !== stop - start) throw new Error(`log entries ${start}..${stop - 1} are incomplete under checkpoint size ${cp.size}`);
    jsonHeaders(reply);
    return { start, end: stop, checkpointSize: cp.size, entries: entries.map(entryJson) };
  });

  app.get('/v1/proof/inclusion', { schema: { response: { 200: INCLUSION_SCHEMA } } }, async (req, reply) => {
    const q = readQuery(req, ['index', 'leafHash', 'size']);
    const byIndex = intParam(q, 'index');
    const byHash = hashParam(q, 'leafHash');
    const askedSize = intParam(q, 'size', 1);
    if ((byIndex === undefined) === (byHash === undefined)) throw badRequest('give exactly one of index or leafHash');
    let index: number;
    if (byHash !== undefined) {
      const found = await store.findLogIndexByLeafHash(byHash);
      if (found === null) throw notFound(`no log entry has leaf hash ${byHash.toString('base64')}`);
      index = found;
    } else {
      index = byIndex as number;
    }
    let size: number;
    if (askedSize === undefined) {
      size = (await checkpointCovering(index)).size;
    } else {
      const cp = await latestCheckpoint();
      if (askedSize > cp.size) throw notFound(`size ${askedSize} is beyond the latest checkpoint (size ${cp.size})`);
      if (index >= askedSize) {
        if (byHash !== undefined) throw notFound(`the entry with that leaf hash has index ${index}, outside a tree of size ${askedSize}`);
        throw badRequest(`index ${index} is out of range for tree size ${askedSize}`);
      }
      size = askedSize;
    }
    const [hashes, root, leaf] = await Promise.all([
      storedInclusionProof(store, index, size),
      storedRoot(store, size),
      store.getLogNodes([{ level: 0, index }]),
    ]);
    const leafHash = leaf.get(`0/${index}`);
    if (!leafHash) throw new Error(`stored leaf hash ${index} is missing`);
    jsonHeaders(reply);
    return { index, size, leafHash: b64(leafHash), rootHash: b64(root), hashes: hashes.map(b64) };
  });

  app.get('/v1/proof/consistency', { schema: { response: { 200: CONSISTENCY_SCHEMA } } }, async (req, reply) => {
    const q = readQuery(req, ['from', 'to']);
    const from = intParam(q, 'from');
    if (from === undefined) throw badRequest('from is required');
    const cp = await latestCheckpoint();
    const to = intParam(q, 'to') ?? cp.size;
    if (from > to) throw badRequest(`from (${from}) is greater than to (${to}): a log cannot shrink`);
    if (to > cp.size) throw notFound(`size ${to} is beyond the latest checkpoint (size ${cp.size})`);
    const hashes = await storedConsistencyProof(store, from, to);
    jsonHeaders(reply);
    return { from, to, hashes: hashes.map(b64) };
  });

  const SEARCH_PARAMS = ['serial', 'identifier', 'identifierSuffix', 'account', 'scope', 'profile', 'status',
    'issuedAfter', 'issuedBefore', 'expiresAfter', 'expiresBefore', 'cursor', 'limit'] as const;

  app.get('/v1/certificates', { schema: { response: { 200: CERTIFICATE_LIST_SCHEMA } } }, async (req, reply) => {
    const q = readQuery(req, SEARCH_PARAMS);
    const status = single(q, 'status');
    if (status !== undefined && status !== 'valid' && status !== 'expired' && status !== 'revoked') {
      throw badRequest(`status must be valid, expired or revoked, got ${JSON.stringify(status)}`);
    }
    const serial = single(q, 'serial');
    const limit = intParam(q, 'limit', 1) ?? DEFAULT_SEARCH_LIMIT;
    if (limit > MAX_SEARCH_LIMIT) throw badRequest(`limit must be at most ${MAX_SEARCH_LIMIT}`);
    const at = now();
    const search: CertificateSearch = {
      serial: serial === undefined ? undefined : parseSerial(serial),
      identifier: single(q, 'identifier')?.toLowerCase(),
      identifierSuffix: single(q, 'identifierSuffix')?.toLowerCase(),
      accountId: single(q, 'account'),
      scope: single(q, 'scope'),
      profile: single(q, 'profile'),
      status,
      issuedAfter: timeParam(q, 'issuedAfter'),
      issuedBefore: timeParam(q, 'issuedBefore'),
      expiresAfter: timeParam(q, 'expiresAfter'),
      expiresBefore: timeParam(q, 'expiresBefore'),
      afterLogIndex: intParam(q, 'cursor'),
      // One extra row tells whether another page exists without a count query.
      limit: limit + 1,
      now: at,
    };
    const rows = await queries.searchCertificates(search);
    const page = rows.slice(0, limit);
    jsonHeaders(reply);
    return {
      items: page.map((c) => summaryJson(c, at)),
      // The cursor is a log index: new certificates only ever get larger ones, so it stays stable.
      next: rows.length > limit ? String(page[page.length - 1].logIndex) : null,
    };
  });

  app.get('/v1/certificates/:serial', { schema: { response: { 200: CERTIFICATE_DETAIL_SCHEMA } } }, async (req, reply) => {
    readQuery(req, []);
    const serial = parseSerial((req.params as { serial: string }).serial);
    const cert = await store.getCertificateBySerial(serial);
    if (!cert) throw notFound(`no certificate with serial ${serial}`);
    if (cert.logIndex === null) throw notFound(`certificate ${serial} predates the issuance log`);
    const index = cert.logIndex;
    const at = now();
    const [summary] = await queries.searchCertificates({ serial, limit: 1, now: at });
    const [entry] = await store.getLogEntries(index, index + 1);
    if (!summary || !entry) throw new Error(`log entry ${index} of certificate ${serial} is missing`);
    const cp = await checkpointCovering(index);
    const [hashes, related] = await Promise.all([
      storedInclusionProof(store, index, cp.size),
      store.findLogIndexes(`serial:${serial}`, MAX_RELATED_ENTRIES),
    ]);
    jsonHeaders(reply);
    return {
      certificate: summaryJson(summary, at),
      pem: toPem('CERTIFICATE', cert.der),
      entry: entryJson(entry),
      relatedEntries: related,
      proof: { index, size: cp.size, leafHash: b64(entry.leafHash), rootHash: b64(cp.root), hashes: hashes.map(b64) },
      checkpoint: checkpointJson(cp),
    };
  });

  app.get('/v1/events', { schema: { response: { 200: EVENTS_SCHEMA } } }, async (req, reply) => {
    const q = readQuery(req, ['since', 'until', 'account', 'type', 'cursor', 'limit']);
    const limit = intParam(q, 'limit', 1) ?? DEFAULT_SEARCH_LIMIT;
    if (limit > MAX_SEARCH_LIMIT) throw badRequest(`limit must be at most ${MAX_SEARCH_LIMIT}`);
    const types = listParam(q, 'type');
    for (const t of types ?? []) {
      if (!/^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*(?:\.\*)?$/i.test(t)) throw badRequest(`type ${JSON.stringify(t)} must be an event type such as certificate.revoked, or a prefix such as certificate.*`);
    }
    const rows = await queries.searchLogEvents({
      since: timeParam(q, 'since'), until: timeParam(q, 'until'), accountId: single(q, 'account'), types,
      afterIndex: intParam(q, 'cursor'), limit: limit + 1,
    });
    const page = rows.slice(0, limit);
    jsonHeaders(reply);
    return { items: page.map(entryJson), next: rows.length > limit ? String(page[page.length - 1].index) : null };
  });
}

/** Accepts serials as printed by openssl or node (any case, colons, a 00 sign byte): our stored form. */
function parseSerial(raw: string): string {
  const s = raw.replace(/:/g, '');
  if (!/^[0-9a-fA-F]{1,64}$/.test(s)) throw badRequest(`serial must be hexadecimal, got ${JSON.stringify(raw)}`);
  return normalizeSerialHex(s.length % 2 === 1 ? `0${s}` : s);
}
