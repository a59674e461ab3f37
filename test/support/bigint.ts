import { randomBytes } from 'node:crypto';

// Integer helpers for key fixtures (weak RSA moduli built from chosen primes); not for production keys.

export function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

/** Big-endian base64url of a non-negative integer (JWK members, RFC 7518 §6.3). */
export function bigintToB64url(n: bigint): string {
  const hex = n.toString(16);
  return Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex').toString('base64url');
}

export function bigMod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

export function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let result = 1n;
  let b = bigMod(base, m);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return result;
}

export function randomBelow(limit: bigint): bigint {
  // 64 extra random bits make the modulo bias negligible for a fixture.
  const bytes = Math.ceil(bitLength(limit) / 8) + 8;
  return BigInt(`0x${randomBytes(bytes).toString('hex')}`) % limit;
}
