// Signed notes, checkpoints and tile paths. Known-answer values are the
// published examples of C2SP signed-note, golang.org/x/mod/sumdb/note, the
// Tessera testdata log keys, C2SP tlog-checkpoint and C2SP tlog-tiles.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import {
  ed25519PrivateKeyFromSeed,
  ed25519RawPublicKey,
  keyId,
  parseVerifierKey,
  signNote,
  verifierKeyString,
  verifyNote,
} from '../server/log/note.js';
import { formatCheckpoint, parseCheckpoint } from '../server/log/checkpoint.js';
import {
  decodeEntryBundle,
  encodeEntryBundle,
  entriesTilePath,
  parseTilePath,
  partialTileWidth,
  tilePath,
} from '../server/log/tiles.js';
import { emptyRoot, leafHash, rootFromLeafHashes } from '../server/log/merkle.js';

const SPEC_VKEY = 'example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k';
const SPEC_NOTE =
  'This is an example message.\n\n' +
  '\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n';

const GO_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const GO_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIG_LINE =
  '\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop';
const ENOCH_SIG_LINE =
  '\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n';

const TESSERA_SKEY = 'PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg';
const TESSERA_VKEY = 'example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx';

/** Seed from a Go sumdb signer key; the format is PRIVATE+KEY+name+id+base64(0x01 || seed). */
function seedFromGoSignerKey(skey: string): Buffer {
  const data = Buffer.from(skey.split('+').slice(4).join('+'), 'base64');
  assert.equal(data[0], 0x01);
  return data.subarray(1);
}

test('signed-note spec example: key ID, vkey and signature', () => {
  const vk = parseVerifierKey(SPEC_VKEY);
  assert.equal(vk.name, 'example.com/foo');
  assert.equal(vk.keyId.toString('hex'), '530d903a');
  assert.equal(keyId('example.com/foo', 0x01, vk.publicKey).toString('hex'), '530d903a');
  assert.equal(verifierKeyString('example.com/foo', vk.publicKey), SPEC_VKEY);
  assert.deepEqual(verifyNote(SPEC_NOTE, SPEC_VKEY), { text: 'This is an example message.\n' });
  assert.deepEqual(verifyNote(Buffer.from(SPEC_NOTE, 'utf8'), vk), { text: 'This is an example message.\n' });
});

test('Go sumdb note example: signing reproduces the published signature', () => {
  const key = ed25519PrivateKeyFromSeed(seedFromGoSignerKey(GO_SKEY));
  assert.equal(verifierKeyString('PeterNeumann', ed25519RawPublicKey(key)), GO_VKEY);
  const signed = signNote(GO_TEXT, 'PeterNeumann', key);
  assert.equal(signed, `${GO_TEXT}\n${GO_SIG_LINE}`);
  assert.deepEqual(verifyNote(signed, GO_VKEY), { text: GO_TEXT });

  // A second, unknown signature is ignored; with both keys known both must verify.
  const twoSigners = `${GO_TEXT}\n${GO_SIG_LINE}${ENOCH_SIG_LINE}`;
  assert.equal(verifyNote(twoSigners, GO_VKEY).text, GO_TEXT);
  assert.equal(verifyNote(twoSigners, ENOCH_VKEY).text, GO_TEXT);
  assert.equal(verifyNote(twoSigners, [GO_VKEY, ENOCH_VKEY]).text, GO_TEXT);
  // Key rotation: a list where only one key signed still verifies.
  assert.equal(verifyNote(signed, [ENOCH_VKEY, GO_VKEY]).text, GO_TEXT);
  assert.throws(() => verifyNote(signed, ENOCH_VKEY), /no signature from a known key/);
});

test('Tessera testdata key: vkey derived from the signer seed (base64 containing "+")', () => {
  const key = ed25519PrivateKeyFromSeed(seedFromGoSignerKey(TESSERA_SKEY));
  assert.equal(verifierKeyString('example.com/log/testdata', ed25519RawPublicKey(key)), TESSERA_VKEY);
  const vk = parseVerifierKey(TESSERA_VKEY);
  assert.equal(vk.name, 'example.com/log/testdata');
  assert.deepEqual(vk.publicKey, ed25519RawPublicKey(key));
});

test('tampered notes are rejected with precise errors', () => {
  const key = ed25519PrivateKeyFromSeed(seedFromGoSignerKey(GO_SKEY));
  const signed = signNote(GO_TEXT, 'PeterNeumann', key);

  assert.throws(() => verifyNote(signed.replace('answer', 'Answer'), GO_VKEY), /invalid signature for key PeterNeumann\+c74f20a3/);
  const sigB64 = GO_SIG_LINE.slice('\u2014 PeterNeumann '.length, -1);
  const raw = Buffer.from(sigB64, 'base64');
  raw[10] ^= 0x01;
  const flipped = signed.replace(sigB64, raw.toString('base64'));
  assert.throws(() => verifyNote(flipped, GO_VKEY), /invalid signature for key PeterNeumann/);
  // A known key's bad signature rejects the note even when another known key verified.
  assert.throws(() => verifyNote(`${flipped.slice(0, -1)}\n${ENOCH_SIG_LINE}`, [GO_VKEY, ENOCH_VKEY]), /invalid signature/);
  // Same name, other key ID: that is another key, so it is ignored.
  const otherId = Buffer.from(raw);
  otherId[0] ^= 0xff;
  assert.throws(() => verifyNote(signed.replace(sigB64, otherId.toString('base64')), GO_VKEY), /no signature from a known key/);

  assert.throws(() => verifyNote(signed.replace('\n\n', '\n'), GO_VKEY), /no blank line/);
  assert.throws(() => verifyNote(signed.replace('\u2014', '-'), GO_VKEY), /does not start with/);
  assert.throws(() => verifyNote(signed.slice(0, -1), GO_VKEY), /end with a newline/);
  assert.throws(() => verifyNote(signed.replace('problem,', 'problem,\t'), GO_VKEY), /control character/);
  assert.throws(() => verifyNote(signed.replace('problem,', 'problem,\r'), GO_VKEY), /control character/);
  assert.throws(() => verifyNote(signed.replace(sigB64, `${sigB64}x`), GO_VKEY), /bad signature encoding/);
  assert.throws(() => verifyNote(signed.replace(sigB64, 'AAAA'), GO_VKEY), /bad signature encoding/);
  assert.throws(() => verifyNote(signed.replace('PeterNeumann ', 'Peter+Neumann '), GO_VKEY), /invalid key name/);
  assert.throws(() => verifyNote(Buffer.from([0x61, 0x0a, 0x0a, 0xff, 0x0a]), GO_VKEY), /not valid UTF-8/);
  const many = `${GO_TEXT}\n${GO_SIG_LINE.repeat(101)}`;
  assert.throws(() => verifyNote(many, GO_VKEY), /more than 100 signatures/);
  // Repeated identical signatures by one key are accepted once (as in Go's note.Open).
  assert.equal(verifyNote(`${GO_TEXT}\n${GO_SIG_LINE}${GO_SIG_LINE}`, GO_VKEY).text, GO_TEXT);
});

test('text with empty lines: the last blank line separates the signatures', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const text = 'first\n\nsecond\n\n';
  const signed = signNote(text, 'ca.example.internal/issuance-log', privateKey);
  const vkey = verifierKeyString('ca.example.internal/issuance-log', ed25519RawPublicKey(publicKey));
  assert.equal(verifyNote(signed, vkey).text, text);
});

test('key names and verifier keys are validated', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = ed25519RawPublicKey(publicKey);
  for (const bad of ['', 'a b', 'a+b', 'a\tb', 'a\u00a0b', 'a\u2003b', 'a\u0085b', 'a\nb']) {
    assert.throws(() => verifierKeyString(bad, raw), /invalid key name/, JSON.stringify(bad));
    assert.throws(() => signNote('x\n', bad, privateKey), /invalid key name/, JSON.stringify(bad));
  }
  assert.throws(() => verifierKeyString('ok', raw.subarray(1)), /32 bytes/);
  assert.throws(() => signNote('no newline', 'ok', privateKey), /end with a newline/);
  assert.throws(() => signNote('', 'ok', privateKey), /non-empty/);
  assert.throws(() => signNote('a\u0000b\n', 'ok', privateKey), /control character/);
  assert.throws(() => signNote('a\ud800b\n', 'ok', privateKey), /not valid Unicode/);
  assert.throws(() => signNote('x\n', 'ok', publicKey), /Ed25519 private key/);

  const vkey = verifierKeyString('ca.example/log', raw);
  assert.equal(parseVerifierKey(vkey).name, 'ca.example/log');
  const [name, id, data] = [vkey.slice(0, vkey.indexOf('+')), vkey.split('+')[1], vkey.split('+').slice(2).join('+')];
  assert.throws(() => parseVerifierKey(`${name}+${id}`), /malformed verifier key/);
  assert.throws(() => parseVerifierKey(`${name}+${id.toUpperCase()}+${data}`), /8 lowercase hex/);
  assert.throws(() => parseVerifierKey(`${name}+00000000+${data}`), /does not match/);
  assert.throws(() => parseVerifierKey(`other+${id}+${data}`), /does not match/);
  assert.throws(() => parseVerifierKey(`${name}+${id}+${data}=`), /bad base64/);
  const type2 = Buffer.from(data, 'base64');
  type2[0] = 0x02;
  assert.throws(() => parseVerifierKey(`${name}+${id}+${type2.toString('base64')}`), /unsupported verifier key type 0x02/);
  const short = Buffer.from(data, 'base64').subarray(0, 32).toString('base64');
  assert.throws(() => parseVerifierKey(`${name}+${id}+${short}`), /31 bytes, want 32/);
});

test('checkpoint format/parse round trip, signed as a note', () => {
  const root = rootFromLeafHashes(['one', 'two', 'three'].map((s) => leafHash(Buffer.from(s))));
  const body = formatCheckpoint({ origin: 'ca.example.internal/issuance-log', size: 3, rootHash: root });
  assert.equal(body, `ca.example.internal/issuance-log\n3\n${root.toString('base64')}\n`);
  assert.deepEqual(parseCheckpoint(body), { origin: 'ca.example.internal/issuance-log', size: 3, rootHash: root, extensions: [] });

  const withExt = formatCheckpoint({ origin: 'o', size: 0, rootHash: emptyRoot(), extensions: ['ext one', 'two'] });
  assert.equal(withExt, 'o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next one\ntwo\n');
  assert.deepEqual(parseCheckpoint(withExt).extensions, ['ext one', 'two']);

  const spec = parseCheckpoint('example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n');
  assert.equal(spec.origin, 'example.com/behind-the-sofa');
  assert.equal(spec.size, 20852163);
  assert.equal(spec.rootHash.length, 32);

  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const note = signNote(body, 'ca.example.internal/issuance-log', privateKey);
  const vkey = verifierKeyString('ca.example.internal/issuance-log', ed25519RawPublicKey(publicKey));
  assert.deepEqual(parseCheckpoint(verifyNote(note, vkey).text).rootHash, root);
  assert.equal(parseCheckpoint(formatCheckpoint({ origin: 'o', size: Number.MAX_SAFE_INTEGER, rootHash: root })).size, Number.MAX_SAFE_INTEGER);
});

test('checkpoint parsing is strict', () => {
  const r = emptyRoot().toString('base64');
  const bad: Array<[string, RegExp]> = [
    [`o\n01\n${r}\n`, /leading zeros/],
    [`o\n-1\n${r}\n`, /leading zeros/],
    [`o\n+1\n${r}\n`, /leading zeros/],
    [`o\n 1\n${r}\n`, /leading zeros/],
    [`o\n1.0\n${r}\n`, /leading zeros/],
    [`o\n\n${r}\n`, /leading zeros/],
    [`o\n9007199254740992\n${r}\n`, /exceeds 2\^53-1/],
    [`o\n18446744073709551615\n${r}\n`, /exceeds 2\^53-1/],
    [`o\n1\n${r}`, /end with a newline/],
    [`o\n1\n`, /at least 3 lines/],
    [`\n1\n${r}\n`, /empty origin/],
    [`o\n1\n${emptyRoot().subarray(0, 31).toString('base64')}\n`, /31 bytes, want 32/],
    [`o\n1\n${r.replace('=', '')}\n`, /canonical standard base64/],
    [`o\n1\n${emptyRoot().toString('base64url')}\n`, /canonical standard base64/],
    [`o\n1\n${r}\n\n`, /extension line 1 is empty/],
    [`o\n1\n${r}\next\n\n`, /extension line 2 is empty/],
    [`o\r\n1\n${r}\n`, /control character in origin/],
  ];
  for (const [text, want] of bad) assert.throws(() => parseCheckpoint(text), want, JSON.stringify(text));
  assert.throws(() => formatCheckpoint({ origin: 'a\nb', size: 1, rootHash: emptyRoot() }), /newlines/);
  assert.throws(() => formatCheckpoint({ origin: '', size: 1, rootHash: emptyRoot() }), /non-empty/);
  assert.throws(() => formatCheckpoint({ origin: 'o', size: -1, rootHash: emptyRoot() }), /non-negative safe integer/);
  assert.throws(() => formatCheckpoint({ origin: 'o', size: 1.5, rootHash: emptyRoot() }), /non-negative safe integer/);
  assert.throws(() => formatCheckpoint({ origin: 'o', size: 1, rootHash: Buffer.alloc(20) }), /32 bytes/);
  assert.throws(() => formatCheckpoint({ origin: 'o', size: 1, rootHash: emptyRoot(), extensions: [''] }), /non-empty/);
});

test('tile paths (tlog-tiles examples)', () => {
  assert.equal(tilePath(0, 1234067), 'tile/0/x001/x234/067');
  assert.equal(tilePath(1, 1234067, 8), 'tile/1/x001/x234/067.p/8');
  assert.equal(tilePath(0, 1234, 5), 'tile/0/x001/234.p/5');
  assert.equal(tilePath(0, 5), 'tile/0/005');
  assert.equal(tilePath(2, 0, 1), 'tile/2/000.p/1');
  assert.equal(tilePath(63, 1000), 'tile/63/x001/000');
  assert.equal(entriesTilePath(1234067, 255), 'tile/entries/x001/x234/067.p/255');
  assert.equal(entriesTilePath(999), 'tile/entries/999');

  assert.deepEqual(parseTilePath('tile/1/x001/x234/067.p/8'), { kind: 'hash', level: 1, index: 1234067, partialWidth: 8 });
  assert.deepEqual(parseTilePath('tile/0/x001/x234/067'), { kind: 'hash', level: 0, index: 1234067 });
  assert.deepEqual(parseTilePath('tile/entries/x001/234.p/5'), { kind: 'entries', index: 1234, partialWidth: 5 });
  assert.deepEqual(parseTilePath('tile/entries/000'), { kind: 'entries', index: 0 });
  for (const index of [0, 1, 999, 1000, 1001, 999999, 1000000, 2 ** 45 + 3]) {
    assert.equal(parseTilePath(tilePath(3, index, 17)).index, index);
    assert.equal(parseTilePath(entriesTilePath(index)).index, index);
  }

  const rejected = [
    'tile/0/5',
    'tile/0/0005',
    'tile/0/x000/005',
    'tile/0/x1/000',
    'tile/0/001/234',
    'tile/0/x001/x234',
    'tile/00/000',
    'tile/64/000',
    'tile/0/000.p/0',
    'tile/0/000.p/08',
    'tile/0/000.p/256',
    'tile/0/000.p/',
    'tile/0/000/',
    '/tile/0/000',
    'tile/0/000.p/5/',
    'tile/entries/000.p/256',
    'tile/entries/x000/001',
    'tile/data/000',
    'tile/-1/000',
    'tile/0/x999/x999/x999/x999/x999/999',
  ];
  for (const p of rejected) assert.throws(() => parseTilePath(p), /tile path/, p);
  assert.throws(() => tilePath(64, 0), /0\.\.63/);
  assert.throws(() => tilePath(0, -1), /non-negative/);
  assert.throws(() => tilePath(0, 0, 256), /1\.\.255/);
  assert.throws(() => entriesTilePath(0, 0), /1\.\.255/);
});

test('partial tile widths (tlog-tiles size examples)', () => {
  assert.deepEqual([0, 1, 2].map((l) => partialTileWidth(l, 70000)), [112, 17, 1]);
  assert.deepEqual([0, 1].map((l) => partialTileWidth(l, 256)), [0, 1]);
  assert.equal(Math.floor(70000 / 256), 273);
});

test('entry bundles', () => {
  const entries = [Buffer.alloc(0), Buffer.from('one'), Buffer.alloc(0xffff, 7), Buffer.from([0, 1, 2])];
  const bundle = encodeEntryBundle(entries);
  assert.equal(bundle.subarray(0, 7).toString('hex'), '00000003' + Buffer.from('one').toString('hex'));
  assert.deepEqual(decodeEntryBundle(bundle), entries);
  assert.deepEqual(decodeEntryBundle(bundle, 4), entries);
  assert.throws(() => decodeEntryBundle(bundle, 5), /has 4 entries, want 5/);
  assert.throws(() => decodeEntryBundle(bundle.subarray(0, bundle.length - 1)), /truncated in entry 3/);
  assert.throws(() => decodeEntryBundle(Buffer.from([0])), /truncated in the length prefix of entry 0/);
  assert.throws(() => encodeEntryBundle([Buffer.alloc(0x10000)]), /at most 65535/);
  assert.throws(() => encodeEntryBundle(Array.from({ length: 257 }, () => Buffer.alloc(0))), /at most 256 entries/);
  assert.throws(() => decodeEntryBundle(Buffer.alloc(2 * 257)), /more than 256 entries/);
  assert.deepEqual(decodeEntryBundle(Buffer.alloc(0)), []);
});
