import { describe, expect, it } from 'vitest';
import type { NotificationRecord } from '@ginkgo-live/state-keys';
import type { NodeView, PortfolioView } from './fleet-reader.ts';
import { QUEUE_THRESHOLDS } from '@ginkgo-live/fleet';
import { buildOverview, OverviewHistory, type FleetSummary } from './overview.ts';

const NOW = new Date('2026-11-28T10:00:00.000Z');

function node(id: string, overrides: Partial<NodeView> = {}): NodeView {
  return {
    node_id: id,
    host: 'h',
    status: 'online',
    is_online: true,
    last_heartbeat: NOW.toISOString(),
    heartbeat_age_ms: 200,
    portfolio_count: 1,
    portfolio_ids: ['p'],
    capacity: 5,
    queue_usage_max: 0.1,
    events_per_second: 10,
    uptime_seconds: 60,
    cpu_percent: 3,
    memory_rss_bytes: 100 * 1_048_576,
    redis: { healthy: true, consecutive_failures: 0, total_failures: 2, last_success_at: null },
    ...overrides,
  };
}

function portfolio(
  id: string,
  usage: number | null,
  overrides: Partial<PortfolioView> = {},
): PortfolioView {
  return {
    portfolio_id: id,
    name: null,
    symbols: ['BTCUSDT'],
    status: 'running',
    node_id: 'a',
    assignment: { status: 'assigned', node_id: 'a', reason: null },
    state:
      usage === null
        ? null
        : {
            portfolio_id: id,
            node_id: 'a',
            status: 'running',
            queue_depth: Math.round(usage * 100),
            queue_capacity: 100,
            queue_usage: usage,
            processed_count: 5,
            failed_count: 0,
            refused_count: 0,
            events_per_second: 2,
            last_event_time: null,
            latency_ms: { p50: 1.5, p99: 9 },
            cash: 1_000,
            position_count: 0,
            total_value: 1_200,
            last_error: null,
            updated_at: NOW.toISOString(),
          },
    ...overrides,
  };
}

function notification(
  id: string,
  minutesAgo: number,
  overrides: Partial<NotificationRecord> = {},
): NotificationRecord {
  return {
    _v: 1,
    id,
    kind: 'queue_full',
    level: 'critical',
    status: 'firing',
    title: 'Queue full',
    message: 'p1 is full',
    details: {},
    subject: { node_id: 'a', portfolio_id: 'p1' },
    source: { app: 'execution-node', node_id: 'a' },
    created_at: new Date(NOW.getTime() - minutesAgo * 60_000).toISOString(),
    delivery: {
      status: 'delivered',
      sinks: { webhook: 'delivered' },
      attempts: 1,
      finished_at: NOW.toISOString(),
    },
    ...overrides,
  };
}

const plan = { version: 12, leader: 'scheduler-1' };

describe('queue levels', () => {
  it("are the fleet read model's: its thresholds travel with the overview, each row's level follows them", () => {
    const overview = buildOverview({
      nodes: [],
      portfolios: [0.69, 0.7, 0.95, 1, null].map((u, i) => portfolio(`p${i}`, u)),
      plan,
      notifications: [],
      now: NOW,
    });
    expect(overview.queue_thresholds).toEqual({ warning: 0.7, critical: 0.95, full: 1 });
    expect(overview.queue_thresholds).toEqual(QUEUE_THRESHOLDS);
    expect(overview.portfolios.map((p) => [p.portfolio_id, p.queue_level])).toEqual([
      ['p3', 'full'],
      ['p2', 'critical'],
      ['p1', 'warning'],
      ['p0', 'ok'],
      ['p4', 'unknown'],
    ]);
  });
});

describe('buildOverview', () => {
  it('summarises the fleet: online of total, running and orphaned, events/s of live nodes only', () => {
    const overview = buildOverview({
      nodes: [
        node('a'),
        node('b', { status: 'draining', events_per_second: 5 }),
        node('c', { is_online: false, status: 'lost', events_per_second: 99 }),
      ],
      portfolios: [
        portfolio('p1', 0.5),
        portfolio('p2', 0.96),
        portfolio('p3', null, {
          status: 'orphaned',
          node_id: null,
          assignment: { status: 'orphaned', node_id: null, reason: 'no capacity' },
        }),
      ],
      plan,
      notifications: [notification('n1', 5), notification('n2', 90)],
      now: NOW,
    });
    expect(overview.summary).toEqual({
      nodes_online: 2,
      nodes_total: 3,
      nodes_draining: 1,
      nodes_lost: 1,
      portfolios_running: 2,
      portfolios_total: 3,
      portfolios_orphaned: 1,
      events_per_second: 15,
      queue_depth_total: 50 + 96,
      queue_usage_max: 0.96,
      notifications_last_hour: 1,
      leader: 'scheduler-1',
      plan_version: 12,
    } satisfies FleetSummary);
  });

  it('shows a lost node as lost with its heartbeat age, and no stale CPU, memory or queue numbers', () => {
    const overview = buildOverview({
      nodes: [
        node('z'),
        node('a', { is_online: false, status: 'lost', heartbeat_age_ms: 4_200 }),
        node('m', {
          is_online: false,
          status: 'lost',
          heartbeat_age_ms: null,
          last_heartbeat: new Date(NOW.getTime() - 90_000).toISOString(),
        }),
      ],
      portfolios: [],
      plan,
      notifications: [],
      now: NOW,
    });
    // Trouble first: the lost node leads although its id sorts later.
    expect(overview.nodes.map((n) => [n.node_id, n.status])).toEqual([
      ['a', 'lost'],
      ['m', 'lost'],
      ['z', 'online'],
    ]);
    // Its heartbeat key gone, the age comes from when the node was last heard of.
    expect(overview.nodes[1]?.heartbeat_age_ms).toBe(90_000);
    expect(overview.nodes[0]).toMatchObject({
      heartbeat_age_ms: 4_200,
      cpu_percent: null,
      memory_rss_bytes: null,
      queue_usage_max: null,
      queue_level: 'unknown',
      redis_failures: 2,
    });
  });

  it('lists orphans first, then the fullest queues, each row with its level and numbers', () => {
    const overview = buildOverview({
      nodes: [node('a')],
      portfolios: [
        portfolio('calm', 0.1),
        portfolio('full', 1),
        portfolio('warm', 0.8),
        portfolio('lonely', null, {
          status: 'orphaned',
          node_id: null,
          assignment: { status: 'orphaned', node_id: null, reason: 'no node has room' },
        }),
      ],
      plan,
      notifications: [],
      now: NOW,
    });
    expect(overview.portfolios.map((p) => [p.portfolio_id, p.queue_level])).toEqual([
      ['lonely', 'unknown'],
      ['full', 'full'],
      ['warm', 'warning'],
      ['calm', 'ok'],
    ]);
    expect(overview.portfolios[0]).toMatchObject({ node_id: null, reason: 'no node has room' });
    expect(overview.portfolios[1]).toMatchObject({
      queue_depth: 100,
      queue_capacity: 100,
      latency_p50_ms: 1.5,
      latency_p99_ms: 9,
      cash: 1_000,
      total_value: 1_200,
      events_per_second: 2,
    });
  });

  it('keeps the newest notifications (the history is newest first), with failed deliveries spelled out', () => {
    const many = Array.from({ length: 30 }, (_, i) => notification(`n${i}`, i));
    many[0] = notification('n0', 0, {
      delivery: {
        status: 'partial',
        sinks: { webhook: 'delivered', slack: 'HTTP 500' },
        attempts: 6,
        finished_at: NOW.toISOString(),
      },
    });
    const overview = buildOverview({
      nodes: [],
      portfolios: [],
      plan,
      notifications: [{ error: 'malformed', raw: '{' }, ...many],
      now: NOW,
    });
    expect(overview.notifications).toHaveLength(20);
    expect(overview.notifications[0]).toMatchObject({
      id: 'n0',
      subject: 'p1',
      delivery: 'partial',
      delivery_problems: ['slack: HTTP 500'],
    });
    expect(overview.notifications[19]?.id).toBe('n19');
  });
});

describe('OverviewHistory', () => {
  const summary = (depth: number): FleetSummary => ({
    nodes_online: 1,
    nodes_total: 1,
    nodes_draining: 0,
    nodes_lost: 0,
    portfolios_running: 1,
    portfolios_total: 1,
    portfolios_orphaned: 0,
    events_per_second: depth / 10,
    queue_depth_total: depth,
    queue_usage_max: depth / 100,
    notifications_last_hour: 0,
    leader: null,
    plan_version: null,
  });

  it('keeps one point per step and only the window', () => {
    const history = new OverviewHistory(60_000, 5_000);
    const t0 = 1_000_000_000_000;
    for (let s = 0; s <= 120; s++) history.record(summary(s), t0 + s * 1_000);
    const series = history.series();
    // 121 samples a second apart → one point per 5 s step, the last 60 s of them.
    expect(series.length).toBeLessThanOrEqual(13);
    expect(series.length).toBeGreaterThanOrEqual(12);
    expect(series.at(-1)).toMatchObject({ t: t0 + 120_000, queue_depth_total: 120 });
    expect(series[0]?.t).toBeGreaterThanOrEqual(t0 + 60_000);
    const steps = series.map((p) => Math.floor(p.t / 5_000));
    expect(new Set(steps).size).toBe(steps.length);
  });
});
