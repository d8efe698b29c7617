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

export interface SchedulerConfig {
  /** `SCHEDULER_ID`, default `<host>-<pid>`: the leader lock's value. */
  schedulerId: string;
  /** `SCHEDULER_TICK_MS`, default 5000. */
  tickMs: number;
  /** `SCHEDULER_LEADER_TTL_MS`, default 10000: a standby takes over within this after the leader dies. */
  leaderTtlMs: number;
  /** `NODE_DEFAULT_CAPACITY`: capacity of a node that has not said its own, default 5. */
  defaultCapacity: number;
  /**
   * `SCHEDULER_OUTAGE_GRACE_MS`, default 15000 (the heartbeat TTL): after Redis was unreachable,
   * nodes get this long to beat again before a missing heartbeat counts as lost — heartbeats expire
   * while Redis is frozen, through no fault of the nodes.
   */
  outageGraceMs: number;
  /** `ORPHAN_NOTIFY_AFTER_MS`: a portfolio orphaned this long is notified, default 15000 (startup is not an alarm). */
  orphanNotifyAfterMs: number;
  /** `CATALOG_FILE`: JSON array of portfolio specs loaded into the catalog at start, optional. */
  catalogFile: string | undefined;
  /** `METRICS_PORT`, default 9465 (0 picks a free port); `METRICS_HOST`, default 0.0.0.0. */
  metricsPort: number;
  metricsHost: string;
  redis: RedisConfig;
  logging: LoggingConfig;
  notify: NotificationConfig;
}

const schema = z
  .object({
    SCHEDULER_ID: envString(),
    SCHEDULER_TICK_MS: envDurationMs(5_000, 50),
    SCHEDULER_LEADER_TTL_MS: envDurationMs(DEFAULT_TIMINGS.schedulerLeaderTtlMs, 100),
    NODE_DEFAULT_CAPACITY: envInt({ default: 5, min: 1, max: 1_000 }),
    ORPHAN_NOTIFY_AFTER_MS: envDurationMs(15_000),
    SCHEDULER_OUTAGE_GRACE_MS: envDurationMs(DEFAULT_TIMINGS.heartbeatTtlMs),
    CATALOG_FILE: envString(),
    METRICS_PORT: envInt({ default: 9_465, min: 0, max: 65_535 }),
    METRICS_HOST: envString(),
  })
  .superRefine((env, ctx) => {
    if (env.SCHEDULER_LEADER_TTL_MS <= env.SCHEDULER_TICK_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['SCHEDULER_LEADER_TTL_MS'],
        message: `must exceed SCHEDULER_TICK_MS (${env.SCHEDULER_TICK_MS}), or the leader loses its lock between ticks`,
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
      catalogFile: s.CATALOG_FILE,
      metricsPort: s.METRICS_PORT,
      metricsHost: s.METRICS_HOST ?? '0.0.0.0',
      redis,
      logging,
      notify,
    },
  };
}
