import { PeriodicLoop, type Logger } from '@ginkgo-live/runtime';
import { backoffDelayMs } from '@ginkgo-live/redis-client';
import type { RedisHealth } from '@ginkgo-live/state-keys';

export interface HeartbeatLoopOptions {
  /** Time between the starts of two beats, in ms (a beat longer than that is followed at once). */
  intervalMs: number;
  /** Attempts within one beat before it counts as failed (FR-036). */
  maxAttempts: number;
  /** Delay before the second attempt, doubling after each failure, with jitter; in ms. */
  baseDelayMs: number;
  /**
   * Time the retries of one beat may take, in ms: the heartbeat TTL minus the interval, so a beat
   * that succeeds on its last retry still lands before the previous one expires.
   */
  budgetMs: number;
  /** One attempt: writes heartbeat, info and states in one round trip; throws when it fails. */
  beat: () => Promise<void>;
  /** Called after the first successful beat that follows failed ones. */
  onRecovered?: () => void;
  logger: Logger;
  /** Randomness of the jitter, injectable for tests. */
  random?: () => number;
}

/**
 * The heartbeat loop (FR-036), on the runtime's `PeriodicLoop`. Each beat tries up to
 * `maxAttempts` times with exponential backoff and jitter, within `budgetMs`. Nothing escapes a
 * beat: the loop never throws and never ends the process. It keeps consecutive and total failed
 * attempts and the last success; the loop logs the transition to failing ("Heartbeat failed") and
 * the recovery, not every attempt; beats never overlap.
 */
export class HeartbeatLoop {
  private readonly loop: PeriodicLoop;
  private stopping = false;
  private consecutiveFailures = 0;
  private totalFailures = 0;
  private lastSuccessAt: Date | undefined;
  private healthy = true;
  /** Delays slept between attempts of the last beat (for tests and diagnostics). */
  lastRetryDelaysMs: number[] = [];
  private wake: (() => void) | undefined;
  private firstBeat: (() => void) | undefined;

  constructor(private readonly options: HeartbeatLoopOptions) {
    this.loop = new PeriodicLoop({
      name: 'heartbeat',
      // The interval counts from the start of a beat: a beat with retries shortens the pause.
      intervalMs: () => Math.max(0, options.intervalMs - this.loop.stats.lastRunMs),
      logger: options.logger,
      run: () => this.runBeat(),
    });
  }

  /** Starts beating: the first beat is sent at once. Resolves after that first beat (ok or not). */
  async start(): Promise<void> {
    if (this.loop.running) return;
    this.stopping = false;
    const first = new Promise<void>((resolve) => {
      this.firstBeat = resolve;
    });
    this.loop.start();
    await first;
  }

  /** Stops the loop (a retry delay in progress is cut short) and waits for the beat in progress. Idempotent. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop.stop();
    // A stop before the first beat ran: start() resolves too.
    this.firstBeat?.();
    this.firstBeat = undefined;
  }

  /** Redis health as the heartbeat sees it, for node info and metrics. */
  health(): RedisHealth {
    return {
      healthy: this.healthy,
      consecutive_failures: this.consecutiveFailures,
      total_failures: this.totalFailures,
      last_success_at: this.lastSuccessAt?.toISOString() ?? null,
    };
  }

  /** One beat with its retries; throws the last error when every attempt failed. */
  private async runBeat(): Promise<void> {
    try {
      await this.attempts();
    } finally {
      this.firstBeat?.();
      this.firstBeat = undefined;
    }
  }

  private async attempts(): Promise<void> {
    const { maxAttempts, baseDelayMs, budgetMs, logger } = this.options;
    const beatStarted = Date.now();
    this.lastRetryDelaysMs = [];
    let lastError: Error | undefined;
    for (let attempt = 1; attempt <= maxAttempts && !this.stopping; attempt++) {
      try {
        await this.options.beat();
        this.succeeded();
        return;
      } catch (err) {
        lastError = err instanceof Error ? err : new Error(String(err));
        this.consecutiveFailures += 1;
        this.totalFailures += 1;
        const remaining = budgetMs - (Date.now() - beatStarted);
        const delay = Math.min(
          backoffDelayMs(attempt, { baseDelayMs, maxDelayMs: budgetMs }, this.options.random),
          remaining,
        );
        const isLast = attempt === maxAttempts || delay <= 0;
        logger.debug('Heartbeat attempt failed', {
          attempt,
          err,
          ...(isLast ? {} : { nextDelayMs: delay }),
        });
        if (isLast) break;
        this.lastRetryDelaysMs.push(delay);
        await this.sleep(delay);
      }
    }
    if (lastError === undefined) return; // stopped before an attempt
    this.healthy = false;
    throw lastError;
  }

  private succeeded(): void {
    this.lastSuccessAt = new Date();
    this.healthy = true;
    const wasFailing = this.consecutiveFailures > 0 && this.loop.stats.consecutiveFailures > 0;
    this.consecutiveFailures = 0;
    if (wasFailing) this.options.onRecovered?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }
}
