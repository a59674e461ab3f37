// C2SP tlog-tiles (tlog-tiles/v0.1.0) resource paths and entry bundles.
// Paths are relative to the log prefix (no leading slash); the HTTP layer strips the prefix.

export const TILE_HEIGHT = 8;
export const TILE_WIDTH = 256;
export const MAX_TILE_LEVEL = 63;
export const MAX_ENTRY_SIZE = 0xffff;

export type TileRef =
  | { kind: 'hash'; level: number; index: number; partialWidth?: number }
  | { kind: 'entries'; index: number; partialWidth?: number };

/** `tile/<L>/<N>[.p/<W>]`, e.g. tilePath(1, 1234067, 8) = `tile/1/x001/x234/067.p/8`. */
export function tilePath(level: number, index: number, partialWidth?: number): string {
  if (!Number.isInteger(level) || level < 0 || level > MAX_TILE_LEVEL) {
    throw new RangeError(`tile level must be an integer in 0..${MAX_TILE_LEVEL}, got ${String(level)}`);
  }
  return `tile/${level}/${encodeIndex(index)}${widthSuffix(partialWidth)}`;
}

/** `tile/entries/<N>[.p/<W>]`. */
export function entriesTilePath(index: number, partialWidth?: number): string {
  return `tile/entries/${encodeIndex(index)}${widthSuffix(partialWidth)}`;
}

/** Strict: anything that does not re-encode to the exact same path is rejected. */
export function parseTilePath(path: string): TileRef {
  const m = /^tile\/(entries|[0-9]+)\/((?:x[0-9]{3}\/)*[0-9]{3})(?:\.p\/([0-9]+))?$/.exec(path);
  if (m === null) throw new Error(`malformed tile path ${JSON.stringify(path)}`);
  const [, levelText, indexText, widthText] = m;
  const index = indexText
    .split('/')
    .map((group) => Number(group.replace(/^x/, '')))
    .reduce((acc, group) => acc * 1000 + group, 0);
  const partialWidth = widthText === undefined ? undefined : Number(widthText);
  let ref: TileRef;
  let canonical: string;
  try {
    if (levelText === 'entries') {
      ref = { kind: 'entries', index, partialWidth };
      canonical = entriesTilePath(index, partialWidth);
    } else {
      const level = Number(levelText);
      ref = { kind: 'hash', level, index, partialWidth };
      canonical = tilePath(level, index, partialWidth);
    }
  } catch (err) {
    throw new Error(`malformed tile path ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
  if (canonical !== path) throw new Error(`non-canonical tile path ${JSON.stringify(path)} (canonical: ${canonical})`);
  if (partialWidth === undefined) delete ref.partialWidth;
  return ref;
}

/** Width of the rightmost (partial) tile at `level` for a tree of `treeSize`; 0 if there is none. */
export function partialTileWidth(level: number, treeSize: number): number {
  if (!Number.isSafeInteger(treeSize) || treeSize < 0) {
    throw new RangeError(`tree size must be a non-negative safe integer, got ${String(treeSize)}`);
  }
  return Math.floor(treeSize / TILE_WIDTH ** level) % TILE_WIDTH;
}

/** Each entry as a big-endian uint16 length followed by its bytes. */
export function encodeEntryBundle(entries: readonly Uint8Array[]): Buffer {
  if (entries.length > TILE_WIDTH) throw new Error(`an entry bundle holds at most ${TILE_WIDTH} entries, got ${entries.length}`);
  const parts: Buffer[] = [];
  entries.forEach((entry, i) => {
    if (entry.length > MAX_ENTRY_SIZE) {
      throw new Error(`entry ${i} is ${entry.length} bytes; tlog-tiles entries are at most ${MAX_ENTRY_SIZE}`);
    }
    const len = Buffer.alloc(2);
    len.writeUInt16BE(entry.length);
    parts.push(len, Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength));
  });
  return Buffer.concat(parts);
}

/** Decodes a bundle; `expectedCount` (the tile width) guards against truncated or padded bundles. */
export function decodeEntryBundle(bundle: Uint8Array, expectedCount?: number): Buffer[] {
  const buf = Buffer.from(bundle.buffer, bundle.byteOffset, bundle.byteLength);
  const entries: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (entries.length === TILE_WIDTH) throw new Error(`entry bundle has more than ${TILE_WIDTH} entries`);
    if (pos + 2 > buf.length) throw new Error(`entry bundle truncated in the length prefix of entry ${entries.length}`);
    const len = buf.readUInt16BE(pos);
    pos += 2;
    if (pos + len > buf.length) {
      throw new Error(`entry bundle truncated in entry ${entries.length}: want ${len} bytes, ${buf.length - pos} left`);
    }
    entries.push(Buffer.from(buf.subarray(pos, pos + len)));
    pos += len;
  }
  if (expectedCount !== undefined && entries.length !== expectedCount) {
    throw new Error(`entry bundle has ${entries.length} entries, want ${expectedCount}`);
  }
  return entries;
}

function encodeIndex(index: number): string {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(`tile index must be a non-negative safe integer, got ${String(index)}`);
  }
  let n = index;
  let out = String(n % 1000).padStart(3, '0');
  while (n >= 1000) {
    n = Math.floor(n / 1000);
    out = `x${String(n % 1000).padStart(3, '0')}/${out}`;
  }
  return out;
}

function widthSuffix(partialWidth: number | undefined): string {
  if (partialWidth === undefined) return '';
  if (!Number.isInteger(partialWidth) || partialWidth < 1 || partialWidth >= TILE_WIDTH) {
    throw new RangeError(`partial tile width must be an integer in 1..${TILE_WIDTH - 1}, got ${String(partialWidth)}`);
  }
  return `.p/${partialWidth}`;
}
