import { describe, expect, it } from 'vitest';
import { MetricsRegistry } from '@ginkgo-live/runtime';
import { fleetPortfolioState } from '@ginkgo-live/testing';
import type { NodeMetrics } from './execution-node.ts';
import { LatencyWindow } from './latency-window.ts';
import { registerNodeMetrics } from './metrics.ts';

const NOW = '2026-01-01T00:00:00.000Z';

function snapshot(): NodeMetrics {
  return {
    node_id: 'n1',
    status: 'running',
    uptime_seconds: 12,
    portfolio_count: 2,
    capacity: 5,
    events_per_second: 16,
    queue_usage_max: 0.5,
    cpu_percent: 3.5,
    memory_rss_bytes: 1_000_000,
    heap_used_bytes: 500_000,
    redis: { healthy: false, consecutive_failures: 2, total_failures: 7, last_success_at: null },
    portfolios: [
      fleetPortfolioState('p1', 'n1', NOW),
      {
        ...fleetPortfolioState('p2', 'n1', NOW),
        queue_depth: 500,
        queue_usage: 0.5,
        refused_count: 3,
      },
    ],
    latency: new Map([['p1', p1Latency.histogram()]]),
  };
}

// p1's events: 0.5 ms, 3 ms twice, 20 s (over the last bound: only in +Inf).
const p1Latency = new LatencyWindow();
for (const ms of [0.5, 3, 3, 20_000]) p1Latency.add(ms);

describe('the node metrics', () => {
  it('serves every name, label and value the node has always served, from one snapshot per scrape', async () => {
    const registry = new MetricsRegistry({ prefix: 'ginkgo_node_' });
    let snapshots = 0;
    registerNodeMetrics(registry, () => {
      snapshots += 1;
      return snapshot();
    });
    const text = await registry.metrics();
    const own = text
      .split('\n')
      .filter(
        (line) => !/^(# (HELP|TYPE) )?ginkgo_node_(process|nodejs)_/.test(line) && line !== '',
      );
    expect(own).toEqual(EXPECTED);
    expect(snapshots).toBe(1);
    await registry.metrics();
    expect(snapshots).toBe(2);
  });
});

// The text the node served before its metrics moved to the runtime's registry (same names, help,
// types, labels and values for this snapshot).
const EXPECTED = [
  '# HELP ginkgo_node_up Always 1 while the node process serves metrics',
  '# TYPE ginkgo_node_up gauge',
  'ginkgo_node_up 1',
  '# HELP ginkgo_node_portfolios Portfolios running on this node',
  '# TYPE ginkgo_node_portfolios gauge',
  'ginkgo_node_portfolios 2',
  '# HELP ginkgo_node_capacity Portfolios this node may run',
  '# TYPE ginkgo_node_capacity gauge',
  'ginkgo_node_capacity 5',
  '# HELP ginkgo_node_events_per_second Events processed per second, all portfolios',
  '# TYPE ginkgo_node_events_per_second gauge',
  'ginkgo_node_events_per_second 16',
  '# HELP ginkgo_node_queue_usage_max_ratio Usage of the fullest portfolio queue',
  '# TYPE ginkgo_node_queue_usage_max_ratio gauge',
  'ginkgo_node_queue_usage_max_ratio 0.5',
  '# HELP ginkgo_node_cpu_percent CPU of the node process, % of one core',
  '# TYPE ginkgo_node_cpu_percent gauge',
  'ginkgo_node_cpu_percent 3.5',
  '# HELP ginkgo_node_memory_rss_bytes Resident memory of the node process',
  '# TYPE ginkgo_node_memory_rss_bytes gauge',
  'ginkgo_node_memory_rss_bytes 1000000',
  '# HELP ginkgo_node_redis_healthy 1 when the last heartbeat reached Redis',
  '# TYPE ginkgo_node_redis_healthy gauge',
  'ginkgo_node_redis_healthy 0',
  '# HELP ginkgo_node_heartbeat_consecutive_failures Heartbeat attempts failed since the last success',
  '# TYPE ginkgo_node_heartbeat_consecutive_failures gauge',
  'ginkgo_node_heartbeat_consecutive_failures 2',
  '# HELP ginkgo_node_heartbeat_failures_total Heartbeat attempts that failed',
  '# TYPE ginkgo_node_heartbeat_failures_total counter',
  'ginkgo_node_heartbeat_failures_total 7',
  '# HELP ginkgo_portfolio_queue_depth Events waiting in the portfolio queue',
  '# TYPE ginkgo_portfolio_queue_depth gauge',
  'ginkgo_portfolio_queue_depth{portfolio_id="p1"} 20',
  'ginkgo_portfolio_queue_depth{portfolio_id="p2"} 500',
  '# HELP ginkgo_portfolio_queue_capacity Capacity of the portfolio queue',
  '# TYPE ginkgo_portfolio_queue_capacity gauge',
  'ginkgo_portfolio_queue_capacity{portfolio_id="p1"} 1000',
  'ginkgo_portfolio_queue_capacity{portfolio_id="p2"} 1000',
  '# HELP ginkgo_portfolio_queue_usage_ratio Queue depth / capacity',
  '# TYPE ginkgo_portfolio_queue_usage_ratio gauge',
  'ginkgo_portfolio_queue_usage_ratio{portfolio_id="p1"} 0.02',
  'ginkgo_portfolio_queue_usage_ratio{portfolio_id="p2"} 0.5',
  '# HELP ginkgo_portfolio_events_processed_total Events processed',
  '# TYPE ginkgo_portfolio_events_processed_total counter',
  'ginkgo_portfolio_events_processed_total{portfolio_id="p1"} 12345',
  'ginkgo_portfolio_events_processed_total{portfolio_id="p2"} 12345',
  '# HELP ginkgo_portfolio_events_failed_total Events failed (malformed or strategy error)',
  '# TYPE ginkgo_portfolio_events_failed_total counter',
  'ginkgo_portfolio_events_failed_total{portfolio_id="p1"} 0',
  'ginkgo_portfolio_events_failed_total{portfolio_id="p2"} 0',
  '# HELP ginkgo_portfolio_events_refused_total Events refused by the full queue',
  '# TYPE ginkgo_portfolio_events_refused_total counter',
  'ginkgo_portfolio_events_refused_total{portfolio_id="p1"} 0',
  'ginkgo_portfolio_events_refused_total{portfolio_id="p2"} 3',
  '# HELP ginkgo_portfolio_latency_seconds Enqueue-to-processed latency of every event since the portfolio started on this node',
  '# TYPE ginkgo_portfolio_latency_seconds histogram',
  'ginkgo_portfolio_latency_seconds_bucket{le="0.001",portfolio_id="p1"} 1',
  'ginkgo_portfolio_latency_seconds_bucket{le="0.0025",portfolio_id="p1"} 1',
  'ginkgo_portfolio_latency_seconds_bucket{le="0.005",portfolio_id="p1"} 3',
  'ginkgo_portfolio_latency_seconds_bucket{le="0.01",portfolio_id="p1"} 3',
  'ginkgo_portfolio_latency_seconds_bucket{le="0.025",portfolio_id="p1"} 3',
  'ginkgo_portfolio_latency_seconds_bucket{le="0.05",portfolio_id="p1"} 3',
  'ginkgo_portfolio_latency_seconds_bucket{le="0.1",portfolio_id="p1"} 3',
  'ginkgo_portfolio_latency_seconds_bucket{le="0.25",portfolio_id="p1"} 3',
  'ginkgo_portfolio_latency_seconds_bucket{le="0.5",portfolio_id="p1"} 3',
  'ginkgo_portfolio_latency_seconds_bucket{le="1",portfolio_id="p1"} 3',
  'ginkgo_portfolio_latency_seconds_bucket{le="2.5",portfolio_id="p1"} 3',
  'ginkgo_portfolio_latency_seconds_bucket{le="5",portfolio_id="p1"} 3',
  'ginkgo_portfolio_latency_seconds_bucket{le="10",portfolio_id="p1"} 3',
  'ginkgo_portfolio_latency_seconds_bucket{le="+Inf",portfolio_id="p1"} 4',
  'ginkgo_portfolio_latency_seconds_sum{portfolio_id="p1"} 20.0065',
  'ginkgo_portfolio_latency_seconds_count{portfolio_id="p1"} 4',
  '# HELP ginkgo_portfolio_latency_p50_seconds Enqueue-to-processed latency, median of the recent window',
  '# TYPE ginkgo_portfolio_latency_p50_seconds gauge',
  'ginkgo_portfolio_latency_p50_seconds{portfolio_id="p1"} 0.0004',
  'ginkgo_portfolio_latency_p50_seconds{portfolio_id="p2"} 0.0004',
  '# HELP ginkgo_portfolio_latency_p99_seconds Enqueue-to-processed latency, 99th percentile of the recent window',
  '# TYPE ginkgo_portfolio_latency_p99_seconds gauge',
  'ginkgo_portfolio_latency_p99_seconds{portfolio_id="p1"} 0.0021000000000000003',
  'ginkgo_portfolio_latency_p99_seconds{portfolio_id="p2"} 0.0021000000000000003',
  '# HELP ginkgo_portfolio_cash Cash of the portfolio',
  '# TYPE ginkgo_portfolio_cash gauge',
  'ginkgo_portfolio_cash{portfolio_id="p1"} 990',
  'ginkgo_portfolio_cash{portfolio_id="p2"} 990',
  '# HELP ginkgo_portfolio_total_value Cash plus positions at their last price',
  '# TYPE ginkgo_portfolio_total_value gauge',
  'ginkgo_portfolio_total_value{portfolio_id="p1"} 1004.5',
  'ginkgo_portfolio_total_value{portfolio_id="p2"} 1004.5',
  '# HELP ginkgo_portfolio_positions Open positions',
  '# TYPE ginkgo_portfolio_positions gauge',
  'ginkgo_portfolio_positions{portfolio_id="p1"} 1',
  'ginkgo_portfolio_positions{portfolio_id="p2"} 1',
];
