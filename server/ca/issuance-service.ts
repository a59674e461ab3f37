import type { Logger } from 'pino';
import type { Storage } from '../../storage/types.js';
import type { Issuer } from './ca-material.js';
import type { SanEntry } from './certificate-builder.js';
import { parseCsr } from './csr.js';
import { issueLeaf } from './leaf.js';
import { newId } from '../acme/ids.js';
import { certificateIssuedEntry } from '../log/entry.js';

export interface IssuanceOptions {
  validityMs: number;
  backdateMs: number;
}

/**
 * Signs certificates for orders in `processing`. The CSR is stored with the order, so a crash
 * between finalize and signing is recovered by `resume()` at start-up.
 */
export class IssuanceService {
  private readonly inFlight = new Set<string>();
  private readonly pending = new Set<Promise<void>>();
  /** Called after each issuance commits (the log publisher batches checkpoints from it). */
  onIssued: (() => void) | null = null;

  constructor(
    private readonly store: Storage,
    private readonly issuer: () => Issuer,
    private readonly opts: IssuanceOptions,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  schedule(orderId: string): void {
    if (this.inFlight.has(orderId)) return;
    this.inFlight.add(orderId);
    const p = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.issue(orderId))
      .catch((e: unknown) => this.log.error({ orderId, err: e }, 'issuance failed'))
      .finally(() => { this.inFlight.delete(orderId); this.pending.delete(p); });
    this.pending.add(p);
  }

  async resume(): Promise<number> {
    const orders = await this.store.listOrdersByStatus('processing', 10_000);
    for (const o of orders) this.schedule(o.id);
    return orders.length;
  }

  /** Waits for in-flight signatures, for a graceful shutdown. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  private async issue(orderId: string): Promise<void> {
    const order = await this.store.getOrder(orderId);
    if (!order || order.status !== 'processing' || !order.csr) return;
    try {
      const csr = await parseCsr(order.csr);
      const issuer = this.issuer();
      const now = this.now();
      const san: SanEntry[] = order.identifiers.map((i) => ({ type: i.type, value: i.value }));
      const leaf = await issueLeaf(issuer, {
        spkiDer: csr.spkiDer, san,
        notBefore: new Date(now - this.opts.backdateMs), notAfter: new Date(now - this.opts.backdateMs + this.opts.validityMs),
      });
      const entry = certificateIssuedEntry({
        serial: leaf.serial, der: leaf.der, issuerDer: issuer.certDer, accountId: order.accountId, orderId: order.id,
        scope: 'default', profile: 'default', identifiers: order.identifiers,
        notBefore: leaf.notBefore.getTime(), notAfter: leaf.notAfter.getTime(),
        policy: { decision: 'allow', version: 'builtin', reasons: [] },
      }, now);
      const { logIndex } = await this.store.issueCertificate({
        id: newId(), serial: leaf.serial, accountId: order.accountId, orderId: order.id, der: leaf.der, chainPem: issuer.chainPem,
        spkiSha256: leaf.spkiSha256, notBefore: leaf.notBefore.getTime(), notAfter: leaf.notAfter.getTime(),
        status: 'valid', revokedAt: null, revocationReason: null, createdAt: now,
      }, entry);
      this.onIssued?.();
      this.log.info({ orderId, accountId: order.accountId, serial: leaf.serial, logIndex, identifiers: order.identifiers.map((i) => i.value), notAfter: leaf.notAfter.toISOString() }, 'certificate issued');
    } catch (e) {
      this.log.error({ orderId, err: e }, 'certificate signing failed; order marked invalid');
      await this.store.transitionOrder(orderId, ['processing'], 'invalid', {
        csr: null, error: { type: 'urn:ietf:params:acme:error:serverInternal', detail: 'the CA could not sign the certificate; place a new order (the operator has the details in the server log)' },
      });
    }
  }
}
