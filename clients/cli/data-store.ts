import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStorage } from '../../storage/sqlite/sqlite-storage.js';
import type { Config } from '../../server/config.js';

export class NoDatabaseError extends Error {}

/**
 * Opens the data folder's database for one CLI command. It is shared with a running server:
 * SQLite's WAL lets both write safely. `create` allows a first command before the first start.
 */
export async function withStore<T>(config: Config, fn: (store: SqliteStorage) => Promise<T>, opts: { create: boolean } = { create: true }): Promise<T> {
  const file = join(config.dataDir, 'acme-ca.sqlite');
  if (!opts.create && !existsSync(file)) throw new NoDatabaseError(`no database in ${config.dataDir}; run "acme-ca init" or start the server first`);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const store = new SqliteStorage(file);
  try {
    await store.migrate();
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Human output by default, one JSON document with --json. */
export function out(json: boolean, value: unknown, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : human.endsWith('\n') ? human : `${human}\n`);
}
