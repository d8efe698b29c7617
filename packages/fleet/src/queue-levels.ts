/**
 * THE queue thresholds, as fractions of a portfolio queue's capacity: the node's queue
 * notifications (warning, critical, full), the gateway's queue levels and the operations page's
 * colours all use these. (The resolved notice's hysteresis, below 60 %, belongs to the
 * notification condition shared by producers and nodes: `QUEUE_CONDITION` of notification-adapter.)
 */
export interface QueueThresholds {
  /** A `queue_usage_high` warning from here: 0.7. */
  warning: number;
  /** A `queue_usage_high` critical from here: 0.95. */
  critical: number;
  /** Full: the producer's bounded add refuses new events: 1. */
  full: number;
}

export const QUEUE_THRESHOLDS: Readonly<QueueThresholds> = Object.freeze({
  warning: 0.7,
  critical: 0.95,
  full: 1,
});

/** How full a queue is; `unknown` when its usage is not known (no state, a lost node). */
export const QUEUE_LEVELS = ['ok', 'warning', 'critical', 'full', 'unknown'] as const;
export type QueueLevel = (typeof QUEUE_LEVELS)[number];

/** The level a usage (depth / capacity) reaches. */
export function queueLevel(
  usage: number | null | undefined,
  thresholds: Readonly<QueueThresholds> = QUEUE_THRESHOLDS,
): QueueLevel {
  if (usage === null || usage === undefined || !Number.isFinite(usage)) return 'unknown';
  if (usage >= thresholds.full) return 'full';
  if (usage >= thresholds.critical) return 'critical';
  if (usage >= thresholds.warning) return 'warning';
  return 'ok';
}

/** Order of trouble, fullest first, for sorting. */
export const QUEUE_LEVEL_RANK: Readonly<Record<QueueLevel, number>> = Object.freeze({
  full: 0,
  critical: 1,
  warning: 2,
  ok: 3,
  unknown: 4,
});
