import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { dirname, join, basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseCheckpoint, type Checkpoint } from '../../server/log/checkpoint.js';
import { leafHash, rootFromLeafHashes, verifyConsistency } from '../../server/log/merkle.js';
import { decodeBase64Strict, parseVerifierKey, verifyNote, type VerifierKey } from '../../server/log/note.js';

// `acme-ca log verify|export`: the auditor's side of the issuance log. It needs only the log's
// verifier key and HTTPS access to /log/; it trusts nothing the server says that it cannot check
// against a checkpoint signed by that key.

export const LOG_HELP = `acme-ca log — audit the issuance log

Usage:
  acme-ca log verify --url URL --vkey VKEY|@FILE [--state FILE] [--full] [--ca ROOT.pem] [--token T] [--json]
      Fetches the latest checkpoint and checks its signature with the verifier key (its origin
      must be the key's name). With --state, checks that the log is an extension of the checkpoint
      seen on the last successful run (a consistency proof), then records the new one. With --full,
      downloads every entry, recomputes each leaf hash from the entry bytes and the root, and
      compares them with the checkpoint.
  acme-ca log export --url URL [--from N] [--to N] [--out FILE] [--ca ROOT.pem] [--token T]
      Writes entries [from, to) as JSON lines ({index, leafHash, eventType, createdAt, body, entry};
      body is base64 of the exact bytes hashed into the log). --to defaults to the latest checkpoint.

  --url     the CA's base URL (https://host:port); /log is appended unless already there
  --ca      PEM root to trust for the server's TLS certificate (default: the system roots)
  --token   the log read token (default: the ACME_CA_LOG_READ_TOKEN environment variable)

Exit codes: 0 verified, 1 verification failed (the message names the failing check or entry),
2 bad usage, network or server error.
`;

/** The log failed a check: exit 1. */
class VerificationError extends Error {}
/** Bad arguments, unreachable server, unexpected answers: exit 2. */
class UsageOrNetworkError extends Error {}

const ENTRIES_PAGE = 1000;
const REQUEST_TIMEOUT_MS = 30_000;

interface Connection {
  base: URL;
  ca: Buffer | undefined;
  token: string | undefined;
}

interface StateFile {
  origin: string;
  size: number;
  rootHash: string;
  note: string;
  verifiedAt: string;
}

interface EntryJson {
  index: number;
  leafHash: string;
  eventType: string;
  createdAt: string;
  body: string;
  entry: unknown;
}

export async function runLogCommand(sub: string | undefined, args: string[]): Promise<void> {
  let json = false;
  // Exit 0 must mean "verified": should the process ever end without reaching the end of a command
  // (e.g. the event loop drains while a promise is pending), it reports an error instead.
  process.exitCode = 2;
  try {
    if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
      process.stdout.write(LOG_HELP);
      process.exitCode = 0;
      return;
    }
    if (sub === 'verify') {
      json = args.includes('--json');
      await verifyCommand(args);
      process.exitCode = 0;
      return;
    }
    if (sub === 'export') {
      await exportCommand(args);
      process.exitCode = 0;
      return;
    }
    throw new UsageOrNetworkError(`unknown log subcommand "${sub}"`);
  } catch (e) {
    const failed = e instanceof VerificationError;
    const message = (e as Error).message;
    if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: failed ? 'verification' : 'usage-or-network', message })}\n`);
    process.stderr.write(`acme-ca log: ${failed ? 'VERIFICATION FAILED: ' : ''}${message}\n`);
    if (!failed && isUsage(e)) process.stderr.write(`\n${LOG_HELP}`);
    process.exitCode = failed ? 1 : 2;
  }
}

function isUsage(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}

// ---------------------------------------------------------------------------------------------
// verify

async function verifyCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args, strict: true, allowPositionals: false,
    options: {
      url: { type: 'string' }, vkey: { type: 'string' }, state: { type: 'string' }, full: { type: 'boolean' },
      ca: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' },
    },
  });
  if (!values.vkey) throw new UsageOrNetworkError('log verify needs --vkey VKEY (or --vkey @FILE)');
  const vkey = loadVerifierKey(values.vkey);
  const conn = connection(values.url, values.ca, values.token);

  // 1. The checkpoint, authenticated by the configured key only.
  const note = (await get(conn, 'checkpoint')).toString('utf8');
  let text: string;
  try {
    text = verifyNote(note, vkey).text;
  } catch (e) {
    throw new VerificationError(`checkpoint signature: ${(e as Error).message}`);
  }
  let cp: Checkpoint;
  try {
    cp = parseCheckpoint(text);
  } catch (e) {
    throw new VerificationError(`checkpoint: ${(e as Error).message}`);
  }
  if (cp.origin !== vkey.name) {
    throw new VerificationError(`checkpoint origin ${JSON.stringify(cp.origin)} is not the verifier key's name ${JSON.stringify(vkey.name)}`);
  }

  // 2. Append-only with respect to what this auditor saw last.
  const statePath = values.state ? resolve(values.state) : undefined;
  const previous = statePath ? readState(statePath, vkey.name) : null;
  let consistency: 'first-run' | 'unchanged' | 'verified' | 'not-checked' = statePath ? 'first-run' : 'not-checked';
  if (previous) {
    const oldRoot = Buffer.from(previous.rootHash, 'base64');
    if (cp.size < previous.size) {
      throw new VerificationError(`the log shrank: checkpoint size ${cp.size} is smaller than the previously verified size ${previous.size}`);
    }
    if (cp.size === previous.size) {
      if (!oldRoot.equals(cp.rootHash)) {
        throw new VerificationError(`fork: checkpoint size ${cp.size} has root ${cp.rootHash.toString('base64')}, but the previously verified checkpoint of the same size has root ${previous.rootHash}`);
      }
      consistency = 'unchanged';
    } else if (previous.size === 0) {
      consistency = 'verified'; // the empty tree is a prefix of every tree
    } else {
      const proof = await getJson(conn, `v1/proof/consistency?from=${previous.size}&to=${cp.size}`);
      const hashes = hashList(proof, 'hashes', 'consistency proof');
      if (numberField(proof, 'from') !== previous.size || numberField(proof, 'to') !== cp.size) {
        throw new UsageOrNetworkError(`the server answered a consistency proof for other sizes than ${previous.size} → ${cp.size}`);
      }
      try {
        verifyConsistency(previous.size, cp.size, hashes, oldRoot, cp.rootHash);
      } catch (e) {
        throw new VerificationError(`not append-only: ${(e as Error).message} (previous checkpoint size ${previous.size}, new ${cp.size})`);
      }
      consistency = 'verified';
    }
  }

  // 3. Optionally, every entry's bytes against the checkpoint root.
  let entriesVerified: number | undefined;
  if (values.full) {
    const leaves: Buffer[] = [];
    for await (const e of entries(conn, 0, cp.size)) {
      const body = decodeBase64Strict(e.body);
      if (body === undefined) throw new VerificationError(`entry ${e.index}: body is not canonical base64`);
      const computed = leafHash(body);
      if (computed.toString('base64') !== e.leafHash) {
        throw new VerificationError(`entry ${e.index}: leaf hash does not match its body (stored ${e.leafHash}, computed ${computed.toString('base64')})`);
      }
      checkEntrySemantics(e, body);
      leaves.push(computed);
    }
    const root = rootFromLeafHashes(leaves);
    if (!root.equals(cp.rootHash)) {
      throw new VerificationError(`root mismatch: recomputed ${root.toString('base64')} from ${leaves.length} entries, checkpoint says ${cp.rootHash.toString('base64')}`);
    }
    entriesVerified = leaves.length;
  }

  // 4. Only a fully successful run moves the auditor's trusted state forward.
  if (statePath) {
    writeState(statePath, { origin: cp.origin, size: cp.size, rootHash: cp.rootHash.toString('base64'), note, verifiedAt: new Date().toISOString() });
  }
  const result = {
    ok: true, origin: cp.origin, size: cp.size, rootHash: cp.rootHash.toString('base64'),
    previousSize: previous?.size ?? null, consistency, ...(entriesVerified !== undefined ? { entriesVerified } : {}),
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    const lines = [`log ${cp.origin}: checkpoint size ${cp.size}, root ${result.rootHash}, signature OK`];
    if (consistency === 'verified') lines.push(`consistent with the previously verified checkpoint (size ${previous?.size})`);
    if (consistency === 'unchanged') lines.push('unchanged since the previous run');
    if (consistency === 'first-run') lines.push(`no previous state; recorded this checkpoint in ${statePath}`);
    if (entriesVerified !== undefined) lines.push(`all ${entriesVerified} entries hash to the checkpoint root`);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
}

/**
 * The entry's event type column is not covered by the leaf hash; the body (which is) names the type
 * too, so a mismatch means the served metadata was altered.
 */
function checkEntrySemantics(e: EntryJson, body: Buffer): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new VerificationError(`entry ${e.index}: body is not JSON`);
  }
  const type = parsed !== null && typeof parsed === 'object' ? (parsed as { type?: unknown }).type : undefined;
  if (type !== e.eventType) {
    throw new VerificationError(`entry ${e.index}: event type ${JSON.stringify(e.eventType)} differs from the type in its body ${JSON.stringify(type)}`);
  }
}

function loadVerifierKey(arg: string): VerifierKey {
  let text = arg;
  if (arg.startsWith('@')) {
    try {
      text = readFileSync(arg.slice(1), 'utf8');
    } catch (e) {
      throw new UsageOrNetworkError(`cannot read the verifier key file ${arg.slice(1)}: ${(e as Error).message}`);
    }
  }
  try {
    return parseVerifierKey(text.trim());
  } catch (e) {
    throw new UsageOrNetworkError(`--vkey: ${(e as Error).message}`);
  }
}

function readState(path: string, origin: string): StateFile | null {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new UsageOrNetworkError(`cannot read the state file ${path}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new UsageOrNetworkError(`the state file ${path} is not JSON; move it away to start over`);
  }
  const s = v as Partial<StateFile>;
  if (typeof s.origin !== 'string' || !Number.isSafeInteger(s.size) || (s.size as number) < 0 || typeof s.rootHash !== 'string' || decodeBase64Strict(s.rootHash)?.length !== 32) {
    throw new UsageOrNetworkError(`the state file ${path} is malformed; move it away to start over`);
  }
  if (s.origin !== origin) throw new UsageOrNetworkError(`the state file ${path} belongs to log ${JSON.stringify(s.origin)}, not ${JSON.stringify(origin)}`);
  return s as StateFile;
}

function writeState(path: string, state: StateFile): void {
  // Write-then-rename, so an interrupted run never leaves a truncated trusted state.
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}

// ---------------------------------------------------------------------------------------------
// export

async function exportCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args, strict: true, allowPositionals: false,
    options: { url: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, out: { type: 'string' }, ca: { type: 'string' }, token: { type: 'string' } },
  });
  const conn = connection(values.url, values.ca, values.token);
  const from = values.from === undefined ? 0 : count('--from', values.from);
  const to = values.to === undefined ? numberField(await getJson(conn, 'v1/checkpoint'), 'size') : count('--to', values.to);
  if (to < from) throw new UsageOrNetworkError(`--to (${to}) is smaller than --from (${from})`);
  const lines: string[] = [];
  for await (const e of entries(conn, from, to)) lines.push(JSON.stringify(e));
  const text = lines.map((l) => `${l}\n`).join('');
  if (values.out) {
    const out = resolve(values.out);
    const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.tmp`);
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, out);
    process.stderr.write(`wrote entries ${from}..${to - 1} (${lines.length}) to ${out}\n`);
  } else {
    process.stdout.write(text);
  }
}

function count(flag: string, v: string): number {
  if (!/^(?:0|[1-9][0-9]*)$/.test(v) || !Number.isSafeInteger(Number(v))) throw new UsageOrNetworkError(`${flag} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

// ---------------------------------------------------------------------------------------------
// HTTP

function connection(url: string | undefined, caPath: string | undefined, token: string | undefined): Connection {
  if (!url) throw new UsageOrNetworkError('--url is required (the CA base URL, e.g. https://ca.example.internal:14000)');
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new UsageOrNetworkError(`--url ${JSON.stringify(url)} is not a URL`);
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new UsageOrNetworkError('--url must be an https:// URL');
  const path = base.pathname.replace(/\/+$/, '');
  base.pathname = `${path.endsWith('/log') ? path : `${path}/log`}/`;
  base.search = '';
  let ca: Buffer | undefined;
  if (caPath) {
    try {
      ca = readFileSync(caPath);
    } catch (e) {
      throw new UsageOrNetworkError(`cannot read --ca ${caPath}: ${(e as Error).message}`);
    }
  }
  const t = token ?? process.env.ACME_CA_LOG_READ_TOKEN;
  return { base, ca, token: t === undefined || t === '' ? undefined : t };
}

function get(conn: Connection, relative: string): Promise<Buffer> {
  const url = new URL(relative, conn.base);
  return new Promise<Buffer>((resolvePromise, reject) => {
    const headers: Record<string, string> = { 'User-Agent': 'acme-ca-log-verify' };
    if (conn.token !== undefined) headers.Authorization = `Bearer ${conn.token}`;
    const mod = url.protocol === 'https:' ? https : http;
    // A whole-request deadline: the socket idle timeout alone does not cover a stalled TLS handshake.
    const deadline = setTimeout(() => req.destroy(new Error(`no complete response within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
    const req = mod.request(url, { method: 'GET', headers, ca: conn.ca, agent: false, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e) => { clearTimeout(deadline); reject(new UsageOrNetworkError(`GET ${url.pathname}: ${e.message}`)); });
      res.on('end', () => {
        clearTimeout(deadline);
        const body = Buffer.concat(chunks);
        if (res.statusCode === 200) {
          resolvePromise(body);
          return;
        }
        let detail = body.toString('utf8').slice(0, 500);
        try {
          const p = JSON.parse(detail) as { detail?: unknown };
          if (typeof p.detail === 'string') detail = p.detail;
        } catch {
          // not a problem document; show the text as is
        }
        const hint = res.statusCode === 401 ? ' (give the log read token with --token or ACME_CA_LOG_READ_TOKEN)' : '';
        reject(new UsageOrNetworkError(`GET ${url.pathname}${url.search} answered HTTP ${res.statusCode}: ${detail}${hint}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no response within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (e) => { clearTimeout(deadline); reject(new UsageOrNetworkError(`GET ${url.origin}${url.pathname}: ${e.message}`)); });
    req.end();
  });
}

async function getJson(conn: Connection, relative: string): Promise<Record<string, unknown>> {
  const body = await get(conn, relative);
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new UsageOrNetworkError(`GET ${relative}: the answer is not a JSON object`);
}

/** Entries [from, to) in order, paged; checks the server returns exactly the indexes asked for. */
async function* entries(conn: Connection, from: number, to: number): AsyncGenerator<EntryJson> {
  let next = from;
  while (next < to) {
    const end = Math.min(to, next + ENTRIES_PAGE);
    const page = await getJson(conn, `v1/entries?start=${next}&end=${end}`);
    const list = page.entries;
    if (!Array.isArray(list) || list.length === 0) throw new UsageOrNetworkError(`GET v1/entries?start=${next}: no entries returned`);
    for (const raw of list) {
      const e = raw as Partial<EntryJson>;
      if (typeof e.index !== 'number' || typeof e.body !== 'string' || typeof e.leafHash !== 'string' || typeof e.eventType !== 'string') {
        throw new UsageOrNetworkError(`GET v1/entries?start=${next}: malformed entry ${JSON.stringify(raw).slice(0, 200)}`);
      }
      if (e.index !== next) throw new VerificationError(`entry ${next}: the server returned index ${e.index} in its place`);
      if (next >= end) throw new UsageOrNetworkError(`GET v1/entries: more entries than asked for`);
      yield e as EntryJson;
      next += 1;
    }
  }
}

function numberField(o: Record<string, unknown>, name: string): number {
  const v = o[name];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new UsageOrNetworkError(`the server's answer has no valid "${name}"`);
  return v;
}

function hashList(o: Record<string, unknown>, name: string, what: string): Buffer[] {
  const v = o[name];
  if (!Array.isArray(v)) throw new UsageOrNetworkError(`${what}: "${name}" is not a list`);
  return v.map((h, i) => {
    const b = typeof h === 'string' ? decodeBase64Strict(h) : undefined;
    // A malformed hash in a proof is the server's evidence failing, not a transport problem.
    if (b === undefined || b.length !== 32) throw new VerificationError(`${what}: hash ${i} is not a base64 SHA-256 value`);
    return b;
  });
}
