import type { Storage } from '../../storage/types.js';
import { consistencyProof, inclusionProof, rootAt, type NodeGetter } from './merkle.js';

const PLACEHOLDER = new Uint8Array(32);

/**
 * Runs tree math over stored nodes with an async store: a first pass records which nodes the
 * computation reads (the traversal depends only on sizes and indices, never on hash values), one
 * batched read fetches them, and a second pass computes with the real hashes.
 */
export async function withStoredNodes<T>(store: Storage, compute: (get: NodeGetter) => T): Promise<T> {
  const wanted: Array<{ level: number; index: number }> = [];
  compute((level, index) => { wanted.push({ level, index }); return PLACEHOLDER; });
  const nodes = await store.getLogNodes(wanted);
  return compute((level, index) => nodes.get(`${level}/${index}`));
}

export const storedInclusionProof = (store: Storage, index: number, size: number): Promise<Buffer[]> =>
  withStoredNodes(store, (get) => inclusionProof(index, size, get));

export const storedConsistencyProof = (store: Storage, size1: number, size2: number): Promise<Buffer[]> =>
  withStoredNodes(store, (get) => consistencyProof(size1, size2, get));

export const storedRoot = (store: Storage, size: number): Promise<Buffer> =>
  withStoredNodes(store, (get) => rootAt(size, get));
