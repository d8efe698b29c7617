import { Redis } from 'ioredis';
import { encodePayload, type NodeInfo, type PortfolioState } from '@ginkgo-live/state-keys';
import { RedisServer, StackFixture, waitFor } from '@ginkgo-live/testing';
// The node's own beat (its Lua script), driven by simulated nodes: the benchmark harness reaches
// into the app here, as a test would; no app imports another.
import { NodeStore } from '../apps/execution-node/src/node-store.ts';
import { round, sleep, type Bench, type Row } from './lib.ts';

function info(nodeId: string, ids: string[]): NodeInfo {
  const now = new Date().toISOString();
  return {
    _v: 1,
    node_id: nodeId,
    host: 'sim',
    pid: 1,
    version: '0.1.0',
    status: 'running',
    started_at: now,
    uptime_seconds: 60,
    last_heartbeat: now,
    portfolio_ids: ids,
    portfolio_count: ids.length,
    capacity: 5,
    queue_usage_max: 0.01,
    queue_usage: Object.fromEntries(ids.map((id) => [id, 0.01])),
    events_per_second: 10,
    cpu_percent: 5,
    memory_rss_bytes: 100_000_000,
    heap_used_bytes: 40_000_000,
    redis: { healthy: true, consecutive_failures: 0, total_failures: 0, last_success_at: now },
  };
}

function state(id: string, nodeId: string): PortfolioState {
  return {
    _v: 1,
    portfolio_id: id,
    node_id: nodeId,
    status: 'running',
    queue_depth: 1,
    queue_capacity: 1_000,
    queue_usage: 0.001,
    processed_count: 100,
    failed_count: 0,
    refused_count: 0,
    events_per_second: 2,
    last_event_time: null,
    latency_ms: { p50: 0.5, p99: 2 },
    cash: 1_000,
    position_count: 0,
    total_value: 1_000,
    last_error: null,
    updated_at: new Date().toISOString(),
  };
}

async function redisCpuSeconds(redis: Redis): Promise<number> {
  const text = await redis.info('cpu');
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(text)?.[1]);
  const user = Number(/used_cpu_user:([\d.]+)/.exec(text)?.[1]);
  return sys + user;
}

async function commandsProcessed(redis: Redis): Promise<number> {
  return Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))?.[1]);
}

/**
 * 5. Heartbeat cost: Redis commands and round trips per beat of a real node (read with MONITOR), and
 * Redis CPU and ops/s with 1,000 simulated nodes (5 portfolios each) running the node's own beat
 * at the default 5 s interval.
 */
export const heartbeatCost: Bench = async ({ quick, log }) => {
  const rows: Row[] = [];
  const server = await RedisServer.start();
  const fx = new StackFixture(server, { bundled: true });
  const admin = new Redis({ host: server.host, port: server.port });
  try {
    log('heartbeat: one real node, MONITOR');
    for (const id of ['h1', 'h2', 'h3']) await fx.addToCatalog(id);
    await fx.startNode('hb-node', { LOG_LEVEL: 'info' });
    await fx.assign('hb-node', ['h1', 'h2', 'h3']);
    await waitFor(async () => (await fx.state('h3'))?.status === 'running', { timeoutMs: 20_000 });
    const monitorBase = admin.duplicate();
    const monitor = await monitorBase.monitor();
    const beatKey = fx.keys.heartbeat('hb-node');
    const infoKey = fx.keys.nodeInfo('hb-node');
    let beats = 0;
    let touching = 0;
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      // Commands a script runs show as from "lua": they are not round trips.
      if (source === 'lua') return;
      if (!args.includes(beatKey) && !args.includes(infoKey)) return;
      touching += 1;
      if (args[0]?.toLowerCase() === 'evalsha' || args[0]?.toLowerCase() === 'eval') beats += 1;
    });
    await sleep(quick ? 3_000 : 10_000);
    monitor.disconnect();
    monitorBase.disconnect();
    rows.push({
      metric: 'Redis commands touching the heartbeat or node info, per beat',
      value: beats === 0 ? Number.NaN : touching / beats,
      unit: '',
      target: { text: 'one round trip per beat', met: beats > 0 && touching === beats },
    });
    rows.push({ metric: 'beats seen (interval 500 ms)', value: beats, unit: '' });
    await fx.close();

    log('heartbeat: 1,000 simulated nodes');
    const nodes = 1_000;
    const client = new Redis({ host: server.host, port: server.port });
    const stores = Array.from({ length: nodes }, (_, n) => {
      const nodeId = `sim-${n}`;
      const ids = Array.from({ length: 5 }, (_, i) => `s-${n}-${i}`);
      const store = new NodeStore({
        redis: client,
        keys: fx.keys,
        nodeId,
        heartbeatTtlMs: 15_000,
        nodeInfoTtlMs: 45_000,
        portfolioStateTtlMs: 45_000,
      });
      return { store, nodeId, ids };
    });
    const intervalMs = 5_000;
    let seq = 0;
    const control = { stop: false };
    const beatAll = async (offsetMs: number) => {
      // Spread over the interval, as real nodes started at different times would be.
      for (const [i, s] of stores.entries()) {
        if (control.stop) return;
        const due = offsetMs + (i * intervalMs) / nodes;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        void s.store.beat(
          encodePayload('heartbeat', {
            _v: 1,
            node_id: s.nodeId,
            sent_at: new Date().toISOString(),
            seq: ++seq,
          }),
          info(s.nodeId, s.ids),
          s.ids.map((id) => ({ portfolioId: id, state: state(id, s.nodeId), holdsLease: true })),
        );
      }
    };
    const windowMs = quick ? 5_000 : 20_000;
    const cpu0 = await redisCpuSeconds(admin);
    const ops0 = await commandsProcessed(admin);
    const t0 = performance.now();
    const running = (async () => {
      for (let start = t0; !control.stop; start += intervalMs) await beatAll(start);
    })();
    await sleep(windowMs);
    control.stop = true;
    await running;
    const elapsed = (performance.now() - t0) / 1_000;
    const cpu = (await redisCpuSeconds(admin)) - cpu0;
    const ops = (await commandsProcessed(admin)) - ops0;
    // Idle Redis over the same length, for the baseline.
    const idle0 = await redisCpuSeconds(admin);
    await sleep(Math.min(windowMs, 5_000));
    const idle = ((await redisCpuSeconds(admin)) - idle0) / Math.min(windowMs / 1_000, 5);
    client.disconnect();
    rows.push(
      {
        metric: 'Redis CPU with 1,000 nodes × 5 portfolios beating every 5 s',
        value: round((cpu / elapsed) * 100, 1),
        unit: '% of a core',
        baseline: { label: 'idle Redis', value: round(idle * 100, 2) },
      },
      {
        metric: 'Redis commands/s with those 1,000 nodes',
        value: round(ops / elapsed, 0),
        unit: 'ops/s',
      },
      { metric: 'beats/s sent', value: round(seq / elapsed, 0), unit: 'beats/s' },
    );
    return {
      id: 'heartbeat',
      title: '5. Heartbeat cost',
      rows,
      notes: [
        'One beat is one EVALSHA of the node script: heartbeat, node info, registry, lease renewals and every portfolio state in one round trip. MONITOR counted every command naming the node’s heartbeat or info key.',
        'The 1,000 simulated nodes run the node’s own NodeStore.beat (same script and payload sizes as a real node with 5 portfolios), spread evenly over the 5 s interval, on one connection.',
      ],
    };
  } finally {
    admin.disconnect();
    await fx.close();
    await server.cleanup();
  }
};
