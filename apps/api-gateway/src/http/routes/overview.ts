import { z } from 'zod';
import { NODE_FLEET_STATUSES, QUEUE_LEVELS } from '@ginkgo-live/fleet';
import type { Access } from '../access.ts';
import { ApiRouter } from '../api-router.ts';
import type { EventStreams } from '../sse.ts';
import type { OverviewFeed } from '../../overview-feed.ts';
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
        delivery: z.enum(['delivered', 'partial', 'failed', 'silenced']),
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
    seq: int.meta({
      description: "The feed's update number: the stream's deltas name the update they apply to",
    }),
    queue_level_rank: z
      .record(queueLevel, int)
      .meta({ description: 'The portfolio list sorts queue levels by this rank (fullest first)' }),
  })
  .register(components, { id: 'Overview' });

const changes = <R extends z.ZodType>(row: R, key: string) =>
  z.object({
    set: z.array(row).meta({ description: 'Rows added or changed, whole' }),
    remove: z.array(z.string()).meta({ description: `The ${key} of rows gone` }),
  });

/**
 * A stream's frames after its first: the overview's head as in every frame, and only the rows
 * changed since update `base`. A client whose last update is not `base` missed one and must ask
 * for the whole overview again (reconnect). Node rows whose only change is their heartbeat age are
 * not sent: the age grows with `generated_at`.
 */
export const OverviewDeltaSchema = OverviewSchema.omit({ nodes: true, portfolios: true })
  .extend({
    base: int.nullable().meta({ description: 'The update these changes apply to' }),
    nodes: changes(OverviewSchema.shape.nodes.element, 'node_id'),
    portfolios: changes(OverviewSchema.shape.portfolios.element, 'portfolio_id'),
  })
  .register(components, { id: 'OverviewDelta' });

export interface OverviewDeps {
  access: Access;
  overview: Pick<OverviewFeed, 'read' | 'subscribe'>;
  /** The event streams and their caps (`GATEWAY_SSE_MAX_PER_CLIENT`, `GATEWAY_SSE_MAX_TOTAL`). */
  streams: EventStreams;
}

/**
 * The operations page's data: one shaped overview (JSON), or a stream of updates (server-sent
 * events: the whole overview first, then per update the rows it changed; while Redis cannot be
 * read each says so and carries the last data flagged stale). Each frame is serialised once,
 * however many streams are open; a stream whose client does not keep up skips updates and gets the
 * whole overview again when it does (`EventStreams`).
 */
export function overviewRoutes(deps: OverviewDeps): ApiRouter {
  const { overview, streams } = deps;
  const api = new ApiRouter(deps.access);
  const frames = new WeakMap<object, string>();
  const once = (key: object, make: () => string): string => {
    let frame = frames.get(key);
    if (frame === undefined) frames.set(key, (frame = make()));
    return frame;
  };
  // Not kept: the feed keeps the whole overview's JSON until its next update, and a socket write
  // copies the frame anyway.
  const fullFrame = (json: string): string => `event: overview\ndata: ${json}\n\n`;

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
      res.type('application/json').send(await overview.read());
    },
  );
  api.get(
    '/api/overview/stream',
    {
      summary:
        'Server-sent events: first an `overview` whose `data` is the whole Overview, then per update (GATEWAY_OVERVIEW_INTERVAL_MS) an `overview-delta` whose `data` is an OverviewDelta (the rows changed since update `base`); while Redis cannot be read each says so (`redis.status` down) and carries the last data with `stale` true. A client that does not keep up skips updates and gets a whole `overview` again when it does, never a backlog; a client that sees a delta whose `base` is not the last update it applied reconnects for a whole one',
      scope: 'read',
      responses: {
        200: {
          description:
            'An event stream: `overview` events whose `data` is an Overview, `overview-delta` events whose `data` is an OverviewDelta',
          contentType: 'text/event-stream',
          // Each event's `data`, as JSON.
          schema: z.union([OverviewSchema, OverviewDeltaSchema]),
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
      let first = true;
      const unsubscribe = overview.subscribe((update) => {
        const whole = (): string => fullFrame(update.fullJson());
        // A stream's first frame is the whole overview; the rest build on it, one update each.
        const frame = first
          ? whole()
          : once(update, () => `event: overview-delta\ndata: ${update.deltaJson()}\n\n`);
        first = false;
        stream.send(frame, whole);
      });
      stream.onClose(unsubscribe);
    },
  );
  return api;
}
