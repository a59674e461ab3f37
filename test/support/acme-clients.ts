import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

/*
 * Runs the real ACME clients (Debian's certbot 2.1 and lego 4.9) against a test CA, with the
 * flags from shared/research/client-notes.md. Every run is bounded, and a failure throws a
 * ClientError whose message carries the tail of the client's output (and of certbot's own log
 * file, which holds the server's problem documents) so a failing test says why.
 */

export const CERTBOT_BIN = '/usr/bin/certbot';
export const LEGO_BIN = '/usr/bin/lego';
export const TEST_EMAIL = 'admin@example.test';
const DEFAULT_TIMEOUT_MS = 180_000;
const KILL_GRACE_MS = 5_000;
const ERROR_TAIL_CHARS = 6_000;

/** The part of a running CA the clients need; `CaProcess` satisfies it. */
export interface CaTarget {
  directoryUrl: string;
  rootPem: string;
}

export interface ClientResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they arrived. */
  output: string;
  timedOut: boolean;
}

export class ClientError extends Error {
  readonly result: ClientResult;
  /**
   * The client's own log file for this run, whole (certbot rotates it per run). certbot 2.1 on
   * Python 3.11 prints "AttributeError: can't set attribute" for every ACME error (josepy's
   * immutable Error vs contextlib), so the server's problem document is only in this log.
   */
  readonly log: string;
  constructor(message: string, result: ClientResult, log = '') {
    super(message);
    this.name = 'ClientError';
    this.result = result;
    this.log = log;
  }

  /** Output and log together, for matching an ACME error type wherever the client put it. */
  get everything(): string {
    return `${this.result.output}\n${this.log}`;
  }
}

interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  /** Appended to the error message on failure (certbot's debug log). */
  extraLogFile?: string;
}

function tailOf(s: string, max: number): string {
  return s.length <= max ? s : `…${s.slice(s.length - max)}`;
}

/** Spawn a client, wait for it (bounded), and throw ClientError unless it exits 0. */
export async function runClient(bin: string, args: readonly string[], opts: RunOptions = {}): Promise<ClientResult> {
  const result = await runClientUnchecked(bin, args, opts);
  if (result.code === 0 && !result.timedOut) return result;
  let message = `${result.command}\n${result.timedOut ? 'timed out' : `exited code=${result.code} signal=${result.signal}`}\n--- output (tail) ---\n${tailOf(result.output, ERROR_TAIL_CHARS)}`;
  let log = '';
  if (opts.extraLogFile !== undefined) {
    log = await fsp.readFile(opts.extraLogFile, 'utf8').catch(() => '');
    if (log) message += `\n--- ${opts.extraLogFile} (tail) ---\n${tailOf(log, ERROR_TAIL_CHARS)}`;
  }
  throw new ClientError(message, result, log);
}

export function runClientUnchecked(bin: string, args: readonly string[], opts: RunOptions = {}): Promise<ClientResult> {
  const command = [bin, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  return new Promise<ClientResult>((resolve) => {
    const child = spawn(bin, [...args], {
      cwd: opts.cwd,
      env: {
        ...process.env,
        // A proxy in the environment would swallow loopback traffic from Python requests.
        NO_PROXY: '127.0.0.1,localhost',
        no_proxy: '127.0.0.1,localhost',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let output = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      output += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      output += s;
    });
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      resolve({ command, code, signal, stdout, stderr, output, timedOut });
    };
    child.once('error', (err) => {
      output += `\n[spawn error] ${err.message}\n`;
      finish(null, null);
    });
    child.once('close', finish);
  });
}

// ---------------------------------------------------------------------------------------------
// DNS hook: one script serves lego's exec provider and certbot's manual hooks.

/**
 * Writes `<dir>/dns-hook.sh`, which plants TXT records as `<txtDir>/<name>/<value>` files that
 * the test DNS server reads on every query. Files instead of a control endpoint: no port, no
 * HTTP client in the hook, and nothing left running when the hook returns.
 *
 * lego exec calls it as `hook present|cleanup FQDN VALUE`; certbot's hooks are configured as
 * `hook certbot-present|certbot-cleanup` and pass the name and value in the environment.
 */
export async function writeDnsHook(dir: string, txtDir: string): Promise<string> {
  const hook = path.join(dir, 'dns-hook.sh');
  const script = `#!/bin/sh
set -eu
dir=${shQuote(txtDir)}
case "\${1:-}" in
  certbot-*)
    action="\${1#certbot-}"; fqdn="_acme-challenge.\${CERTBOT_DOMAIN}"; value="\${CERTBOT_VALIDATION}" ;;
  *)
    action="\${1:-}"; fqdn="\${2:-}"; value="\${3:-}" ;;
esac
name=$(printf '%s' "$fqdn" | sed 's/\\.*$//' | tr 'A-Z' 'a-z')
case "$value" in ''|*[!A-Za-z0-9_-]*) echo "dns-hook: unexpected TXT value '$value'" >&2; exit 1 ;; esac
case "$name" in ''|.*|*/*) echo "dns-hook: unexpected name '$fqdn'" >&2; exit 1 ;; esac
case "$action" in
  present) mkdir -p "$dir/$name" && : > "$dir/$name/$value" ;;
  cleanup) rm -f "$dir/$name/$value"; rmdir "$dir/$name" 2>/dev/null || true ;;
  *) echo "dns-hook: unknown action '$action'" >&2; exit 1 ;;
esac
echo "dns-hook: $action $name $value"
`;
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(hook, script, { mode: 0o755 });
  return hook;
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------------------------
// certbot

export type KeyType = 'ecdsa' | 'rsa';

export interface CertbotBase {
  ca: CaTarget;
  /** Holds certbot's config/, work/ and logs/; keep one per CA so renew finds the lineage. */
  workDir: string;
  timeoutMs?: number;
}

export interface CertbotCertonlyOptions extends CertbotBase {
  /** One name or several (the first names the lineage). */
  name: string | readonly string[];
  /** Must equal the CA's http-01 port: certbot's standalone server listens where the CA dials. */
  httpPort: number;
  /** Certificate key type; certbot 2.x defaults to ECDSA, so RSA must be asked for. */
  keyType?: KeyType;
  /** Lineage name, default the first name. */
  certName?: string;
}

export interface CertbotRenewOptions extends CertbotBase {
  /** Lineage to renew (`--cert-name`), normally the first name given to certonly. */
  certName: string;
  /** For standalone http-01 lineages; overrides what the renewal config stored. */
  httpPort?: number;
  /** For manual dns-01 lineages: the hook must be given again since renew re-runs it. */
  txtDir?: string;
}

export interface CertbotRevokeOptions extends CertbotBase {
  certPath: string;
  /** Sign with the certificate's own key (jwk) instead of the account key (kid). */
  keyPath?: string;
  reason: 'unspecified' | 'keycompromise' | 'affiliationchanged' | 'superseded' | 'cessationofoperation';
}

export interface CertbotDnsOptions extends CertbotBase {
  name: string | readonly string[];
  /** The test DNS server's hook directory (`CaProcess.txtDir`). */
  txtDir: string;
  keyType?: KeyType;
  certName?: string;
}

export interface CertbotLineage {
  certName: string;
  certPath: string;
  chainPath: string;
  fullchainPath: string;
  keyPath: string;
  result: ClientResult;
}

function certbotDirs(workDir: string): string[] {
  return [
    '--config-dir', path.join(workDir, 'config'),
    '--work-dir', path.join(workDir, 'work'),
    '--logs-dir', path.join(workDir, 'logs'),
  ];
}

function certbotCommon(o: CertbotBase): string[] {
  return ['--server', o.ca.directoryUrl, ...certbotDirs(o.workDir), '--non-interactive'];
}

async function certbotRun(o: CertbotBase, args: string[]): Promise<ClientResult> {
  // spawn reports a missing cwd as ENOENT for the binary, which is misleading; create it.
  await fsp.mkdir(o.workDir, { recursive: true });
  return runClient(CERTBOT_BIN, args, {
    // certbot (Python requests) trusts only this bundle for the ACME server's HTTPS.
    env: { REQUESTS_CA_BUNDLE: o.ca.rootPem },
    timeoutMs: o.timeoutMs,
    cwd: o.workDir,
    extraLogFile: path.join(o.workDir, 'logs', 'letsencrypt.log'),
  });
}

function names(n: string | readonly string[]): readonly string[] {
  return typeof n === 'string' ? [n] : n;
}

function lineage(workDir: string, certName: string, result: ClientResult): CertbotLineage {
  const live = path.join(workDir, 'config', 'live', certName);
  const l: CertbotLineage = {
    certName,
    certPath: path.join(live, 'cert.pem'),
    chainPath: path.join(live, 'chain.pem'),
    fullchainPath: path.join(live, 'fullchain.pem'),
    keyPath: path.join(live, 'privkey.pem'),
    result,
  };
  if (!fs.existsSync(l.fullchainPath)) {
    throw new ClientError(`certbot succeeded but ${l.fullchainPath} is missing\n${tailOf(result.output, ERROR_TAIL_CHARS)}`, result);
  }
  return l;
}

export async function certbotCertonly(o: CertbotCertonlyOptions): Promise<CertbotLineage> {
  const ns = names(o.name);
  const certName = o.certName ?? ns[0];
  const args = [
    'certonly',
    '--standalone', '--preferred-challenges', 'http',
    '--http-01-port', String(o.httpPort), '--http-01-address', '127.0.0.1',
    ...certbotCommon(o),
    '--agree-tos', '-m', TEST_EMAIL, '--no-eff-email',
    '--key-type', o.keyType ?? 'ecdsa',
    '--cert-name', certName,
    ...ns.flatMap((n) => ['-d', n]),
  ];
  return lineage(o.workDir, certName, await certbotRun(o, args));
}

export async function certbotDnsManual(o: CertbotDnsOptions): Promise<CertbotLineage> {
  const ns = names(o.name);
  const certName = o.certName ?? ns[0];
  const hook = await writeDnsHook(o.workDir, o.txtDir);
  const args = [
    'certonly',
    '--manual', '--preferred-challenges', 'dns',
    // certbot runs hooks through the shell, so the action can ride along as an argument.
    '--manual-auth-hook', `${hook} certbot-present`,
    '--manual-cleanup-hook', `${hook} certbot-cleanup`,
    ...certbotCommon(o),
    '--agree-tos', '-m', TEST_EMAIL, '--no-eff-email',
    '--key-type', o.keyType ?? 'ecdsa',
    '--cert-name', certName,
    ...ns.flatMap((n) => ['-d', n]),
  ];
  return lineage(o.workDir, certName, await certbotRun(o, args));
}

export async function certbotRenew(o: CertbotRenewOptions): Promise<CertbotLineage> {
  const args = [
    'renew', '--force-renewal',
    // Without it certbot sleeps up to 8 minutes when stdin is not a terminal.
    '--no-random-sleep-on-renew',
    '--cert-name', o.certName,
    ...certbotCommon(o),
  ];
  if (o.httpPort !== undefined) args.push('--http-01-port', String(o.httpPort), '--http-01-address', '127.0.0.1');
  if (o.txtDir !== undefined) {
    const hook = await writeDnsHook(o.workDir, o.txtDir);
    args.push('--manual-auth-hook', `${hook} certbot-present`, '--manual-cleanup-hook', `${hook} certbot-cleanup`);
  }
  return lineage(o.workDir, o.certName, await certbotRun(o, args));
}

export async function certbotRevoke(o: CertbotRevokeOptions): Promise<ClientResult> {
  const args = [
    'revoke',
    '--cert-path', o.certPath,
    ...(o.keyPath !== undefined ? ['--key-path', o.keyPath] : []),
    '--reason', o.reason,
    // Keep the files: tests revoke twice and inspect the certificate afterwards.
    '--no-delete-after-revoke',
    ...certbotCommon(o),
  ];
  return certbotRun(o, args);
}

// ---------------------------------------------------------------------------------------------
// lego

export type LegoChallenge = 'http' | 'tls' | 'dns';

export interface LegoBase {
  ca: CaTarget;
  /** lego's `--path` (accounts/ and certificates/); keep one per CA so renew/revoke find the cert. */
  workDir: string;
  /** One name or several; the first names the certificate files. */
  name: string | readonly string[];
  timeoutMs?: number;
}

export interface LegoRunOptions extends LegoBase {
  challenge: LegoChallenge;
  /** For http/tls: must equal the CA's http-01 or tls-alpn-01 port. */
  port?: number;
  /** For dns: the test DNS server (`host:port`) lego checks the record on. */
  dnsResolver?: string;
  /** For dns: the test DNS server's hook directory (`CaProcess.txtDir`). */
  txtDir?: string;
  /** lego `--key-type`, e.g. ec256 (its default), ec384, rsa2048. */
  keyType?: string;
}

export interface LegoRevokeOptions extends LegoBase {
  /** RFC 5280 reason code (1 = keyCompromise). */
  reason: number;
  /** Keep the certificate files (lego archives them otherwise), so a second revoke can be tried. */
  keep?: boolean;
}

export interface LegoCert {
  certPath: string;
  keyPath: string;
  issuerPath: string;
  result: ClientResult;
}

/** lego names files after the first domain with `*` replaced, see certs_storage.go sanitizedDomain. */
function legoFileBase(workDir: string, name: string): string {
  return path.join(workDir, 'certificates', name.replace(/\*/g, '_'));
}

async function legoChallengeArgs(o: LegoRunOptions): Promise<{ args: string[]; env: Record<string, string> }> {
  switch (o.challenge) {
    case 'http':
      if (o.port === undefined) throw new Error('legoRun http: port (the CA http-01 port) is required');
      return { args: ['--http', '--http.port', `127.0.0.1:${o.port}`], env: {} };
    case 'tls':
      if (o.port === undefined) throw new Error('legoRun tls: port (the CA tls-alpn-01 port) is required');
      return { args: ['--tls', '--tls.port', `127.0.0.1:${o.port}`], env: {} };
    case 'dns': {
      if (o.dnsResolver === undefined || o.txtDir === undefined) {
        throw new Error('legoRun dns: dnsResolver and txtDir are required');
      }
      const hook = await writeDnsHook(o.workDir, o.txtDir);
      return {
        args: ['--dns', 'exec', '--dns.disable-cp', '--dns.resolvers', o.dnsResolver],
        // exec solves one name at a time and waits EXEC_SEQUENCE_INTERVAL (60 s) between names.
        env: { EXEC_PATH: hook, EXEC_PROPAGATION_TIMEOUT: '30', EXEC_POLLING_INTERVAL: '1', EXEC_SEQUENCE_INTERVAL: '1' },
      };
    }
  }
}

function legoGlobal(o: LegoBase): string[] {
  return [
    '--server', o.ca.directoryUrl,
    '--path', o.workDir,
    '--email', TEST_EMAIL,
    '--accept-tos',
    ...names(o.name).flatMap((n) => ['-d', n]),
  ];
}

async function legoExec(o: LegoBase, args: string[], env: Record<string, string>): Promise<ClientResult> {
  await fsp.mkdir(o.workDir, { recursive: true });
  return runClient(LEGO_BIN, args, {
    env: { LEGO_CA_CERTIFICATES: o.ca.rootPem, ...env },
    timeoutMs: o.timeoutMs,
    cwd: o.workDir,
  });
}

function legoCert(o: LegoBase, result: ClientResult): LegoCert {
  const base = legoFileBase(o.workDir, names(o.name)[0]);
  const c: LegoCert = {
    certPath: `${base}.crt`,
    keyPath: `${base}.key`,
    issuerPath: `${base}.issuer.crt`,
    result,
  };
  if (!fs.existsSync(c.certPath)) {
    throw new ClientError(`lego succeeded but ${c.certPath} is missing\n${tailOf(result.output, ERROR_TAIL_CHARS)}`, result);
  }
  return c;
}

export async function legoRun(o: LegoRunOptions): Promise<LegoCert> {
  const ch = await legoChallengeArgs(o);
  const args = [...legoGlobal(o), ...ch.args, ...(o.keyType ? ['--key-type', o.keyType] : []), 'run'];
  return legoCert(o, await legoExec(o, args, ch.env));
}

export async function legoRenew(o: LegoRunOptions): Promise<LegoCert> {
  const ch = await legoChallengeArgs(o);
  const args = [
    ...legoGlobal(o), ...ch.args, ...(o.keyType ? ['--key-type', o.keyType] : []),
    // --days far beyond any validity forces renewal; --no-random-sleep skips lego's jitter.
    'renew', '--days', '100000', '--no-random-sleep',
  ];
  return legoCert(o, await legoExec(o, args, ch.env));
}

export async function legoRevoke(o: LegoRevokeOptions): Promise<ClientResult> {
  const args = [...legoGlobal(o), 'revoke', '--reason', String(o.reason), ...(o.keep ? ['--keep'] : [])];
  return legoExec(o, args, {});
}
