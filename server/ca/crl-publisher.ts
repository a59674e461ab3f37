import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Storage } from '../../storage/types.js';
import { crlSignedEntry } from '../log/entry.js';
import { buildCrl } from './crl-builder.js';
import type { IssuerRegistry } from './issuer-registry.js';

export interface CrlOptions {
  /** nextUpdate - thisUpdate. */
  lifetimeMs: number;
  /** A revocation reaches the CRL after at most this delay (revocations within it share one CRL). */
  debounceMs: number;
}

/**
 * One full CRL per issuer, each signed by that issuer with an increasing CRL number. Regenerated
 * shortly after a revocation and whenever half its lifetime has passed, so it is always fresh well
 * before nextUpdate. A retired issuer keeps publishing while it has unexpired certificates.
 */
export class CrlPublisher {
  private timer: NodeJS.Timeout | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  onSigned: (() => void) | null = null;

  constructor(
    private readonly store: Storage,
    private readonly issuers: IssuerRegistry,
    private readonly opts: CrlOptions,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  start(): void {
    this.ticker = setInterval(() => this.schedule(0), Math.max(1000, Math.min(60_000, this.opts.lifetimeMs / 10)));
    this.ticker.unref();
    this.schedule(0);
  }

  /** A revocation happened: publish within the debounce delay. */
  notify(): void { this.schedule(this.opts.debounceMs, true); }

  private dirty = false;

  private schedule(delay: number, dirty = false): void {
    this.dirty ||= dirty;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refresh(this.dirty).catch((e: unknown) => this.log.error({ err: e }, 'CRL publication failed'));
      this.dirty = false;
    }, delay);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    if (this.ticker) clearInterval(this.ticker);
    this.timer = null;
    this.ticker = null;
    await this.running;
  }

  /** Re-signs every issuer's CRL that is missing, stale, or (when forced) behind a revocation. */
  async refresh(force: boolean): Promise<void> {
    while (this.running) await this.running;
    this.running = (async () => {
      for (const issuer of this.issuers.all()) {
        const now = this.now();
        const latest = await this.store.latestCrl(issuer.id);
        const isActive = issuer.id === this.issuers.active().id;
        if (!isActive && latest && !(await this.store.issuerHasUnexpired(issuer.id, now))) continue;
        if (issuer.notAfter.getTime() <= now) continue;
        // Revocations made outside this process (the CLI on the data folder) show up as entries newer than the CRL.
        const newest = latest ? Math.max(0, ...(await this.store.listRevokedForCrl(issuer.id, now)).map((e) => e.revokedAt)) : 0;
        const stale = !latest || latest.nextUpdate - now < this.opts.lifetimeMs / 2 || newest > latest.thisUpdate + 60_000;
        if (!stale && !force) continue;
        await this.sign(issuer.id, (latest?.number ?? 0) + 1, now);
      }
    })();
    try { await this.running; } finally { this.running = null; }
  }

  private async sign(issuerId: string, number: number, now: number): Promise<void> {
    const issuer = this.issuers.byId(issuerId)!;
    const entries = await this.store.listRevokedForCrl(issuerId, now);
    const nextUpdate = Math.min(now + this.opts.lifetimeMs, issuer.notAfter.getTime());
    const der = await buildCrl({ issuer, number, thisUpdate: now - 60_000, nextUpdate, entries });
    await this.store.saveCrl({ issuerId, number, thisUpdate: now - 60_000, nextUpdate, der });
    await this.store.appendLogEvent(crlSignedEntry({ issuerId, number, thisUpdate: now - 60_000, nextUpdate, entries: entries.length, sha256: createHash('sha256').update(der).digest('hex') }, now));
    this.onSigned?.();
    this.log.info({ issuerId: issuerId.slice(0, 16), number, entries: entries.length }, 'CRL signed');
  }

  /** The current CRL of an issuer (by full id or its 16-hex-digit short id), signing one if none exists. */
  async current(idOrShort: string): Promise<Uint8Array | null> {
    const issuer = this.issuers.all().find((i) => i.id === idOrShort || i.id.slice(0, 16) === idOrShort);
    if (!issuer) return null;
    let latest = await this.store.latestCrl(issuer.id);
    if (!latest) {
      await this.refresh(false);
      latest = await this.store.latestCrl(issuer.id);
    }
    return latest?.der ?? null;
  }
}
