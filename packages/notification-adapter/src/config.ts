import { readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  envBool,
  envDurationMs,
  envEnum,
  envInt,
  envString,
  parseEnv,
  readSecretFile,
  type ConfigResult,
  type Env,
} from '@ginkgo-live/runtime';
import type { EmailSinkOptions } from './email-sink.ts';
import { parseRoutes, type Routing } from './routes.ts';

/** Notification settings shared by every app (cooldowns, buffer) and the delivery worker (sinks). */
export interface NotificationConfig {
  /** `NOTIFY_WEBHOOK_URL`: generic JSON webhook. Never logged. */
  webhookUrl: string | undefined;
  /** `NOTIFY_DISCORD_WEBHOOK_URL`. Never logged. */
  discordWebhookUrl: string | undefined;
  /** `NOTIFY_SLACK_WEBHOOK_URL` (incoming webhook). Never logged. */
  slackWebhookUrl: string | undefined;
  /**
   * `NOTIFY_ALERTMANAGER_URL`: an Alertmanager's base address (`http://alertmanager:9093`); alerts
   * go to its v2 API. Never logged (it may carry credentials).
   */
  alertmanagerUrl: string | undefined;
  /**
   * The e-mail sink, when `NOTIFY_EMAIL_TO` names recipients: `NOTIFY_EMAIL_FROM`, the relay
   * `NOTIFY_SMTP_HOST`/`_PORT` (587; 465 with implicit TLS, 25 without TLS), `NOTIFY_SMTP_TLS`
   * (`starttls`, required, by default; `implicit`; `off`), `NOTIFY_SMTP_USERNAME` with
   * `NOTIFY_SMTP_PASSWORD` or `_PASSWORD_FILE`, and `NOTIFY_SMTP_CA_FILE` for a private CA.
   * The password is never logged.
   */
  email: EmailSinkOptions | undefined;
  /** `NOTIFY_LOG`: also deliver to the log, default true. */
  logSink: boolean;
  /**
   * `NOTIFY_ROUTES_FILE`: which notifications go to which sinks (`src/routes.ts`), read and checked
   * at start; without it every notification goes to every sink.
   */
  routing: Routing | undefined;
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

/** An address as a relay takes it: `local@domain`, nothing around it. */
const ADDRESS = /^[^\s@<>,;"]+@[^\s@<>,;"]+\.[^\s@<>,;"]+$/;

const EMAIL_SETTINGS = [
  'NOTIFY_EMAIL_FROM',
  'NOTIFY_SMTP_HOST',
  'NOTIFY_SMTP_PORT',
  'NOTIFY_SMTP_TLS',
  'NOTIFY_SMTP_USERNAME',
  'NOTIFY_SMTP_PASSWORD',
  'NOTIFY_SMTP_PASSWORD_FILE',
  'NOTIFY_SMTP_CA_FILE',
] as const;

type EmailEnv = Record<'NOTIFY_EMAIL_TO' | (typeof EMAIL_SETTINGS)[number], string | undefined> & {
  NOTIFY_SMTP_TLS: 'starttls' | 'implicit' | 'off';
};

/**
 * The e-mail settings as one sink, or the first thing wrong with them, naming its variable: every
 * combination that cannot work is refused at start, never found at the first incident.
 */
function readEmail(
  env: EmailEnv,
  timeoutMs: number,
): { email: EmailSinkOptions | undefined } | { variable: string; message: string } {
  if (env.NOTIFY_EMAIL_TO === undefined) {
    const stray = EMAIL_SETTINGS.find((v) => v !== 'NOTIFY_SMTP_TLS' && env[v] !== undefined);
    if (stray !== undefined)
      return { variable: stray, message: 'is set but NOTIFY_EMAIL_TO is not: name the recipients' };
    return { email: undefined };
  }
  const to = env.NOTIFY_EMAIL_TO.split(',').map((a) => a.trim());
  const bad = to.find((a) => !ADDRESS.test(a));
  if (bad !== undefined)
    return {
      variable: 'NOTIFY_EMAIL_TO',
      message: `must be addresses separated by commas, got "${bad}"`,
    };
  const from = env.NOTIFY_EMAIL_FROM;
  if (from === undefined || !ADDRESS.test(from))
    return {
      variable: 'NOTIFY_EMAIL_FROM',
      message:
        from === undefined
          ? 'must be set with NOTIFY_EMAIL_TO'
          : `must be an address, got "${from}"`,
    };
  const host = env.NOTIFY_SMTP_HOST;
  if (host === undefined)
    return {
      variable: 'NOTIFY_SMTP_HOST',
      message: 'must name the SMTP relay with NOTIFY_EMAIL_TO',
    };
  const tls = env.NOTIFY_SMTP_TLS;
  let port = tls === 'implicit' ? 465 : tls === 'off' ? 25 : 587;
  if (env.NOTIFY_SMTP_PORT !== undefined) {
    port = Number(env.NOTIFY_SMTP_PORT);
    if (!/^\d+$/.test(env.NOTIFY_SMTP_PORT) || port < 1 || port > 65_535)
      return {
        variable: 'NOTIFY_SMTP_PORT',
        message: `must be a port (1-65535), got "${env.NOTIFY_SMTP_PORT}"`,
      };
  }
  if (env.NOTIFY_SMTP_PASSWORD !== undefined && env.NOTIFY_SMTP_PASSWORD_FILE !== undefined)
    return {
      variable: 'NOTIFY_SMTP_PASSWORD_FILE',
      message: 'is set, and so is NOTIFY_SMTP_PASSWORD: set one of them',
    };
  let password = env.NOTIFY_SMTP_PASSWORD;
  if (env.NOTIFY_SMTP_PASSWORD_FILE !== undefined) {
    const read = readSecretFile(env.NOTIFY_SMTP_PASSWORD_FILE);
    if ('problem' in read) return { variable: 'NOTIFY_SMTP_PASSWORD_FILE', message: read.problem };
    password = read.value;
  }
  const username = env.NOTIFY_SMTP_USERNAME;
  if ((username === undefined) !== (password === undefined))
    return username === undefined
      ? { variable: 'NOTIFY_SMTP_USERNAME', message: 'must be set with a password' }
      : {
          variable: 'NOTIFY_SMTP_PASSWORD',
          message: 'must be set (or _FILE) with NOTIFY_SMTP_USERNAME',
        };
  if (tls === 'off' && password !== undefined)
    return {
      variable: 'NOTIFY_SMTP_TLS',
      message: 'is off, which would send the SMTP password in clear: use starttls or implicit',
    };
  const caFile = env.NOTIFY_SMTP_CA_FILE;
  if (caFile !== undefined) {
    if (tls === 'off')
      return {
        variable: 'NOTIFY_SMTP_CA_FILE',
        message: 'is set but NOTIFY_SMTP_TLS is off: it would be ignored',
      };
    try {
      readFileSync(caFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      return {
        variable: 'NOTIFY_SMTP_CA_FILE',
        message: `cannot read ${env.NOTIFY_SMTP_CA_FILE} (${code})`,
      };
    }
  }
  return {
    email: {
      host,
      port,
      tls,
      auth: username === undefined || password === undefined ? undefined : { username, password },
      caFile,
      from,
      to,
      timeoutMs,
    },
  };
}

const schema = z
  .object({
    NOTIFY_WEBHOOK_URL: url('generic webhook'),
    NOTIFY_DISCORD_WEBHOOK_URL: url('Discord webhook'),
    NOTIFY_SLACK_WEBHOOK_URL: url('Slack webhook'),
    NOTIFY_ALERTMANAGER_URL: url('Alertmanager'),
    NOTIFY_EMAIL_TO: envString(),
    NOTIFY_EMAIL_FROM: envString(),
    NOTIFY_SMTP_HOST: envString(),
    NOTIFY_SMTP_PORT: envString(),
    NOTIFY_SMTP_TLS: envEnum(['starttls', 'implicit', 'off'], 'starttls'),
    NOTIFY_SMTP_USERNAME: envString(),
    NOTIFY_SMTP_PASSWORD: envString(),
    NOTIFY_SMTP_PASSWORD_FILE: envString(),
    NOTIFY_SMTP_CA_FILE: envString(),
    NOTIFY_LOG: envBool(true),
    NOTIFY_ROUTES_FILE: envString(),
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
  .transform((env, ctx): NotificationConfig => {
    const read = readEmail(env, env.NOTIFY_DELIVERY_TIMEOUT_MS);
    if (!('email' in read)) {
      ctx.addIssue({ code: 'custom', path: [read.variable], message: read.message });
      return z.NEVER;
    }
    let routing: Routing | undefined;
    if (env.NOTIFY_ROUTES_FILE !== undefined) {
      const file = env.NOTIFY_ROUTES_FILE;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
        ctx.addIssue({
          code: 'custom',
          path: ['NOTIFY_ROUTES_FILE'],
          message: `cannot read ${file} (${code})`,
        });
        return z.NEVER;
      }
      // The sinks this configuration has, by the names createSinks gives them.
      const names = [
        ...(env.NOTIFY_WEBHOOK_URL === undefined ? [] : ['webhook']),
        ...(env.NOTIFY_DISCORD_WEBHOOK_URL === undefined ? [] : ['discord']),
        ...(env.NOTIFY_SLACK_WEBHOOK_URL === undefined ? [] : ['slack']),
        ...(env.NOTIFY_ALERTMANAGER_URL === undefined ? [] : ['alertmanager']),
        ...(read.email === undefined ? [] : ['email']),
        ...(env.NOTIFY_LOG ? ['log'] : []),
      ];
      const parsed = parseRoutes(text, file, names);
      if ('problem' in parsed) {
        ctx.addIssue({
          code: 'custom',
          path: ['NOTIFY_ROUTES_FILE'],
          message: `${file} line ${parsed.line}: ${parsed.problem}`,
        });
        return z.NEVER;
      }
      routing = parsed;
    }
    return {
      webhookUrl: env.NOTIFY_WEBHOOK_URL,
      email: read.email,
      discordWebhookUrl: env.NOTIFY_DISCORD_WEBHOOK_URL,
      slackWebhookUrl: env.NOTIFY_SLACK_WEBHOOK_URL,
      alertmanagerUrl: env.NOTIFY_ALERTMANAGER_URL,
      logSink: env.NOTIFY_LOG,
      routing,
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
    };
  });

/** Reads the notification settings. Pure. */
export function loadNotificationConfig(env: Env): ConfigResult<NotificationConfig> {
  return parseEnv(schema, env);
}
