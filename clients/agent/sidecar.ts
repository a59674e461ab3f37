#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { RenewalAgent, type AgentLogEntry, type RenewedInfo } from './acme-agent.js';

const HELP = `acme-ca sidecar — keeps one certificate fresh with ACME and ARI (RFC 9773)

Usage:
  node dist/clients/agent/sidecar.js --directory URL --ca ROOT.pem --account-key FILE
      --name NAME [--name NAME ...] --cert FILE --key FILE --http01 HOST:PORT
      [--profile NAME] [--contact mailto:...] [--eab-kid ID --eab-hmac-key KEY]
      [--on-renew "COMMAND"] [--once] [--verbose]

  --directory      the CA's ACME directory URL
  --ca             PEM bundle that verifies the CA's HTTPS certificate
  --account-key    private JWK file; a new P-256 key is written there (0600) if it does not exist
  --name           DNS name or IP address for the certificate (repeat for more)
  --cert, --key    where the chain (leaf first) and the private key (0600) are written, atomically
  --http01         HOST:PORT of the built-in http-01 responder (listening only during validation)
  --on-renew       shell command run after each renewal (CERT_PATH, KEY_PATH, CERT_SERIAL in its environment)
  --once           check once and exit: 0 renewed or not due, 1 failure

Without --once the sidecar runs until SIGTERM/SIGINT, checking when the CA's Retry-After says.
`;

function fail(msg: string, code = 2): never {
  process.stderr.write(`sidecar: ${msg}\n`);
  process.exit(code);
}

function parseHostPort(v: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) fail(`--http01 ${JSON.stringify(v)} is not HOST:PORT`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** Runs the hook through the shell; resolves with its exit code (bounded to 5 minutes). */
function runHook(command: string, info: RenewedInfo, certPath: string, keyPath: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, { shell: true, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, CERT_PATH: certPath, KEY_PATH: keyPath, CERT_SERIAL: info.serial, CERT_ID: info.certId } });
    const timer = setTimeout(() => child.kill('SIGTERM'), 300_000);
    child.once('error', (e) => { clearTimeout(timer); process.stderr.write(`sidecar: --on-renew could not start: ${e.message}\n`); resolve(127); });
    child.once('close', (code, signal) => { clearTimeout(timer); resolve(code ?? (signal ? 128 : 1)); });
  });
}

function parseCli() {
  try {
    return parseArgs({
      args: process.argv.slice(2), strict: true, allowPositionals: false,
      options: {
        directory: { type: 'string' }, ca: { type: 'string' }, 'account-key': { type: 'string' }, name: { type: 'string', multiple: true },
        cert: { type: 'string' }, key: { type: 'string' }, http01: { type: 'string' }, profile: { type: 'string' }, contact: { type: 'string', multiple: true },
        'eab-kid': { type: 'string' }, 'eab-hmac-key': { type: 'string' }, 'on-renew': { type: 'string' }, once: { type: 'boolean' }, verbose: { type: 'boolean' }, help: { type: 'boolean' },
      },
    });
  } catch (e) {
    return fail(`${(e as Error).message}\n\n${HELP}`);
  }
}

async function main(): Promise<void> {
  const v = parseCli().values;
  if (v.help) { process.stdout.write(HELP); return; }
  const need = (k: 'directory' | 'ca' | 'account-key' | 'cert' | 'key' | 'http01'): string => v[k] ?? fail(`--${k} is required\n\n${HELP}`);
  const names = v.name ?? [];
  if (names.length === 0) fail(`give at least one --name\n\n${HELP}`);
  if ((v['eab-kid'] === undefined) !== (v['eab-hmac-key'] === undefined)) fail('--eab-kid and --eab-hmac-key go together');
  let caPem: string;
  try { caPem = readFileSync(need('ca'), 'utf8'); } catch (e) { fail(`cannot read --ca: ${(e as Error).message}`); }
  const certPath = need('cert');
  const keyPath = need('key');
  const hook = v['on-renew'];
  let hookFailed = false;
  const verbose = v.verbose === true;
  const log = (e: AgentLogEntry): void => {
    if (e.level === 'debug' && !verbose) return;
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: e.level, msg: e.msg, ...e.fields })}\n`);
  };
  const agent = new RenewalAgent({
    directoryUrl: need('directory'), caPem, accountKey: need('account-key'), identifiers: names, certPath, keyPath,
    challenge: { kind: 'responder', ...parseHostPort(need('http01')) },
    ...(v.profile ? { profile: v.profile } : {}), ...(v.contact ? { contact: v.contact } : {}),
    ...(v['eab-kid'] && v['eab-hmac-key'] ? { eab: { keyId: v['eab-kid'], hmacKey: v['eab-hmac-key'] } } : {}),
    log,
    onRenewed: async (_cert, _key, info) => {
      process.stdout.write(`${JSON.stringify({ renewed: true, serial: info.serial, certId: info.certId, replaced: info.replaced, notAfter: info.notAfter.toISOString() })}\n`);
      if (!hook) return;
      const code = await runHook(hook, info, certPath, keyPath);
      if (code !== 0) {
        hookFailed = true;
        log({ level: 'error', msg: `--on-renew exited with ${code}` });
      }
    },
  });

  if (v.once) {
    try {
      const r = await agent.checkOnce();
      if (!r.renewed) process.stdout.write(`${JSON.stringify({ renewed: false, serial: r.serial, certId: r.certId, renewAt: r.renewAt?.toISOString() ?? null })}\n`);
    } catch (e) {
      process.stderr.write(`sidecar: ${(e as Error).message}\n`);
      await agent.stop();
      process.exit(1);
    }
    await agent.stop();
    process.exit(hookFailed ? 1 : 0);
  }

  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    agent.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // Keeps the process alive between checks (the agent's own timer does not).
  setInterval(() => undefined, 3_600_000);
  await agent.start();
}

main().catch((e: unknown) => fail((e as Error).message, 1));
