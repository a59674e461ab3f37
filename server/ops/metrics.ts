import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Storage } from '../../storage/types.js';

export interface CaCertificateInfo { role: 'root' | 'intermediate'; subject: string; notAfter: Date }

export interface MetricsSources {
  store: Storage;
  caCertificates: () => CaCertificateInfo[];
  lastCheckpointAt: () => number;
  /** Certificates an operator asked to renew now that have no replacement yet. */
  renewNowPending: () => Promise<number>;
  now: () => number;
}

const HOUR = 3_600_000;

/**
 * Every metric the CA exports. Counters are incremented where things happen; gauges that describe
 * stored state are computed at scrape time, so a restarted process reports the truth at once.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly httpDuration: Histogram<'route' | 'method'>;
  readonly ordersFinal: Counter<'status'>;
  readonly certificatesIssued: Counter<'profile' | 'scope'>;
  readonly issuanceDuration: Histogram;
  readonly validations: Counter<'type' | 'result'>;
  readonly policyDenials: Counter<'rule'>;
  readonly rateLimitHits: Counter<'limit'>;
  readonly revocations: Counter<'reason'>;

  constructor(sources: MetricsSources | null) {
    const r = this.registry;
    // The event-loop-lag sampler wakes every 10 ms by default: 1% of a core on an idle CA.
    collectDefaultMetrics({ register: r, prefix: 'acme_ca_process_', eventLoopMonitoringPrecision: 1000 });
    this.httpRequests = new Counter({ name: 'acme_ca_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers: [r] });
    this.httpDuration = new Histogram({ name: 'acme_ca_http_request_duration_seconds', help: 'HTTP request latency by route', labelNames: ['route', 'method'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [r] });
    this.ordersFinal = new Counter({ name: 'acme_ca_orders_total', help: 'Orders that reached a final status (valid or invalid)', labelNames: ['status'], registers: [r] });
    this.certificatesIssued = new Counter({ name: 'acme_ca_certificates_issued_total', help: 'Certificates issued by profile and scope', labelNames: ['profile', 'scope'], registers: [r] });
    this.issuanceDuration = new Histogram({ name: 'acme_ca_issuance_duration_seconds', help: 'Time from finalize to a stored, logged certificate', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [r] });
    this.validations = new Counter({ name: 'acme_ca_validations_total', help: 'Challenge validations by type and result', labelNames: ['type', 'result'], registers: [r] });
    this.policyDenials = new Counter({ name: 'acme_ca_policy_denials_total', help: 'Orders refused by policy, by rule', labelNames: ['rule'], registers: [r] });
    this.rateLimitHits = new Counter({ name: 'acme_ca_rate_limit_hits_total', help: 'Requests refused by a rate limit, by limit', labelNames: ['limit'], registers: [r] });
    this.revocations = new Counter({ name: 'acme_ca_revocations_total', help: 'Certificates revoked, by RFC 5280 reason code', labelNames: ['reason'], registers: [r] });
    if (!sources) return;

    new Gauge({
      name: 'acme_ca_ca_certificate_not_after_seconds', help: 'Expiry (Unix seconds) of each CA certificate in use', labelNames: ['role', 'subject'], registers: [r],
      collect() {
        this.reset();
        for (const c of sources.caCertificates()) this.set({ role: c.role, subject: c.subject }, Math.floor(c.notAfter.getTime() / 1000));
      },
    });
    new Gauge({
      name: 'acme_ca_certificates_expiring_unreplaced', help: 'Valid certificates expiring within the window for whose names no newer certificate exists', labelNames: ['within'], registers: [r],
      async collect() {
        const now = sources.now();
        this.set({ within: '24h' }, await sources.store.countExpiringWithoutReplacement(now, 24 * HOUR));
        this.set({ within: '7d' }, await sources.store.countExpiringWithoutReplacement(now, 7 * 24 * HOUR));
      },
    });
    new Gauge({
      name: 'acme_ca_renew_now_pending', help: 'Certificates selected by "renew now" that have not been replaced yet', registers: [r],
      async collect() { this.set(await sources.renewNowPending()); },
    });
    new Gauge({
      name: 'acme_ca_log_tree_size', help: 'Entries in the issuance log', registers: [r],
      async collect() { this.set((await sources.store.getLogState()).size); },
    });
    new Gauge({
      name: 'acme_ca_log_checkpoint_age_seconds', help: 'Seconds since the issuance log checkpoint was last signed or confirmed', registers: [r],
      collect() {
        const at = sources.lastCheckpointAt();
        this.set(at === 0 ? -1 : (sources.now() - at) / 1000);
      },
    });
    new Gauge({
      name: 'acme_ca_db_latency_seconds', help: 'Latency of a write+read round trip to the database, measured at scrape', registers: [r],
      async collect() {
        const t = process.hrtime.bigint();
        await sources.store.ping();
        this.set(Number(process.hrtime.bigint() - t) / 1e9);
      },
    });
  }
}
