import { PeriodicLoop, type Logger } from '@ginkgo-live/runtime';
import type { Notifier } from '@ginkgo-live/notification-adapter';

export interface LeaderWatchOptions {
  /** Reads the leader lock (`{scheduler}:leader`): the leader's id, or null when none holds it. */
  readLeader: () => Promise<string | null>;
  notifier: Pick<Notifier, 'raise' | 'resolve'>;
  logger: Logger;
  /** No leader for this long is told (`GATEWAY_LEADER_MISSING_AFTER_MS`). */
  missingAfterMs: number;
  /** How often the lock is read; default a fifth of `missingAfterMs`, between 100 ms and 2 s. */
  intervalMs?: number;
  /** Clock, in ms (default `Date.now`). */
  now?: () => number;
}

/**
 * Who notices that every scheduler is dead or frozen must not be a scheduler: the gateway reads the
 * leader lock and raises `scheduler_leader_missing` (critical) when none has held it for
 * `missingAfterMs`, and resolves it when one holds it again. Several gateways raise it through the
 * shared dedupe (one notice) and resolve it once (the first to clear it sends the resolved notice).
 *
 * A failed read is unknown, not absent: it neither raises nor resolves, and the absence must then be
 * seen again for the whole grace (after a Redis outage the schedulers need a tick to take the lock).
 */
export class LeaderWatch {
  private readonly now: () => number;
  private readonly loop: PeriodicLoop;
  private absentSince: number | undefined;
  private raised = false;
  /** A leader was seen since start: at the first, a condition left by a gateway that died is resolved. */
  private seenLeader = false;
  private readFailing = false;

  constructor(private readonly options: LeaderWatchOptions) {
    this.now = options.now ?? Date.now;
    this.loop = new PeriodicLoop({
      name: 'leader watch',
      intervalMs: options.intervalMs ?? Math.min(2_000, Math.max(100, options.missingAfterMs / 5)),
      logger: options.logger,
      run: () => this.check(),
    });
  }

  start(): void {
    this.loop.start();
  }

  /** Stops reading the lock; resolves when a reading in progress ended. */
  stop(): Promise<boolean> {
    return this.loop.stop();
  }

  /** One reading of the lock. Never throws. */
  async check(): Promise<void> {
    let leader: string | null;
    try {
      leader = await this.options.readLeader();
    } catch (err) {
      if (!this.readFailing)
        this.options.logger.warn('Leader lock unreadable; scheduler leadership unknown', { err });
      this.readFailing = true;
      this.absentSince = undefined;
      return;
    }
    this.readFailing = false;
    if (leader === null) this.absent();
    else this.present(leader);
  }

  private absent(): void {
    const now = this.now();
    const since = (this.absentSince ??= now);
    const missingForMs = now - since;
    if (this.raised || missingForMs < this.options.missingAfterMs) return;
    this.raised = true;
    this.options.logger.error('No scheduler leader', { missingForMs });
    this.options.notifier.raise(
      'scheduler_leader_missing',
      {},
      { missing_since: new Date(since).toISOString(), missing_for_ms: missingForMs },
    );
  }

  private present(leader: string): void {
    this.absentSince = undefined;
    if (this.seenLeader && !this.raised) return;
    if (this.raised) this.options.logger.info('Scheduler leader back', { leader });
    this.raised = false;
    this.seenLeader = true;
    this.options.notifier.resolve('scheduler_leader_missing', {}, { leader });
  }
}
