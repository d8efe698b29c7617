import { hostname } from 'node:os';
import { z } from 'zod';
import {
  combineConfig,
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
import { DEFAULT_TIMINGS } from '@ginkgo-live/state-keys';
import type { SchedulerSettings } from './decide.ts';

/** The scheduler's configuration: the core's settings (documented there) and the process's own. */
export interface SchedulerConfig extends Omit<SchedulerSettings, 'catalogFile'> {
  /** `SCHEDULER_LEADER_TTL_MS`, default 10000: a standby takes over within this after the leader dies. */
  leaderTtlMs: number;
  /** `CATALOG_FILE`: JSON array of portfolio specs that seeds an empty catalog, optional. */
  catalogFile: string | undefined;
  redis: RedisConfig;
  logging: LoggingConfig;
  notify: NotificationConfig;
}

/** SCHEDULER_SETTLE_MS unset: derived from the tick. */
const UNSET = -1;
const DAY_MS = 24 * 60 * 60 * 1_000;

const schema = z
  .object({
    SCHEDULER_ID: envString(),
    SCHEDULER_TICK_MS: envDurationMs(5_000, 50),
    SCHEDULER_LEADER_TTL_MS: envDurationMs(DEFAULT_TIMINGS.schedulerLeaderTtlMs, 100),
    NODE_DEFAULT_CAPACITY: envInt({ default: 5, min: 1, max: 1_000 }),
    ORPHAN_NOTIFY_AFTER_MS: envDurationMs(15_000),
    SCHEDULER_OUTAGE_GRACE_MS: envDurationMs(DEFAULT_TIMINGS.heartbeatTtlMs),
    SCHEDULER_SETTLE_MS: envInt({ default: UNSET, min: 0 }),
    SCHEDULER_NODE_RETENTION_MS: envDurationMs(DAY_MS, 60_000),
    SCHEDULER_REBALANCE_PER_MIN: envInt({ default: 0, min: 0, max: 10_000 }),
    CATALOG_FILE: envString(),
  })
  .superRefine((env, ctx) => {
    if (env.SCHEDULER_LEADER_TTL_MS <= env.SCHEDULER_TICK_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['SCHEDULER_LEADER_TTL_MS'],
        message: `must exceed SCHEDULER_TICK_MS (${env.SCHEDULER_TICK_MS}), or the leader loses its lock between ticks`,
      });
    }
    if (env.SCHEDULER_NODE_RETENTION_MS <= env.SCHEDULER_OUTAGE_GRACE_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['SCHEDULER_NODE_RETENTION_MS'],
        message: `must exceed SCHEDULER_OUTAGE_GRACE_MS (${env.SCHEDULER_OUTAGE_GRACE_MS}), or nodes are forgotten before they had time to beat again`,
      });
    }
  });

/** Reads the scheduler's configuration. Pure. */
export function loadConfig(env: Env): ConfigResult<SchedulerConfig> {
  const parts = combineConfig({
    scheduler: parseEnv(schema, env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
    notify: loadNotificationConfig(env),
  });
  if (!parts.ok) return parts;
  const { scheduler: s, redis, logging, notify } = parts.value;
  return {
    ok: true,
    value: {
      schedulerId: s.SCHEDULER_ID ?? `${hostname()}-${process.pid}`,
      tickMs: s.SCHEDULER_TICK_MS,
      leaderTtlMs: s.SCHEDULER_LEADER_TTL_MS,
      defaultCapacity: s.NODE_DEFAULT_CAPACITY,
      orphanNotifyAfterMs: s.ORPHAN_NOTIFY_AFTER_MS,
      outageGraceMs: s.SCHEDULER_OUTAGE_GRACE_MS,
      settleMs: s.SCHEDULER_SETTLE_MS === UNSET ? 2 * s.SCHEDULER_TICK_MS : s.SCHEDULER_SETTLE_MS,
      nodeRetentionMs: s.SCHEDULER_NODE_RETENTION_MS,
      rebalancePerMinute: s.SCHEDULER_REBALANCE_PER_MIN,
      catalogFile: s.CATALOG_FILE,
      redis,
      logging,
      notify,
    },
  };
}
