import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { StartupError, startServer } from './server.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`acme-ca: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(config.logLevel);
  const server = await startServer(config, log);
  log.info({ directoryUrl: server.directoryUrl, root: server.ca.rootPath }, 'ACME CA ready');
  process.stderr.write(`ACME directory: ${server.directoryUrl}\nTrust this root certificate: ${server.ca.rootPath}\nIssuance log verifier key: ${server.logKey.vkey}\n`);

  let closing = false;
  const shutdown = (signal: string): void => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down');
    server.close().then(() => process.exit(0), (e: unknown) => { log.error({ err: e }, 'shutdown failed'); process.exit(1); });
  };
  process.on('SIGHUP', () => { void server.reload(); });
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((e: unknown) => {
  process.stderr.write(`acme-ca: failed to start: ${(e as Error).message}\n`);
  process.exit(e instanceof StartupError ? 2 : 1);
});
