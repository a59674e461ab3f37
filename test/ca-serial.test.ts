import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { buildCertificate, normalizeSerialHex, randomSerial, serialBytesFromHex, serialHex } from '../server/ca/certificate-builder.js';
import { generateP256Pkcs8Pem, signingKeyFromPem } from '../server/ca/signing-key.js';

test('serials: 128 random bits, positive, minimally encoded, all distinct', () => {
  const seen = new Set<string>();
  let longest = 0;
  for (let i = 0; i < 2000; i++) {
    const s = randomSerial();
    assert.ok(s.length >= 1 && s.length <= 17);
    assert.ok(s[0] !== 0 || (s.length > 1 && s[1] & 0x80), 'no redundant leading zero byte');
    if (s.length === 17) assert.equal(s[0], 0, 'a 17th byte is only the sign byte');
    const hex = serialHex(s);
    seen.add(hex);
    longest = Math.max(longest, BigInt(`0x${hex}`).toString(2).length);
  }
  assert.equal(seen.size, 2000);
  assert.equal(longest, 128);
});

test('the serial openssl/node print maps back to the stored one, including leading zero nibbles and sign bytes', async () => {
  const key = await signingKeyFromPem(generateP256Pkcs8Pem());
  const spki = new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ format: 'der', type: 'spki' }));
  for (const hex of ['0abc1234', 'ff00aa', '0f', '7fffffffffffffffffffffffffffffff', '80000000000000000000000000000001', '0100']) {
    const serial = serialBytesFromHex(hex);
    const der = await buildCertificate({
      serial, subject: { commonName: 'x' }, subjectSpkiDer: spki, notBefore: new Date(), notAfter: new Date(Date.now() + 3600_000),
      ca: false, keyUsage: ['digitalSignature'],
    }, key);
    const printed = new X509Certificate(Buffer.from(der)).serialNumber;
    assert.equal(normalizeSerialHex(printed), serialHex(serial), `printed ${printed}`);
  }
});
