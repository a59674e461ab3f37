import type { Logger } from 'pino';
import type { LogCheckpointRecord, Storage } from '../../storage/types.js';
import { formatCheckpoint } from './checkpoint.js';
import type { LogKey } from './log-key.js';
import { verifyConsistency } from './merkle.js';
import { signNote } from './note.js';
import { storedConsistencyProof, storedRoot } from './proofs.js';

export interface PublisherOptions {
  /** Longest time between an append and the checkpoint that covers it; appends within it share one signature. */
  delayMs: number;
  /** A checkpoint is (re)confirmed at least this often while idle. */
  intervalMs: number;
}

/**
 * Signs C2SP checkpoints of the issuance log. Before signing it proves, from stored nodes, that the
 * new tree is consistent with the last signed one, so a bug can never make the CA sign a fork.
 */
export class CheckpointPublisher {
  private timer: NodeJS.Timeout | null = null;
  private idle: NodeJS.Timeout | null = null;
  private running: Promise<LogCheckpointRecord | null> | null = null;
  /** When a checkpoint was last signed or confirmed current. */
  lastPublishedAt = 0;

  constructor(
    private readonly store: Storage,
    private readonly key: LogKey,
    private readonly opts: PublisherOptions,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  start(): void {
    this.idle = setInterval(() => this.notify(0), this.opts.intervalMs);
    this.idle.unref();
    this.notify(0);
  }

  private dueAt = 0;

  /** Asks for a checkpoint within the batching delay (or sooner); an earlier request moves it up. */
  notify(delayMs = this.opts.delayMs): void {
    const due = Date.now() + delayMs;
    if (this.timer && this.dueAt <= due) return;
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = due;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.publish().catch((e: unknown) => this.log.error({ err: e }, 'checkpoint publication failed'));
    }, delayMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    if (this.idle) clearInterval(this.idle);
    this.timer = null;
    this.idle = null;
    await this.running;
  }

  /** Signs a checkpoint for the current tree if it grew; serialised so two never race. */
  async publish(): Promise<LogCheckpointRecord | null> {
    while (this.running) await this.running;
    this.running = this.publishOnce();
    try {
      return await this.running;
    } finally {
      this.running = null;
    }
  }

  private async publishOnce(): Promise<LogCheckpointRecord | null> {
    const state = await this.store.getLogState();
    const latest = await this.store.latestCheckpoint();
    if (latest && latest.size === state.size) {
      this.lastPublishedAt = this.now();
      return latest;
    }
    const root = await storedRoot(this.store, state.size);
    if (!root.equals(Buffer.from(state.root))) throw new Error(`stored tree state root does not match the nodes at size ${state.size}; refusing to sign`);
    if (latest && latest.size > 0) {
      const proof = await storedConsistencyProof(this.store, latest.size, state.size);
      verifyConsistency(latest.size, state.size, proof, latest.root, root);
    }
    const body = formatCheckpoint({ origin: this.key.origin, size: state.size, rootHash: root });
    const note = signNote(body, this.key.origin, this.key.privateKey);
    const cp: LogCheckpointRecord = { size: state.size, root, note, signedAt: this.now() };
    if (!(await this.store.addCheckpoint(cp))) return this.store.latestCheckpoint();
    this.lastPublishedAt = cp.signedAt;
    this.log.debug({ size: cp.size }, 'checkpoint signed');
    return cp;
  }
}
