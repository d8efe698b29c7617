import { describe, expect, it } from 'vitest';
import type { NodeView, PortfolioView } from './fleet-views.ts';
import { buildOverview, portfolioItem, type PortfolioItem } from './overview.ts';
import { OverviewRows, type RowDelta } from './overview-rows.ts';

const NOW = new Date('2026-12-02T08:00:00.000Z');

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
    memory_rss_bytes: 1_000,
    redis: null,
    ...overrides,
  };
}

function portfolio(id: string, usage: number, status = 'running'): PortfolioView {
  return {
    portfolio_id: id,
    name: null,
    symbols: [],
    status,
    node_id: 'a',
    assignment: { status: 'assigned', node_id: 'a', reason: null },
    state: {
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
      latency_ms: { p50: 1, p99: 2 },
      cash: 1_000,
      position_count: 0,
      total_value: 1_000,
      last_error: null,
      updated_at: NOW.toISOString(),
    },
  };
}

/** The fleet view hands out one item per portfolio view it built: the same view, the same item. */
const items = new WeakMap<PortfolioView, PortfolioItem>();
function update(
  rows: OverviewRows,
  input: { nodes: NodeView[]; portfolios: PortfolioView[]; now: Date },
): Promise<RowDelta> {
  return rows.update({
    ...input,
    portfolios: input.portfolios.map((view) => {
      const item = items.get(view) ?? portfolioItem(view);
      items.set(view, item);
      return item;
    }),
  });
}

describe('OverviewRows', () => {
  it('says which rows were added, changed and removed; a heartbeat age alone is no change', async () => {
    const rows = new OverviewRows();
    const p1 = portfolio('p1', 0.1);
    const p2 = portfolio('p2', 0.2);
    const first = await update(rows, {
      nodes: [node('a'), node('b')],
      portfolios: [p1, p2],
      now: NOW,
    });
    expect(first.nodes.set.map((n) => n.node_id)).toEqual(['a', 'b']);
    expect(first.portfolios.set.map((p) => p.portfolio_id)).toEqual(['p1', 'p2']);

    // The same fleet a second later: new node views whose age grew, the same portfolio views.
    const later = new Date(NOW.getTime() + 1_000);
    const same = await update(rows, {
      nodes: [node('a', { heartbeat_age_ms: 1_200 }), node('b', { heartbeat_age_ms: 1_200 })],
      portfolios: [p1, p2],
      now: later,
    });
    expect(same).toEqual({ nodes: { set: [], remove: [] }, portfolios: { set: [], remove: [] } });

    // p2's state changed (a new view, another queue), p1 is read again unchanged (a new view with
    // the same content), node b is gone, c is new, a's numbers moved.
    const next = await update(rows, {
      nodes: [node('a', { cpu_percent: 50 }), node('c')],
      portfolios: [portfolio('p1', 0.1), portfolio('p2', 0.99), portfolio('p3', 0.5)],
      now: later,
    });
    expect(next.nodes.set.map((n) => [n.node_id, n.cpu_percent])).toEqual([
      ['a', 50],
      ['c', 3],
    ]);
    expect(next.nodes.remove).toEqual(['b']);
    expect(next.portfolios.set.map((p) => [p.portfolio_id, p.queue_level])).toEqual([
      ['p2', 'critical'],
      ['p3', 'ok'],
    ]);
    expect(next.portfolios.remove).toEqual([]);
    const gone = await update(rows, {
      nodes: [node('a', { cpu_percent: 50 }), node('c')],
      portfolios: [portfolio('p3', 0.5)],
      now: later,
    });
    expect(gone.portfolios.remove).toEqual(['p1', 'p2']);
  });

  it('joins the kept rows into the order and shape of a whole overview', async () => {
    const rows = new OverviewRows();
    const nodes = [node('b'), node('a', { status: 'lost', is_online: false }), node('c')];
    const portfolios = [
      portfolio('p1', 0.1),
      portfolio('p2', 0.99),
      portfolio('p0', 0.3, 'orphaned'),
      portfolio('p3', 0.75),
    ];
    await update(rows, { nodes, portfolios, now: NOW });
    // A portfolio's level moves: the order is made again.
    await update(rows, {
      nodes,
      portfolios: [...portfolios.slice(1), portfolio('p1', 1)],
      now: NOW,
    });
    const whole = buildOverview({
      nodes,
      portfolios: [...portfolios.slice(1), portfolio('p1', 1)],
      plan: { version: 1, leader: null },
      notifications: [],
      now: NOW,
    });
    expect(rows.sortedNodes()).toEqual(whole.nodes);
    expect(JSON.parse(rows.portfoliosJson())).toEqual(whole.portfolios);
    expect(whole.portfolios.map((p) => p.portfolio_id)).toEqual(['p0', 'p1', 'p2', 'p3']);
  });
});
