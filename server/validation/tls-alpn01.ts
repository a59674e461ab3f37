import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { connect } from 'node:tls';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { Identifier } from '../../storage/types.js';
import { bytesToIp, ipToBytes, OID } from '../ca/certificate-builder.js';
import type { ValidationResolver } from './resolver.js';
import { fail, type ValidationInput, type ValidationResult, type Validator } from './types.js';

/** RFC 8738 §6: an IP identifier is sent in SNI as its reverse-DNS name. */
export function sniName(id: Identifier): string {
  if (id.type === 'dns') return id.value;
  const b = ipToBytes(id.value);
  if (b.length === 4) return `${[...b].reverse().join('.')}.in-addr.arpa`;
  return `${[...b].flatMap((x) => [x >> 4, x & 15]).reverse().map((n) => n.toString(16)).join('.')}.ip6.arpa`;
}

function peerCertificate(address: string, port: number, servername: string, timeoutMs: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port, servername, ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false, timeout: timeoutMs });
    socket.once('secureConnect', () => {
      const alpn = socket.alpnProtocol;
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      if (alpn !== 'acme-tls/1') { reject(new Error(`the server did not negotiate ALPN "acme-tls/1" (got ${JSON.stringify(alpn || null)})`)); return; }
      if (!raw) { reject(new Error('the server presented no certificate')); return; }
      resolve(new Uint8Array(raw));
    });
    socket.once('timeout', () => socket.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)));
    socket.once('error', reject);
  });
}

/** Checks the self-signed validation certificate of RFC 8737 §3; returns why it fails, or null. */
export function checkAlpnCertificate(der: Uint8Array, id: Identifier, keyAuthorization: string): string | null {
  let cert: pkijs.Certificate;
  try { cert = pkijs.Certificate.fromBER(new Uint8Array(der)); } catch { return 'the presented certificate cannot be parsed'; }
  const exts = cert.extensions ?? [];
  const san = exts.find((e) => e.extnID === OID.subjectAltName);
  if (!san) return 'the validation certificate has no subjectAltName';
  const names = new pkijs.GeneralNames({ schema: asn1js.fromBER(san.extnValue.valueBlock.valueHexView).result }).names;
  const expected = names.length === 1 && (id.type === 'dns'
    ? names[0].type === 2 && String(names[0].value).toLowerCase() === id.value
    : names[0].type === 7 && bytesToIp(new Uint8Array((names[0].value as asn1js.OctetString).valueBlock.valueHexView)) === id.value);
  if (!expected) return `the validation certificate's subjectAltName must be exactly ${id.value}`;
  const acme = exts.find((e) => e.extnID === OID.acmeIdentifier);
  if (!acme) return 'the validation certificate lacks the acmeIdentifier extension (1.3.6.1.5.5.7.1.31)';
  if (!acme.critical) return 'the acmeIdentifier extension must be critical';
  const inner = asn1js.fromBER(acme.extnValue.valueBlock.valueHexView).result;
  if (!(inner instanceof asn1js.OctetString)) return 'the acmeIdentifier extension must hold an OCTET STRING';
  const want = createHash('sha256').update(keyAuthorization).digest();
  if (!Buffer.from(inner.valueBlock.valueHexView).equals(want)) return 'the acmeIdentifier extension does not hold the SHA-256 of the key authorization';
  return null;
}

export class TlsAlpn01Validator implements Validator {
  constructor(private readonly resolver: ValidationResolver, private readonly port: number, private readonly timeoutMs: number) {}

  async validate(input: ValidationInput): Promise<ValidationResult> {
    const { identifier: id } = input;
    let addresses: string[];
    try { addresses = await this.resolver.addresses(id); } catch (e) { return fail('dns', `cannot resolve ${id.value}: ${(e as Error).message}`, id); }
    let last: ValidationResult = fail('connection', `no address to connect to for ${id.value}`, id);
    for (const address of addresses) {
      const host = isIP(address) === 6 ? `[${address}]` : address;
      try {
        const der = await peerCertificate(address, this.port, sniName(id), this.timeoutMs);
        const why = checkAlpnCertificate(der, id, input.keyAuthorization);
        if (why === null) return { valid: true };
        last = fail('incorrectResponse', `${host}:${this.port}: ${why}`, id);
      } catch (e) {
        last = fail('tls', `tls-alpn-01 at ${host}:${this.port} failed: ${(e as Error).message}`, id);
      }
    }
    return last;
  }
}
