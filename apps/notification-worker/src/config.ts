import { z } from 'zod';
import {
  combineConfig,
  envInt,
  envString,
  loadLoggingConfig,
  parseEnv,
  type ConfigResult,
  type Env,
  type LoggingConfig,
} from '@ginkgo-live/runtime';
import { loadRedisConfig, type RedisConfig } from '@ginkgo-live/redis-client';
import { loadNotificationConfig, type NotificationConfig } from '@ginkgo-live/notification-adapter';

/** Everything the notification worker reads from its environment. */
export interface WorkerConfig {
  /** `METRICS_PORT` (`/health` and `/metrics`, default 9466; 0 picks a free port), `METRICS_HOST` (default 0.0.0.0). */
  metrics: { port: number; host: string };
  redis: RedisConfig;
  logging: LoggingConfig;
  /** `NOTIFY_*`: the sinks (webhooks, the log), delivery attempts and backoff, history size. */
  notify: NotificationConfig;
}

const metricsEnvSchema = z
  .object({
    METRICS_PORT: envInt({ default: 9_466, min: 0, max: 65_535 }),
    METRICS_HOST: envString(),
  })
  .transform((env) => ({ port: env.METRICS_PORT, host: env.METRICS_HOST ?? '0.0.0.0' }));

/** Reads the worker's configuration. Pure. */
export function loadConfig(env: Env): ConfigResult<WorkerConfig> {
  return combineConfig({
    metrics: parseEnv(metricsEnvSchema, env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
    notify: loadNotificationConfig(env),
  });
}
