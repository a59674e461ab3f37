import { promises as fsp } from 'node:fs';

interface Closable { close(): unknown }

/** Ends what an in-process test started, in dependency order: clients, server, peers, temp files. */
export async function teardown(parts: { clients?: Closable[]; server?: Closable; responder?: Closable; dns?: Closable; tmp?: string }): Promise<void> {
  for (const c of parts.clients ?? []) c.close();
  await parts.server?.close();
  await parts.responder?.close();
  await parts.dns?.close();
  if (parts.tmp) await fsp.rm(parts.tmp, { recursive: true, force: true });
}
