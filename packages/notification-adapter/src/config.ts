import { z } from 'zod';
import {
  envBool,
  envDurationMs,
  envInt,
  envString,
  parseEnv,
  type ConfigResult,
  type Env,
} from '@ginkgo-live/runtime';

/** Notification settings shared by every app (cooldowns, buffer) and the delivery worker (sinks). */
export interface NotificationConfig {
  /** `NOTIFY_WEBHOOK_URL`: generic JSON webhook. Never logged. */
  webhookUrl: string | undefined;
  /** `NOTIFY_DISCORD_WEBHOOK_URL`. Never logged. */
  discordWebhookUrl: string | undefined;
  /** `NOTIFY_SLACK_WEBHOOK_URL` (incoming webhook). Never logged. */
  slackWebhookUrl: string | undefined;
  /** `NOTIFY_LOG`: also deliver to the log, default true. */
  logSink: boolean;
  /** `NOTIFY_WARNING_COOLDOWN_MS`, default 300000 (5 min). */
  warningCooldownMs: number;
  /** `NOTIFY_CRITICAL_COOLDOWN_MS` (also error), default 60000 (1 min). */
  criticalCooldownMs: number;
  /** `NOTIFY_INFO_COOLDOWN_MS`, default 300000. */
  infoCooldownMs: number;
  /** `NOTIFY_DELIVERY_TIMEOUT_MS`: one HTTP delivery, default 3000. */
  deliveryTimeoutMs: number;
  /** `NOTIFY_DELIVERY_ATTEMPTS`: default 6 (the first try and 5 retries). */
  deliveryAttempts: number;
  /** `NOTIFY_DELIVERY_BACKOFF_MS`: first retry delay, doubling, default 1000. */
  deliveryBackoffMs: number;
  /** `NOTIFY_HISTORY_SIZE`: notifications kept for the gateway, default 1000. */
  historySize: number;
  /** `NOTIFY_BUFFER_SIZE`: notifications held in memory while Redis is away, default 100. */
  bufferSize: number;
  /** `NOTIFY_REDIS_DOWN_AFTER_MS`: Redis away this long is reported straight to the webhooks, default 10000. */
  redisDownAfterMs: number;
  /**
   * `NOTIFY_OUTAGE_REPORTER_TTL_MS`: lease of the one process that reports a Redis outage to the
   * webhooks (renewed every third of it), default 10000. A reporter that died is replaced this late.
   */
  outageReporterTtlMs: number;
}

const url = (name: string) =>
  envString().refine((v) => v === undefined || /^https?:\/\/[^\s]+$/.test(v), {
    error: `must be an http(s) URL (value not shown: it is a secret) — ${name}`,
  });

const schema = z
  .object({
    NOTIFY_WEBHOOK_URL: url('generic webhook'),
    NOTIFY_DISCORD_WEBHOOK_URL: url('Discord webhook'),
    NOTIFY_SLACK_WEBHOOK_URL: url('Slack webhook'),
    NOTIFY_LOG: envBool(true),
    NOTIFY_WARNING_COOLDOWN_MS: envDurationMs(300_000),
    NOTIFY_CRITICAL_COOLDOWN_MS: envDurationMs(60_000),
    NOTIFY_INFO_COOLDOWN_MS: envDurationMs(300_000),
    NOTIFY_DELIVERY_TIMEOUT_MS: envDurationMs(3_000, 1),
    NOTIFY_DELIVERY_ATTEMPTS: envInt({ default: 6, min: 1, max: 100 }),
    NOTIFY_DELIVERY_BACKOFF_MS: envDurationMs(1_000, 1),
    NOTIFY_HISTORY_SIZE: envInt({ default: 1_000, min: 1, max: 100_000 }),
    NOTIFY_BUFFER_SIZE: envInt({ default: 100, min: 1, max: 100_000 }),
    NOTIFY_REDIS_DOWN_AFTER_MS: envDurationMs(10_000),
    NOTIFY_OUTAGE_REPORTER_TTL_MS: envDurationMs(10_000, 300),
  })
  .transform((env): NotificationConfig => ({
    webhookUrl: env.NOTIFY_WEBHOOK_URL,
    discordWebhookUrl: env.NOTIFY_DISCORD_WEBHOOK_URL,
    slackWebhookUrl: env.NOTIFY_SLACK_WEBHOOK_URL,
    logSink: env.NOTIFY_LOG,
    warningCooldownMs: env.NOTIFY_WARNING_COOLDOWN_MS,
    criticalCooldownMs: env.NOTIFY_CRITICAL_COOLDOWN_MS,
    infoCooldownMs: env.NOTIFY_INFO_COOLDOWN_MS,
    deliveryTimeoutMs: env.NOTIFY_DELIVERY_TIMEOUT_MS,
    deliveryAttempts: env.NOTIFY_DELIVERY_ATTEMPTS,
    deliveryBackoffMs: env.NOTIFY_DELIVERY_BACKOFF_MS,
    historySize: env.NOTIFY_HISTORY_SIZE,
    bufferSize: env.NOTIFY_BUFFER_SIZE,
    redisDownAfterMs: env.NOTIFY_REDIS_DOWN_AFTER_MS,
    outageReporterTtlMs: env.NOTIFY_OUTAGE_REPORTER_TTL_MS,
  }));

/** Reads the notification settings. Pure. */
export function loadNotificationConfig(env: Env): ConfigResult<NotificationConfig> {
  return parseEnv(schema, env);
}
