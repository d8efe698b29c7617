import type { Logger } from '@ginkgo-live/runtime';
import { describeStep, isBug, remainderOf, SendFailed, type Step } from './notification-step.ts';
import type { HeldSummary } from './redis-outage.ts';

export interface OutageBufferOptions {
  /** `NOTIFY_BUFFER_SIZE`: steps held at most; the oldest is dropped first (and counted). */
  capacity: number;
  /** Does a step against Redis (dedupe, then the queue). */
  perform: (step: Step) => Promise<void>;
  /** Whether the connection is up: a failure on a live connection brings no reconnect, so a replay is tried shortly. */
  isConnected: () => boolean;
  /** A step failed for want of Redis: the outage begins (or goes on). */
  onUnreachable: () => void;
  /** Runs before each replay pass (the "Redis available again" notice goes first). */
  beforeReplay?: () => Promise<void>;
  /** A pass did every held step: Redis answered (an outage seen only through failed commands ends). */
  afterReplay?: (replayed: boolean) => void;
  /** Runs background work its owner waits for at close. */
  track: (work: Promise<void>) => void;
  /** How soon a replay is tried again on a live connection; default 250 ms. */
  retryMs?: number;
  logger: Logger;
}

/**
 * What is held while Redis is away: the raises and resolves that could not be done, in order and
 * bounded, done again oldest first once Redis answers — through the same shared dedupe as at first,
 * so what several processes held is told once. A new step waits behind those held: a resolve done
 * before the raise it answers would leave that raise firing.
 */
export class OutageBuffer {
  private readonly held: Step[] = [];
  private dropped = 0;
  private isReplaying = false;
  /** Asks for a replay, counted: one asked while a replay runs makes it run another pass. */
  private replayRequests = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: OutageBufferOptions) {}

  /** Steps held now. */
  get size(): number {
    return this.held.length;
  }

  /** What is held, for the "Redis unavailable" notice. */
  summary(): HeldSummary {
    return { lines: this.held.map(describeStep), dropped: this.dropped };
  }

  /**
   * Does one step now, or holds it behind those held; when Redis fails, holds what is left of it.
   * A bug (an invalid id, a payload that breaks its schema) is not held: it is thrown.
   */
  async attempt(step: Step): Promise<void> {
    if (this.held.length > 0) {
      this.hold(step, undefined);
      return;
    }
    try {
      await this.options.perform(step);
    } catch (err) {
      if (isBug(err)) throw err;
      this.hold(remainderOf(step, err), err);
    }
  }

  /**
   * Does the held steps, oldest first, each removed only once done; a failure keeps the rest and
   * tries again shortly (or at the next reconnect). Calls while a replay runs add one more pass.
   */
  async replay(): Promise<void> {
    this.replayRequests += 1;
    if (this.isReplaying) return;
    this.isReplaying = true;
    try {
      let served: number;
      do {
        served = this.replayRequests;
        await this.pass();
      } while (this.replayRequests !== served);
    } catch (err) {
      this.options.logger.warn('Could not send the held notifications yet; retrying', {
        held: this.held.length,
        err,
      });
      if (this.options.isConnected()) this.scheduleReplay();
    } finally {
      this.isReplaying = false;
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private hold(step: Step, err: unknown): void {
    if (this.held.length >= this.options.capacity) {
      this.held.shift();
      this.dropped += 1;
    }
    this.held.push(step);
    this.options.logger.warn('Notification held: Redis unavailable', {
      step: describeStep(step),
      buffered: this.held.length,
      err: err instanceof SendFailed ? err.cause : err,
    });
    if (err !== undefined) this.options.onUnreachable();
    if (this.options.isConnected()) this.scheduleReplay();
  }

  private scheduleReplay(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.options.track(this.replay());
    }, this.options.retryMs ?? 250);
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    await this.options.beforeReplay?.();
    const replayed = this.held.length > 0;
    while (this.held.length > 0) await this.replayOldest();
    this.dropped = 0;
    this.options.afterReplay?.(replayed);
  }

  /** Does the oldest held step; on failure it stays first, reduced to what is left of it. */
  private async replayOldest(): Promise<void> {
    const step = this.held[0];
    if (step === undefined) return;
    try {
      await this.options.perform(step);
    } catch (err) {
      const at = this.held.indexOf(step);
      if (!isBug(err)) {
        if (at >= 0) this.held[at] = remainderOf(step, err);
        throw err;
      }
      this.options.logger.error('Notification lost to a bug', { step: describeStep(step), err });
    }
    const at = this.held.indexOf(step);
    if (at >= 0) this.held.splice(at, 1);
  }
}
