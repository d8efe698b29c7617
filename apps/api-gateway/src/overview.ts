import {
  QUEUE_LEVEL_RANK,
  QUEUE_THRESHOLDS,
  queueLevel,
  type NodeFleetStatus,
  type QueueLevel,
  type QueueThresholds,
  type TradingReading,
} from '@ginkgo-live/fleet';
import type { NotificationRecord, PortfolioPause, TradingHalt } from '@ginkgo-live/state-keys';
import type { NodeView, PortfolioView } from './fleet-reader.ts';

/**
 * The operations page's data: everything it shows, shaped here (pure, unit-tested) so the page
 * only renders. Node statuses and queue levels are the fleet read model's (`@ginkgo-live/fleet`),
 * and its thresholds travel with every overview so the page never spells them.
 */
export interface NodeRow {
  node_id: string;
  /** The fleet's one status: online, draining or lost. */
  status: NodeFleetStatus;
  heartbeat_age_ms: number | null;
  portfolio_count: number;
  capacity: number | null;
  queue_usage_max: number | null;
  queue_level: QueueLevel;
  events_per_second: number | null;
  cpu_percent: number | null;
  memory_rss_bytes: number | null;
  redis_failures: number | null;
  redis_healthy: boolean | null;
  error: string | null;
}

export interface PortfolioRow {
  portfolio_id: string;
  name: string | null;
  status: string;
  node_id: string | null;
  /** Why it has no node, when orphaned. */
  reason: string | null;
  queue_depth: number | null;
  queue_capacity: number | null;
  queue_usage: number | null;
  queue_level: QueueLevel;
  events_per_second: number | null;
  latency_p50_ms: number | null;
  latency_p99_ms: number | null;
  cash: number | null;
  total_value: number | null;
  last_error: string | null;
}

export interface NotificationRow {
  id: string;
  created_at: string;
  level: string;
  kind: string;
  status: 'firing' | 'resolved';
  title: string;
  message: string;
  subject: string | null;
  delivery: NotificationRecord['delivery']['status'];
  /** Sinks that failed, with their reasons. */
  delivery_problems: string[];
}

export interface FleetSummary {
  /** Nodes whose heartbeat is alive: online or draining (as `online_count` of `/api/nodes`). */
  nodes_online: number;
  nodes_total: number;
  nodes_draining: number;
  nodes_lost: number;
  portfolios_running: number;
  portfolios_total: number;
  portfolios_orphaned: number;
  events_per_second: number;
  queue_depth_total: number;
  queue_usage_max: number | null;
  notifications_last_hour: number;
  leader: string | null;
  plan_version: number | null;
}

/** The trading desk's controls, for the page's banner and paused rows. */
export interface TradingView {
  /** The fleet-wide halt (who, when, why), or null while the fleet trades. */
  halted: Pick<TradingHalt, 'halted_at' | 'by' | 'reason'> | null;
  /** Paused portfolios, by id. */
  paused: Pick<PortfolioPause, 'portfolio_id' | 'paused_at' | 'by' | 'reason'>[];
}

/** One overview: the fleet as read at `generated_at`. */
export interface FleetOverview {
  generated_at: string;
  trading: TradingView;
  /** The queue levels' thresholds, for the page's colours. */
  queue_thresholds: QueueThresholds;
  summary: FleetSummary;
  nodes: NodeRow[];
  portfolios: PortfolioRow[];
  notifications: NotificationRow[];
}

export interface OverviewInput {
  nodes: NodeView[];
  portfolios: PortfolioView[];
  plan: { version: number | null; leader: string | null };
  notifications: (NotificationRecord | { error: string; raw: string })[];
  /** The halt and pauses; none when not given. */
  trading?: TradingReading;
  now: Date;
  /** How many notifications the page lists. Default 20. */
  notificationLimit?: number;
}

const HOUR_MS = 3_600_000;

function nodeRow(node: NodeView, now: Date): NodeRow {
  // A lost node has no heartbeat key left: its age comes from when it was last heard of.
  const lastHeard = node.last_heartbeat === null ? Number.NaN : Date.parse(node.last_heartbeat);
  const heartbeatAge =
    node.heartbeat_age_ms ??
    (Number.isFinite(lastHeard) ? Math.max(0, now.getTime() - lastHeard) : null);
  // What a lost node last reported is no current number.
  const live = node.status !== 'lost';
  return {
    node_id: node.node_id,
    status: node.status,
    heartbeat_age_ms: heartbeatAge,
    portfolio_count: node.portfolio_count,
    capacity: node.capacity,
    queue_usage_max: live ? node.queue_usage_max : null,
    queue_level: live ? queueLevel(node.queue_usage_max) : 'unknown',
    events_per_second: live ? node.events_per_second : null,
    cpu_percent: live ? node.cpu_percent : null,
    memory_rss_bytes: live ? node.memory_rss_bytes : null,
    redis_failures: node.redis?.total_failures ?? null,
    redis_healthy: node.redis?.healthy ?? null,
    error: node.error ?? null,
  };
}

function portfolioRow(p: PortfolioView): PortfolioRow {
  const s = p.state;
  return {
    portfolio_id: p.portfolio_id,
    name: p.name,
    status: p.status,
    node_id: p.node_id ?? p.assignment.node_id,
    reason: p.assignment.status === 'orphaned' ? p.assignment.reason : null,
    queue_depth: s?.queue_depth ?? null,
    queue_capacity: s?.queue_capacity ?? null,
    queue_usage: s?.queue_usage ?? null,
    queue_level: queueLevel(s?.queue_usage),
    events_per_second: s?.events_per_second ?? null,
    latency_p50_ms: s?.latency_ms?.p50 ?? null,
    latency_p99_ms: s?.latency_ms?.p99 ?? null,
    cash: s?.cash ?? null,
    total_value: s?.total_value ?? null,
    last_error: s?.last_error ?? p.error ?? null,
  };
}

/** What `/metrics` and `/api/metrics` show of a portfolio's state besides its row. */
export interface PortfolioReport {
  /** The node that wrote the state (the row's `node_id` is where the plan puts it). */
  node_id: string;
  processed_count: number;
  failed_count: number;
  refused_count: number;
}

/**
 * One portfolio as the fleet view keeps it between refreshes: the page's row and the few counters
 * the metrics add, not its raw payloads nor its whole view (25,000 of them at 5,000 nodes).
 */
export interface PortfolioItem {
  readonly row: PortfolioRow;
  /** Null when it has no readable state. */
  readonly report: PortfolioReport | null;
}

/** A portfolio's item from its view. Pure. */
function portfolioItem(p: PortfolioView): PortfolioItem {
  const s = p.state;
  return {
    row: portfolioRow(p),
    report:
      s === null
        ? null
        : {
            node_id: s.node_id,
            processed_count: s.processed_count,
            failed_count: s.failed_count,
            refused_count: s.refused_count,
          },
  };
}

function notificationRow(n: NotificationRecord): NotificationRow {
  const subject = n.subject.portfolio_id ?? n.subject.node_id;
  return {
    id: n.id,
    created_at: n.created_at,
    level: n.level,
    kind: n.kind,
    status: n.status,
    title: n.title,
    message: n.message,
    subject,
    delivery: n.delivery.status,
    delivery_problems: Object.entries(n.delivery.sinks)
      .filter(([, outcome]) => outcome !== 'delivered')
      .map(([sink, reason]) => `${sink}: ${reason}`),
  };
}

/**
 * The order of `localeCompare`, from one collator: `localeCompare` sets one up per call, which made
 * sorting 25,000 portfolios a large part of each overview.
 */
const byId = new Intl.Collator();

/** The page's order of nodes: lost first, then by id. */
export function compareNodeRows(a: NodeRow, b: NodeRow): number {
  return (
    Number(a.status !== 'lost') - Number(b.status !== 'lost') || byId.compare(a.node_id, b.node_id)
  );
}

/** The page's order of portfolios: orphaned first, then the fullest queue level, then by id. */
export function comparePortfolioRows(a: PortfolioRow, b: PortfolioRow): number {
  return (
    Number(a.status !== 'orphaned') - Number(b.status !== 'orphaned') ||
    QUEUE_LEVEL_RANK[a.queue_level] - QUEUE_LEVEL_RANK[b.queue_level] ||
    byId.compare(a.portfolio_id, b.portfolio_id)
  );
}

export { nodeRow, portfolioItem, portfolioRow };

/** Everything of an overview but its node and portfolio rows. */
export type OverviewHead = Omit<FleetOverview, 'nodes' | 'portfolios'>;

/**
 * The summary, notifications and the rest of an overview, from its rows (in any order). Pure.
 */
export function overviewHead(
  rows: { nodes: Iterable<NodeRow>; portfolios: Iterable<PortfolioRow> },
  input: Omit<OverviewInput, 'nodes' | 'portfolios'>,
): OverviewHead {
  const records = input.notifications.filter((n): n is NotificationRecord => !('error' in n));
  const since = input.now.getTime() - HOUR_MS;
  let nodesTotal = 0;
  let online = 0;
  let draining = 0;
  let events = 0;
  for (const n of rows.nodes) {
    nodesTotal += 1;
    if (n.status === 'draining') draining += 1;
    if (n.status === 'lost') continue;
    online += 1;
    events += n.events_per_second ?? 0;
  }
  let portfoliosTotal = 0;
  let running = 0;
  let orphaned = 0;
  let depth = 0;
  let usageMax: number | null = null;
  for (const p of rows.portfolios) {
    portfoliosTotal += 1;
    if (p.status === 'running') running += 1;
    if (p.status === 'orphaned') orphaned += 1;
    depth += p.queue_depth ?? 0;
    if (p.queue_usage !== null && (usageMax === null || p.queue_usage > usageMax))
      usageMax = p.queue_usage;
  }
  return {
    generated_at: input.now.toISOString(),
    trading: tradingView(input.trading),
    queue_thresholds: { ...QUEUE_THRESHOLDS },
    summary: {
      nodes_online: online,
      nodes_total: nodesTotal,
      nodes_draining: draining,
      nodes_lost: nodesTotal - online,
      portfolios_running: running,
      portfolios_total: portfoliosTotal,
      portfolios_orphaned: orphaned,
      events_per_second: round(events),
      queue_depth_total: depth,
      queue_usage_max: usageMax,
      notifications_last_hour: records.filter((n) => Date.parse(n.created_at) >= since).length,
      leader: input.plan.leader,
      plan_version: input.plan.version,
    },
    notifications: records.slice(0, input.notificationLimit ?? 20).map(notificationRow),
  };
}

/** Shapes one overview from what the fleet reader returned. Pure. */
export function buildOverview(input: OverviewInput): FleetOverview {
  const nodes = input.nodes.map((node) => nodeRow(node, input.now)).sort(compareNodeRows);
  const portfolios = input.portfolios.map(portfolioRow).sort(comparePortfolioRows);
  const { generated_at, trading, queue_thresholds, summary, notifications } = overviewHead(
    { nodes, portfolios },
    input,
  );
  return { generated_at, trading, queue_thresholds, summary, nodes, portfolios, notifications };
}

/** The halt and pauses without their payload versions. */
export function tradingView(reading: TradingReading | undefined): TradingView {
  if (reading === undefined) return { halted: null, paused: [] };
  const { halted, paused } = reading;
  return {
    halted:
      halted === null
        ? null
        : { halted_at: halted.halted_at, by: halted.by, reason: halted.reason },
    paused: paused.map(({ portfolio_id, paused_at, by, reason }) => ({
      portfolio_id,
      paused_at,
      by,
      reason,
    })),
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** One sample of the charts. */
export interface HistoryPoint {
  /** Epoch ms. */
  t: number;
  queue_depth_total: number;
  queue_usage_max: number | null;
  events_per_second: number;
}

/**
 * The charts' last `windowMs` (default 10 minutes), kept in the gateway's memory at one point per
 * `stepMs` (default 5 s): a restarted gateway starts a new history. A sample within the current
 * step replaces that step's point, so a fast refresh does not crowd the window.
 */
export class OverviewHistory {
  private readonly points: HistoryPoint[] = [];

  constructor(
    private readonly windowMs = 600_000,
    private readonly stepMs = 5_000,
  ) {}

  record(summary: FleetSummary, now: number): void {
    const point: HistoryPoint = {
      t: now,
      queue_depth_total: summary.queue_depth_total,
      queue_usage_max: summary.queue_usage_max,
      events_per_second: summary.events_per_second,
    };
    const last = this.points.at(-1);
    if (last !== undefined && Math.floor(last.t / this.stepMs) === Math.floor(now / this.stepMs))
      this.points[this.points.length - 1] = point;
    else this.points.push(point);
    while ((this.points[0]?.t ?? now) < now - this.windowMs) this.points.shift();
  }

  series(): HistoryPoint[] {
    return [...this.points];
  }
}
