import { z } from 'zod';
import {
  combineConfig,
  envBool,
  envDurationMs,
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

export interface SecurityConfig {
  /** `GATEWAY_API_KEYS`: comma-separated keys (`X-API-Key` or `Authorization: Bearer`); none = open. Never logged. */
  apiKeys: string[];
  /** `GATEWAY_PUBLIC_READS`: with keys configured, let reads through without one (default false). */
  publicReads: boolean;
  /** `GATEWAY_CORS_ORIGINS`: comma-separated origins allowed to call from a browser (default none). */
  corsOrigins: string[];
  /** `GATEWAY_RATE_LIMIT_PER_MINUTE`: requests per client (key, else IP) per minute, default 300. */
  rateLimitPerMinute: number;
}

export interface GatewayConfig {
  /** `GATEWAY_PORT`, default 8000 (0 picks a free port, logged). */
  port: number;
  /** `GATEWAY_HOST`, default 0.0.0.0. */
  host: string;
  /** `GATEWAY_OVERVIEW_INTERVAL_MS`, default 1000: how often the operations page is updated. */
  overviewIntervalMs: number;
  /**
   * `GATEWAY_LEADER_MISSING_AFTER_MS`, default 30000: no scheduler has held the leader lock this
   * long (every scheduler dead or frozen) → `scheduler_leader_missing`, raised by the gateway.
   * Above the lock's TTL, so a normal failover between schedulers is no alarm.
   */
  leaderMissingAfterMs: number;
  security: SecurityConfig;
  redis: RedisConfig;
  logging: LoggingConfig;
  /** `NOTIFY_*`: the gateway raises and resolves `scheduler_leader_missing`. */
  notify: NotificationConfig;
}

const list = (raw: string | undefined): string[] =>
  (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

const schema = z.object({
  GATEWAY_PORT: envInt({ default: 8_000, min: 0, max: 65_535 }),
  GATEWAY_HOST: envString(),
  GATEWAY_API_KEYS: envString().refine((v) => list(v).every((k) => k.length >= 16), {
    error: 'every key must be at least 16 characters (value not shown: it is a secret)',
  }),
  GATEWAY_PUBLIC_READS: envBool(false),
  GATEWAY_CORS_ORIGINS: envString().refine(
    (v) => list(v).every((o) => /^https?:\/\/[^/\s]+$/.test(o)),
    {
      error: 'must be comma-separated origins like https://ops.example.com',
    },
  ),
  GATEWAY_RATE_LIMIT_PER_MINUTE: envInt({ default: 300, min: 1, max: 1_000_000 }),
  GATEWAY_OVERVIEW_INTERVAL_MS: envDurationMs(1_000, 200),
  GATEWAY_LEADER_MISSING_AFTER_MS: envDurationMs(30_000, 500),
});

/** Reads the gateway's configuration. Pure. */
export function loadConfig(env: Env): ConfigResult<GatewayConfig> {
  const parts = combineConfig({
    gateway: parseEnv(schema, env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
    notify: loadNotificationConfig(env),
  });
  if (!parts.ok) return parts;
  const { gateway, redis, logging, notify } = parts.value;
  return {
    ok: true,
    value: {
      port: gateway.GATEWAY_PORT,
      host: gateway.GATEWAY_HOST ?? '0.0.0.0',
      overviewIntervalMs: gateway.GATEWAY_OVERVIEW_INTERVAL_MS,
      leaderMissingAfterMs: gateway.GATEWAY_LEADER_MISSING_AFTER_MS,
      security: {
        apiKeys: list(gateway.GATEWAY_API_KEYS),
        publicReads: gateway.GATEWAY_PUBLIC_READS,
        corsOrigins: list(gateway.GATEWAY_CORS_ORIGINS),
        rateLimitPerMinute: gateway.GATEWAY_RATE_LIMIT_PER_MINUTE,
      },
      redis,
      logging,
      notify,
    },
  };
}
