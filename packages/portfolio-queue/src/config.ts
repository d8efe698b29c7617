import { z } from 'zod';
import { envInt, parseEnv, type ConfigResult, type Env } from '@ginkgo-live/runtime';
import { DEFAULT_QUEUE_CAPACITY } from './portfolio-queues.ts';

/** The portfolio queues' settings, the same for every producer and every node. */
export interface QueueConfig {
  /** `PORTFOLIO_QUEUE_CAPACITY`: events a portfolio queue holds at most, default 1000. */
  capacity: number;
}

/** Above this a queue is no buffer but a backlog (and its depth read stays cheap). */
export const MAX_QUEUE_CAPACITY = 1_000_000;

const schema = z.object({
  PORTFOLIO_QUEUE_CAPACITY: envInt({
    default: DEFAULT_QUEUE_CAPACITY,
    min: 1,
    max: MAX_QUEUE_CAPACITY,
  }),
});

/**
 * THE queue capacity setting. The producer's bounded add enforces it and the node measures usage
 * against it (its state, its queue notifications, the gateway's levels), so both read it here, from
 * the one variable, with one default and one validation: a deployment sets it once in the
 * environment the feed and the nodes share, and a bad value is the same one error in each.
 */
export function loadQueueConfig(env: Env): ConfigResult<QueueConfig> {
  const parsed = parseEnv(schema, env);
  return parsed.ok
    ? { ok: true, value: { capacity: parsed.value.PORTFOLIO_QUEUE_CAPACITY } }
    : parsed;
}
