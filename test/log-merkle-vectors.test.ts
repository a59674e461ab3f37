// Runs every transparency-dev/merkle inclusion and consistency vector from the
// shared test-data folder (never copied into the repository).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  inclusionProof,
  consistencyProof,
  leafHash,
  nodesToStoreOnAppend,
  rootAt,
  rootFromInclusionProof,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from '../server/log/merkle.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const vectorsDir = path.resolve(repoRoot, '..', 'shared', 'testdata', 'merkle', 'testdata');

interface InclusionVector {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

interface ConsistencyVector {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

// The tree behind the vectors: transparency-dev/merkle testonly leaf inputs (the
// classic RFC 6962 test tree), used to check that our generated proofs are the
// reference proofs byte for byte.
const REFERENCE_LEAVES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map((h) => Buffer.from(h, 'hex'));

function jsonFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? jsonFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]))
    .filter((f) => f.endsWith('.json'))
    .sort();
}

function loadVectors<T>(kind: 'inclusion' | 'consistency'): Array<{ file: string; v: T }> {
  const dir = path.join(vectorsDir, kind);
  if (!existsSync(dir)) {
    assert.fail(`reference vectors missing: ${dir} does not exist (expected the shared test data next to the repository)`);
  }
  return jsonFiles(dir).map((file) => ({
    file: path.relative(vectorsDir, file),
    v: JSON.parse(readFileSync(file, 'utf8')) as T,
  }));
}

const b64 = (s: string): Buffer => Buffer.from(s, 'base64');

function referenceStore(): (level: number, index: number) => Buffer | undefined {
  const store = new Map<string, Buffer>();
  REFERENCE_LEAVES.forEach((entry, i) => {
    for (const n of nodesToStoreOnAppend(i, leafHash(entry), (l, x) => store.get(`${l}/${x}`))) {
      store.set(`${n.level}/${n.index}`, n.hash);
    }
  });
  return (l, x) => store.get(`${l}/${x}`);
}

function outcome(fn: () => void): { ok: true } | { ok: false; message: string } {
  try {
    fn();
    return { ok: true };
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
}

test('inclusion vectors', (t) => {
  const vectors = loadVectors<InclusionVector>('inclusion');
  const getNode = referenceStore();
  let run = 0;
  let happy = 0;
  let crossChecked = 0;
  for (const { file, v } of vectors) {
    const proof = (v.proof ?? []).map(b64);
    const result = outcome(() => verifyInclusion(v.leafIdx, v.treeSize, b64(v.leafHash), proof, b64(v.root)));
    assert.equal(result.ok, !v.wantErr, `${file} (${v.desc}): ${result.ok ? 'verified but should fail' : result.message}`);
    if (!v.wantErr) {
      happy += 1;
      assert.deepEqual(rootFromInclusionProof(v.leafIdx, v.treeSize, b64(v.leafHash), proof), b64(v.root), file);
      // Only vectors built on the reference tree (single-entry uses another leaf).
      const onReferenceTree =
        v.treeSize <= REFERENCE_LEAVES.length && b64(v.leafHash).equals(leafHash(REFERENCE_LEAVES[v.leafIdx]));
      if (onReferenceTree) {
        crossChecked += 1;
        assert.deepEqual(inclusionProof(v.leafIdx, v.treeSize, getNode), proof, `${file}: generated proof differs`);
        assert.deepEqual(rootAt(v.treeSize, getNode), b64(v.root), `${file}: stored root differs`);
      }
    }
    run += 1;
  }
  t.diagnostic(`${run} inclusion vectors, ${crossChecked} proofs also regenerated from stored nodes`);
  assert.ok(run > 90, `only ${run} inclusion vectors ran`);
  assert.ok(happy >= 5, `only ${happy} happy-path inclusion vectors`);
  assert.ok(crossChecked >= 4, `only ${crossChecked} inclusion proofs cross-checked against generation`);
});

test('consistency vectors', (t) => {
  const vectors = loadVectors<ConsistencyVector>('consistency');
  const getNode = referenceStore();
  let run = 0;
  let crossChecked = 0;
  for (const { file, v } of vectors) {
    const proof = (v.proof ?? []).map(b64);
    const result = outcome(() => verifyConsistency(v.size1, v.size2, proof, b64(v.root1), b64(v.root2)));
    assert.equal(result.ok, !v.wantErr, `${file} (${v.desc}): ${result.ok ? 'verified but should fail' : result.message}`);
    const onReferenceTree =
      v.size2 <= REFERENCE_LEAVES.length && v.size1 > 0 && rootAt(v.size2, getNode).equals(b64(v.root2));
    if (!v.wantErr && onReferenceTree) {
      crossChecked += 1;
      assert.deepEqual(consistencyProof(v.size1, v.size2, getNode), proof, `${file}: generated proof differs`);
    }
    run += 1;
  }
  t.diagnostic(`${run} consistency vectors, ${crossChecked} proofs also regenerated from stored nodes`);
  assert.ok(run > 90, `only ${run} consistency vectors ran`);
  assert.ok(crossChecked >= 5, `only ${crossChecked} consistency proofs cross-checked against generation`);
});

test('vector totals and reference tree roots', () => {
  const total = loadVectors('inclusion').length + loadVectors('consistency').length;
  assert.ok(total > 100, `only ${total} vectors found`);
  // Roots from transparency-dev/merkle testonly for sizes 3 and 8.
  const hashes = REFERENCE_LEAVES.map((e) => leafHash(e));
  assert.equal(rootFromLeafHashes(hashes.slice(0, 3)).toString('hex').slice(0, 8), 'aeb6bcfe');
  assert.equal(
    rootFromLeafHashes(hashes).toString('hex'),
    '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
  );
  assert.equal(rootFromLeafHashes([]).toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

test('empty-old policy flag (tlog-witness semantics)', () => {
  const empty = rootFromLeafHashes([]);
  const root1 = rootFromLeafHashes([leafHash(Buffer.from('a'))]);
  assert.throws(() => verifyConsistency(0, 1, [], empty, root1), /empty tree/);
  verifyConsistency(0, 1, [], empty, root1, { allowEmptyOld: true });
  verifyConsistency(0, 0, [], empty, empty, { allowEmptyOld: true });
  assert.throws(() => verifyConsistency(0, 1, [empty], empty, root1, { allowEmptyOld: true }), /must be empty/);
  assert.throws(() => verifyConsistency(0, 1, [], root1, root1, { allowEmptyOld: true }), /root1 of the empty tree/);
});
