import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { FleetReader } from './fleet-reader.ts';

/**
 * `/metrics` of the gateway: the fleet as Prometheus sees it, read from Redis at scrape time, plus
 * the gateway's own process metrics. When Redis is unreachable the scrape still answers, with
 * `ginkgo_gateway_redis_up 0` and no fleet series (a scrape is not an API answer: an "up" gauge is
 * the Prometheus way to say the source is down).
 */
export function createFleetRegistry(reader: FleetReader): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'ginkgo_gateway_' });
  let snapshot: Promise<Awaited<ReturnType<typeof read>> | null> | undefined;
  const read = async () => {
    const [nodes, portfolios] = await Promise.all([reader.nodes(), reader.portfolios()]);
    return { nodes, portfolios };
  };
  const current = () => (snapshot ??= read().catch(() => null));
  const up = new Gauge({
    name: 'ginkgo_gateway_redis_up',
    help: '1 when the gateway could read the fleet from Redis',
    registers: [registry],
  });
  const nodes = new Gauge({
    name: 'ginkgo_fleet_nodes',
    help: 'Nodes by status',
    labelNames: ['status'],
    registers: [registry],
  });
  const portfolios = new Gauge({
    name: 'ginkgo_fleet_portfolios',
    help: 'Portfolios by status',
    labelNames: ['status'],
    registers: [registry],
  });
  const depth = new Gauge({
    name: 'ginkgo_fleet_portfolio_queue_depth',
    help: 'Events waiting per portfolio',
    labelNames: ['portfolio_id', 'node_id'],
    registers: [registry],
  });
  const processed = new Gauge({
    name: 'ginkgo_fleet_portfolio_events_processed',
    help: 'Events processed per portfolio (as reported)',
    labelNames: ['portfolio_id'],
    registers: [registry],
  });
  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => {
    snapshot = undefined;
    const fleet = await current();
    for (const g of [nodes, portfolios, depth, processed]) g.reset();
    up.set(fleet === null ? 0 : 1);
    if (fleet !== null) {
      const count = <T>(items: T[], key: (t: T) => string) => {
        const out = new Map<string, number>();
        for (const item of items) out.set(key(item), (out.get(key(item)) ?? 0) + 1);
        return out;
      };
      for (const [status, n] of count(fleet.nodes, (n) => n.status)) nodes.set({ status }, n);
      for (const [status, n] of count(fleet.portfolios, (p) => p.status))
        portfolios.set({ status }, n);
      for (const p of fleet.portfolios) {
        if (p.state === null) continue;
        depth.set({ portfolio_id: p.portfolio_id, node_id: p.state.node_id }, p.state.queue_depth);
        processed.set({ portfolio_id: p.portfolio_id }, p.state.processed_count);
      }
    }
    return metrics();
  };
  return registry;
}
