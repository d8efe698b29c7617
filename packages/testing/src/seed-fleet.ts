import type { Redis } from 'ioredis';
import {
  encodePayload,
  type NodeInfo,
  type PortfolioState,
  type StateKeys,
} from '@ginkgo-live/state-keys';

export interface SeedFleetOptions {
  /** Also write each node's info and each portfolio's state, as running nodes would. */
  withReports?: boolean;
  /** TTL of the seeded heartbeats (and reports), ms. Default 120000. */
  ttlMs?: number;
  /** Plan version in the seeded plan. Default 7. */
  planVersion?: number;
}

/**
 * Seeds a running fleet's state as a leader and its nodes left it: `nodes` nodes beating
 * (`node-0` …), `perNode` portfolios each (`p-<n>-<i>`) in the catalog and the plan, node records,
 * per-node assignments and the plan meta; with `withReports`, node info and portfolio states too.
 * Resolves with the plan (portfolio → node).
 */
export async function seedFleet(
  target: { redis: Redis; keys: StateKeys },
  nodes: number,
  perNode: number,
  options: SeedFleetOptions = {},
): Promise<Record<string, string>> {
  const { redis, keys: k } = target;
  const ttl = options.ttlMs ?? 120_000;
  const version = options.planVersion ?? 7;
  const now = new Date().toISOString();
  const plan: Record<string, string> = {};
  let pipeline = redis.pipeline();
  const flush = async (force = false): Promise<void> => {
    if (!force && pipeline.length < 5_000) return;
    await pipeline.exec();
    pipeline = redis.pipeline();
  };
  for (let n = 0; n < nodes; n++) {
    const nodeId = `node-${n}`;
    const ids = Array.from({ length: perNode }, (_, i) => `p-${n}-${i}`);
    pipeline.set(
      k.heartbeat(nodeId),
      encodePayload('heartbeat', { _v: 1, node_id: nodeId, sent_at: now, seq: 1 }),
      'PX',
      ttl,
    );
    pipeline.zadd(k.nodeRegistry(), Date.now(), nodeId);
    pipeline.hset(
      k.executionNodes(),
      nodeId,
      encodePayload('nodeRecord', {
        _v: 1,
        node_id: nodeId,
        status: 'alive',
        capacity: perNode,
        assigned_count: perNode,
        last_seen: now,
      }),
    );
    pipeline.set(
      k.nodeAssignment(nodeId),
      encodePayload('nodeAssignment', {
        _v: 1,
        node_id: nodeId,
        portfolio_ids: ids,
        plan_version: version,
        updated_at: now,
      }),
    );
    if (options.withReports === true) {
      pipeline.set(
        k.nodeInfo(nodeId),
        encodePayload('nodeInfo', fleetNodeInfo(nodeId, ids, now, 1_000 + n)),
        'PX',
        ttl,
      );
    }
    for (const id of ids) {
      plan[id] = nodeId;
      pipeline.hset(
        k.portfolioCatalog(),
        id,
        encodePayload('portfolioSpec', {
          _v: 1,
          portfolio_id: id,
          symbols: ['BTCUSDT'],
          strategy: { name: 'ma-crossover', params: {} },
          starting_cash: 1_000,
        }),
      );
      pipeline.hset(
        k.portfolioAssignments(),
        id,
        encodePayload('assignment', {
          _v: 1,
          portfolio_id: id,
          status: 'assigned',
          node_id: nodeId,
          reason: null,
          plan_version: version,
          since: now,
        }),
      );
      if (options.withReports === true) {
        pipeline.set(
          k.portfolioState(id),
          encodePayload('portfolioState', fleetPortfolioState(id, nodeId, now)),
          'PX',
          ttl,
        );
      }
    }
    await flush();
  }
  pipeline.set(
    k.planMeta(),
    encodePayload('planMeta', { _v: 1, version, updated_at: now, leader: 'old-scheduler' }),
  );
  await flush(true);
  return plan;
}

/**
 * The node info a busy, healthy node running `ids` reports (the seeded fleet's and the simulated
 * nodes' payload). `uptime_seconds` is 600: benchmarks bump it to make a changed payload.
 */
export function fleetNodeInfo(nodeId: string, ids: string[], now: string, pid = 1_000): NodeInfo {
  return {
    _v: 1,
    node_id: nodeId,
    host: 'bench-host',
    pid,
    version: '0.1.0',
    status: 'running',
    started_at: now,
    uptime_seconds: 600,
    last_heartbeat: now,
    portfolio_ids: ids,
    portfolio_count: ids.length,
    capacity: ids.length,
    queue_usage_max: 0.02,
    queue_usage: Object.fromEntries(ids.map((id) => [id, 0.02])),
    events_per_second: 40,
    cpu_percent: 12.5,
    memory_rss_bytes: 150_000_000,
    heap_used_bytes: 60_000_000,
    redis: { healthy: true, consecutive_failures: 0, total_failures: 0, last_success_at: now },
  };
}

/** A running portfolio's state. `processed_count` is 12345: benchmarks bump it to make a change. */
export function fleetPortfolioState(id: string, nodeId: string, now: string): PortfolioState {
  return {
    _v: 1,
    portfolio_id: id,
    node_id: nodeId,
    status: 'running',
    queue_depth: 20,
    queue_capacity: 1_000,
    queue_usage: 0.02,
    processed_count: 12_345,
    failed_count: 0,
    refused_count: 0,
    events_per_second: 8,
    last_event_time: now,
    latency_ms: { p50: 0.4, p99: 2.1 },
    cash: 990,
    position_count: 1,
    total_value: 1_004.5,
    last_error: null,
    updated_at: now,
  };
}
