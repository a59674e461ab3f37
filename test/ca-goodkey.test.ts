import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';

import {
  checkPublicKey,
  describeKey,
  DEFAULT_KEY_POLICY,
  type KeyCheck,
  type KeyPolicy,
} from '../server/ca/goodkey.js';
import { bigintToB64url, bitLength, modPow, randomBelow } from './support/bigint.js';

// ---------------------------------------------------------------------------
// Fixture helpers. Moduli with a chosen structure (close factors, ROCA form,
// small factor) cannot come out of generateKeyPairSync, so they are built
// from BigInts and wrapped into an SPKI by OpenSSL via a JWK.

function spki(key: KeyObject): Uint8Array {
  return key.export({ type: 'spki', format: 'der' });
}

function rsaSpki(n: bigint, e: bigint = 65537n): Uint8Array {
  return spki(createPublicKey({ key: { kty: 'RSA', n: bigintToB64url(n), e: bigintToB64url(e) }, format: 'jwk' }));
}

/** Uniform random integer with exactly `bits` bits and the top two set, so a
 * product of two such numbers has exactly twice the bits. */
function randomTopTwo(bits: number): bigint {
  const bytes = randomBytes(Math.ceil(bits / 8));
  let n = BigInt('0x' + bytes.toString('hex'));
  n &= (1n << BigInt(bits)) - 1n;
  return n | (3n << BigInt(bits - 2));
}

function primesBelow(limit: number): number[] {
  const composite = new Uint8Array(limit);
  const out: number[] = [];
  for (let i = 2; i < limit; i++) {
    if (composite[i]) continue;
    out.push(i);
    for (let j = i * i; j < limit; j += i) composite[j] = 1;
  }
  return out;
}

// Trial division first: it rejects most candidates far faster than one
// 1024-bit modular exponentiation (~6 ms in BigInt).
const TRIAL_PRIMES: readonly bigint[] = primesBelow(2000).map(BigInt);

/** Miller-Rabin with random bases; 8 rounds is ample for random candidates
 * (the error bound for random 1024-bit inputs is far below 2^-80). */
function isProbablePrime(n: bigint, rounds = 8): boolean {
  if (n < 2n) return false;
  for (const p of TRIAL_PRIMES) {
    if (n === p) return true;
    if (n % p === 0n) return false;
  }
  let d = n - 1n;
  let s = 0;
  while ((d & 1n) === 0n) {
    d >>= 1n;
    s++;
  }
  witness: for (let i = 0; i < rounds; i++) {
    const a = 2n + randomBelow(n - 3n);
    let x = modPow(a, d, n);
    if (x === 1n || x === n - 1n) continue;
    for (let r = 1; r < s; r++) {
      x = (x * x) % n;
      if (x === n - 1n) continue witness;
    }
    return false;
  }
  return true;
}

/** Smallest prime >= start; bounded so a bug cannot hang the suite. */
function nextPrime(start: bigint): bigint {
  let c = start | 1n;
  for (let i = 0; i < 20_000; i++, c += 2n) {
    if (isProbablePrime(c)) return c;
  }
  throw new Error('nextPrime: no prime found within the search bound');
}

function randomPrime(bits: number): bigint {
  for (let attempt = 0; attempt < 20; attempt++) {
    const p = nextPrime(randomTopTwo(bits));
    if (bitLength(p) === bits) return p;
  }
  throw new Error('randomPrime: could not stay within the bit length');
}

/**
 * A prime of Infineon RSALib's form p = k*M + (65537^a mod M). For 2048-bit
 * keys (1024-bit primes) RSALib used M = product of the first 126 primes
 * (2..701, ~971 bits), leaving ~53 bits of k. k is drawn so that p has its
 * top two bits set, and candidates step by M (k -> k+1) until one is prime;
 * they are coprime to every prime <= 701 by construction, so ~1 in 60 is prime.
 */
const ROCA_M: bigint = primesBelow(702)
  .slice(0, 126)
  .reduce((acc, p) => acc * BigInt(p), 1n);

function rocaPrime(bits: number): bigint {
  const low = 3n << BigInt(bits - 2); // top two bits set
  const high = 1n << BigInt(bits);
  const kMin = (low + ROCA_M - 1n) / ROCA_M;
  const kMax = (high - ROCA_M) / ROCA_M - 1n;
  const a = randomBelow(1n << 128n);
  const residue = modPow(65537n, a, ROCA_M);
  let k = kMin + randomBelow(kMax - kMin - 10_000n);
  for (let i = 0; i < 10_000; i++, k++) {
    const p = k * ROCA_M + residue;
    if (isProbablePrime(p)) return p;
  }
  throw new Error('rocaPrime: no prime found within the search bound');
}

function assertRefused(result: KeyCheck, pattern: RegExp): void {
  assert.equal(result.ok, false, `expected refusal, got ${JSON.stringify(result)}`);
  if (!result.ok) assert.match(result.reason, pattern);
}

function assertAccepted(result: KeyCheck, algorithm: string, bits: number): void {
  assert.deepEqual(result, { ok: true, algorithm, bits });
}

const EVERYTHING: KeyPolicy = {
  allowed: ['RSA', 'EC-P256', 'EC-P384', 'EC-P521', 'Ed25519'],
  rsaMinBits: 2048,
  rsaMaxBits: 8192,
};

// Shared because RSA-2048 generation is the slowest keygen in the suite.
const rsa2048 = spki(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);

// ---------------------------------------------------------------------------
// Policy defaults.

test('default policy: RSA 2048..8192, P-256, P-384 only', () => {
  assert.deepEqual(DEFAULT_KEY_POLICY, {
    allowed: ['RSA', 'EC-P256', 'EC-P384'],
    rsaMinBits: 2048,
    rsaMaxBits: 8192,
  });
});

// ---------------------------------------------------------------------------
// EC.

test('ECDSA P-256 and P-384 keys are accepted by default', () => {
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
  assertAccepted(checkPublicKey(spki(p256)), 'EC-P256', 256);
  assertAccepted(checkPublicKey(spki(p384)), 'EC-P384', 384);
});

test('ECDSA P-521 is refused by default and accepted when the policy allows it', () => {
  const der = spki(generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey);
  const refused = checkPublicKey(der);
  assert.deepEqual(refused, {
    ok: false,
    reason: 'EC curve P-521 is not allowed; allowed: RSA, EC-P256, EC-P384',
  });
  // Acceptance also proves the SEC 2 constants for P-521 are right, since the
  // explicit on-curve check runs on every accepted point.
  assertAccepted(checkPublicKey(der, EVERYTHING), 'EC-P521', 521);
});

test('EC curves outside the NIST set are refused with their name', () => {
  const der = spki(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey);
  assertRefused(checkPublicKey(der, EVERYTHING), /^EC curve secp256k1 is not supported; allowed: /);
});

test('an off-curve EC point is refused with a reason, not an exception', () => {
  const good = spki(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
  const bad = Uint8Array.from(good);
  bad[bad.length - 1] ^= 0x01; // last byte of y
  assert.throws(() => createPublicKey({ key: Buffer.from(bad), format: 'der', type: 'spki' }));
  assertRefused(checkPublicKey(bad), /^EC P-256 public key point is not on the curve/);
  assert.deepEqual(describeKey(bad), { algorithm: 'unknown', bits: 0 });
});

test('an EC point with a coordinate >= p is refused', () => {
  const good = spki(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
  const bad = Uint8Array.from(good);
  // x occupies the 32 bytes after the 0x04 marker at the end of the SPKI.
  const xOffset = bad.length - 64;
  const p256 = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
  bad.set(Buffer.from((p256 + 1n).toString(16).padStart(64, '0'), 'hex'), xOffset);
  assertRefused(checkPublicKey(bad), /^EC P-256 public key coordinates are not reduced/);
});

// ---------------------------------------------------------------------------
// Ed25519 and other algorithms.

test('Ed25519 is refused by default and accepted when the policy allows it', () => {
  const der = spki(generateKeyPairSync('ed25519').publicKey);
  assert.deepEqual(checkPublicKey(der), {
    ok: false,
    reason: 'Ed25519 keys are not allowed; allowed: RSA, EC-P256, EC-P384',
  });
  assertAccepted(checkPublicKey(der, EVERYTHING), 'Ed25519', 256);
});

test('DSA, X25519, Ed448 and RSA-PSS-restricted keys are refused by name', () => {
  const dsa = spki(generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }).publicKey);
  assertRefused(checkPublicKey(dsa, EVERYTHING), /^DSA keys are not accepted/);
  assertRefused(checkPublicKey(spki(generateKeyPairSync('x25519').publicKey), EVERYTHING), /^X25519 keys/);
  assertRefused(checkPublicKey(spki(generateKeyPairSync('ed448').publicKey), EVERYTHING), /^Ed448 keys/);
  const pss = spki(generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).publicKey);
  assertRefused(checkPublicKey(pss, EVERYTHING), /^RSA-PSS-restricted keys/);
  assert.deepEqual(describeKey(pss), { algorithm: 'unknown', bits: 0 });
});

test('unparsable input is refused without throwing', () => {
  assertRefused(checkPublicKey(new Uint8Array(0)), /no public key bytes/);
  assertRefused(checkPublicKey(Uint8Array.from(randomBytes(64))), /not a valid DER SubjectPublicKeyInfo|could not be decoded|not supported/);
  assertRefused(checkPublicKey(rsa2048.subarray(0, rsa2048.length - 10)), /not a valid DER SubjectPublicKeyInfo/);
  // A PKCS#1 RSAPublicKey is not an SPKI even though it holds the same key.
  const pkcs1 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'pkcs1', format: 'der' });
  assertRefused(checkPublicKey(pkcs1), /./);
  assert.deepEqual(describeKey(new Uint8Array([0x30, 0x00])), { algorithm: 'unknown', bits: 0 });
});

// ---------------------------------------------------------------------------
// RSA.

test('RSA 2048 from generateKeyPairSync is accepted (and not flagged as ROCA or Fermat)', () => {
  assertAccepted(checkPublicKey(rsa2048), 'RSA', 2048);
  assert.deepEqual(describeKey(rsa2048), { algorithm: 'RSA', bits: 2048 });
});

test('RSA is refused when the policy does not list it', () => {
  const ecOnly: KeyPolicy = { ...DEFAULT_KEY_POLICY, allowed: ['EC-P256'] };
  assert.deepEqual(checkPublicKey(rsa2048, ecOnly), {
    ok: false,
    reason: 'RSA keys are not allowed; allowed: EC-P256',
  });
});

test('RSA 1024 is refused as too small', () => {
  const der = spki(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey);
  assert.deepEqual(checkPublicKey(der), { ok: false, reason: 'RSA key is 1024 bits; the minimum is 2048' });
  assert.deepEqual(describeKey(der), { algorithm: 'RSA', bits: 1024 });
});

test('RSA sizes above the maximum or not a multiple of 8 are refused', () => {
  // Size checks run before any arithmetic, so an arbitrary odd modulus suffices.
  assert.deepEqual(checkPublicKey(rsaSpki(randomTopTwo(8200) | 1n)), {
    ok: false,
    reason: 'RSA key is 8200 bits; the maximum is 8192',
  });
  assert.deepEqual(checkPublicKey(rsaSpki(randomTopTwo(2052) | 1n)), {
    ok: false,
    reason: 'RSA key is 2052 bits; the size must be a multiple of 8',
  });
});

test('RSA public exponent 3 is refused', () => {
  const der = spki(generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey);
  assert.deepEqual(checkPublicKey(der), { ok: false, reason: 'RSA public exponent must be 65537, got 3' });
});

test('RSA modulus with a factor below 752 is refused, naming the prime', () => {
  const q = randomPrime(1024);
  // 2 and 3 are the cheapest checks; 751 is the last prime below the BR limit
  // of 752, so it pins the top of the computed list.
  for (const small of [2n, 3n, 751n]) {
    // Choose the cofactor r so that small*q*r lands in [2^2047, 2^2048): the
    // size rule passes and the small prime is the only factor below 752.
    const low = ((1n << 2047n) + small * q - 1n) / (small * q);
    const r = nextPrime(low + randomBelow(low / 2n));
    const n = small * q * r;
    assert.equal(bitLength(n), 2048);
    assert.deepEqual(checkPublicKey(rsaSpki(n)), {
      ok: false,
      reason: `RSA modulus is divisible by the small prime ${small}; generate a new key`,
    });
  }
});

test("RSA modulus with close prime factors is refused (Fermat's method)", () => {
  const p = randomPrime(1024);
  // q is the next prime after p + ~2^200: independent primes would differ
  // around bit 1022, so this shares ~800 top bits with p.
  const q = nextPrime(p + (1n << 200n) + randomBelow(1n << 200n));
  const n = p * q;
  assert.equal(bitLength(n), 2048);
  assert.deepEqual(checkPublicKey(rsaSpki(n)), {
    ok: false,
    reason: "RSA modulus can be factored with Fermat's method (p and q are too close); generate a new key",
  });
});

test('RSA key with the ROCA fingerprint (CVE-2017-15361) is refused', () => {
  const p = rocaPrime(1024);
  const q = rocaPrime(1024);
  const n = p * q;
  assert.equal(bitLength(n), 2048);
  assert.deepEqual(checkPublicKey(rsaSpki(n)), {
    ok: false,
    reason: 'key has the ROCA fingerprint (CVE-2017-15361); generate it with a fixed library',
  });
  // Control: the same construction with one ordinary prime has no fingerprint
  // (with overwhelming probability), so the detector is keyed on the form.
  const ordinary = rocaPrime(1024) * randomPrime(1024);
  const control = checkPublicKey(rsaSpki(ordinary));
  assert.deepEqual(control, { ok: true, algorithm: 'RSA', bits: 2048 });
});
