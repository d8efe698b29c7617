/**
 * The same simulated fleet beside the real scheduler, on one Redis and on a Redis Cluster of three
 * masters: Redis CPU and commands per shard (INFO cpu and stats of each master over a steady
 * window), and which commands make the `{scheduler}` shard's share (INFO commandstats).
 *
 *   node --import tsx bench/cluster.ts [--nodes 2000] [--window-s 20]
 */
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { logEntries, RedisCluster, RedisServer, StackFixture, waitFor } from '@ginkgo-live/testing';
import { SimulatedFleet } from './fleet-sim.ts';
import {
  commandsProcessed,
  loadCatalog,
  percentile,
  redisCpuSeconds,
  round,
  sleep,
  type Bench,
} from './lib.ts';

const PER_NODE = 5;
const CAPACITY = PER_NODE + 1;

interface ShardFigures {
  /** `host:port` of the master. */
  address: string;
  /** Whether it serves the `{scheduler}` slot. */
  scheduler: boolean;
  cpuPct: number;
  opsPerSec: number;
  /** Commands by the CPU they used in the window, the most first: name, share of its CPU. */
  topCommands: [string, number][];
}

interface RunFigures {
  shards: ShardFigures[];
  placedMs: number;
  /** Leader ticks in the window, by the scheduler's own log: p50 and max (ms). */
  tickP50: number;
  tickMax: number;
  /** Scheduler log lines at warn or error during the run (the first few). */
  problems: string[];
}

/** `cmdstat_<name>:calls=…,usec=…` → usec by command. */
function commandUsec(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const match of text.matchAll(/cmdstat_([^:]+):calls=\d+,usec=(\d+)/g))
    out.set(match[1] ?? '?', Number(match[2]));
  return out;
}

/**
 * One run: the fleet (push mode, the default 5 s beat) and the scheduler (5 s tick) on `target`,
 * measured over `windowMs` once every portfolio runs. `masters` are plain clients to each master.
 */
async function runOn(
  fx: StackFixture,
  client: () => Redis,
  masters: { address: string; redis: Redis; scheduler: boolean }[],
  nodes: number,
  windowMs: number,
  log: (m: string) => void,
): Promise<RunFigures> {
  const beats = client();
  const push = client();
  const fleet = new SimulatedFleet({ beats, push, keys: fx.keys, nodes, capacity: CAPACITY });
  try {
    await loadCatalog(fx.redis, fx.keys, nodes * PER_NODE);
    await fleet.subscribe();
    fleet.start();
    await waitFor(async () => (await fx.redis.zcard(fx.keys.nodeRegistry())) === nodes, {
      timeoutMs: 30_000,
      description: 'every simulated node beating',
    });
    const started = performance.now();
    const scheduler = await fx.startScheduler('bench', {
      SCHEDULER_SETTLE_MS: '0',
      SCHEDULER_TICK_MS: '5000',
      SCHEDULER_LEADER_TTL_MS: '15000',
      SCHEDULER_OUTAGE_GRACE_MS: '15000',
      LOG_LEVEL: 'debug',
    });
    await waitFor(
      () => {
        const running = fleet.running().size;
        if (running === nodes * PER_NODE) return true;
        throw new Error(
          `${running} running; the scheduler said: ${scheduler.lines
            .slice(-3)
            .map((l) => l.slice(0, 300))
            .join(' | ')}`,
        );
      },
      {
        timeoutMs: 180_000,
        intervalMs: 100,
        description: 'every portfolio running on a simulated node',
      },
    );
    const placedMs = Math.round(performance.now() - started);
    await sleep(6_000);
    log(`cluster bench: ${nodes} nodes on ${masters.length} master(s), ${windowMs / 1_000} s`);
    const before = await Promise.all(
      masters.map(async (m) => ({
        cpu: await redisCpuSeconds(m.redis),
        ops: await commandsProcessed(m.redis),
        usec: commandUsec(await m.redis.info('commandstats')),
      })),
    );
    const ticksBefore = logEntries(scheduler, 'Tick done').length;
    const t0 = performance.now();
    await sleep(windowMs);
    const ticks = logEntries(scheduler, 'Tick done')
      .slice(ticksBefore)
      .filter((e) => e['role'] === 'leader')
      .map((e) => Number(e['ms']));
    const elapsed = (performance.now() - t0) / 1_000;
    const shards: ShardFigures[] = [];
    for (const [i, m] of masters.entries()) {
      const b = before[i];
      if (b === undefined) continue;
      const usec = commandUsec(await m.redis.info('commandstats'));
      const used = [...usec.entries()]
        .map(([name, total]) => [name, total - (b.usec.get(name) ?? 0)] as [string, number])
        .filter(([, spent]) => spent > 0)
        .sort((x, y) => y[1] - x[1]);
      const all = used.reduce((s, [, spent]) => s + spent, 0);
      shards.push({
        address: m.address,
        scheduler: m.scheduler,
        cpuPct: round((((await redisCpuSeconds(m.redis)) - b.cpu) / elapsed) * 100, 1),
        opsPerSec: Math.round(((await commandsProcessed(m.redis)) - b.ops) / elapsed),
        topCommands: used.slice(0, 5).map(([name, spent]) => [name, round(spent / all, 2)]),
      });
    }
    const problems = scheduler.lines
      .filter((l) => /"level":"(warn|error)"/.test(l))
      .slice(0, 5)
      .map((l) => l.slice(0, 400));
    return {
      shards,
      placedMs,
      tickP50: percentile(ticks, 50),
      tickMax: Math.max(...ticks),
      problems,
    };
  } finally {
    await fleet.stop();
    beats.disconnect();
    push.disconnect();
    await fx.close();
  }
}

export async function clusterRun(
  nodes: number,
  windowMs: number,
  log: (m: string) => void,
): Promise<{ one: RunFigures; cluster: RunFigures }> {
  const server = await RedisServer.start();
  let one: RunFigures;
  const plain = new Redis({ host: server.host, port: server.port });
  try {
    const fx = new StackFixture(server, { startTimeoutMs: 60_000 });
    one = await runOn(
      fx,
      () => new Redis({ host: server.host, port: server.port }),
      [{ address: `${server.host}:${server.port}`, redis: plain, scheduler: true }],
      nodes,
      windowMs,
      log,
    );
  } finally {
    plain.disconnect();
    await server.cleanup();
  }
  const cluster = await RedisCluster.start();
  const clients: Redis[] = [];
  try {
    const first = cluster.nodes[0];
    if (first === undefined) throw new Error('a cluster without nodes');
    const fx = new StackFixture(first, { cluster, startTimeoutMs: 60_000 });
    const schedulerMaster = await cluster.masterOf(fx.keys.schedulerLeader());
    const masters = cluster.masters.map((m) => {
      const redis = new Redis({ host: m.host, port: m.port });
      clients.push(redis);
      return { address: `${m.host}:${m.port}`, redis, scheduler: m === schedulerMaster };
    });
    // The fleet's connections are cluster clients, typed as the simulator's `Redis`.
    const figures = await runOn(
      fx,
      () => cluster.client() as unknown as Redis,
      masters,
      nodes,
      windowMs,
      log,
    );
    return { one, cluster: figures };
  } finally {
    for (const c of clients) c.disconnect();
    await cluster.cleanup();
  }
}

function describe(run: RunFigures): string[] {
  return run.shards.map(
    (s) =>
      `| ${s.address}${s.scheduler ? ' ({scheduler})' : ''} | ${s.cpuPct} % | ${s.opsPerSec.toLocaleString('en-US')} | ${s.topCommands.map(([name, share]) => `${name} ${Math.round(share * 100)} %`).join(', ')} |`,
  );
}

export const clusterShards: Bench = async ({ quick, log }) => {
  const nodes = quick ? 500 : 2_000;
  const { one, cluster } = await clusterRun(nodes, quick ? 10_000 : 20_000, log);
  const total = cluster.shards.reduce((s, x) => s + x.cpuPct, 0);
  const hot = cluster.shards.find((s) => s.scheduler);
  const share = hot === undefined || total === 0 ? 0 : round((hot.cpuPct / total) * 100, 0);
  return {
    id: 'cluster',
    title: '11. The same fleet on one Redis and on a 3-master Redis Cluster',
    rows: [
      {
        metric: `{scheduler} shard's share of the cluster's Redis CPU, ${nodes.toLocaleString('en-US')} nodes`,
        value: share,
        unit: '%',
        baseline: { label: 'an even split', value: round(100 / cluster.shards.length, 0) },
      },
      {
        metric: `Redis CPU, all masters, ${nodes.toLocaleString('en-US')} nodes`,
        value: round(total, 1),
        unit: '% of a core',
        baseline: { label: 'one Redis', value: one.shards[0]?.cpuPct ?? Number.NaN },
      },
    ],
    notes: [
      `${nodes.toLocaleString('en-US')} simulated nodes (5 portfolios each, push, the default 5 s beat) beside the scheduler (5 s tick), once on one Redis, once on three masters (no replicas) given only REDIS_CLUSTER_NODES; CPU and commands per master from INFO over the steady window, the commands by the CPU Redis spent on them (INFO commandstats usec).`,
    ],
    extra: [
      '| master | Redis CPU | commands/s | where its CPU went |',
      '| --- | ---: | ---: | --- |',
      ...describe(one).map((line) => line.replace('({scheduler})', '(one Redis)')),
      ...describe(cluster),
    ],
  };
};

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const arg = (name: string, fallback: number): number => {
    const i = args.indexOf(name);
    return i === -1 ? fallback : Number(args[i + 1]);
  };
  const nodes = arg('--nodes', 2_000);
  const windowMs = arg('--window-s', 20) * 1_000;
  const { one, cluster } = await clusterRun(nodes, windowMs, (m) => process.stderr.write(`${m}\n`));
  process.stdout.write(`${JSON.stringify({ nodes, one, cluster }, null, 2)}\n`);
  process.exit(0);
}
