import type { Logger } from '@ginkgo-live/runtime';
import { CONDITIONS, kindsOf } from './catalogue.ts';
import type { Notifier } from './notifier.ts';

/**
 * The condition of a portfolio queue, as every watcher of it raises and resolves it: the execution
 * node sampling the queues it consumes, and the producer a full queue refuses. One condition of the
 * catalogue (`queue`: group, kinds), the portfolio as the only subject (never the node or the
 * producer), so all of them share one cooldown and one active condition in Redis: one notice per
 * portfolio, one resolved.
 */
export const QUEUE_CONDITION = {
  group: CONDITIONS.queue.group,
  kinds: kindsOf('queue'),
  /** Usage below which the condition clears (hysteresis: a queue at a threshold does not flap). */
  resolveBelow: 0.6,
} as const;

export interface QueueFullAlarmOptions {
  notifier: Pick<Notifier, 'raise' | 'resolve'>;
  /** Who offers the events (app and instance), named in the notice. */
  producer: string;
  logger: Logger;
  /** Usage below which an accepted add resolves the condition; default 0.6, as the node's. */
  resolveBelow?: number;
}

/** What the alarm knows of one portfolio's queue. */
type Seen = 'full' | 'clear';

/**
 * The producer's side of the queue condition. A full queue is seen first by its producer: every add
 * is refused, even while every consumer is frozen or dead and samples nothing. The first refusal
 * raises `queue_full` through the shared dedupe (deduplicated with the nodes' own); an accepted add
 * below `resolveBelow` resolves it — the node's threshold, so producer and node agree when the fault
 * ended and a queue hovering at capacity is not told again at every refusal.
 */
export class QueueFullAlarm {
  private readonly seen = new Map<string, Seen>();
  private readonly refusedSinceRaise = new Map<string, number>();
  private readonly resolveBelow: number;

  constructor(private readonly options: QueueFullAlarmOptions) {
    this.resolveBelow = options.resolveBelow ?? QUEUE_CONDITION.resolveBelow;
  }

  /** A full queue refused an event. Raises once per fault; never throws, never waits. */
  refused(portfolioId: string, queue: { depth: number; capacity: number }): void {
    this.refusedSinceRaise.set(portfolioId, (this.refusedSinceRaise.get(portfolioId) ?? 0) + 1);
    if (this.seen.get(portfolioId) === 'full') return;
    this.seen.set(portfolioId, 'full');
    this.refusedSinceRaise.set(portfolioId, 1);
    this.options.logger.info('Queue full: events refused', { portfolioId, ...queue });
    this.options.notifier.raise(
      'queue_full',
      { portfolioId },
      { depth: queue.depth, capacity: queue.capacity, seen_by: this.options.producer },
    );
  }

  /**
   * The queue accepted an event and holds `depth` now. Below `resolveBelow` the condition clears:
   * after a refusal, or the first time this producer sees the queue (a condition left by a process
   * that died while it fired is resolved too).
   */
  accepted(portfolioId: string, queue: { depth: number; capacity: number }): void {
    const seen = this.seen.get(portfolioId);
    if (seen === 'clear' || queue.depth >= queue.capacity * this.resolveBelow) return;
    this.seen.set(portfolioId, 'clear');
    if (seen === 'full')
      this.options.logger.info('Queue accepts events again', { portfolioId, ...queue });
    this.options.notifier.resolve(
      'queue',
      { portfolioId },
      {
        depth: queue.depth,
        capacity: queue.capacity,
        seen_by: this.options.producer,
        refused_since_raise: this.refusedSinceRaise.get(portfolioId) ?? 0,
      },
    );
    this.refusedSinceRaise.delete(portfolioId);
  }

  /** Forgets a portfolio no longer fed (removed from the catalog). */
  forget(portfolioId: string): void {
    this.seen.delete(portfolioId);
    this.refusedSinceRaise.delete(portfolioId);
  }
}
