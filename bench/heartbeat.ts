import { Redis } from 'ioredis';
import { RedisServer, StackFixture, waitFor } from '@ginkgo-live/testing';
import { SimulatedFleet } from './fleet-sim.ts';
import { commandsProcessed, redisCpuSeconds, round, sleep, type Bench, type Row } from './lib.ts';

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
    const fleet = new SimulatedFleet({
      beats: client,
      keys: fx.keys,
      nodes,
      capacity: 5,
      initial: (n) => Array.from({ length: 5 }, (_, i) => `s-${n}-${i}`),
    });
    const windowMs = quick ? 5_000 : 20_000;
    const cpu0 = await redisCpuSeconds(admin);
    const ops0 = await commandsProcessed(admin);
    const t0 = performance.now();
    fleet.start();
    await sleep(windowMs);
    await fleet.stop();
    const seq = fleet.stats().beats;
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
