// RFC 6962 / RFC 9162 Merkle tree: hashing, proof verification (RFC 9162
// §2.1.3.2 and §2.1.4.2, with the edge-case semantics of transparency-dev/merkle)
// and proof generation from stored complete-subtree nodes.
//
// Sizes and indices are plain numbers. JavaScript bitwise operators work on
// int32, so every bit manipulation below uses `% 2` and division instead; that
// is exact for all safe integers (< 2^53), which every entry point enforces.

import { createHash } from 'node:crypto';

export const HASH_SIZE = 32;

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);
const EMPTY_ROOT = createHash('sha256').digest();

/** Reads the stored hash of the perfect subtree (level, index); undefined if absent. */
export type NodeGetter = (level: number, index: number) => Uint8Array | undefined;

export interface StoredNode {
  level: number;
  index: number;
  hash: Buffer;
}

export interface ConsistencyOptions {
  /**
   * C2SP tlog-witness treats the empty tree as consistent with every tree
   * (`old 0` with an empty proof); the reference library rejects size1 = 0.
   * Off by default so the strict reference semantics apply.
   */
  allowEmptyOld?: boolean;
}

export function leafHash(entry: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(entry).digest();
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

export function emptyRoot(): Buffer {
  return Buffer.from(EMPTY_ROOT); // a copy, so callers cannot corrupt the constant
}

/** Reference MTH straight from the RFC definition; O(n), meant for verifiers and tests. */
export function rootFromLeafHashes(leaves: readonly Uint8Array[]): Buffer {
  leaves.forEach((h, i) => checkHash(`leaf hash ${i}`, h));
  if (leaves.length === 0) return emptyRoot();
  const mth = (lo: number, hi: number): Buffer => {
    if (hi - lo === 1) return Buffer.from(leaves[lo]);
    const k = largestPowerOfTwoBelow(hi - lo);
    return nodeHash(mth(lo, lo + k), mth(lo + k, hi));
  };
  return mth(0, leaves.length);
}

// ---------------------------------------------------------------------------
// Verification

export function rootFromInclusionProof(
  leafIndex: number,
  treeSize: number,
  leafHashValue: Uint8Array,
  proof: readonly Uint8Array[],
): Buffer {
  checkCount('leaf index', leafIndex);
  checkCount('tree size', treeSize);
  if (leafIndex >= treeSize) {
    throw new Error(`leaf index ${leafIndex} is out of range for tree size ${treeSize}`);
  }
  checkHash('leaf hash', leafHashValue);
  const want = chainLength(leafIndex, treeSize - 1);
  if (proof.length !== want) {
    throw new Error(
      `wrong inclusion proof length for leaf ${leafIndex} in tree size ${treeSize}: got ${proof.length} hashes, want ${want}`,
    );
  }
  proof.forEach((h, i) => checkHash(`inclusion proof[${i}]`, h));

  let fn = leafIndex;
  let sn = treeSize - 1;
  let r: Buffer = Buffer.from(leafHashValue);
  for (const p of proof) {
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return r;
}

export function verifyInclusion(
  leafIndex: number,
  treeSize: number,
  leafHashValue: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  const computed = rootFromInclusionProof(leafIndex, treeSize, leafHashValue, proof);
  if (!computed.equals(root)) {
    throw new Error(
      `inclusion proof for leaf ${leafIndex} in tree size ${treeSize} does not verify: ` +
        `computed root ${computed.toString('hex')}, expected ${hex(root)}`,
    );
  }
}

export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
  options: ConsistencyOptions = {},
): void {
  checkCount('size1', size1);
  checkCount('size2', size2);
  if (size1 > size2) {
    throw new Error(`size1 ${size1} is greater than size2 ${size2}: a log cannot shrink`);
  }
  if (size1 === 0) {
    if (!options.allowEmptyOld) {
      throw new Error('consistency proof from the empty tree (size1 = 0) is meaningless');
    }
    if (proof.length !== 0) {
      throw new Error(`consistency proof from the empty tree must be empty, got ${proof.length} hashes`);
    }
    if (!EMPTY_ROOT.equals(root1)) {
      throw new Error(`root1 of the empty tree must be ${EMPTY_ROOT.toString('hex')}, got ${hex(root1)}`);
    }
    return;
  }
  if (size1 === size2) {
    if (proof.length !== 0) {
      throw new Error(`consistency proof between equal sizes ${size1} must be empty, got ${proof.length} hashes`);
    }
    // Like the reference, roots are compared as opaque bytes here (no length check).
    if (!Buffer.from(root1).equals(root2)) {
      throw new Error(`roots differ at equal size ${size1}: ${hex(root1)} != ${hex(root2)}`);
    }
    return;
  }
  if (proof.length === 0) {
    throw new Error(`empty consistency proof from size ${size1} to ${size2}`);
  }
  checkHash('root1', root1);
  checkHash('root2', root2);

  // When size1 is a power of two its root is itself the first path node, and the
  // proof omits it because the verifier already knows it.
  const omitsFirst = isPowerOfTwo(size1);
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  const want = chainLength(fn, sn) + (omitsFirst ? 0 : 1);
  if (proof.length !== want) {
    throw new Error(
      `wrong consistency proof length from size ${size1} to ${size2}: got ${proof.length} hashes, want ${want}`,
    );
  }
  proof.forEach((h, i) => checkHash(`consistency proof[${i}]`, h));

  const path = omitsFirst ? [root1, ...proof] : proof;
  let fr: Buffer = Buffer.from(path[0]);
  let sr = fr;
  for (const c of path.slice(1)) {
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (!fr.equals(root1)) {
    throw new Error(
      `consistency proof from size ${size1} to ${size2} does not verify: ` +
        `computed root1 ${fr.toString('hex')}, expected ${hex(root1)}`,
    );
  }
  if (!sr.equals(root2)) {
    throw new Error(
      `consistency proof from size ${size1} to ${size2} does not verify: ` +
        `computed root2 ${sr.toString('hex')}, expected ${hex(root2)}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Storage-oriented tree: node (level, i) is the hash of leaves
// [i * 2^level, (i + 1) * 2^level); only complete subtrees are ever stored.

export function nodesToStoreOnAppend(size: number, leaf: Uint8Array, getNode: NodeGetter): StoredNode[] {
  checkCount('size', size);
  if (size >= Number.MAX_SAFE_INTEGER) throw new Error(`tree size ${size} cannot grow further`);
  checkHash('leaf hash', leaf);
  let hash: Buffer = Buffer.from(leaf);
  let level = 0;
  let index = size;
  const out: StoredNode[] = [{ level, index, hash }];
  // Each odd index closes a pair, completing the parent; this climbs the right frontier.
  while (isOdd(index)) {
    hash = nodeHash(readNode(getNode, level, index - 1), hash);
    index = (index - 1) / 2;
    level += 1;
    out.push({ level, index, hash });
  }
  return out;
}

export function rootAt(treeSize: number, getNode: NodeGetter): Buffer {
  checkCount('tree size', treeSize);
  return treeSize === 0 ? emptyRoot() : rangeHash(0, treeSize, getNode);
}

export function inclusionProof(leafIndex: number, treeSize: number, getNode: NodeGetter): Buffer[] {
  checkCount('leaf index', leafIndex);
  checkCount('tree size', treeSize);
  if (leafIndex >= treeSize) {
    throw new Error(`leaf index ${leafIndex} is out of range for tree size ${treeSize}`);
  }
  // RFC 9162 §2.1.3.1 PATH, unrolled top-down; the proof lists the leaf's sibling first.
  const path: Buffer[] = [];
  let lo = 0;
  let hi = treeSize;
  while (hi - lo > 1) {
    const k = largestPowerOfTwoBelow(hi - lo);
    if (leafIndex < lo + k) {
      path.push(rangeHash(lo + k, hi, getNode));
      hi = lo + k;
    } else {
      path.push(rangeHash(lo, lo + k, getNode));
      lo += k;
    }
  }
  return path.reverse();
}

/** RFC 9162 proof; empty for size1 = size2 and for size1 = 0 (what tlog-witness expects). */
export function consistencyProof(size1: number, size2: number, getNode: NodeGetter): Buffer[] {
  checkCount('size1', size1);
  checkCount('size2', size2);
  if (size1 > size2) {
    throw new Error(`size1 ${size1} is greater than size2 ${size2}: a log cannot shrink`);
  }
  if (size1 === 0 || size1 === size2) return [];
  // RFC 9162 §2.1.4.1 SUBPROOF, unrolled top-down; m is relative to [lo, hi).
  const path: Buffer[] = [];
  let lo = 0;
  let hi = size2;
  let m = size1;
  let complete = true;
  for (;;) {
    if (m === hi - lo) {
      if (!complete) path.push(rangeHash(lo, hi, getNode));
      break;
    }
    const k = largestPowerOfTwoBelow(hi - lo);
    if (m <= k) {
      path.push(rangeHash(lo + k, hi, getNode));
      hi = lo + k;
    } else {
      path.push(rangeHash(lo, lo + k, getNode));
      lo += k;
      m -= k;
      complete = false;
    }
  }
  return path.reverse();
}

/**
 * MTH(D[begin:end]) for a range that is a node of the RFC tree (begin is a
 * multiple of the largest power of two <= end - begin): fold the perfect
 * subtrees of the binary decomposition right to left, O(log n) reads.
 */
function rangeHash(begin: number, end: number, getNode: NodeGetter): Buffer {
  const parts: Buffer[] = [];
  let pos = begin;
  while (pos < end) {
    const width = largestPowerOfTwoAtMost(end - pos);
    if (pos % width !== 0) throw new Error(`internal error: range [${begin}, ${end}) is not a tree node`);
    parts.push(readNode(getNode, log2(width), pos / width));
    pos += width;
  }
  let acc = parts[parts.length - 1];
  for (let i = parts.length - 2; i >= 0; i--) acc = nodeHash(parts[i], acc);
  return acc;
}

function readNode(getNode: NodeGetter, level: number, index: number): Buffer {
  const h = getNode(level, index);
  if (h === undefined) throw new Error(`missing stored node (level ${level}, index ${index})`);
  checkHash(`stored node (level ${level}, index ${index})`, h);
  // Copy: proofs and roots handed to callers must not alias the store's buffers.
  return Buffer.from(h);
}

// ---------------------------------------------------------------------------
// Arithmetic helpers (int32-safe)

/** Number of hashes the RFC 9162 verification loop consumes until sn reaches 0. */
function chainLength(fn: number, sn: number): number {
  let n = 0;
  while (sn !== 0) {
    if (fn === sn) {
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    }
    fn = half(fn);
    sn = half(sn);
    n += 1;
  }
  return n;
}

function isOdd(x: number): boolean {
  return x % 2 === 1;
}

function half(x: number): number {
  return Math.floor(x / 2);
}

function isPowerOfTwo(x: number): boolean {
  return x > 0 && largestPowerOfTwoAtMost(x) === x;
}

function largestPowerOfTwoAtMost(x: number): number {
  let k = 1;
  while (k * 2 <= x) k *= 2;
  return k;
}

/** The split point k of RFC 6962 §2.1: largest power of two strictly less than n (n > 1). */
function largestPowerOfTwoBelow(n: number): number {
  return largestPowerOfTwoAtMost(n - 1);
}

function log2(powerOfTwo: number): number {
  let level = 0;
  for (let w = powerOfTwo; w > 1; w /= 2) level += 1;
  return level;
}

function checkCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${String(value)}`);
  }
}

function checkHash(name: string, value: Uint8Array): void {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
    const len = value instanceof Uint8Array ? value.length : typeof value;
    throw new Error(`${name} must be ${HASH_SIZE} bytes, got ${len}`);
  }
}

function hex(value: Uint8Array): string {
  return Buffer.from(value).toString('hex');
}
