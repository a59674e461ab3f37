import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import './crypto-engine.js';
import type { Issuer } from './ca-material.js';
import { serialBytesFromHex } from './certificate-builder.js';

export interface CrlEntry { serial: string; revokedAt: number; reason: number }

export interface CrlInput {
  issuer: Issuer;
  /** Strictly increasing per issuer (RFC 5280 §5.2.3). */
  number: number;
  thisUpdate: number;
  nextUpdate: number;
  entries: CrlEntry[];
}

const time = (ms: number): pkijs.Time => {
  const d = new Date(ms);
  return new pkijs.Time({ type: d.getUTCFullYear() < 2050 ? 0 : 1, value: d });
};

/** A full v2 CRL signed by the issuer: CRL number, authority key id, a reason code per entry. */
export async function buildCrl(input: CrlInput): Promise<Uint8Array> {
  const crl = new pkijs.CertificateRevocationList();
  crl.version = 1;
  crl.issuer = input.issuer.cert.subject;
  crl.thisUpdate = time(input.thisUpdate);
  crl.nextUpdate = time(input.nextUpdate);
  if (input.entries.length > 0) {
    crl.revokedCertificates = input.entries.map((e) => new pkijs.RevokedCertificate({
      userCertificate: new asn1js.Integer({ valueHex: new Uint8Array(serialBytesFromHex(e.serial)).buffer }),
      revocationDate: time(e.revokedAt),
      // RFC 5280 §5.3.1: reason 0 (unspecified) should be omitted rather than encoded.
      ...(e.reason !== 0 ? {
        crlEntryExtensions: new pkijs.Extensions({
          extensions: [new pkijs.Extension({ extnID: '2.5.29.21', critical: false, extnValue: new asn1js.Enumerated({ value: e.reason }).toBER(false) })],
        }),
      } : {}),
    }));
  }
  crl.crlExtensions = new pkijs.Extensions({
    extensions: [
      new pkijs.Extension({ extnID: '2.5.29.20', critical: false, extnValue: new asn1js.Integer({ value: input.number }).toBER(false) }),
      new pkijs.Extension({
        extnID: '2.5.29.35', critical: false,
        extnValue: new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: new Uint8Array(input.issuer.keyId).buffer }) }).toSchema().toBER(false),
      }),
    ],
  });
  await crl.sign(input.issuer.key.privateKey, input.issuer.key.hash);
  return new Uint8Array(crl.toSchema(true).toBER(false));
}
