import { QUEUE_CONDITION, type Notifier } from '@ginkgo-live/notification-adapter';

/** How full a queue is, remembered until it clears: normal < warning < critical < full. */
export type Pressure = 'normal' | 'warning' | 'critical' | 'full';

const RANK: Record<Pressure, number> = { normal: 0, warning: 1, critical: 2, full: 3 };

/** Usage thresholds (fractions of capacity); defaults in docs/architecture.md. */
export interface PressureThresholds {
  /** 0.7 */
  warning: number;
  /** 0.95 */
  critical: number;
  /** Below this everything clears: 0.6 (hysteresis, so a queue at a threshold does not flap). */
  resolveBelow: number;
}

export const DEFAULT_THRESHOLDS: PressureThresholds = {
  warning: 0.7,
  critical: 0.95,
  resolveBelow: QUEUE_CONDITION.resolveBelow,
};

/**
 * The next pressure of a queue: it rises at once to the level its usage reaches and stays at the
 * highest level reached until usage falls below `resolveBelow`.
 */
export function nextPressure(
  previous: Pressure,
  usage: number,
  t: PressureThresholds = DEFAULT_THRESHOLDS,
): Pressure {
  if (usage < t.resolveBelow) return 'normal';
  const reached: Pressure =
    usage >= 1
      ? 'full'
      : usage >= t.critical
        ? 'critical'
        : usage >= t.warning
          ? 'warning'
          : 'normal';
  return RANK[reached] > RANK[previous] ? reached : previous;
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
 * Turns queue readings into notifications: a warning at 70 %, a critical at 95 %, a `queue_full`
 * critical at capacity, one resolved notice below 60 %. Dedupe is per portfolio queue (not per
 * node), shared through Redis as `QUEUE_CONDITION`, so several nodes watching one queue, and the
 * producers it refuses (`QueueFullAlarm`), send one notice. `raise` is fire-and-forget: nothing
 * here waits on delivery.
 */
export class QueuePressureWatcher {
  private readonly pressure = new Map<string, Pressure>();
  private readonly refusedAtNotice = new Map<string, number>();

  constructor(
    private readonly notifier: Pick<Notifier, 'raise' | 'resolve'>,
    private readonly nodeId: string,
    private readonly thresholds: PressureThresholds = DEFAULT_THRESHOLDS,
  ) {}

  observe(reading: QueueReading): void {
    const { portfolioId, depth, capacity, refused } = reading;
    const usage = depth / capacity;
    const previous = this.pressure.get(portfolioId) ?? 'normal';
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
    if (next === 'normal') {
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
  }
}
