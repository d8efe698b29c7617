import type { Redis } from 'ioredis';
import type { Logger } from '@ginkgo-live/runtime';
import {
  createAppNotifier,
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
  /** `NOTIFY_*` settings, checked at start with the rest of the configuration. */
  notify: NotificationConfig;
}

/** Builds the producer's queue-full alarm on the feed's own connection. */
export function createFeedAlarm(options: FeedAlarmOptions): FeedAlarm {
  const notify = options.notify;
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
