import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { decodePayload } from '@ginkgo-live/state-keys';
import { logEntries, RedisServer, REPO_ROOT, StackFixture, waitFor } from '@ginkgo-live/testing';
import { SimulatedFleet } from './fleet-sim.ts';
import { recordGrowth, type GrowthRun } from './growth.ts';
import {
  commandsProcessed,
  loadCatalog,
  percentile,
  redisCpuSeconds,
  round,
  sleep,
  type Bench,
  type Row,
} from './lib.ts';

const PER_NODE = 5;
/** One spare place per node, so a killed node's portfolios have somewhere to go. */
const CAPACITY = PER_NODE + 1;
const TTL_MS = 15_000;
const POLL_WINDOW_MS = 15_000;

/** Resident memory of a process, from /proc (MB). */
function rssMb(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return round(Number(kb) / 1_024, 0);
}

async function redisMemoryMb(redis: Redis): Promise<number> {
  const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
  return round(used / 1_048_576, 0);
}

interface SizeResult {
  nodes: number;
  portfolios: number;
  placedMs: number;
  redisCpuPct: number;
  opsPerSec: number;
  /** Redis commands/s of the same fleet polling every 250 ms instead of push. */
  pollOpsPerSec: number;
  beatsPerSec: number;
  tickP50: number;
  tickMax: number;
  apiP50: number;
  apiP99: number;
  failoverPlanMs: number;
  failoverRunningMs: number;
  schedulerMb: number;
  gatewayMb: number;
  redisMb: number;
  simMb: number;
  maxLateMs: number;
  failedBeats: number;
  /** /api/nodes answers other than 200 during the window, of how many. */
  apiErrors: number;
  apiRequests: number;
  apiFirstError: string | null;
}

async function runSize(
  nodes: number,
  windowMs: number,
  log: (m: string) => void,
): Promise<SizeResult> {
  const server = await RedisServer.start();
  const fx = new StackFixture(server, { bundled: true });
  const admin = new Redis({ host: server.host, port: server.port });
  const beats = new Redis({ host: server.host, port: server.port });
  const polls = new Redis({ host: server.host, port: server.port });
  const push = new Redis({ host: server.host, port: server.port });
  const portfolios = nodes * PER_NODE;
  const fleet = new SimulatedFleet({
    beats,
    polls,
    push,
    keys: fx.keys,
    nodes,
    capacity: CAPACITY,
    ttlMs: TTL_MS,
    pollMs: 250,
  });
  try {
    await loadCatalog(admin, fx.keys, portfolios);
    await fleet.subscribe();
    fleet.start();
    await waitFor(async () => (await admin.zcard(fx.keys.nodeRegistry())) === nodes, {
      timeoutMs: 30_000,
      description: 'every simulated node beating',
    });

    log(`fleet: ${nodes} nodes, the scheduler places ${portfolios} portfolios`);
    const started = performance.now();
    const scheduler = await fx.startScheduler('fleet', {
      // Every simulated node beats before the scheduler starts: no settle window to wait out.
      SCHEDULER_SETTLE_MS: '0',
      SCHEDULER_TICK_MS: '5000',
      SCHEDULER_LEADER_TTL_MS: '15000',
      SCHEDULER_OUTAGE_GRACE_MS: '15000',
      LOG_LEVEL: 'debug',
    });
    // The placement's time grows with the fleet (about 25 s for 50,000 portfolios on 2 quiet
    // cores): a minute, plus 6 s per 1,000 nodes.
    let lastProgress = performance.now();
    await waitFor(
      () => {
        const running = fleet.running().size;
        if (performance.now() - lastProgress >= 10_000) {
          lastProgress = performance.now();
          log(
            `fleet: ${nodes} nodes, ${running} of ${portfolios} portfolios running (this process's heap ${Math.round(process.memoryUsage().heapUsed / 2 ** 20)} MB)`,
          );
        }
        return running === portfolios;
      },
      {
        timeoutMs: 60_000 + nodes * 6,
        intervalMs: 100,
        description: 'every portfolio running on a simulated node',
      },
    ).catch((err: unknown) => {
      // What the scheduler said last is what tells why.
      const said = scheduler.lines.filter((line) => !line.includes('"level":"debug"')).slice(-8);
      throw new Error(`${(err as Error).message}; the scheduler's last lines:\n${said.join('\n')}`);
    });
    const placedMs = Math.round(performance.now() - started);
    const gateway = await fx.startGateway({
      LOG_LEVEL: 'info',
      GATEWAY_RATE_LIMIT_PER_MINUTE: '1000000',
      GATEWAY_ADDRESS_RATE_LIMIT_PER_MINUTE: '1000000',
    });
    const failures: string[] = [];
    const nodesPage = async () => {
      const res = await fetch(`${gateway.url}/api/nodes?limit=100&offset=${nodes - 100}`);
      if (res.status !== 200) failures.push(`${res.status} ${await res.text()}`);
      else await res.arrayBuffer();
    };
    // Listening comes before its Redis connections are ready: until then it answers 503.
    await waitFor(async () => (await fetch(`${gateway.url}/api/ready`)).status === 200, {
      timeoutMs: 10_000,
      description: 'the gateway ready',
    });
    await nodesPage();
    failures.length = 0;
    // Let the placement's echoes (node reports catching up) settle before measuring.
    await sleep(6_000);

    log(`fleet: ${nodes} nodes, steady window ${windowMs / 1_000} s`);
    const ticksBefore = logEntries(scheduler, 'Tick done').length;
    const beatsBefore = fleet.stats().beats;
    const cpu0 = await redisCpuSeconds(admin);
    const ops0 = await commandsProcessed(admin);
    const t0 = performance.now();
    const api: number[] = [];
    while (performance.now() - t0 < windowMs) {
      const s = performance.now();
      await nodesPage();
      api.push(performance.now() - s);
      await sleep(500);
    }
    const elapsed = (performance.now() - t0) / 1_000;
    const cpu = (await redisCpuSeconds(admin)) - cpu0;
    const ops = (await commandsProcessed(admin)) - ops0;
    const ticks = logEntries(scheduler, 'Tick done')
      .slice(ticksBefore)
      .filter((e) => e['role'] === 'leader')
      .map((e) => Number(e['ms']));
    const memory = {
      schedulerMb: rssMb(scheduler.pid),
      gatewayMb: rssMb(gateway.process.pid),
      redisMb: await redisMemoryMb(admin),
      simMb: round(process.memoryUsage().rss / 1_048_576, 0),
    };
    const beatsPerSec = (fleet.stats().beats - beatsBefore) / elapsed;

    // The same fleet polling its assignment every 250 ms instead (ASSIGNMENT_PUSH=off, as before
    // push): what push saves, measured beside it.
    log(`fleet: ${nodes} nodes, ${POLL_WINDOW_MS / 1_000} s polling instead of push`);
    fleet.setMode('poll');
    const pollOps0 = await commandsProcessed(admin);
    const p0 = performance.now();
    await sleep(POLL_WINDOW_MS);
    const pollOpsPerSec = Math.round(
      ((await commandsProcessed(admin)) - pollOps0) / ((performance.now() - p0) / 1_000),
    );
    fleet.setMode('push');

    log(`fleet: ${nodes} nodes, one node killed`);
    const victim = fleet.nodes[Math.floor(nodes / 2)];
    if (victim === undefined) throw new Error('no node to kill');
    const moved = [...victim.ids];
    const killedAt = performance.now();
    fleet.kill(victim.nodeId);
    await waitFor(
      async () => {
        const raws = await admin.hmget(fx.keys.portfolioAssignments(), ...moved);
        return raws.every((raw) => {
          if (raw === null) return false;
          const a = decodePayload('assignment', 'a', raw);
          return a.ok && a.value.node_id !== null && a.value.node_id !== victim.nodeId;
        });
      },
      { timeoutMs: 60_000, intervalMs: 50, description: "the killed node's portfolios re-planned" },
    );
    const failoverPlanMs = Math.round(performance.now() - killedAt);
    await waitFor(
      async () => {
        const raws = await admin.mget(...moved.map((id) => fx.keys.portfolioState(id)));
        return raws.every((raw) => {
          if (raw === null) return false;
          const state = decodePayload('portfolioState', 's', raw);
          return state.ok && state.value.node_id !== victim.nodeId;
        });
      },
      { timeoutMs: 60_000, intervalMs: 50, description: 'their states written by the new nodes' },
    );
    const failoverRunningMs = Math.round(performance.now() - killedAt);
    const stats = fleet.stats();
    return {
      nodes,
      portfolios,
      placedMs,
      redisCpuPct: round((cpu / elapsed) * 100, 1),
      opsPerSec: Math.round(ops / elapsed),
      pollOpsPerSec,
      beatsPerSec: Math.round(beatsPerSec),
      tickP50: percentile(ticks, 50),
      tickMax: Math.max(...ticks),
      apiP50: round(percentile(api, 50), 1),
      apiP99: round(percentile(api, 99), 1),
      failoverPlanMs,
      failoverRunningMs,
      ...memory,
      maxLateMs: Math.round(stats.maxLateMs),
      failedBeats: stats.failedBeats,
      apiErrors: failures.length,
      apiRequests: api.length,
      apiFirstError: failures[0] ?? null,
    };
  } finally {
    await fleet.stop();
    for (const client of [admin, beats, polls, push]) client.disconnect();
    await fx.close();
    await server.cleanup();
  }
}

const n = (value: number): string => value.toLocaleString('en-US');

/** The targets at 5,000 and 10,000 nodes, for the sizes this run had. */
function targetRows(results: readonly SizeResult[]): Row[] {
  const rows: Row[] = [];
  const at = (nodes: number) => results.find((r) => r.nodes === nodes);
  for (const [nodes, tickMs, apiMs] of [
    [5_000, 200, 100],
    [10_000, 400, 150],
  ] as const) {
    const r = at(nodes);
    if (r === undefined) continue;
    rows.push(
      {
        metric: `scheduler tick p50 at ${n(nodes)} nodes`,
        value: r.tickP50,
        unit: 'ms',
        target: { text: `< ${tickMs} ms`, met: r.tickP50 < tickMs },
      },
      {
        metric: `/api/nodes (a page of 100) p99 at ${n(nodes)} nodes`,
        value: r.apiP99,
        unit: 'ms',
        target: { text: `< ${apiMs} ms`, met: r.apiP99 < apiMs },
      },
    );
  }
  const r = at(5_000) ?? results.at(-1);
  if (r !== undefined)
    rows.push({
      metric: `Redis commands/s per node at ${n(r.nodes)} nodes, nodes following by push`,
      value: round(r.opsPerSec / r.nodes, 2),
      unit: 'ops/s',
      baseline: {
        label: 'the same fleet polling every 250 ms',
        value: round(r.pollOpsPerSec / r.nodes, 2),
      },
      target: { text: '≤ 3', met: r.opsPerSec / r.nodes <= 3 },
    });
  return rows;
}

/**
 * 9. A large fleet on one Redis: 500, 1,000 and 5,000 simulated nodes (5 portfolios each, room
 * for 6) beating every 5 s with a 15 s TTL and reading their assignment every 250 ms, beside the
 * real scheduler (ticking every 5 s) and gateway bundles, all on this machine's 2 cores. How each
 * cost grows with the fleet: the smallest size is the baseline of the per-node ratios.
 */
export const fleetScale: Bench = async ({ quick, fleetSizes, log }) => {
  // Not 10,000 by default: 10,000 nodes × 5 portfolios are 2,000 beat scripts a second, and this
  // one process, sharing 2 cores with Redis, the scheduler and the gateway, drives about 1,000
  // (measured at load 11; its beats run ever later, and nodes whose beat is 15 s late are dead to
  // the scheduler). `--fleet-sizes 10000` on a machine with cores to spare; the scheduler's tick
  // beside 10,000 beating nodes is measured by section 2 with a leaner beater.
  const sizes = fleetSizes ?? (quick ? [500, 1_000] : [500, 1_000, 5_000]);
  const windowMs = quick ? 12_000 : 30_000;
  const results: SizeResult[] = [];
  for (const nodes of sizes) results.push(await runSize(nodes, windowMs, log));
  const base = results[0];
  const top = results.at(-1);
  if (base === undefined || top === undefined) throw new Error('no fleet size ran');
  const perNode = (r: SizeResult, value: (r: SizeResult) => number) => value(r) / r.nodes;
  const growth = (value: (r: SizeResult) => number) =>
    round(perNode(top, value) / perNode(base, value), 2);
  const rows: Row[] = [
    {
      metric: `Redis CPU per 1,000 nodes at ${n(top.nodes)} nodes`,
      value: round((top.redisCpuPct / top.nodes) * 1_000, 2),
      unit: '% of a core',
      baseline: {
        label: `at ${n(base.nodes)} nodes`,
        value: round((base.redisCpuPct / base.nodes) * 1_000, 2),
      },
      target: { text: 'per-node cost flat (≤ 1.5×)', met: growth((r) => r.redisCpuPct) <= 1.5 },
    },
    {
      metric: `Redis commands/s per node at ${n(top.nodes)} nodes`,
      value: round(top.opsPerSec / top.nodes, 2),
      unit: 'ops/s',
      baseline: {
        label: `at ${n(base.nodes)} nodes`,
        value: round(base.opsPerSec / base.nodes, 2),
      },
      target: { text: 'per-node cost flat (≤ 1.5×)', met: growth((r) => r.opsPerSec) <= 1.5 },
    },
    ...targetRows(results),
    {
      metric: `scheduler tick per node at ${n(top.nodes)} nodes`,
      value: round((top.tickP50 / top.nodes) * 1_000, 1),
      unit: 'µs',
      baseline: {
        label: `at ${n(base.nodes)} nodes`,
        value: round((base.tickP50 / base.nodes) * 1_000, 1),
      },
      target: { text: 'nothing quadratic (≤ 1.5×)', met: growth((r) => r.tickP50) <= 1.5 },
    },
    {
      metric: `/api/nodes (a page of 100) p50 at ${n(top.nodes)} nodes`,
      value: top.apiP50,
      unit: 'ms',
      baseline: { label: `at ${n(base.nodes)} nodes`, value: base.apiP50 },
    },
    {
      metric: `/api/nodes answers other than 200 at ${n(top.nodes)} nodes`,
      value: top.apiErrors,
      unit: `of ${top.apiRequests}`,
      target: { text: '0', met: top.apiErrors === 0 },
    },
    {
      metric: `one node killed → its portfolios re-planned, at ${n(top.nodes)} nodes`,
      value: top.failoverPlanMs,
      unit: 'ms',
      baseline: { label: `at ${n(base.nodes)} nodes`, value: base.failoverPlanMs },
      target: {
        text: `≤ TTL + 2 ticks (${n(TTL_MS + 10_000)} ms)`,
        met: top.failoverPlanMs <= TTL_MS + 10_000,
      },
    },
    {
      metric: `scheduler memory (RSS) at ${n(top.nodes)} nodes`,
      value: top.schedulerMb,
      unit: 'MB',
      baseline: { label: `at ${n(base.nodes)} nodes`, value: base.schedulerMb },
    },
    {
      metric: `Redis memory (used) at ${n(top.nodes)} nodes`,
      value: top.redisMb,
      unit: 'MB',
      baseline: { label: `at ${n(base.nodes)} nodes`, value: base.redisMb },
    },
  ];
  const table = [
    '| nodes | portfolios | catalog placed | Redis CPU | Redis ops/s | ops/s per node, push / polling | beats/s | tick p50 | tick max | /api/nodes p50 / p99 (page of 100) | killed node → re-planned | → running elsewhere | RSS scheduler | RSS gateway | Redis used memory | simulator RSS |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...results.map(
      (r) =>
        `| ${n(r.nodes)} | ${n(r.portfolios)} | ${n(r.placedMs)} ms | ${r.redisCpuPct} % | ${n(r.opsPerSec)} | ${round(r.opsPerSec / r.nodes, 2)} / ${round(r.pollOpsPerSec / r.nodes, 2)} | ${n(r.beatsPerSec)} | ${r.tickP50} ms | ${r.tickMax} ms | ${r.apiP50} / ${r.apiP99} ms | ${n(r.failoverPlanMs)} ms | ${n(r.failoverRunningMs)} ms | ${r.schedulerMb} MB | ${r.gatewayMb} MB | ${r.redisMb} MB | ${r.simMb} MB |`,
    ),
  ];
  const late = Math.max(...results.map((r) => r.maxLateMs));
  const failed = results.reduce((s, r) => s + r.failedBeats, 0);
  return {
    id: 'fleet',
    title: '9. A large fleet on one Redis',
    rows,
    notes: [
      `Each size in a fresh Redis: the catalog loaded (5 portfolios per node), the simulated nodes beating (the default 5 s interval, 15 s TTL; capacity ${CAPACITY}, so a killed node's portfolios have room elsewhere), then the scheduler bundle started with a 5 s tick: "catalog placed" runs from its start until every portfolio runs on a simulated node. The gateway bundle starts next; over a ${windowMs / 1_000} s window Redis CPU and commands come from INFO, tick times from the scheduler's own log, and \`/api/nodes?limit=100\` (the last page) is asked every 500 ms. Then one node stops beating, as after SIGKILL: "re-planned" is when the plan names other nodes for all its portfolios, "running elsewhere" when their new nodes have written their states.`,
      `A simulated node is the node’s own NodeStore.beat (heartbeat, info, registry, leases and 5 portfolio states in one script) and follows its assignment as a real node with ASSIGNMENT_PUSH on: SSUBSCRIBE to its channel and the trading one (one subscriber connection for the fleet), a read of its orders at each message, and at each beat its safety reads (orders, trading controls, a PING of the subscriber). No queue and no strategy. The steady window is measured so; then, for ${POLL_WINDOW_MS / 1_000} s, the same fleet reads its assignment every 250 ms instead (ASSIGNMENT_PUSH=off, as before push; the polls of a round share one pipeline, so Redis sees fewer round trips than that many separate nodes would send): the "polling" figure beside each push one.`,
      `The simulator shares the machine with Redis, scheduler and gateway: its latest beat ran ${late} ms behind its slot, and ${failed} beats failed.`,
      ...results
        .filter((r) => r.apiFirstError !== null)
        .map(
          (r) =>
            `At ${n(r.nodes)} nodes ${r.apiErrors} of ${r.apiRequests} /api/nodes requests failed; the first: ${r.apiFirstError ?? ''}`,
        ),
    ],
    // A quick run's figures are not comparable (shorter window, fewer sizes): only a full run
    // joins the history the charts draw.
    extra: quick
      ? table
      : [...table, ...recordGrowth(path.join(REPO_ROOT, 'docs'), growthRun(results))],
  };
};

/** This run's figures as a line of the growth charts, labelled with its date and commit. */
function growthRun(results: readonly SizeResult[]): GrowthRun {
  const at = new Date().toISOString();
  let commit = 'uncommitted';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT })
      .toString()
      .trim();
  } catch {
    // Not a git checkout: the date alone labels it.
  }
  return {
    label: `${at.slice(0, 10)} ${commit}`,
    at,
    points: results.map((r) => ({
      nodes: r.nodes,
      tickP50Ms: r.tickP50,
      redisCpuPct: r.redisCpuPct,
      opsPerNode: round(r.opsPerSec / r.nodes, 2),
      apiP99Ms: r.apiP99,
    })),
  };
}
