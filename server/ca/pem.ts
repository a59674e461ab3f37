// PEM is base64 armour, not ASN.1: wrapping it here is not parsing certificates by hand.
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export interface PemBlock { label: string; der: Uint8Array }

export function parsePemBlocks(text: string): PemBlock[] {
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  const out: PemBlock[] = [];
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    out.push({ label: m[1], der: new Uint8Array(Buffer.from(m[2].replace(/\s+/g, ''), 'base64')) });
  }
  return out;
}

export function pemCertificates(text: string): Uint8Array[] {
  return parsePemBlocks(text).filter((b) => b.label === 'CERTIFICATE').map((b) => b.der);
}
