import type { Redis } from 'ioredis';
import { unwrapConfig, type Env, type Logger } from '@ginkgo-live/runtime';
import {
  createAppNotifier,
  loadNotificationConfig,
  QueueFullAlarm,
  type NotificationConfig,
  type Notifier,
} from '@ginkgo-live/notification-adapter';
import type { StateKeys } from '@ginkgo-live/state-keys';

/** The feed's queue-full alarm and the notifier it raises through (closed with the feed). */
export interface FeedAlarm {
  alarm: QueueFullAlarm;
  notifier: Notifier;
}

export interface FeedAlarmOptions {
  /** The feed's fail-fast connection. */
  redis: Redis;
  keys: StateKeys;
  logger: Logger;
  /** `NOTIFY_*` settings; default: read from `env`. */
  notify?: NotificationConfig;
  /** Where the settings are read when `notify` is not given; default `process.env`. */
  env?: Env;
}

/**
 * Builds the producer's queue-full alarm on the feed's own connection. The composition root is the
 * place for this; until it passes the alarm to `MarketFeed`, the feed builds it here from the same
 * environment `loadConfig` already checked at start (a bad NOTIFY_* variable exits 2, named).
 */
export function createFeedAlarm(options: FeedAlarmOptions): FeedAlarm {
  const notify = options.notify ?? unwrapConfig(loadNotificationConfig(options.env ?? process.env));
  const notifier = createAppNotifier({
    redis: options.redis,
    keys: options.keys,
    app: 'market-feed',
    instanceId: String(process.pid),
    config: notify,
    logger: options.logger,
  });
  const alarm = new QueueFullAlarm({
    notifier,
    producer: `market-feed:${process.pid}`,
    logger: options.logger.child({ component: 'queue-full-alarm' }),
  });
  return { alarm, notifier };
}
