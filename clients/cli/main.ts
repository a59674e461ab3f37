#!/usr/bin/env node
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CaImportError } from '../../server/ca/ca-material.js';
import { createIntermediateCsr, importSignedIntermediate } from '../../server/ca/intermediate-request.js';
import { ConfigError, loadConfig } from '../../server/config.js';
import { runLogCommand } from './log-commands.js';
import { ADMIN_HELP, runAdminCommand, UsageError } from './admin-commands.js';
import { MESH_HELP, runMeshCommand } from './mesh-commands.js';
import { CA_HELP, runCaCommand } from './ca-commands.js';

const HELP = `acme-ca — an internal certificate authority that speaks ACME

Usage:
  acme-ca serve                          run the server (same as npm start)
  acme-ca intermediate csr [--out FILE] [--cn NAME] [--org NAME] [--json]
                                         write a key (kept in the data folder, 0600) and a CSR
                                         for an intermediate that an enterprise root will sign
  acme-ca intermediate import --cert FILE [--root FILE] [--key FILE] [--json]
                                         check the signed intermediate and install it
  acme-ca log verify --url URL --vkey VKEY|@FILE [--state FILE] [--full] [--ca ROOT.pem] [--token T] [--json]
                                         check the issuance log's signed checkpoint, its consistency
                                         with the last run (--state) and, with --full, every entry
  acme-ca log export --url URL [--from N] [--to N] [--out FILE] [--ca ROOT.pem] [--token T]
                                         write log entries as JSON lines for an auditor
                                         (acme-ca log help: details and exit codes)
${CA_HELP}${ADMIN_HELP}${MESH_HELP}  acme-ca help                           this text

The data folder is ACME_CA_DATA_DIR (default ./data) or dataDir in the ACME_CA_CONFIG file.
Exit codes: 0 success, 1 operation failed, 2 bad usage or configuration.
`;

function usage(msg: string): never {
  process.stderr.write(`acme-ca: ${msg}\n\n${HELP}`);
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  const [cmd, sub, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') { process.stdout.write(HELP); return; }
  if (cmd === 'serve') { await import('../../server/main.js'); return; }
  // The log commands talk to a server over HTTPS and need no local configuration.
  if (cmd === 'log') return runLogCommand(sub, rest);
  if (cmd === 'init' || cmd === 'cert' || cmd === 'renew-now' || (cmd === 'intermediate' && (sub === 'rotate' || sub === 'alternate'))) {
    if (rest.includes('--help') || sub === '--help') { process.stdout.write(HELP); return; }
    return runCaCommand(cmd, sub, rest, loadConfig());
  }
  if (cmd === 'mesh') {
    if (rest.includes('--help') || !sub) { process.stdout.write(HELP); return; }
    return runMeshCommand(sub, rest, () => loadConfig());
  }
  if (cmd === 'eab' || cmd === 'token' || cmd === 'policy') {
    if (rest.includes('--help')) { process.stdout.write(HELP); return; }
    return runAdminCommand(cmd, sub, rest, loadConfig());
  }
  if (cmd !== 'intermediate') usage(`unknown command "${cmd}"`);
  const { values } = parseArgs({
    args: rest, strict: true,
    options: { out: { type: 'string' }, cn: { type: 'string' }, org: { type: 'string' }, cert: { type: 'string' }, root: { type: 'string' }, key: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } },
  });
  if (values.help) { process.stdout.write(HELP); return; }
  const config = loadConfig();
  if (sub === 'csr') {
    const org = values.org ?? config.ca.organization;
    const { csrPem, keyPath } = await createIntermediateCsr(config.dataDir, { organization: org, commonName: values.cn ?? `${org} Intermediate CA` });
    const out = resolve(values.out ?? `${config.dataDir}/intermediate.csr`);
    writeFileSync(out, csrPem, { mode: 0o644 });
    if (values.json) process.stdout.write(`${JSON.stringify({ csr: out, key: keyPath })}\n`);
    else process.stdout.write(`CSR written to ${out}\nThe private key stays at ${keyPath} (mode 0600).\nHave the root sign it as a CA (basicConstraints CA:TRUE, pathlen:1; keyUsage keyCertSign, cRLSign), then run:\n  acme-ca intermediate import --cert signed.pem --root root.pem\n`);
    return;
  }
  if (sub === 'import') {
    if (!values.cert) usage('intermediate import needs --cert FILE');
    await importSignedIntermediate(config.dataDir, resolve(values.cert), values.root ? resolve(values.root) : null, values.key ? resolve(values.key) : undefined);
    if (values.json) process.stdout.write(`${JSON.stringify({ imported: true, dataDir: config.dataDir })}\n`);
    else process.stdout.write(`Intermediate installed in ${config.dataDir}; restart the server to issue with it.\n`);
    return;
  }
  usage(`unknown intermediate subcommand "${sub ?? ''}"`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof ConfigError || e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) usage((e as Error).message);
  process.stderr.write(`acme-ca: ${e instanceof CaImportError ? 'refused: ' : ''}${(e as Error).message}\n`);
  process.exit(1);
});
