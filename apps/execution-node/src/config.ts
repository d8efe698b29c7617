import { hostname } from 'node:os';
import { z } from 'zod';
import {
  combineConfig,
  envDurationMs,
  envEnum,
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
import { loadQueueConfig } from '@ginkgo-live/portfolio-queue';
import { DEFAULT_TIMINGS, isValidId } from '@ginkgo-live/state-keys';

/** Everything the execution node reads from its environment. */
export interface NodeConfig {
  /** `NODE_ID`, default `<host>-<pid>` (sanitised to a valid id). */
  nodeId: string;
  /** `NODE_CAPACITY`: portfolios this node runs at most, default 5. */
  capacity: number;
  /** `HEARTBEAT_INTERVAL_MS`, default 5000. */
  heartbeatIntervalMs: number;
  /** `HEARTBEAT_TTL_MS`, default 15000; must exceed the interval. */
  heartbeatTtlMs: number;
  /** `NODE_INFO_TTL_MS`, default 45000. */
  nodeInfoTtlMs: number;
  /** `PORTFOLIO_STATE_TTL_MS`, default 45000. */
  portfolioStateTtlMs: number;
  /** `HEARTBEAT_RETRY_ATTEMPTS`: attempts within one beat, default 5. */
  heartbeatRetryAttempts: number;
  /** `HEARTBEAT_RETRY_BASE_DELAY_MS`: first retry delay, doubling, default 250. */
  heartbeatRetryBaseDelayMs: number;
  /**
   * `ASSIGNMENT_PUSH` (`on` | `off`, default on): follow the assignment and the trading controls by
   * push (sharded pub/sub, Redis 7+) with a safety read every `HEARTBEAT_INTERVAL_MS`; off polls
   * every `ASSIGNMENT_POLL_MS` as before (a Redis without `SSUBSCRIBE`, an ACL not yet granting the
   * channels).
   */
  push: boolean;
  /**
   * `ASSIGNMENT_POLL_MS`, default 250: how often the node reads its assignment and the trading
   * controls when push cannot tell it (push off, its subscription down or refused), and while a
   * read has something to retry (a load waiting for its lease or its fresh start, a read failed).
   */
  assignmentPollMs: number;
  /** `STATE_FLUSH_MS`: portfolio state changes are coalesced and written this often, default 250. */
  stateFlushMs: number;
  /** `QUEUE_SAMPLE_MS`: how often queue depths and refusals are read (and thresholds checked), default 500. */
  queueSampleMs: number;
  /** `PORTFOLIO_QUEUE_CAPACITY`, default 1000: the one setting the producers read too (`loadQueueConfig`). */
  queueCapacity: number;
  /**
   * `STOP_TIMEOUT_MS`: graceful stop budget, default 10000; below `HEARTBEAT_TTL_MS`. When it runs
   * out the process exits anyway; what it had not committed stays in the queues.
   */
  stopTimeoutMs: number;
  /** `EVENT_BATCH_MAX`: events applied per commit at most, default 100. */
  eventBatchMax: number;
  redis: RedisConfig;
  logging: LoggingConfig;
  notify: NotificationConfig;
}

/** `host-pid` made into a valid id. */
export function defaultNodeId(): string {
  return `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64);
}

const nodeEnvSchema = z
  .object({
    NODE_ID: envString(),
    NODE_CAPACITY: envInt({ default: 5, min: 1, max: 1_000 }),
    HEARTBEAT_INTERVAL_MS: envDurationMs(DEFAULT_TIMINGS.heartbeatIntervalMs, 100),
    HEARTBEAT_TTL_MS: envDurationMs(DEFAULT_TIMINGS.heartbeatTtlMs, 200),
    NODE_INFO_TTL_MS: envDurationMs(DEFAULT_TIMINGS.nodeInfoTtlMs, 200),
    PORTFOLIO_STATE_TTL_MS: envDurationMs(DEFAULT_TIMINGS.portfolioStateTtlMs, 200),
    HEARTBEAT_RETRY_ATTEMPTS: envInt({ default: 5, min: 1, max: 100 }),
    HEARTBEAT_RETRY_BASE_DELAY_MS: envDurationMs(250, 1),
    ASSIGNMENT_PUSH: envEnum(['on', 'off'], 'on'),
    ASSIGNMENT_POLL_MS: envDurationMs(250, 10),
    STATE_FLUSH_MS: envDurationMs(250, 10),
    QUEUE_SAMPLE_MS: envDurationMs(500, 10),
    STOP_TIMEOUT_MS: envDurationMs(10_000, 100),
    EVENT_BATCH_MAX: envInt({ default: 100, min: 1, max: 10_000 }),
  })
  .superRefine((env, ctx) => {
    if (env.NODE_ID !== undefined && !isValidId(env.NODE_ID)) {
      ctx.addIssue({
        code: 'custom',
        path: ['NODE_ID'],
        message: `must be 1-64 characters of [A-Za-z0-9_.-], got "${env.NODE_ID}"`,
      });
    }
    if (env.HEARTBEAT_TTL_MS <= env.HEARTBEAT_INTERVAL_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['HEARTBEAT_TTL_MS'],
        message: `must exceed HEARTBEAT_INTERVAL_MS (${env.HEARTBEAT_INTERVAL_MS}), or every beat expires before the next`,
      });
    }
    if (2 * env.ASSIGNMENT_POLL_MS > env.HEARTBEAT_TTL_MS + env.HEARTBEAT_INTERVAL_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['ASSIGNMENT_POLL_MS'],
        message: `must be at most half of HEARTBEAT_TTL_MS + HEARTBEAT_INTERVAL_MS (${(env.HEARTBEAT_TTL_MS + env.HEARTBEAT_INTERVAL_MS) / 2}): a portfolio Redis has no book of waits until it has gone a fresh-start window without one, counted only while it is tried at least every two polls, and a longer gap would leave a node holding its book too little time to put it back`,
      });
    }
    if (env.STOP_TIMEOUT_MS >= env.HEARTBEAT_TTL_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['STOP_TIMEOUT_MS'],
        message: `must be below HEARTBEAT_TTL_MS (${env.HEARTBEAT_TTL_MS}): a node is given up on one TTL after its last beat, so its stop must end before that`,
      });
    }
  });

/** Reads the node's configuration. Pure: reads nothing but `env`. */
export function loadConfig(env: Env): ConfigResult<NodeConfig> {
  const parts = combineConfig({
    node: parseEnv(nodeEnvSchema, env),
    queue: loadQueueConfig(env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
    notify: loadNotificationConfig(env),
  });
  if (!parts.ok) return parts;
  const { node, queue, redis, logging, notify } = parts.value;
  // After Redis comes back empty, every live holder must beat within the fresh-start window
  // (HEARTBEAT_TTL_MS + 2 beats) or another node starts the portfolio fresh over the book it holds:
  // a reconnect of up to the TTL leaves an interval for that beat.
  if (redis.reconnectMaxDelayMs > node.HEARTBEAT_TTL_MS) {
    return {
      ok: false,
      issues: [
        {
          variable: 'REDIS_RECONNECT_MAX_DELAY_MS',
          message: `must be at most HEARTBEAT_TTL_MS (${node.HEARTBEAT_TTL_MS}): after Redis restarts empty, a node holding a portfolio must reconnect and beat within HEARTBEAT_TTL_MS + 2 × HEARTBEAT_INTERVAL_MS, or another node starts the portfolio fresh over its book`,
        },
      ],
    };
  }
  return {
    ok: true,
    value: {
      nodeId: node.NODE_ID ?? defaultNodeId(),
      capacity: node.NODE_CAPACITY,
      heartbeatIntervalMs: node.HEARTBEAT_INTERVAL_MS,
      heartbeatTtlMs: node.HEARTBEAT_TTL_MS,
      nodeInfoTtlMs: node.NODE_INFO_TTL_MS,
      portfolioStateTtlMs: node.PORTFOLIO_STATE_TTL_MS,
      heartbeatRetryAttempts: node.HEARTBEAT_RETRY_ATTEMPTS,
      heartbeatRetryBaseDelayMs: node.HEARTBEAT_RETRY_BASE_DELAY_MS,
      push: node.ASSIGNMENT_PUSH === 'on',
      assignmentPollMs: node.ASSIGNMENT_POLL_MS,
      stateFlushMs: node.STATE_FLUSH_MS,
      queueSampleMs: node.QUEUE_SAMPLE_MS,
      queueCapacity: queue.capacity,
      stopTimeoutMs: node.STOP_TIMEOUT_MS,
      eventBatchMax: node.EVENT_BATCH_MAX,
      redis,
      logging,
      notify,
    },
  };
}
