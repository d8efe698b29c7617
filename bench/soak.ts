import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import {
  appEntry,
  FAST,
  ManagedProcess,
  RedisServer,
  REPO_ROOT,
  StackFixture,
  waitFor,
} from '@ginkgo-live/testing';
import { round, sleep, type Bench, type Row } from './lib.ts';

function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return Number(kb) * 1_024;
  } catch {
    return Number.NaN;
  }
}

async function redisMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
}

/**
 * 7. Soak: the local stack (scheduler with the sample catalog, 3 nodes, notification worker,
 * gateway with a page open on its event stream, market feed) under a steady feed. Memory of each
 * process and of Redis once warm (after a third of the run) and at the end.
 */
export const soak: Bench = async ({ soakMinutes, log }) => {
  const totalMs = soakMinutes * 60_000;
  const warmMs = totalMs / 3;
  const server = await RedisServer.start();
  const fx = new StackFixture(server, { bundled: true });
  const admin = new Redis({ host: server.host, port: server.port });
  const abort = new AbortController();
  try {
    const info = { LOG_LEVEL: 'info' };
    const nodes = await Promise.all(['n1', 'n2', 'n3'].map((id) => fx.startNode(id, info)));
    const scheduler = await fx.startScheduler('s1', {
      ...info,
      CATALOG_FILE: path.join(REPO_ROOT, 'config/sample-catalog.json'),
    });
    const worker = await fx.startNotificationWorker(info);
    const gateway = await fx.startGateway(info);
    const feed = ManagedProcess.start(
      appEntry(
        'market-feed',
        'market-feed',
        { ...FAST, ...server.env, ...info, REDIS_KEY_PREFIX: fx.keys.prefix, FEED_RATE: '50' },
        true,
      ),
    );
    fx.processes.push(feed);
    await feed.waitForLine('Market feed running', 20_000);
    // An operations page watching all along: the event stream is part of the load.
    void fetch(`${gateway.url}/api/overview/stream`, { signal: abort.signal })
      .then(async (r) => {
        const reader = r.body?.getReader();
        while (reader !== undefined && !(await reader.read()).done) {
          // read and drop
        }
      })
      .catch(() => undefined);
    const processes = [
      ...nodes.map((n) => ({ name: n.name, p: n })),
      { name: 'scheduler', p: scheduler },
      { name: 'notification-worker', p: worker },
      { name: 'api-gateway', p: gateway.process },
      { name: 'market-feed', p: feed },
    ];
    const counts = async () => {
      const ids = Object.keys(await fx.plan());
      const states = await Promise.all(ids.map((id) => fx.state(id)));
      return {
        processed: states.reduce((s, x) => s + (x?.processed_count ?? 0), 0),
        refused: states.reduce((s, x) => s + (x?.refused_count ?? 0), 0),
      };
    };
    await waitFor(async () => (await counts()).processed > 0, { timeoutMs: 30_000 });
    log(`soak: warming for ${Math.round(warmMs / 1_000)} s`);
    await sleep(warmMs);
    const warm = processes.map(({ p }) => rssBytes(p.pid));
    const warmRedis = await redisMemory(admin);
    const warmCounts = await counts();
    const t0 = performance.now();
    log(`soak: measuring for ${Math.round((totalMs - warmMs) / 1_000)} s`);
    await sleep(totalMs - warmMs);
    const end = processes.map(({ p }) => rssBytes(p.pid));
    const endRedis = await redisMemory(admin);
    const endCounts = await counts();
    const seconds = (performance.now() - t0) / 1_000;
    const exited = processes.filter(({ p }) => p.exit !== undefined).map(({ name }) => name);

    const rows: Row[] = processes.map(({ name }, i) => {
      const growth = ((end[i] ?? 0) / (warm[i] ?? 1) - 1) * 100;
      return {
        metric: `${name} RSS at the end`,
        value: round((end[i] ?? 0) / 1_048_576, 1),
        unit: 'MiB',
        baseline: { label: 'once warm', value: round((warm[i] ?? 0) / 1_048_576, 1) },
        target: { text: '< 5 % growth', met: growth < 5 },
      };
    });
    rows.push(
      {
        metric: 'Redis used_memory at the end',
        value: round(endRedis / 1_048_576, 2),
        unit: 'MiB',
        baseline: { label: 'once warm', value: round(warmRedis / 1_048_576, 2) },
        target: { text: '< 5 % growth', met: endRedis < warmRedis * 1.05 },
      },
      {
        metric: 'events processed per second (whole stack)',
        value: round((endCounts.processed - warmCounts.processed) / seconds, 0),
        unit: 'ev/s',
      },
      {
        metric: 'events refused during the run',
        value: endCounts.refused - warmCounts.refused,
        unit: '',
      },
      {
        metric: 'processes that exited',
        value: exited.length,
        unit: '',
        target: { text: '0', met: exited.length === 0 },
      },
    );
    return {
      id: 'soak',
      title: `7. Soak — ${round(soakMinutes, 2)} minutes of the local stack`,
      rows,
      notes: [
        `Warm = after the first third of the run (${Math.round(warmMs / 1_000)} s); growth is measured over the remaining ${Math.round(seconds)} s. RSS from /proc/<pid>/status of each bundled app process. Feed: 50 ticks/s per symbol of the sample catalog (8 portfolios over 3 nodes).`,
        ...(exited.length > 0 ? [`Exited: ${exited.join(', ')}`] : []),
      ],
    };
  } finally {
    abort.abort();
    admin.disconnect();
    await fx.close();
    await server.cleanup();
  }
};
