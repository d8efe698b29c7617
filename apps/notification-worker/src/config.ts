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
  /** `METRICS_PORT`: `/health` and `/metrics`, default 9466 (0 picks a free port). */
  metricsPort: number;
  /** `METRICS_HOST`, default `0.0.0.0`. */
  metricsHost: string;
  redis: RedisConfig;
  logging: LoggingConfig;
  /** `NOTIFY_*`: the sinks (webhooks, the log), delivery attempts and backoff, history size. */
  notify: NotificationConfig;
}

const workerEnvSchema = z.object({
  METRICS_PORT: envInt({ default: 9_466, min: 0, max: 65_535 }),
  METRICS_HOST: envString(),
});

/** Reads the worker's configuration. Pure. */
export function loadConfig(env: Env): ConfigResult<WorkerConfig> {
  const parts = combineConfig({
    worker: parseEnv(workerEnvSchema, env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
    notify: loadNotificationConfig(env),
  });
  if (!parts.ok) return parts;
  const { worker, redis, logging, notify } = parts.value;
  return {
    ok: true,
    value: {
      metricsPort: worker.METRICS_PORT,
      metricsHost: worker.METRICS_HOST ?? '0.0.0.0',
      redis,
      logging,
      notify,
    },
  };
}
