// C2SP signed-note (signed-note/v1.0.0) with Ed25519 (signature type 0x01).
// Ed25519 itself comes from node:crypto; this module only does the framing.

import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export const SIG_TYPE_ED25519 = 0x01;

// Node imports raw Ed25519 keys only inside DER; these are the fixed RFC 8410 headers.
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

const EM_DASH_PREFIX = '\u2014 ';
// The spec asks verifiers to accept at least 16; the cap bounds work on hostile input.
const MAX_SIGNATURES = 100;

export interface VerifierKey {
  name: string;
  keyId: Buffer; // 4 bytes, big-endian as on the wire
  sigType: number;
  publicKey: Buffer; // raw 32-byte Ed25519 key
  key: KeyObject;
}

export function isValidKeyName(name: string): boolean {
  // \s covers Unicode White_Space except NEL (U+0085), which Go's unicode.IsSpace also rejects.
  return name.length > 0 && !/[\s\u0085+]/u.test(name) && isWellFormed(name) && !hasControlChars(name);
}

/** SHA-256(name || 0x0A || sigType || publicKey)[:4]. */
export function keyId(name: string, sigType: number, publicKey: Uint8Array): Buffer {
  return createHash('sha256')
    .update(name, 'utf8')
    .update(Buffer.from([0x0a, sigType]))
    .update(publicKey)
    .digest()
    .subarray(0, 4);
}

export function verifierKeyString(name: string, publicKeyRaw32: Uint8Array): string {
  assertKeyName(name);
  if (publicKeyRaw32.length !== 32) {
    throw new Error(`Ed25519 public key must be 32 bytes, got ${publicKeyRaw32.length}`);
  }
  const id = keyId(name, SIG_TYPE_ED25519, publicKeyRaw32).toString('hex');
  const data = Buffer.concat([Buffer.from([SIG_TYPE_ED25519]), publicKeyRaw32]).toString('base64');
  return `${name}+${id}+${data}`;
}

export function parseVerifierKey(vkey: string): VerifierKey {
  // Split on the first two '+' only: the base64 key data may itself contain '+'.
  const first = vkey.indexOf('+');
  const second = first < 0 ? -1 : vkey.indexOf('+', first + 1);
  if (second < 0) throw new Error('malformed verifier key: want <name>+<hex key ID>+<base64 key>');
  const name = vkey.slice(0, first);
  const idHex = vkey.slice(first + 1, second);
  const data = decodeBase64Strict(vkey.slice(second + 1));
  if (!isValidKeyName(name)) throw new Error(`malformed verifier key: invalid key name ${JSON.stringify(name)}`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) {
    throw new Error(`malformed verifier key: key ID must be 8 lowercase hex digits, got ${JSON.stringify(idHex)}`);
  }
  if (data === undefined || data.length === 0) throw new Error('malformed verifier key: bad base64 key data');
  if (data[0] !== SIG_TYPE_ED25519) {
    throw new Error(`unsupported verifier key type 0x${data[0].toString(16).padStart(2, '0')} (only Ed25519, 0x01)`);
  }
  const publicKey = data.subarray(1);
  if (publicKey.length !== 32) throw new Error(`malformed verifier key: Ed25519 key is ${publicKey.length} bytes, want 32`);
  const id = keyId(name, SIG_TYPE_ED25519, publicKey);
  if (id.toString('hex') !== idHex) {
    throw new Error(`verifier key ID ${idHex} does not match its name and key (computed ${id.toString('hex')})`);
  }
  return { name, keyId: id, sigType: SIG_TYPE_ED25519, publicKey, key: ed25519PublicKeyFromRaw(publicKey) };
}

export function ed25519PublicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new Error(`Ed25519 public key must be 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

export function ed25519PrivateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new Error(`Ed25519 seed must be 32 bytes, got ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** Raw 32-byte public key of an Ed25519 public or private KeyObject. */
export function ed25519RawPublicKey(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType !== 'ed25519') throw new Error(`expected an Ed25519 key, got ${pub.asymmetricKeyType}`);
  const der = pub.export({ format: 'der', type: 'spki' });
  if (der.length !== 44 || !der.subarray(0, 12).equals(SPKI_ED25519_PREFIX)) {
    throw new Error('unexpected Ed25519 SPKI encoding');
  }
  return Buffer.from(der.subarray(12));
}

/** Returns the signed note: text, a blank line, and one signature line. */
export function signNote(text: string, name: string, privateKey: KeyObject): string {
  assertKeyName(name);
  assertNoteText(text);
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new Error('signNote needs an Ed25519 private key');
  }
  const id = keyId(name, SIG_TYPE_ED25519, ed25519RawPublicKey(privateKey));
  const sig = sign(null, Buffer.from(text, 'utf8'), privateKey);
  return `${text}\n${EM_DASH_PREFIX}${name} ${Buffer.concat([id, sig]).toString('base64')}\n`;
}

/**
 * Verifies a signed note against one or more trusted keys (several allow key
 * rotation). Signatures from unknown keys are ignored, as the spec requires,
 * so witness cosignatures do not break verification; a known key's bad
 * signature rejects the whole note.
 */
export function verifyNote(
  note: string | Uint8Array,
  verifierKeys: string | VerifierKey | ReadonlyArray<string | VerifierKey>,
): { text: string } {
  const known = toKeyList(verifierKeys);
  const msg = typeof note === 'string' ? note : decodeUtf8(note);
  if (!isWellFormed(msg)) throw new Error('malformed note: not valid UTF-8');
  if (hasControlChars(msg)) throw new Error('malformed note: contains a control character other than newline');

  const split = msg.lastIndexOf('\n\n');
  if (split < 0) throw new Error('malformed note: no blank line before the signatures');
  const text = msg.slice(0, split + 1);
  const sigBlock = msg.slice(split + 2);
  if (sigBlock.length === 0 || !sigBlock.endsWith('\n')) {
    throw new Error('malformed note: signature block must be non-empty and end with a newline');
  }
  const lines = sigBlock.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw new Error(`malformed note: more than ${MAX_SIGNATURES} signatures`);

  const textBytes = Buffer.from(text, 'utf8');
  const verified = new Set<VerifierKey>();
  for (const [i, line] of lines.entries()) {
    if (!line.startsWith(EM_DASH_PREFIX)) {
      throw new Error(`malformed note: signature line ${i + 1} does not start with "\u2014 "`);
    }
    const rest = line.slice(EM_DASH_PREFIX.length);
    const space = rest.indexOf(' ');
    const name = space < 0 ? rest : rest.slice(0, space);
    const raw = space < 0 ? undefined : decodeBase64Strict(rest.slice(space + 1));
    if (!isValidKeyName(name)) throw new Error(`malformed note: invalid key name on signature line ${i + 1}`);
    if (raw === undefined || raw.length < 5) {
      throw new Error(`malformed note: bad signature encoding on signature line ${i + 1} (${name})`);
    }
    const id = raw.subarray(0, 4);
    const matches = known.filter((k) => k.name === name && k.keyId.equals(id));
    if (matches.length === 0) continue;
    if (matches.length > 1) throw new Error(`ambiguous verifier keys for ${name}+${id.toString('hex')}`);
    const key = matches[0];
    if (verified.has(key)) continue; // a repeated signature by the same key adds nothing
    const sig = raw.subarray(4);
    if (sig.length !== 64 || !verify(null, textBytes, key.key, sig)) {
      throw new Error(`invalid signature for key ${name}+${id.toString('hex')}`);
    }
    verified.add(key);
  }
  if (verified.size === 0) {
    const names = known.map((k) => `${k.name}+${k.keyId.toString('hex')}`).join(', ');
    throw new Error(`note has no signature from a known key (known: ${names})`);
  }
  return { text };
}

function toKeyList(keys: string | VerifierKey | ReadonlyArray<string | VerifierKey>): VerifierKey[] {
  const list = isKeyArray(keys) ? keys : [keys];
  if (list.length === 0) throw new Error('verifyNote needs at least one verifier key');
  return list.map((k) => (typeof k === 'string' ? parseVerifierKey(k) : k));
}

function isKeyArray(
  keys: string | VerifierKey | ReadonlyArray<string | VerifierKey>,
): keys is ReadonlyArray<string | VerifierKey> {
  return Array.isArray(keys);
}

function assertKeyName(name: string): void {
  if (!isValidKeyName(name)) {
    throw new Error(`invalid key name ${JSON.stringify(name)}: must be non-empty, without spaces or '+'`);
  }
}

function assertNoteText(text: string): void {
  if (text.length === 0 || !text.endsWith('\n')) throw new Error('note text must be non-empty and end with a newline');
  if (!isWellFormed(text)) throw new Error('note text is not valid Unicode');
  if (hasControlChars(text)) throw new Error('note text contains a control character other than newline');
}

function hasControlChars(s: string): boolean {
  return /[\u0000-\u0009\u000b-\u001f]/.test(s);
}

// Lone surrogates cannot be encoded as UTF-8; Buffer.from would silently replace them.
function isWellFormed(s: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    // ignoreBOM keeps a leading BOM in the text, so the signed bytes are unchanged.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new Error('malformed note: not valid UTF-8');
  }
}

/** Standard padded base64; rejects anything Buffer would silently tolerate. */
export function decodeBase64Strict(s: string): Buffer | undefined {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) return undefined;
  const out = Buffer.from(s, 'base64');
  // Non-zero padding bits would give two spellings of the same bytes.
  return out.toString('base64') === s ? out : undefined;
}
