// Property tests: proofs generated from stored complete-subtree nodes (a Map
// standing in for the database) verify, match the reference MTH, and any
// tampering makes verification fail.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  consistencyProof,
  inclusionProof,
  leafHash,
  nodeHash,
  nodesToStoreOnAppend,
  rootAt,
  rootFromInclusionProof,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
  type NodeGetter,
} from '../server/log/merkle.js';

const SEED = 0x5eed1234;
const MAX_SIZE = 2000;
const EXHAUSTIVE_UP_TO = 64;
const LARGE_SIZES = [65, 100, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1000, 1023, 1024, 1025, 1337, 1999, 2000];
const SAMPLES_PER_LARGE_SIZE = 24;

// Deterministic so a failure can be reproduced from the seed (mulberry32).
function prng(seed: number): (bound: number) => number {
  let a = seed >>> 0;
  return (bound) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * bound);
  };
}

interface Log {
  leaves: Buffer[];
  getNode: NodeGetter;
  nodeCount: number;
  roots: Buffer[]; // roots[n] = MTH of the first n leaves, computed independently of merkle.ts
}

/**
 * Every prefix root in O(n) total, written independently of the code under test
 * (a stack of perfect subtrees) and cross-checked against rootFromLeafHashes.
 */
function frontierRoots(leaves: readonly Buffer[]): Buffer[] {
  const sha = (...parts: Buffer[]): Buffer => createHash('sha256').update(Buffer.concat(parts)).digest();
  const roots = [sha()];
  const stack: Array<{ width: number; hash: Buffer }> = [];
  for (const leaf of leaves) {
    let top = { width: 1, hash: leaf };
    while (stack.length > 0 && stack[stack.length - 1].width === top.width) {
      const left = stack.pop() as { width: number; hash: Buffer };
      top = { width: left.width * 2, hash: sha(Buffer.from([1]), left.hash, top.hash) };
    }
    stack.push(top);
    let acc = stack[stack.length - 1].hash;
    for (let i = stack.length - 2; i >= 0; i--) acc = sha(Buffer.from([1]), stack[i].hash, acc);
    roots.push(acc);
  }
  return roots;
}

function buildLog(size: number): Log {
  const store = new Map<string, Buffer>();
  const getNode: NodeGetter = (level, index) => store.get(`${level}/${index}`);
  const leaves: Buffer[] = [];
  for (let i = 0; i < size; i++) {
    const entry = createHash('sha256').update(`entry ${SEED} ${i}`).digest().subarray(0, 1 + (i % 31));
    const h = leafHash(entry);
    for (const node of nodesToStoreOnAppend(i, h, getNode)) {
      const key = `${node.level}/${node.index}`;
      assert.ok(!store.has(key), `node ${key} written twice`);
      store.set(key, node.hash);
    }
    leaves.push(h);
  }
  const roots = frontierRoots(leaves);
  for (const n of [0, ...Array.from({ length: EXHAUSTIVE_UP_TO }, (_, i) => i + 1), ...LARGE_SIZES]) {
    assert.deepEqual(roots[n], rootFromLeafHashes(leaves.slice(0, n)), `reference roots disagree at size ${n}`);
  }
  return { leaves, getNode, nodeCount: store.size, roots };
}

const log = buildLog(MAX_SIZE);
const rand = prng(SEED);
const sizesUnderTest = [...Array.from({ length: EXHAUSTIVE_UP_TO }, (_, i) => i + 1), ...LARGE_SIZES];

function flipBit(proof: Buffer[], element: number, bit: number): Buffer[] {
  return proof.map((h, i) => {
    if (i !== element) return h;
    const copy = Buffer.from(h);
    copy[Math.floor(bit / 8)] ^= 1 << bit % 8;
    return copy;
  });
}

function sample(n: number, count: number): number[] {
  if (n <= EXHAUSTIVE_UP_TO) return Array.from({ length: n }, (_, i) => i);
  const picks = new Set([0, 1, n - 2, n - 1]);
  while (picks.size < count) picks.add(rand(n));
  return [...picks];
}

test('stored nodes are exactly the complete subtrees, and rootAt matches the reference MTH', () => {
  for (const n of sizesUnderTest) {
    assert.deepEqual(rootAt(n, log.getNode), log.roots[n], `root at size ${n}`);
  }
  assert.deepEqual(rootAt(0, log.getNode), rootFromLeafHashes([]));
  // Every complete subtree of the 64-leaf prefix holds the MTH of its leaf range.
  for (let level = 0; level <= 6; level++) {
    const width = 2 ** level;
    for (let index = 0; index < 64 / width; index++) {
      const want = rootFromLeafHashes(log.leaves.slice(index * width, (index + 1) * width));
      assert.deepEqual(log.getNode(level, index), want, `node (${level}, ${index})`);
    }
  }
  // Nothing but complete subtrees: floor(n / 2^level) nodes on each level.
  let complete = 0;
  for (let width = 1; width <= MAX_SIZE; width *= 2) complete += Math.floor(MAX_SIZE / width);
  assert.equal(log.nodeCount, complete);
  // An append touches the leaf plus one node per trailing one-bit of the index: O(log n).
  assert.equal(nodesToStoreOnAppend(1023, log.leaves[1023], log.getNode).length, 11);
  assert.equal(nodesToStoreOnAppend(1024, log.leaves[1024], log.getNode).length, 1);
});

test('inclusion proofs from stored nodes verify; tampering fails', () => {
  let checked = 0;
  for (const n of sizesUnderTest) {
    const root = log.roots[n];
    for (const i of sample(n, SAMPLES_PER_LARGE_SIZE)) {
      const proof = inclusionProof(i, n, log.getNode);
      const leaf = log.leaves[i];
      verifyInclusion(i, n, leaf, proof, root);
      assert.deepEqual(rootFromInclusionProof(i, n, leaf, proof), root);
      for (let e = 0; e < proof.length; e++) {
        const bit = rand(256);
        assert.throws(() => verifyInclusion(i, n, leaf, flipBit(proof, e, bit), root), /does not verify/, `n=${n} i=${i} e=${e}`);
      }
      const badLeaf = flipBit([leaf], 0, rand(256))[0];
      assert.throws(() => verifyInclusion(i, n, badLeaf, proof, root), `wrong leaf n=${n} i=${i}`);
      for (const j of [i - 1, i + 1, i ^ 1]) {
        if (j >= 0 && j < n && j !== i) {
          assert.throws(() => verifyInclusion(j, n, leaf, proof, root), `index ${j} instead of ${i} in size ${n}`);
        }
      }
      // The root of another size is what a claimed size is checked against.
      for (const m of [n - 1, n + 1]) {
        if (m > i && m <= MAX_SIZE) {
          assert.throws(() => verifyInclusion(i, m, leaf, proof, log.roots[m]), `size ${m} instead of ${n}, i=${i}`);
        }
      }
      if (proof.length > 0) {
        assert.throws(() => verifyInclusion(i, n, leaf, proof.slice(1), root), /wrong inclusion proof length/);
        assert.throws(() => verifyInclusion(i, n, leaf, [...proof, root], root), /wrong inclusion proof length/);
      }
      checked += 1;
    }
  }
  assert.ok(checked > 2000, `only ${checked} inclusion proofs checked`);
});

test('consistency proofs from stored nodes verify; tampering fails', () => {
  let checked = 0;
  for (const n of sizesUnderTest) {
    const root2 = log.roots[n];
    const firsts = n <= EXHAUSTIVE_UP_TO ? Array.from({ length: n }, (_, i) => i + 1) : sample(n, SAMPLES_PER_LARGE_SIZE).map((i) => i + 1);
    for (const m of firsts) {
      const root1 = log.roots[m];
      assert.deepEqual(rootAt(m, log.getNode), root1, `stored-node root at ${m}`);
      const proof = consistencyProof(m, n, log.getNode);
      verifyConsistency(m, n, proof, root1, root2);
      if (m === n) {
        assert.equal(proof.length, 0);
        continue;
      }
      for (let e = 0; e < proof.length; e++) {
        const bit = rand(256);
        assert.throws(() => verifyConsistency(m, n, flipBit(proof, e, bit), root1, root2), /does not verify/, `m=${m} n=${n} e=${e}`);
      }
      assert.throws(() => verifyConsistency(m, n, proof, root2, root1), `swapped roots m=${m} n=${n}`);
      for (const m2 of [m - 1, m + 1]) {
        if (m2 >= 1 && m2 <= n && m2 !== m) {
          assert.throws(() => verifyConsistency(m2, n, proof, log.roots[m2], root2), `size1 ${m2} instead of ${m}, n=${n}`);
        }
      }
      for (const n2 of [n - 1, n + 1]) {
        if (n2 >= m && n2 <= MAX_SIZE && n2 !== n) {
          assert.throws(() => verifyConsistency(m, n2, proof, root1, log.roots[n2]), `size2 ${n2} instead of ${n}, m=${m}`);
        }
      }
      assert.throws(() => verifyConsistency(m, n, proof.slice(0, -1), root1, root2));
      assert.throws(() => verifyConsistency(m, n, [...proof, root1], root1, root2), /wrong consistency proof length/);
      checked += 1;
    }
  }
  assert.ok(checked > 2000, `only ${checked} consistency proofs checked`);
});

test('input validation', () => {
  const g = log.getNode;
  assert.throws(() => inclusionProof(-1, 5, g), /non-negative safe integer/);
  assert.throws(() => inclusionProof(1.5, 5, g), /non-negative safe integer/);
  assert.throws(() => inclusionProof(5, 5, g), /out of range for tree size 5/);
  assert.throws(() => inclusionProof(0, 0, g), /out of range/);
  assert.throws(() => inclusionProof(0, 2 ** 53, g), /non-negative safe integer/);
  assert.throws(() => consistencyProof(6, 5, g), /size1 6 is greater than size2 5/);
  assert.throws(() => consistencyProof(-1, 5, g), /non-negative safe integer/);
  assert.deepEqual(consistencyProof(0, 5, g), []);
  assert.deepEqual(consistencyProof(5, 5, g), []);
  assert.throws(() => rootAt(-1, g), /non-negative safe integer/);
  assert.throws(() => rootAt(MAX_SIZE + 1, g), /missing stored node/);
  assert.throws(() => nodesToStoreOnAppend(0, Buffer.alloc(31), g), /32 bytes/);
  assert.throws(() => nodesToStoreOnAppend(MAX_SIZE + 1, log.leaves[0], g), /missing stored node/);
  assert.throws(() => verifyInclusion(3, 3, log.leaves[0], [], log.roots[3]), /out of range/);
  assert.throws(() => verifyInclusion(0, 3, Buffer.alloc(0), [], log.roots[3]), /leaf hash must be 32 bytes/);
  assert.throws(() => verifyConsistency(3, 2, [], log.roots[3], log.roots[2]), /greater than size2/);
  assert.throws(() => verifyConsistency(2, 3, [], log.roots[2], log.roots[3]), /empty consistency proof/);
  assert.throws(() => verifyConsistency(-2, 3, [], log.roots[2], log.roots[3]), /non-negative safe integer/);
});

test('large sizes stay exact (beyond int32)', () => {
  for (const n of [2 ** 32 + 5, 2 ** 40 + 2 ** 33 + 7, Number.MAX_SAFE_INTEGER]) {
    const special = [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, n - 3, n - 2, n - 1];
    const getNode = sparseTree(special);
    const root = rootAt(n, getNode);
    for (const i of special) {
      const leaf = getNode(0, i) as Buffer;
      const proof = inclusionProof(i, n, getNode);
      verifyInclusion(i, n, leaf, proof, root);
      assert.throws(() => verifyInclusion(i, n, leaf, flipBit(proof, proof.length - 1, 7), root), /does not verify/);
      const j = i === n - 1 ? i - 1 : i + 1;
      assert.throws(() => verifyInclusion(j, n, leaf, proof, root), `index ${j} instead of ${i}`);
    }
    for (const m of [1, 3, 2 ** 31 + 1, 2 ** 32, 2 ** 32 + 1, n - 2, n - 1]) {
      const proof = consistencyProof(m, n, getNode);
      verifyConsistency(m, n, proof, rootAt(m, getNode), root);
      assert.throws(() => verifyConsistency(m, n, flipBit(proof, 0, 3), rootAt(m, getNode), root), /does not verify/);
    }
  }
});

/**
 * A consistent tree of up to 2^53 leaves without materialising it: every leaf
 * hash is the same except at the `special` indices, so a node is either a
 * per-level constant or one of the O(53 * special) nodes above a special leaf.
 */
function sparseTree(special: number[]): NodeGetter {
  const plain: Buffer[] = [leafHash(Buffer.from('plain'))];
  for (let level = 1; level <= 53; level++) plain.push(nodeHash(plain[level - 1], plain[level - 1]));
  const memo = new Map<string, Buffer>();
  const get = (level: number, index: number): Buffer => {
    const lo = index * 2 ** level;
    const hi = lo + 2 ** level;
    if (!special.some((x) => x >= lo && x < hi)) return plain[level];
    if (level === 0) return leafHash(Buffer.from(`special ${index}`));
    const key = `${level}/${index}`;
    let h = memo.get(key);
    if (h === undefined) {
      h = nodeHash(get(level - 1, 2 * index), get(level - 1, 2 * index + 1));
      memo.set(key, h);
    }
    return h;
  };
  return get;
}
