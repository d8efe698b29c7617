import type { Registry } from 'prom-client';
import { z } from 'zod';
import type { Access } from '../access.ts';
import { ApiRouter } from '../api-router.ts';
import type { FleetReader, NodeView } from '../../fleet-reader.ts';
import type { PortfolioItem } from '../../overview.ts';
import { REDIS_DOWN, time } from './common.ts';

/** `{component, metric_name, value, timestamp}` rows for nodes, portfolios and fleet totals. */
export function metricRows(nodes: NodeView[], portfolios: PortfolioItem[], timestamp: string) {
  const rows: { component: string; metric_name: string; value: number; timestamp: string }[] = [];
  const add = (component: string, metric_name: string, value: number | null | undefined): void => {
    if (typeof value === 'number') rows.push({ component, metric_name, value, timestamp });
  };
  for (const n of nodes) {
    const c = `execution_node_${n.node_id}`;
    add(c, 'node.online', n.is_online ? 1 : 0);
    add(c, 'node.portfolio_count', n.portfolio_count);
    add(c, 'node.queue_usage_max', n.queue_usage_max);
    add(c, 'node.events_per_second', n.events_per_second);
    add(c, 'node.cpu_percent', n.cpu_percent);
    add(c, 'node.memory_rss_bytes', n.memory_rss_bytes);
    add(c, 'node.heartbeat_failures', n.redis?.total_failures);
  }
  // The row's state fields are its state's (null without one); the report holds the counters.
  for (const { row, report } of portfolios) {
    const c = `portfolio_${row.portfolio_id}`;
    if (report === null) continue;
    add(c, 'portfolio.queue_size', row.queue_depth);
    add(c, 'portfolio.queue_usage', row.queue_usage);
    add(c, 'portfolio.processed_count', report.processed_count);
    add(c, 'portfolio.events_per_second', row.events_per_second);
    add(c, 'portfolio.refused_count', report.refused_count);
    add(c, 'portfolio.failed_count', report.failed_count);
    add(c, 'portfolio.processing_time_ms', row.latency_p50_ms);
    add(c, 'portfolio.processing_time_p99_ms', row.latency_p99_ms);
  }
  add('fleet', 'fleet.nodes_total', nodes.length);
  add('fleet', 'fleet.nodes_online', nodes.filter((n) => n.is_online).length);
  add('fleet', 'fleet.portfolios_total', portfolios.length);
  add(
    'fleet',
    'fleet.portfolios_running',
    portfolios.filter((p) => p.row.status === 'running').length,
  );
  add(
    'fleet',
    'fleet.portfolios_orphaned',
    portfolios.filter((p) => p.row.status === 'orphaned').length,
  );
  add(
    'fleet',
    'fleet.events_per_second',
    nodes.reduce((s, n) => s + (n.events_per_second ?? 0), 0),
  );
  return rows;
}

const metricsQuery = z.object({
  component: z
    .string()
    .min(1)
    .optional()
    .meta({ description: 'execution_node_<id>, portfolio_<id>, fleet' }),
  metric_name: z.string().min(1).optional().meta({ description: 'e.g. portfolio.queue_size' }),
});

const metricsAnswer = z.object({
  metrics: z.array(
    z.object({
      component: z.string(),
      metric_name: z.string(),
      value: z.number(),
      timestamp: time,
    }),
  ),
  total_count: z.number().int(),
});

/**
 * `/api/metrics` (JSON rows, a read) and `/metrics` (the fleet in Prometheus text, for scrapers:
 * the `metrics` scope).
 */
export function metricsRoutes(deps: {
  access: Access;
  reader: FleetReader;
  registry: Registry;
}): ApiRouter {
  const { reader } = deps;
  const api = new ApiRouter(deps.access);
  api.get(
    '/api/metrics',
    {
      summary: 'Node, portfolio and fleet metrics',
      scope: 'read',
      query: metricsQuery,
      responses: { 200: { description: 'Metrics', schema: metricsAnswer }, 503: REDIS_DOWN },
    },
    async ({ query: q }, _req, res) => {
      // The fleet view, brought up to date from what changed since its last use.
      const { nodes, portfolios } = await reader.view.refresh();
      const metrics = metricRows(nodes, portfolios, new Date().toISOString()).filter(
        (m) =>
          (q.component === undefined || m.component === q.component) &&
          (q.metric_name === undefined || m.metric_name === q.metric_name),
      );
      res.json({ metrics, total_count: metrics.length });
    },
  );
  api.get(
    '/metrics',
    {
      summary:
        'Fleet metrics, Prometheus text format (ginkgo_gateway_redis_up says whether Redis was read)',
      scope: 'metrics',
      responses: {
        200: { description: 'Prometheus text', contentType: 'text/plain', schema: z.string() },
      },
    },
    async (_input, _req, res) => {
      res.type(deps.registry.contentType).send(await deps.registry.metrics());
    },
  );
  return api;
}
