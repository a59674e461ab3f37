// C2SP tlog-checkpoint (tlog-checkpoint/v1.0.0) note body. Signing and
// signature verification live in note.ts; this is only the text format.

import { HASH_SIZE } from './merkle.js';
import { decodeBase64Strict } from './note.js';

export interface Checkpoint {
  origin: string;
  size: number;
  rootHash: Buffer;
  extensions: string[];
}

export interface CheckpointInput {
  origin: string;
  size: number;
  rootHash: Uint8Array;
  extensions?: readonly string[];
}

export function formatCheckpoint(cp: CheckpointInput): string {
  assertLine('origin', cp.origin);
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) {
    throw new RangeError(`checkpoint size must be a non-negative safe integer, got ${String(cp.size)}`);
  }
  if (cp.rootHash.length !== HASH_SIZE) {
    throw new Error(`checkpoint root hash must be ${HASH_SIZE} bytes, got ${cp.rootHash.length}`);
  }
  const extensions = cp.extensions ?? [];
  extensions.forEach((line, i) => assertLine(`extension line ${i + 1}`, line));
  const lines = [cp.origin, String(cp.size), Buffer.from(cp.rootHash).toString('base64'), ...extensions];
  return lines.map((l) => `${l}\n`).join('');
}

/** Parses a checkpoint note body (the `text` of a verified note). */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw new Error('malformed checkpoint: text must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw new Error(`malformed checkpoint: want at least 3 lines, got ${lines.length}`);
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (origin.length === 0) throw new Error('malformed checkpoint: empty origin line');
  if (/[\u0000-\u001f]/.test(origin)) throw new Error('malformed checkpoint: control character in origin');
  if (!/^(?:0|[1-9][0-9]*)$/.test(sizeText)) {
    throw new Error(`malformed checkpoint: tree size ${JSON.stringify(sizeText)} is not a decimal without leading zeros`);
  }
  // Checkpoints carry uint64; anything above 2^53-1 cannot be handled exactly as a number.
  const bigSize = BigInt(sizeText);
  if (bigSize > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`unsupported checkpoint: tree size ${sizeText} exceeds 2^53-1`);
  }
  const rootHash = decodeBase64Strict(rootText);
  if (rootHash === undefined) throw new Error('malformed checkpoint: root hash is not canonical standard base64');
  if (rootHash.length !== HASH_SIZE) {
    throw new Error(`malformed checkpoint: root hash is ${rootHash.length} bytes, want ${HASH_SIZE}`);
  }
  extensions.forEach((line, i) => {
    if (line.length === 0) throw new Error(`malformed checkpoint: extension line ${i + 1} is empty`);
    if (/[\u0000-\u001f]/.test(line)) throw new Error(`malformed checkpoint: control character in extension line ${i + 1}`);
  });
  return { origin, size: Number(bigSize), rootHash, extensions };
}

function assertLine(what: string, line: string): void {
  if (line.length === 0) throw new Error(`checkpoint ${what} must be non-empty`);
  if (/[\u0000-\u001f]/.test(line)) throw new Error(`checkpoint ${what} must not contain newlines or control characters`);
}
