import { Redis } from 'ioredis';
import { encodePayload } from '@ginkgo-live/state-keys';
import {
  fleetNodeInfo,
  fleetPortfolioState,
  RedisServer,
  StackFixture,
  waitFor,
} from '@ginkgo-live/testing';
// The node's own beat (its Lua script), driven by simulated nodes: the benchmark harness reaches
// into the app here, as a test would; no app imports another.
import { NodeStore } from '../apps/execution-node/src/node-store.ts';
import { round, sleep, type Bench, type Row } from './lib.ts';

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
          fleetNodeInfo(s.nodeId, s.ids, new Date().toISOString()),
          s.ids.map((id) => ({
            portfolioId: id,
            state: fleetPortfolioState(id, s.nodeId, new Date().toISOString()),
            holdsLease: true,
          })),
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
