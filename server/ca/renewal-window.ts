import { createHash } from 'node:crypto';

export interface RenewalWindow { start: number; end: number }

/**
 * RFC 9773 suggested window: the middle third of the certificate's life, narrowed to a slice of a
 * sixth of it whose position comes from the serial, so that a fleet issued in the same second
 * spreads its renewals instead of arriving together. Pure: same certificate, same window.
 */
export function suggestedWindow(cert: { serial: string; notBefore: number; notAfter: number }): RenewalWindow {
  const life = cert.notAfter - cert.notBefore;
  const third = Math.floor(life / 3);
  const slice = Math.floor(life / 6);
  const h = createHash('sha256').update(`ari-jitter:${cert.serial}`).digest();
  const fraction = h.readUInt32BE(0) / 0x1_0000_0000;
  const start = cert.notBefore + third + Math.floor(fraction * (third - slice));
  return { start, end: start + slice };
}

/** After an operator's "renew now" the window lies in the past, so clients renew at their next check. */
export function renewNowWindow(markedAt: number): RenewalWindow {
  return { start: markedAt - 2 * 3_600_000, end: markedAt - 3_600_000 };
}

/** How long a client should wait before asking again: a few times per window, at most six hours. */
export function ariRetryAfterSeconds(cert: { notBefore: number; notAfter: number }): number {
  return Math.max(60, Math.min(6 * 3600, Math.floor((cert.notAfter - cert.notBefore) / 8 / 1000)));
}
