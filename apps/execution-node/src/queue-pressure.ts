import {
  QUEUE_LEVEL_RANK,
  QUEUE_THRESHOLDS,
  queueLevel,
  type QueueLevel,
  type QueueThresholds,
} from '@ginkgo-live/fleet';
import { QUEUE_CONDITION, type Notifier } from '@ginkgo-live/notification-adapter';

/**
 * How full a queue is, remembered until it clears: the fleet's queue levels (ok < warning <
 * critical < full), the same words and thresholds the gateway and the operations page show.
 */
export type Pressure = Exclude<QueueLevel, 'unknown'>;

/**
 * The fleet's queue thresholds (`QUEUE_THRESHOLDS` of `@ginkgo-live/fleet`: 70 %, 95 %, 100 %), and
 * below `resolveBelow` everything clears: 0.6, the notification condition's hysteresis, so a queue
 * at a threshold does not flap.
 */
export interface PressureThresholds extends QueueThresholds {
  resolveBelow: number;
}

export const DEFAULT_THRESHOLDS: Readonly<PressureThresholds> = Object.freeze({
  ...QUEUE_THRESHOLDS,
  resolveBelow: QUEUE_CONDITION.resolveBelow,
});

/**
 * The next pressure of a queue: it rises at once to the level its usage reaches and stays at the
 * highest level reached until usage falls below `resolveBelow`.
 */
export function nextPressure(
  previous: Pressure,
  usage: number,
  t: Readonly<PressureThresholds> = DEFAULT_THRESHOLDS,
): Pressure {
  if (usage < t.resolveBelow) return 'ok';
  const level = queueLevel(usage, t);
  // A usage that is no number (a capacity of 0 read by mistake) changes nothing.
  if (level === 'unknown') return previous;
  return QUEUE_LEVEL_RANK[level] < QUEUE_LEVEL_RANK[previous] ? level : previous;
}

/** One reading of a portfolio queue. */
export interface QueueReading {
  portfolioId: string;
  depth: number;
  capacity: number;
  /** Refusals counted so far (all producers). */
  refused: number;
}

/**
 * Turns queue readings into notifications at the fleet's thresholds: a warning at 70 %, a critical
 * at 95 %, a `queue_full` critical at capacity, one resolved notice below 60 %. Dedupe is per portfolio queue (not per
 * node), shared through Redis as `QUEUE_CONDITION`, so several nodes watching one queue, and the
 * producers it refuses (`QueueFullAlarm`), send one notice. `raise` is fire-and-forget: nothing
 * here waits on delivery.
 */
export class QueuePressureWatcher {
  private readonly pressure = new Map<string, Pressure>();
  private readonly refusedAtNotice = new Map<string, number>();
  private readonly overCapacity = new Set<string>();

  /**
   * `onCapacityMismatch` is told (once per portfolio) of a queue deeper than this node's capacity:
   * the bounded add holds its capacity exactly, so a producer enforces a larger
   * `PORTFOLIO_QUEUE_CAPACITY` than this node reads, and every usage this node reports is wrong.
   */
  constructor(
    private readonly notifier: Pick<Notifier, 'raise' | 'resolve'>,
    private readonly nodeId: string,
    private readonly thresholds: Readonly<PressureThresholds> = DEFAULT_THRESHOLDS,
    private readonly onCapacityMismatch?: (reading: QueueReading) => void,
  ) {}

  observe(reading: QueueReading): void {
    const { portfolioId, depth, capacity, refused } = reading;
    if (depth > capacity && !this.overCapacity.has(portfolioId)) {
      this.overCapacity.add(portfolioId);
      this.onCapacityMismatch?.(reading);
    }
    const usage = depth / capacity;
    const previous = this.pressure.get(portfolioId) ?? 'ok';
    const next = nextPressure(previous, usage, this.thresholds);
    this.pressure.set(portfolioId, next);
    if (next === previous) return;
    const sample = {
      node_id: this.nodeId,
      depth,
      capacity,
      usage: Math.round(usage * 1_000) / 1_000,
      refused_since_last_notice: refused - (this.refusedAtNotice.get(portfolioId) ?? refused),
    };
    this.refusedAtNotice.set(portfolioId, refused);
    if (next === 'ok') {
      this.notifier.resolve(
        'queue',
        { portfolioId },
        { ...sample, resolve_below: this.thresholds.resolveBelow },
      );
    } else if (next === 'full') {
      this.notifier.raise('queue_full', { portfolioId }, sample);
    } else {
      this.notifier.raise('queue_usage_high', { portfolioId }, sample, next);
    }
  }

  /** Forgets a portfolio that left this node (its condition stays in Redis for the next watcher). */
  forget(portfolioId: string): void {
    this.pressure.delete(portfolioId);
    this.refusedAtNotice.delete(portfolioId);
    this.overCapacity.delete(portfolioId);
  }
}
