import { NODE_FLEET_STATUSES } from '@ginkgo-live/fleet';
import { MetricsRegistry, type MetricSample } from '@ginkgo-live/runtime';
import { PORTFOLIO_STATUSES } from '@ginkgo-live/state-keys';
import type { FleetReader } from './fleet-reader.ts';

/**
 * `/metrics` of the gateway: the fleet as Prometheus sees it, brought up to date once per scrape
 * from what changed since the last (the fleet view the operations feed shares), plus
 * the gateway's own process metrics. When Redis is unreachable the scrape still answers, with
 * `ginkgo_gateway_redis_up 0` and no fleet series (a scrape is not an API answer: an "up" gauge is
 * the Prometheus way to say the source is down).
 */
export function createFleetRegistry(
  reader: FleetReader,
  registry = new MetricsRegistry({ prefix: 'ginkgo_gateway_' }),
): MetricsRegistry {
  const fleet = registry.perScrape(async () => {
    try {
      const { nodes, portfolios } = await reader.view.refresh();
      return { nodes, portfolios };
    } catch {
      return null;
    }
  });
  registry.gauge({
    name: 'ginkgo_gateway_redis_up',
    help: '1 when the gateway could read the fleet from Redis',
    value: async () => ((await fleet()) === null ? 0 : 1),
  });
  // Every status has its series, 0 when nothing is in it: a query for lost nodes or orphaned
  // portfolios answers 0 on a healthy fleet rather than nothing (which also means "not scraped").
  const byStatus = (
    items: readonly { status: string }[],
    statuses: readonly string[],
  ): MetricSample[] => {
    const counts = new Map<string, number>(statuses.map((status) => [status, 0]));
    for (const { status } of items) counts.set(status, (counts.get(status) ?? 0) + 1);
    return [...counts].map(([status, value]) => ({ labels: { status }, value }));
  };
  registry.gauge({
    name: 'ginkgo_fleet_nodes',
    help: 'Nodes by status',
    labelNames: ['status'],
    samples: async () => {
      const read = await fleet();
      return read === null ? [] : byStatus(read.nodes, NODE_FLEET_STATUSES);
    },
  });
  registry.gauge({
    name: 'ginkgo_fleet_portfolios',
    help: 'Portfolios by status',
    labelNames: ['status'],
    samples: async () => {
      const read = await fleet();
      return read === null
        ? []
        : byStatus(
            read.portfolios.map((p) => p.row),
            [...PORTFOLIO_STATUSES, 'orphaned', 'pending'],
          );
    },
  });
  // Seen from the gateway, not the node: a dead or frozen node's age keeps growing here.
  registry.gauge({
    name: 'ginkgo_fleet_node_heartbeat_age_seconds',
    help: "Time since the node's last heartbeat, as the gateway reads it from Redis",
    labelNames: ['node_id'],
    samples: async () =>
      ((await fleet())?.nodes ?? []).flatMap((n) =>
        n.heartbeat_age_ms === null
          ? []
          : [{ labels: { node_id: n.node_id }, value: n.heartbeat_age_ms / 1_000 }],
      ),
  });
  const states = async () =>
    ((await fleet())?.portfolios ?? []).flatMap(({ row, report }) =>
      report === null
        ? []
        : [
            {
              portfolioId: row.portfolio_id,
              state: { ...report, queue_depth: row.queue_depth ?? 0 },
            },
          ],
    );
  registry.gauge({
    name: 'ginkgo_fleet_portfolio_queue_depth',
    help: 'Events waiting per portfolio',
    labelNames: ['portfolio_id', 'node_id'],
    samples: async () =>
      (await states()).map(({ portfolioId, state }) => ({
        labels: { portfolio_id: portfolioId, node_id: state.node_id },
        value: state.queue_depth,
      })),
  });
  // A counter: the count lives in the portfolio's book and goes on from holder to holder, so it
  // only falls when a portfolio starts again from its catalog entry (a reset, as rate() expects).
  registry.counter({
    name: 'ginkgo_fleet_portfolio_events_processed_total',
    help: 'Events processed per portfolio, whichever node runs it (as its state reports)',
    labelNames: ['portfolio_id'],
    samples: async () =>
      (await states()).map(({ portfolioId, state }) => ({
        labels: { portfolio_id: portfolioId },
        value: state.processed_count,
      })),
  });
  return registry;
}
