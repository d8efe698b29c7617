import { z } from 'zod';
import { ID_PATTERN } from './ids.ts';

/** Version of every payload this code writes and reads. */
export const PAYLOAD_VERSION = 1;

const version = z.literal(PAYLOAD_VERSION);
const id = z.string().regex(ID_PATTERN, 'must be 1-64 characters of [A-Za-z0-9_.-]');
const isoTime = z.iso.datetime({ offset: true });
const count = z.number().int().nonnegative();
const ratio = z.number().nonnegative();

/** `heartbeat:node:{id}`: written by the node every beat. */
export const heartbeatSchema = z.object({
  _v: version,
  node_id: id,
  /** When the node sent the beat (node clock). */
  sent_at: isoTime,
  /** Beat counter since the node started. */
  seq: count,
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

export const NODE_STATUSES = ['starting', 'running', 'draining', 'stopping'] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];

/** Redis health as seen by the writer of a payload. */
export const redisHealthSchema = z.object({
  healthy: z.boolean(),
  consecutive_failures: count,
  total_failures: count,
  last_success_at: isoTime.nullable(),
});
export type RedisHealth = z.infer<typeof redisHealthSchema>;

/** `execution_node:{id}:info` (T068): written by the node every beat. */
export const nodeInfoSchema = z.object({
  _v: version,
  /**
   * `placementDigest(capacity, portfolio_ids)`, written second (right after `_v`) so that a reader
   * can tell an unchanged placement from the payload's first bytes without parsing it. Optional: a
   * node from before it has none and is read whole.
   */
  placement: z
    .string()
    .regex(/^[0-9a-f]{16}$/, 'must be 16 lowercase hex digits')
    .optional(),
  node_id: id,
  host: z.string().min(1),
  pid: z.number().int().positive(),
  version: z.string().min(1),
  status: z.enum(NODE_STATUSES),
  started_at: isoTime,
  uptime_seconds: z.number().nonnegative(),
  last_heartbeat: isoTime,
  portfolio_ids: z.array(id),
  portfolio_count: count,
  capacity: z.number().int().positive(),
  /** Fullest portfolio queue, depth / capacity (not the mean, which hides one saturated queue). */
  queue_usage_max: ratio,
  /** Each portfolio's queue usage. */
  queue_usage: z.record(z.string(), ratio),
  events_per_second: z.number().nonnegative(),
  cpu_percent: z.number().nonnegative(),
  memory_rss_bytes: count,
  heap_used_bytes: count,
  redis: redisHealthSchema,
});
export type NodeInfo = z.infer<typeof nodeInfoSchema>;

export const PORTFOLIO_STATUSES = [
  'loading',
  'running',
  'paused',
  'stopping',
  'stopped',
  'error',
] as const;
export type PortfolioStatus = (typeof PORTFOLIO_STATUSES)[number];

/** `portfolio:{id}:state` (T067): written by the node running the portfolio. */
export const portfolioStateSchema = z.object({
  _v: version,
  portfolio_id: id,
  node_id: id,
  status: z.enum(PORTFOLIO_STATUSES),
  queue_depth: count,
  queue_capacity: z.number().int().positive(),
  queue_usage: ratio,
  processed_count: count,
  failed_count: count,
  refused_count: count,
  /** Events processed per second over the last sample (about a second). */
  events_per_second: z.number().nonnegative().optional(),
  last_event_time: isoTime.nullable(),
  /** Processing latency over a recent window, in ms; null before the first event. */
  latency_ms: z.object({ p50: z.number().nonnegative(), p99: z.number().nonnegative() }).nullable(),
  cash: z.number(),
  position_count: count,
  total_value: z.number(),
  last_error: z.string().nullable(),
  updated_at: isoTime,
});
export type PortfolioState = z.infer<typeof portfolioStateSchema>;

/** An entry of `portfolio_catalog`: a portfolio that should run somewhere. */
export const portfolioSpecSchema = z.object({
  _v: version,
  portfolio_id: id,
  name: z.string().min(1).optional(),
  symbols: z.array(z.string().min(1)).min(1),
  strategy: z.object({
    name: z.string().min(1),
    params: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])),
  }),
  starting_cash: z.number().positive(),
});
export type PortfolioSpec = z.infer<typeof portfolioSpecSchema>;

export const NODE_RECORD_STATUSES = ['alive', 'lost', 'draining'] as const;
export type NodeRecordStatus = (typeof NODE_RECORD_STATUSES)[number];

/** An entry of `execution_nodes`: the scheduler's view of one node. */
export const nodeRecordSchema = z.object({
  _v: version,
  node_id: id,
  status: z.enum(NODE_RECORD_STATUSES),
  capacity: z.number().int().positive(),
  /** Portfolios the plan gives this node (counted from the plan, not from node reports). */
  assigned_count: count,
  last_seen: isoTime.nullable(),
});
export type NodeRecord = z.infer<typeof nodeRecordSchema>;

/** An entry of `portfolio_assignments`: where one portfolio runs, or why it runs nowhere. */
export const assignmentSchema = z
  .object({
    _v: version,
    portfolio_id: id,
    status: z.enum(['assigned', 'orphaned']),
    node_id: id.nullable(),
    reason: z.string().nullable(),
    plan_version: count,
    since: isoTime,
  })
  .refine((a) => (a.status === 'assigned') === (a.node_id !== null), {
    error: 'an assigned portfolio names its node; an orphaned one names none',
    path: ['node_id'],
  });
export type Assignment = z.infer<typeof assignmentSchema>;

/** `execution_node:{id}:assignment`: the portfolios one node must run, derived from the plan. */
export const nodeAssignmentSchema = z.object({
  _v: version,
  node_id: id,
  portfolio_ids: z.array(id),
  plan_version: count,
  updated_at: isoTime,
});
export type NodeAssignment = z.infer<typeof nodeAssignmentSchema>;

/** `scheduler:plan_meta`: the version of the plan and who wrote it when. */
export const planMetaSchema = z.object({
  _v: version,
  version: count,
  updated_at: isoTime,
  leader: z.string().min(1),
});
export type PlanMeta = z.infer<typeof planMetaSchema>;

/** A job of a portfolio queue: one market price tick. */
export const priceTickSchema = z.object({
  _v: version,
  symbol: z.string().min(1).max(32),
  price: z.number().positive(),
  volume: z.number().nonnegative(),
  /** When the market produced the tick. */
  event_time: isoTime,
  /**
   * Who offered it and its number in that producer's sequence for this portfolio (1, 2, …). A
   * consumer applies an event only when its seq is above the last one applied from that producer,
   * so a resent add or a replayed job is skipped, never applied twice. Absent on events from
   * producers that do not number them (applied once, but a resend of one is not recognised).
   */
  producer: id.optional(),
  seq: z.number().int().positive().optional(),
});
export type PriceTick = z.infer<typeof priceTickSchema>;

/**
 * What a book has applied from one producer: enough for a checker to rebuild the exact set of
 * applied seqs (first..last minus the gaps) and to prove each was applied once and in order (count
 * and checksum recomputed over that set in increasing order must agree).
 */
export const appliedRangeSchema = z.object({
  first: z.number().int().positive(),
  last: z.number().int().positive(),
  count: count,
  /** Fold over the applied seqs in apply order: h = (h * 31 + seq) mod 4294967291, from 0. */
  checksum: count,
  /** Inclusive seq ranges skipped between first and last (most recent kept, at most 100). */
  gaps: z.array(z.tuple([z.number().int().positive(), z.number().int().positive()])),
});
export type AppliedRange = z.infer<typeof appliedRangeSchema>;

/**
 * The fencing token of a book write: the lease token of the process that wrote it (node id,
 * process instance, lease epoch) and the book's version, one more at every write.
 */
export const bookFenceSchema = z.object({
  token: z.string().min(1),
  version: count,
});
export type BookFence = z.infer<typeof bookFenceSchema>;

/** `portfolio:{id}:book`: the trading state that moves with a portfolio from node to node. */
export const portfolioBookSchema = z.object({
  _v: version,
  portfolio_id: id,
  /** The node that wrote it last. */
  node_id: id,
  cash: z.number(),
  positions: z.record(z.string(), z.object({ quantity: z.number(), avg_price: z.number() })),
  /** Last price seen per symbol, for valuing positions. */
  last_prices: z.record(z.string(), z.number().positive()),
  /** The strategy's own memory (moving-average windows and the like). */
  strategy_state: z.record(z.string(), z.unknown()),
  processed_count: count,
  failed_count: count,
  updated_at: isoTime,
  /** Who wrote this version; absent on books written before fencing (version 0). */
  fence: bookFenceSchema.optional(),
  /** What was applied, per producer; absent before the first numbered event. */
  applied: z.object({ producers: z.record(id, appliedRangeSchema) }).optional(),
});
export type PortfolioBook = z.infer<typeof portfolioBookSchema>;

export const NOTIFICATION_LEVELS = ['info', 'warning', 'error', 'critical'] as const;
export type NotificationLevel = (typeof NOTIFICATION_LEVELS)[number];

/** A job of the `notifications` queue: one notification to deliver to every sink. */
export const notificationSchema = z.object({
  _v: version,
  id: z.string().min(1),
  /** What happened: `queue_full`, `queue_usage_high`, `node_lost`, `redis_unavailable`, … */
  kind: z.string().min(1).max(64),
  level: z.enum(NOTIFICATION_LEVELS),
  /** `firing` when raised, `resolved` when the condition cleared. */
  status: z.enum(['firing', 'resolved']),
  title: z.string().min(1),
  message: z.string(),
  details: z.record(z.string(), z.unknown()),
  /** What it is about; part of the dedupe key. */
  subject: z.object({ node_id: z.string().nullable(), portfolio_id: z.string().nullable() }),
  /** Who raised it. */
  source: z.object({ app: z.string().min(1), node_id: z.string().nullable() }),
  created_at: isoTime,
});
export type Notification = z.infer<typeof notificationSchema>;

/** An entry of `notifications:history`: a notification and how its delivery went. */
export const notificationRecordSchema = notificationSchema.extend({
  delivery: z.object({
    /** `silenced`: a silence matched it, and no sink was sent it. */
    status: z.enum(['delivered', 'partial', 'failed', 'silenced']),
    /** Sink name → `delivered` or the reason it failed. */
    sinks: z.record(z.string(), z.string()),
    attempts: count,
    finished_at: isoTime,
    /** The route that chose the sinks (`file:line`, or `default`), when routes are configured. */
    route: z.string().optional(),
    /** The silence that kept it from every sink (`status: silenced`). */
    silenced_by: z.string().optional(),
  }),
});
export type NotificationRecord = z.infer<typeof notificationRecordSchema>;

/** Names, or prefixes ending in `*`, a field of a notification is matched against. */
const matchValues = z.array(z.string().min(1).max(128)).min(1).max(64);

/**
 * An entry of `notify:silences`: while `starts_at <= now < ends_at`, a notification matching every
 * field given (any of its values) is recorded as silenced and sent to no sink.
 */
export const silenceSchema = z.object({
  _v: version,
  id: z.string().min(1).max(64),
  matchers: z
    .object({
      kind: matchValues.optional(),
      level: z.array(z.enum(NOTIFICATION_LEVELS)).min(1).max(4).optional(),
      node: matchValues.optional(),
      portfolio: matchValues.optional(),
    })
    .refine((m) => Object.keys(m).length > 0, {
      error: 'a silence needs at least one matcher',
    }),
  starts_at: isoTime,
  ends_at: isoTime,
  /** Who made it (the gateway key's name, `ginkgo-ctl:<user>`). */
  created_by: z.string().min(1).max(128),
  comment: z.string().max(1_000),
  /** Who ended it early, if anyone. */
  expired_by: z.string().min(1).max(128).optional(),
});
export type Silence = z.infer<typeof silenceSchema>;

export const CONTROL_ACTIONS = [
  'drain',
  'undrain',
  'migrate',
  'catalog_add',
  'catalog_remove',
] as const;
export type ControlAction = (typeof CONTROL_ACTIONS)[number];

/** An entry of `scheduler:control`: an operator's request to the scheduler. */
export const controlRequestSchema = z.object({
  _v: version,
  id: z.string().min(1).max(64),
  action: z.enum(CONTROL_ACTIONS),
  node_id: id.optional(),
  portfolio_id: id.optional(),
  /** migrate: where to. */
  target_node_id: id.optional(),
  /** catalog_add: the entry. */
  spec: z.unknown().optional(),
  requested_by: z.string().min(1),
  requested_at: isoTime,
});
export type ControlRequest = z.infer<typeof controlRequestSchema>;

/** An entry of `scheduler:control_results`: what became of a request. */
export const controlResultSchema = z.object({
  _v: version,
  id: z.string().min(1),
  ok: z.boolean(),
  /** Why it was refused, when it was. */
  reason: z.string().nullable(),
  /** The plan version whose write recorded this result (null from schedulers before it was set). */
  plan_version: count.nullable(),
  processed_at: isoTime,
});
export type ControlResult = z.infer<typeof controlResultSchema>;

/** The id of a halt or pause record: the request that set it (a UUID, or any 1-64 characters). */
const controlId = z.string().min(1).max(64);

/**
 * `{scheduler}:trading_halt`: the fleet-wide halt (the trading desk's kill switch), who set it and,
 * once lifted, who lifted it. A lift is a record, never a deleted key: a node that saw halt `id`
 * stays halted until it reads the lift of that very `id` (or a newer halt), so a Redis that comes
 * back empty, or a replica promoted without the write, cannot lift a halt by losing it.
 */
export const tradingHaltSchema = z.object({
  _v: version,
  /** The halt's id (the halting request's id); a lift keeps the id of the halt it lifts. */
  id: controlId,
  state: z.enum(['halted', 'lifted']),
  halted_at: isoTime,
  /** The name of the key (or `ginkgo-ctl:<user>`) that halted. */
  by: z.string().min(1).max(128),
  reason: z.string().max(500).nullable(),
  /** When, by whom and by which request it was lifted; null while halted. */
  lifted_at: isoTime.nullable(),
  lifted_by: z.string().min(1).max(128).nullable(),
  lift_request_id: controlId.nullable(),
});
export type TradingHalt = z.infer<typeof tradingHaltSchema>;

/**
 * An entry of `{scheduler}:paused_portfolios`: one portfolio an operator paused, and who; once
 * resumed, who resumed it (kept as a record, for the same reason as the halt's lift).
 */
export const portfolioPauseSchema = z.object({
  _v: version,
  /** The pause's id (the pausing request's id); a resume keeps the id of the pause it lifts. */
  id: controlId,
  state: z.enum(['paused', 'resumed']),
  portfolio_id: id,
  paused_at: isoTime,
  by: z.string().min(1).max(128),
  reason: z.string().max(500).nullable(),
  resumed_at: isoTime.nullable(),
  resumed_by: z.string().min(1).max(128).nullable(),
  resume_request_id: controlId.nullable(),
});
export type PortfolioPause = z.infer<typeof portfolioPauseSchema>;

export const AUDIT_OUTCOMES = [
  /** Queued for the scheduler (its answer follows as a second entry with the same request id). */
  'queued',
  /** Done (a halt, a pause) or accepted by the scheduler. */
  'accepted',
  /** Refused by the scheduler or the store, with the reason. */
  'refused',
  /** Refused at the gateway: the key lacks the scope (403), or the request was malformed (400). */
  'forbidden',
  'invalid',
] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** An entry of `{scheduler}:audit`: who asked for what, on what, and what became of it. */
export const auditEntrySchema = z.object({
  _v: version,
  at: isoTime,
  /** The key's name (`GATEWAY_API_KEYS` `name:scope:secret`), `ginkgo-ctl:<user>`, or `anonymous`. */
  actor: z.string().min(1).max(128),
  /** The program that wrote the entry: `api-gateway`, `ginkgo-ctl`, `livecore-scheduler`. */
  via: z.string().min(1).max(64),
  /** A control action (`drain`, `catalog_add`, …) or `pause`, `resume`, `halt`, `unhalt`. */
  action: z.string().min(1).max(64),
  target: z.object({
    node_id: z.string().max(128).nullable(),
    portfolio_id: z.string().max(128).nullable(),
    target_node_id: z.string().max(128).nullable(),
  }),
  outcome: z.enum(AUDIT_OUTCOMES),
  reason: z.string().max(500).nullable(),
  /** The control request's id when it went through `{scheduler}:control`. */
  request_id: z.string().max(64).nullable(),
  /** The client address the gateway saw (null from `ginkgo-ctl` and the scheduler). */
  address: z.string().max(64).nullable(),
});
export type AuditEntry = z.infer<typeof auditEntrySchema>;

/** Every payload schema by name, for the decoder and the README table. */
export const PAYLOAD_SCHEMAS = {
  heartbeat: heartbeatSchema,
  nodeInfo: nodeInfoSchema,
  portfolioState: portfolioStateSchema,
  portfolioSpec: portfolioSpecSchema,
  nodeRecord: nodeRecordSchema,
  assignment: assignmentSchema,
  nodeAssignment: nodeAssignmentSchema,
  planMeta: planMetaSchema,
  priceTick: priceTickSchema,
  portfolioBook: portfolioBookSchema,
  notification: notificationSchema,
  notificationRecord: notificationRecordSchema,
  silence: silenceSchema,
  controlRequest: controlRequestSchema,
  controlResult: controlResultSchema,
  tradingHalt: tradingHaltSchema,
  portfolioPause: portfolioPauseSchema,
  auditEntry: auditEntrySchema,
} as const;

export type PayloadName = keyof typeof PAYLOAD_SCHEMAS;
export type Payload<N extends PayloadName> = z.infer<(typeof PAYLOAD_SCHEMAS)[N]>;
