import type { Logger } from 'pino';
import type { Storage } from '../../storage/types.js';
import { nameSetKey } from '../policy/evaluate.js';
import type { ExtKeyUsageName, ProfileConfig } from '../policy/types.js';
import type { Metrics } from '../ops/metrics.js';
import { OID } from './certificate-builder.js';
import type { Issuer } from './ca-material.js';
import type { SanEntry } from './certificate-builder.js';
import { parseCsr, type ParsedCsr } from './csr.js';
import { issueLeaf } from './leaf.js';
import { newId } from '../acme/ids.js';
import { certificateIssuedEntry } from '../log/entry.js';

export interface IssuanceOptions {
  backdateMs: number;
  /** The profile an order was placed under, as currently configured. */
  profile: (name: string) => ProfileConfig | undefined;
  policyVersion: () => string;
  /** The CRL URL to embed for this issuer and profile, or null to omit the extension. */
  crlUrl: (issuer: Issuer, profile: ProfileConfig) => string | null;
}

const EKU_OID: Record<ExtKeyUsageName, string> = { serverAuth: OID.serverAuth, clientAuth: OID.clientAuth };

/**
 * Signs certificates for orders in `processing`. The CSR is stored with the order, so a crash
 * between finalize and signing is recovered by `resume()` at start-up.
 */
export class IssuanceService {
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly pending = new Set<Promise<void>>();
  /** Called after each issuance commits (the log publisher batches checkpoints from it). */
  onIssued: (() => void) | null = null;
  metrics: Metrics | null = null;

  constructor(
    private readonly store: Storage,
    private readonly issuer: () => Issuer,
    private readonly opts: IssuanceOptions,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /**
   * Signs in the background; the promise settles when the order is valid or invalid. `csr` is the
   * already parsed CSR when the caller has it (finalize); after a restart it is parsed again.
   */
  schedule(orderId: string, csr?: ParsedCsr): Promise<void> {
    const running = this.inFlight.get(orderId);
    if (running) return running;
    const p: Promise<void> = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.issue(orderId, csr))
      .catch((e: unknown) => this.log.error({ orderId, err: e }, 'issuance failed'))
      .finally(() => { this.inFlight.delete(orderId); this.pending.delete(p); });
    this.inFlight.set(orderId, p);
    this.pending.add(p);
    return p;
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

  private async issue(orderId: string, parsed?: ParsedCsr): Promise<void> {
    const order = await this.store.getOrder(orderId);
    if (!order || order.status !== 'processing' || !order.csr) return;
    try {
      // Finalize checked the CSR's signature before storing it; only its contents are needed now.
      const csr = parsed ?? await parseCsr(order.csr, { verifySignature: false });
      const issuer = this.issuer();
      const now = this.now();
      const profile = this.opts.profile(order.profile);
      if (!profile) throw new Error(`profile '${order.profile}' no longer exists in the policy`);
      // URI SANs were checked against the scope at finalize; DNS and IP names are the order's.
      const san: SanEntry[] = [...order.identifiers.map((i) => ({ type: i.type, value: i.value })), ...csr.uris.map((u): SanEntry => ({ type: 'uri', value: u }))];
      const started = process.hrtime.bigint();
      const leaf = await issueLeaf(issuer, {
        spkiDer: csr.spkiDer, san, extKeyUsage: profile.extKeyUsage.map((e) => EKU_OID[e]), crlDistributionPoint: this.opts.crlUrl(issuer, profile) ?? undefined,
        notBefore: new Date(now - this.opts.backdateMs), notAfter: new Date(now - this.opts.backdateMs + profile.validityMs),
      });
      const entry = certificateIssuedEntry({
        serial: leaf.serial, der: leaf.der, issuerDer: issuer.certDer, accountId: order.accountId, orderId: order.id,
        scope: order.scope, profile: order.profile, identifiers: order.identifiers, uris: csr.uris,
        notBefore: leaf.notBefore.getTime(), notAfter: leaf.notAfter.getTime(),
        policy: { decision: 'allow', version: this.opts.policyVersion(), reasons: [`scope '${order.scope}' allows every identifier`, `profile '${order.profile}'`] },
      }, now);
      const { logIndex } = await this.store.issueCertificate({
        id: newId(), serial: leaf.serial, accountId: order.accountId, orderId: order.id, der: leaf.der, chainPem: issuer.chainPem,
        spkiSha256: leaf.spkiSha256, notBefore: leaf.notBefore.getTime(), notAfter: leaf.notAfter.getTime(),
        status: 'valid', revokedAt: null, revocationReason: null, createdAt: now, nameSet: nameSetKey(order.identifiers),
        issuerId: issuer.id, scope: order.scope, profile: order.profile,
      }, entry);
      this.metrics?.certificatesIssued.inc({ profile: order.profile, scope: order.scope });
      this.metrics?.ordersFinal.inc({ status: 'valid' });
      this.metrics?.issuanceDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
      this.onIssued?.();
      this.log.info({ orderId, accountId: order.accountId, serial: leaf.serial, logIndex, identifiers: order.identifiers.map((i) => i.value), notAfter: leaf.notAfter.toISOString() }, 'certificate issued');
    } catch (e) {
      this.log.error({ orderId, err: e }, 'certificate signing failed; order marked invalid');
      this.metrics?.ordersFinal.inc({ status: 'invalid' });
      await this.store.transitionOrder(orderId, ['processing'], 'invalid', {
        csr: null, error: { type: 'urn:ietf:params:acme:error:serverInternal', detail: 'the CA could not sign the certificate; place a new order (the operator has the details in the server log)' },
      });
    }
  }
}
