import { z } from 'zod';
import {
  combineConfig,
  envDurationMs,
  envInt,
  loadLoggingConfig,
  parseEnv,
  type ConfigResult,
  type Env,
  type LoggingConfig,
} from '@ginkgo-live/runtime';
import { loadQueueConfig } from '@ginkgo-live/portfolio-queue';
import { loadRedisConfig, type RedisConfig } from '@ginkgo-live/redis-client';
import { loadNotificationConfig, type NotificationConfig } from '@ginkgo-live/notification-adapter';

export interface FeedConfig {
  /** `FEED_RATE`: ticks per second per symbol, default 5. */
  ratePerSecond: number;
  /** `FEED_VOLATILITY_BP`: standard deviation of one step of the random walk, in basis points, default 10. */
  volatilityBp: number;
  /** `FEED_CATALOG_REFRESH_MS`: how often the catalog is read again, default 5000. */
  catalogRefreshMs: number;
  /** `PORTFOLIO_QUEUE_CAPACITY`, default 1000: the one setting the nodes read too (`loadQueueConfig`). */
  queueCapacity: number;
  redis: RedisConfig;
  logging: LoggingConfig;
  /** `NOTIFY_*`: the feed raises `queue_full` when a full queue refuses its events. */
  notify: NotificationConfig;
}

const feedEnvSchema = z.object({
  FEED_RATE: envInt({ default: 5, min: 1, max: 10_000 }),
  FEED_VOLATILITY_BP: envInt({ default: 10, min: 0, max: 10_000 }),
  FEED_CATALOG_REFRESH_MS: envDurationMs(5_000, 100),
});

/** Reads the feed's configuration. Pure. */
export function loadConfig(env: Env): ConfigResult<FeedConfig> {
  const parts = combineConfig({
    feed: parseEnv(feedEnvSchema, env),
    queue: loadQueueConfig(env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
    notify: loadNotificationConfig(env),
  });
  if (!parts.ok) return parts;
  const { feed, queue, redis, logging, notify } = parts.value;
  return {
    ok: true,
    value: {
      ratePerSecond: feed.FEED_RATE,
      volatilityBp: feed.FEED_VOLATILITY_BP,
      catalogRefreshMs: feed.FEED_CATALOG_REFRESH_MS,
      queueCapacity: queue.capacity,
      redis,
      logging,
      notify,
    },
  };
}
