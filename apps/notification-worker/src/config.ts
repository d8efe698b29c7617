import {
  combineConfig,
  loadLoggingConfig,
  type ConfigResult,
  type Env,
  type LoggingConfig,
} from '@ginkgo-live/runtime';
import { loadRedisConfig, type RedisConfig } from '@ginkgo-live/redis-client';
import { loadNotificationConfig, type NotificationConfig } from '@ginkgo-live/notification-adapter';

/** Everything the notification worker reads from its environment (METRICS_* are read by runApp). */
export interface WorkerConfig {
  redis: RedisConfig;
  logging: LoggingConfig;
  /** `NOTIFY_*`: the sinks (webhooks, the log), delivery attempts and backoff, history size. */
  notify: NotificationConfig;
}

/** Reads the worker's configuration. Pure. */
export function loadConfig(env: Env): ConfigResult<WorkerConfig> {
  return combineConfig({
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
    notify: loadNotificationConfig(env),
  });
}
