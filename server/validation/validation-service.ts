import type { Logger } from 'pino';
import type { ChallengeType, Storage } from '../../storage/types.js';
import type { Metrics } from '../ops/metrics.js';
import type { ValidationResult, Validator } from './types.js';

export interface ValidationServiceOptions {
  attempts: number;
  retryDelayMs: number;
  /** Most validations run at once; the rest wait their turn. */
  concurrency: number;
}

/**
 * Runs challenge validations off the request path. A challenge in `processing` is the durable
 * record of pending work: `resume()` picks those up after a restart.
 */
export class ValidationService {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private running = 0;
  private stopped = false;
  private readonly idleWaiters: Array<() => void> = [];
  metrics: Metrics | null = null;

  constructor(
    private readonly store: Storage,
    private readonly validators: Record<ChallengeType, Validator>,
    private readonly opts: ValidationServiceOptions,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms).unref()),
  ) {}

  /** Queues a validation; the promise settles when it has recorded its result (or was not run). */
  schedule(challengeId: string): Promise<void> {
    const waiting = this.done.get(challengeId);
    if (waiting) return waiting.promise;
    if (this.stopped) return Promise.resolve();
    let resolve!: () => void;
    const promise = new Promise<void>((r) => { resolve = r; });
    this.done.set(challengeId, { promise, resolve });
    this.queued.add(challengeId);
    this.queue.push(challengeId);
    this.pump();
    return promise;
  }

  private readonly done = new Map<string, { promise: Promise<void>; resolve: () => void }>();

  async resume(): Promise<number> {
    const list = await this.store.listChallengesByStatus('processing', 10_000);
    for (const c of list) this.schedule(c.id);
    return list.length;
  }

  /** Stops taking work and waits for running validations to record their result. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const id of this.queue.splice(0)) { this.done.get(id)?.resolve(); this.done.delete(id); }
    if (this.running === 0) return;
    await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  private pump(): void {
    while (!this.stopped && this.running < this.opts.concurrency && this.queue.length > 0) {
      const id = this.queue.shift()!;
      this.running++;
      this.run(id)
        .catch((e: unknown) => this.log.error({ challengeId: id, err: e }, 'validation crashed'))
        .finally(() => {
          this.running--;
          this.queued.delete(id);
          this.done.get(id)?.resolve();
          this.done.delete(id);
          if (this.running === 0) this.idleWaiters.splice(0).forEach((r) => r());
          this.pump();
        });
    }
  }

  private async run(challengeId: string): Promise<void> {
    const ch = await this.store.getChallenge(challengeId);
    if (!ch || ch.status !== 'processing') return;
    const authz = await this.store.getAuthz(ch.authzId);
    const account = authz ? await this.store.getAccount(authz.accountId) : null;
    if (!authz || !account) return;
    const input = { type: ch.type, identifier: authz.identifier, token: ch.token, keyAuthorization: `${ch.token}.${account.thumbprint}` };
    let result: ValidationResult = { valid: false, problem: { type: 'urn:ietf:params:acme:error:serverInternal', detail: 'validation did not run' } };
    // Attempts already spent before a restart count against the bound.
    for (let attempt = ch.attempts + 1; attempt <= this.opts.attempts && !this.stopped; attempt++) {
      result = await this.validators[ch.type].validate(input);
      if (result.valid) break;
      // Only a failed attempt needs recording: a restart then continues the count, not restarts it.
      await this.store.transitionChallenge(ch.id, ['processing'], 'processing', { attempts: attempt });
      this.log.info({ challengeId: ch.id, type: ch.type, identifier: authz.identifier.value, attempt, detail: result.problem.detail }, 'validation attempt failed');
      if (attempt < this.opts.attempts) await this.sleep(this.opts.retryDelayMs);
    }
    if (this.stopped && !result.valid) return; // resumed on next start
    await this.store.completeChallenge({ challengeId: ch.id, valid: result.valid, error: result.valid ? null : result.problem, at: this.now() });
    this.metrics?.validations.inc({ type: ch.type, result: result.valid ? 'valid' : 'invalid' });
    if (!result.valid) this.metrics?.ordersFinal.inc({ status: 'invalid' });
    this.log.info({ challengeId: ch.id, type: ch.type, identifier: authz.identifier.value, valid: result.valid }, 'validation finished');
  }
}
