import type { Logger } from 'pino';
import type { Storage } from '../../storage/types.js';
import type { Config } from '../config.js';
import type { Issuer } from '../ca/ca-material.js';
import type { ParsedCsr } from '../ca/csr.js';
import type { IssuerRegistry } from '../ca/issuer-registry.js';
import type { KeyCache } from './jws.js';
import type { NonceService } from './nonces.js';
import type { Urls } from './urls.js';
import type { SecretBox } from '../admin/key-encryption.js';
import type { Metrics } from '../ops/metrics.js';
import type { PolicyStore } from '../policy/policy-store.js';

export interface ValidationScheduler { schedule(challengeId: string): Promise<void> }
export interface IssuanceScheduler { schedule(orderId: string, csr?: ParsedCsr): Promise<void> }

/** Waits for `work` at most `ms`; the work goes on either way. */
export async function waitAtMost(work: Promise<void>, ms: number): Promise<void> {
  if (ms <= 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((r) => { timer = setTimeout(r, ms); })]);
  clearTimeout(timer);
}

/** What the ACME routes need, injected so tests can supply their own clock. */
export interface AcmeContext {
  config: Config;
  store: Storage;
  nonces: NonceService;
  urls: Urls;
  keyCache: KeyCache;
  issuer: () => Issuer;
  issuers: IssuerRegistry;
  rootPem: string;
  validations: ValidationScheduler;
  issuance: IssuanceScheduler;
  log: Logger;
  policy: PolicyStore;
  secrets: SecretBox;
  metrics: Metrics;
  /** Tells the checkpoint publisher that the issuance log grew. */
  logAppended: () => void;
  /** Tells the CRL publisher that a certificate was revoked. */
  revoked: () => void;
  now: () => number;
}
