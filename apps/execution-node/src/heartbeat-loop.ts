import type { Logger } from '@ginkgo-live/runtime';
import { backoffDelayMs } from '@ginkgo-live/redis-client';
import type { RedisHealth } from '@ginkgo-live/state-keys';

export interface HeartbeatLoopOptions {
  /** Time between the starts of two beats, in ms. */
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
 * The heartbeat loop (FR-036). Each beat tries up to `maxAttempts` times with exponential backoff
 * and jitter, within `budgetMs`. Nothing escapes a beat: the loop never throws and never ends the
 * process. It keeps consecutive and total failures and the last success, logs the transition to
 * failing and the recovery — not every attempt — and beats never overlap.
 */
export class HeartbeatLoop {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private current: Promise<void> | undefined;
  private consecutiveFailures = 0;
  private totalFailures = 0;
  private lastSuccessAt: Date | undefined;
  private healthy = true;
  private wasFailing = false;
  /** Delays slept between attempts of the last beat (for tests and diagnostics). */
  lastRetryDelaysMs: number[] = [];
  private wake: (() => void) | undefined;

  constructor(private readonly options: HeartbeatLoopOptions) {}

  /** Starts beating: the first beat is sent at once. Resolves after that first beat (ok or not). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.tick();
  }

  /** Stops the loop and waits for a beat in progress. Idempotent. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.wake?.();
    await this.current;
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

  private async tick(): Promise<void> {
    const started = Date.now();
    this.current = this.runBeat();
    await this.current;
    this.current = undefined;
    if (!this.running) return;
    const wait = Math.max(0, this.options.intervalMs - (Date.now() - started));
    this.timer = setTimeout(() => void this.tick(), wait);
  }

  /** One beat with its retries. Never throws. */
  private async runBeat(): Promise<void> {
    const { maxAttempts, baseDelayMs, budgetMs, logger } = this.options;
    const beatStarted = Date.now();
    this.lastRetryDelaysMs = [];
    for (let attempt = 1; attempt <= maxAttempts && this.running; attempt++) {
      try {
        await this.options.beat();
        this.succeeded();
        return;
      } catch (err) {
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
    if (!this.wasFailing) {
      logger.warn('Heartbeat failing; retrying every beat', {
        consecutiveFailures: this.consecutiveFailures,
      });
    }
    this.healthy = false;
    this.wasFailing = true;
  }

  private succeeded(): void {
    this.lastSuccessAt = new Date();
    this.healthy = true;
    if (this.wasFailing) {
      this.options.logger.info('Heartbeat recovered', { failedAttempts: this.consecutiveFailures });
      this.wasFailing = false;
      this.consecutiveFailures = 0;
      this.options.onRecovered?.();
    }
    this.consecutiveFailures = 0;
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
