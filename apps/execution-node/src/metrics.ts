import type { MetricsRegistry } from '@ginkgo-live/runtime';
import type { NodeMetrics } from './execution-node.ts';
import { LATENCY_BUCKETS_SECONDS } from './latency-window.ts';

type PortfolioMetrics = NodeMetrics['portfolios'][number];

/**
 * The node's Prometheus metrics on the app's registry. Every value is read from `collect()` (the
 * node's `collectMetrics()` snapshot, taken once per scrape), so the endpoint and
 * `execution_node:{id}:info` report the same numbers. Names follow Prometheus conventions: units
 * in names, `_total` counters.
 */
export function registerNodeMetrics(registry: MetricsRegistry, collect: () => NodeMetrics): void {
  const current = registry.perScrape(collect);
  const node = (name: string, help: string, read: (m: NodeMetrics) => number): void => {
    registry.gauge({ name, help, value: () => read(current()) });
  };
  node('ginkgo_node_up', 'Always 1 while the node process serves metrics', () => 1);
  node('ginkgo_node_portfolios', 'Portfolios running on this node', (m) => m.portfolio_count);
  node('ginkgo_node_capacity', 'Portfolios this node may run', (m) => m.capacity);
  node(
    'ginkgo_node_events_per_second',
    'Events processed per second, all portfolios',
    (m) => m.events_per_second,
  );
  node(
    'ginkgo_node_queue_usage_max_ratio',
    'Usage of the fullest portfolio queue',
    (m) => m.queue_usage_max,
  );
  node('ginkgo_node_cpu_percent', 'CPU of the node process, % of one core', (m) => m.cpu_percent);
  node(
    'ginkgo_node_memory_rss_bytes',
    'Resident memory of the node process',
    (m) => m.memory_rss_bytes,
  );
  node('ginkgo_node_redis_healthy', '1 when the last heartbeat reached Redis', (m) =>
    m.redis.healthy ? 1 : 0,
  );
  node(
    'ginkgo_node_heartbeat_consecutive_failures',
    'Heartbeat attempts failed since the last success',
    (m) => m.redis.consecutive_failures,
  );
  registry.counter({
    name: 'ginkgo_node_heartbeat_failures_total',
    help: 'Heartbeat attempts that failed',
    value: () => current().redis.total_failures,
  });

  const perPortfolio = (
    name: string,
    help: string,
    read: (p: PortfolioMetrics) => number,
    kind: 'gauge' | 'counter' = 'gauge',
  ): void => {
    registry[kind]({
      name,
      help,
      labelNames: ['portfolio_id'],
      samples: () =>
        current().portfolios.map((p) => ({
          labels: { portfolio_id: p.portfolio_id },
          value: read(p),
        })),
    });
  };
  perPortfolio(
    'ginkgo_portfolio_queue_depth',
    'Events waiting in the portfolio queue',
    (p) => p.queue_depth,
  );
  perPortfolio(
    'ginkgo_portfolio_queue_capacity',
    'Capacity of the portfolio queue',
    (p) => p.queue_capacity,
  );
  perPortfolio(
    'ginkgo_portfolio_queue_usage_ratio',
    'Queue depth / capacity',
    (p) => p.queue_usage,
  );
  perPortfolio(
    'ginkgo_portfolio_events_processed_total',
    'Events processed',
    (p) => p.processed_count,
    'counter',
  );
  perPortfolio(
    'ginkgo_portfolio_events_failed_total',
    'Events failed (malformed or strategy error)',
    (p) => p.failed_count,
    'counter',
  );
  perPortfolio(
    'ginkgo_portfolio_events_refused_total',
    'Events refused by the full queue',
    (p) => p.refused_count,
    'counter',
  );
  registry.histogram({
    name: 'ginkgo_portfolio_latency_seconds',
    help: 'Enqueue-to-processed latency of every event since the portfolio started on this node',
    labelNames: ['portfolio_id'],
    buckets: LATENCY_BUCKETS_SECONDS,
    samples: () =>
      [...current().latency].map(([portfolio_id, h]) => ({
        labels: { portfolio_id },
        buckets: h.buckets,
        count: h.count,
        sum: h.sumSeconds,
      })),
  });
  perPortfolio(
    'ginkgo_portfolio_latency_p50_seconds',
    'Enqueue-to-processed latency, median of the recent window',
    (p) => (p.latency_ms?.p50 ?? 0) / 1_000,
  );
  perPortfolio(
    'ginkgo_portfolio_latency_p99_seconds',
    'Enqueue-to-processed latency, 99th percentile of the recent window',
    (p) => (p.latency_ms?.p99 ?? 0) / 1_000,
  );
  perPortfolio('ginkgo_portfolio_cash', 'Cash of the portfolio', (p) => p.cash);
  perPortfolio(
    'ginkgo_portfolio_total_value',
    'Cash plus positions at their last price',
    (p) => p.total_value,
  );
  perPortfolio('ginkgo_portfolio_positions', 'Open positions', (p) => p.position_count);
}
