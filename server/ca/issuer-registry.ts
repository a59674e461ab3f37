import { readFileSync } from 'node:fs';
import { activeIssuerId, caFiles, listIssuerIds, loadIssuer, readAlternateChains, type Issuer } from './ca-material.js';

/**
 * Every intermediate this CA has issued with: the active one signs new certificates, retired ones
 * keep signing their CRLs until their last certificate expires. A rotation is picked up by
 * `refresh()` without a restart; a certificate being signed keeps the issuer it started with.
 */
export class IssuerRegistry {
  private current: Issuer;
  private readonly known = new Map<string, Issuer>();

  private constructor(private readonly dataDir: string, private readonly rootPem: string, active: Issuer) {
    this.current = active;
    this.known.set(active.id, active);
  }

  static async load(dataDir: string, active: Issuer, now = new Date()): Promise<IssuerRegistry> {
    const rootPem = readFileSync(caFiles(dataDir).root, 'utf8');
    const r = new IssuerRegistry(dataDir, rootPem, active);
    for (const id of listIssuerIds(dataDir)) {
      if (r.known.has(id)) continue;
      try {
        r.known.set(id, await loadIssuer(dataDir, id, rootPem, now, { active: false }));
      } catch {
        // A retired issuer whose files are damaged cannot sign CRLs; the active one is unaffected.
      }
    }
    return r;
  }

  active(): Issuer { return this.current; }
  all(): Issuer[] { return [...this.known.values()]; }
  byId(id: string): Issuer | undefined { return this.known.get(id); }

  /** Re-reads every issuer's alternate chains (SIGHUP), keeping keys and certificates as loaded. */
  reloadAlternates(): void {
    for (const issuer of this.known.values()) issuer.alternateChains = readAlternateChains(this.dataDir, issuer.id);
  }

  /** Re-reads the active-issuer pointer; returns the previous issuer when it changed. */
  async refresh(now = new Date()): Promise<Issuer | null> {
    const id = activeIssuerId(this.dataDir);
    if (!id || id === this.current.id) return null;
    const next = await loadIssuer(this.dataDir, id, this.rootPem, now, { active: true });
    const previous = this.current;
    this.known.set(next.id, next);
    this.current = next;
    return previous;
  }
}
