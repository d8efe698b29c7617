import { z } from 'zod';
import { NODE_FLEET_STATUSES, QUEUE_LEVELS } from '@ginkgo-live/fleet';
import type { Access } from '../access.ts';
import { ApiRouter } from '../api-router.ts';
import type { EventStreams } from '../sse.ts';
import type { OverviewFeed, OverviewMessage } from '../../overview-feed.ts';
import { components, errorResponse, REDIS_DOWN, time } from './common.ts';
import { TradingSchema } from './trading.ts';

const num = z.number();
const int = z.number().int();
const queueLevel = z.enum(QUEUE_LEVELS);

/** What the operations page receives (`OverviewMessage` of `overview-feed.ts`). */
export const OverviewSchema = z
  .object({
    generated_at: time,
    redis: z.object({
      status: z.enum(['up', 'down']),
      reason: z.string().nullable(),
      down_since: time.nullable(),
    }),
    stale: z.boolean(),
    data_as_of: time.nullable(),
    trading: TradingSchema,
    queue_thresholds: z.object({ warning: num, critical: num, full: num }),
    summary: z.object({
      nodes_online: int.meta({ description: 'Heartbeat alive: status online or draining' }),
      nodes_total: int,
      nodes_draining: int,
      nodes_lost: int,
      portfolios_running: int,
      portfolios_total: int,
      portfolios_orphaned: int,
      events_per_second: num,
      queue_depth_total: int,
      queue_usage_max: num.nullable(),
      notifications_last_hour: int,
      leader: z.string().nullable(),
      plan_version: int.nullable(),
    }),
    nodes: z.array(
      z.object({
        node_id: z.string(),
        status: z.enum(NODE_FLEET_STATUSES),
        heartbeat_age_ms: num.nullable(),
        portfolio_count: int,
        capacity: int.nullable(),
        queue_usage_max: num.nullable(),
        queue_level: queueLevel,
        events_per_second: num.nullable(),
        cpu_percent: num.nullable(),
        memory_rss_bytes: num.nullable(),
        redis_failures: int.nullable(),
        redis_healthy: z.boolean().nullable(),
        error: z.string().nullable(),
      }),
    ),
    portfolios: z.array(
      z.object({
        portfolio_id: z.string(),
        name: z.string().nullable(),
        status: z.string(),
        node_id: z.string().nullable(),
        reason: z.string().nullable(),
        queue_depth: int.nullable(),
        queue_capacity: int.nullable(),
        queue_usage: num.nullable(),
        queue_level: queueLevel,
        events_per_second: num.nullable(),
        latency_p50_ms: num.nullable(),
        latency_p99_ms: num.nullable(),
        cash: num.nullable(),
        total_value: num.nullable(),
        last_error: z.string().nullable(),
      }),
    ),
    notifications: z.array(
      z.object({
        id: z.string(),
        created_at: time,
        level: z.string(),
        kind: z.string(),
        status: z.enum(['firing', 'resolved']),
        title: z.string(),
        message: z.string(),
        subject: z.string().nullable(),
        delivery: z.enum(['delivered', 'partial', 'failed']),
        delivery_problems: z.array(z.string()),
      }),
    ),
    history: z.array(
      z.object({
        t: int,
        queue_depth_total: int,
        queue_usage_max: num.nullable(),
        events_per_second: num,
      }),
    ),
  })
  .register(components, { id: 'Overview' });

export interface OverviewDeps {
  access: Access;
  overview: Pick<OverviewFeed, 'read' | 'subscribe'>;
  /** The event streams and their caps (`GATEWAY_SSE_MAX_PER_CLIENT`, `GATEWAY_SSE_MAX_TOTAL`). */
  streams: EventStreams;
}

/**
 * The operations page's data: one shaped overview (JSON), or a stream of them (server-sent
 * events, one per update; while Redis cannot be read each says so and carries the last data
 * flagged stale). Each update is serialised once, however many streams are open; a stream whose
 * client does not keep up gets the latest update when it does (`EventStreams`).
 */
export function overviewRoutes(deps: OverviewDeps): ApiRouter {
  const { overview, streams } = deps;
  const api = new ApiRouter(deps.access);
  let lastMessage: OverviewMessage | undefined;
  let lastFrame = '';
  const frameOf = (message: OverviewMessage): string => {
    if (message !== lastMessage) {
      lastMessage = message;
      lastFrame = `event: overview\ndata: ${JSON.stringify(message)}\n\n`;
    }
    return lastFrame;
  };

  api.get(
    '/api/overview',
    {
      summary: "The operations page's data: fleet summary, nodes, portfolios, notifications",
      scope: 'read',
      responses: {
        200: { description: 'The fleet as read now', schema: OverviewSchema },
        503: REDIS_DOWN,
      },
    },
    async (_input, _req, res) => {
      res.json(await overview.read());
    },
  );
  api.get(
    '/api/overview/stream',
    {
      summary:
        'Server-sent events, one `overview` per update (GATEWAY_OVERVIEW_INTERVAL_MS) whose `data` is an Overview; while Redis cannot be read each says so (`redis.status` down) and carries the last data with `stale` true. A client that does not keep up gets the latest update when it does, never a backlog',
      scope: 'read',
      responses: {
        200: {
          description: 'An event stream whose `data` are Overview objects',
          contentType: 'text/event-stream',
          schema: z.string(),
        },
        429: errorResponse(
          'This address has GATEWAY_SSE_MAX_PER_CLIENT streams open, or its rate limit is spent (Retry-After)',
        ),
        503: errorResponse('The gateway serves GATEWAY_SSE_MAX_TOTAL streams (Retry-After)'),
      },
    },
    (_input, req, res) => {
      const stream = streams.start(req, res, 'retry: 2000\n\n');
      if (stream === undefined) return;
      const unsubscribe = overview.subscribe((message) => stream.send(frameOf(message)));
      stream.onClose(unsubscribe);
    },
  );
  return api;
}
