import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { encodePayload, placementDigest, type StateKeys } from '@ginkgo-live/state-keys';
import {
  fleetNodeInfo,
  logEntries,
  ManagedProcess,
  RedisServer,
  REPO_ROOT,
  seedFleet,
  StackFixture,
  waitFor,
} from '@ginkgo-live/testing';
import { percentile, round, sleep, timeEach, type Bench, type Row } from './lib.ts';

/**
 * Which scheduler bundles run. `BENCH_SCHEDULER_BEFORE=<path to a main.js>` adds a second bundle (a
 * build of an earlier commit, e.g. `apps/livecore-scheduler/dist/before.js`: it must sit where the
 * app's node_modules resolve) measured the same way in the same run, beside the current one.
 * `BENCH_SCHEDULER_CPU_PROF=<dir>` runs every scheduler under `--cpu-prof` into that folder.
 * `BENCH_SCHEDULER_FLEET_SIZES=5000,10000` picks the beating-fleet sizes, and
 * `BENCH_SCHEDULER_PARTS=recovery,scale,fleet` the parts that run (default all three).
 */
interface Bundle {
  label: string;
  file: string;
}

function bundles(): Bundle[] {
  const current = {
    label: 'current',
    file: path.join(REPO_ROOT, 'apps/livecore-scheduler/dist/main.js'),
  };
  const before = process.env['BENCH_SCHEDULER_BEFORE'];
  if (before === undefined || before === '') return [current];
  return [{ label: 'before', file: path.resolve(REPO_ROOT, before) }, current];
}

/** Starts a scheduler bundle against the fixture's Redis; stopped by `fx.close()`. */
async function startScheduler(
  fx: StackFixture,
  bundle: Bundle,
  id: string,
  env: Record<string, string>,
): Promise<ManagedProcess> {
  const prof = process.env['BENCH_SCHEDULER_CPU_PROF'];
  const scheduler = ManagedProcess.start({
    name: `scheduler ${id} (${bundle.label})`,
    command: process.execPath,
    args: [
      ...(prof === undefined || prof === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${prof}`]),
      bundle.file,
    ],
    env: {
      ...fx.server.env,
      REDIS_KEY_PREFIX: fx.keys.prefix,
      SCHEDULER_ID: id,
      METRICS_PORT: '0',
      LOG_LEVEL: 'debug',
      ...env,
    },
  });
  fx.processes.push(scheduler);
  await scheduler.waitForLine('Scheduler running', 60_000);
  return scheduler;
}

/**
 * CPU time (user + system, ms) a process has used, from /proc (10 ms resolution): on a machine
 * shared with other work, wall times grow with the load; this counts the scheduler's own work.
 */
function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) in parentheses: utime is the 14th field.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1_000) / 100;
}

/** Wall time of a bare `node -e` start and exit: what any Node process pays before its code. */
function bareNodeStartMs(): number {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    samples.push(performance.now() - started);
  }
  return percentile(samples, 50);
}

const n = (value: number): string => value.toLocaleString('en-US');

interface Recovery {
  loaded: number;
  first: number;
  ownWork: number;
  /** CPU the process used until just after its first tick (it logs "Scheduler running" then). */
  cpu: number;
  placed: number;
}

/** One scheduler start on a seeded fleet: its recovery as it logs it, then stopped (resigning). */
async function recoverOnce(fx: StackFixture, bundle: Bundle, id: string): Promise<Recovery> {
  const scheduler = await startScheduler(fx, bundle, id, {
    SCHEDULER_TICK_MS: '1000',
    SCHEDULER_LEADER_TTL_MS: '30000',
    SCHEDULER_OUTAGE_GRACE_MS: '30000',
  });
  const cpu = cpuMs(scheduler.pid);
  const [recovered] = logEntries(scheduler, 'Recovered: plan loaded and first tick done');
  const [ready] = logEntries(scheduler, 'Redis connection ready');
  const placed = logEntries(scheduler, 'Portfolio placed').length;
  await scheduler.stop();
  return {
    cpu,
    loaded: Number(recovered?.['planLoadedMs']),
    first: Number(recovered?.['recoveryMs']),
    // The scheduler's own work, apart from loading its code: Redis ready → first tick done.
    ownWork:
      Date.parse(String(recovered?.['timestamp'])) - Date.parse(String(ready?.['timestamp'])),
    placed,
  };
}

/** Catalog, plan, records, per-node assignments and meta for `sim-<n>` nodes running 5 each. */
async function seedSimulatedPlan(redis: Redis, keys: StateKeys, nodes: number): Promise<void> {
  const now = new Date().toISOString();
  const version = 7;
  let pipeline = redis.pipeline();
  for (let node = 0; node < nodes; node++) {
    const nodeId = `sim-${node}`;
    const ids = simIds(node);
    pipeline.hset(
      keys.executionNodes(),
      nodeId,
      encodePayload('nodeRecord', {
        _v: 1,
        node_id: nodeId,
        status: 'alive',
        capacity: PER_NODE + 1,
        assigned_count: PER_NODE,
        last_seen: now,
      }),
    );
    pipeline.set(
      keys.nodeAssignment(nodeId),
      encodePayload('nodeAssignment', {
        _v: 1,
        node_id: nodeId,
        portfolio_ids: ids,
        plan_version: version,
        updated_at: now,
      }),
    );
    for (const id of ids) {
      pipeline.hset(
        keys.portfolioCatalog(),
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
        keys.portfolioAssignments(),
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
    }
    if (pipeline.length >= 5_000) {
      await pipeline.exec();
      pipeline = redis.pipeline();
    }
  }
  pipeline.set(
    keys.planMeta(),
    encodePayload('planMeta', { _v: 1, version, updated_at: now, leader: 'old-scheduler' }),
  );
  await pipeline.exec();
}

const PER_NODE = 5;
const simIds = (node: number): string[] =>
  Array.from({ length: PER_NODE }, (_, i) => `p-${node}-${i}`);

interface FleetTicks {
  /** Scheduler CPU over the window, per tick. */
  cpuPerTick: number;
  /** p50 of the tick's read and decide phases, as its debug line says (NaN: a bundle without). */
  readP50: number;
  decideP50: number;
  p50: number;
  max: number;
  count: number;
  placed: number;
}

/**
 * What the scheduler reads of a beating fleet, written as the node's beat writes it: heartbeat
 * (TTL 15 s), info (the payload changes at every beat, as a real node's does) and registry score,
 * every node once every 5 s, spread over the interval in pipelines of a tenth of the fleet. The
 * leases and states a real beat also writes are left out: the scheduler does not read them, and
 * at 10,000 nodes their payloads cost the benchmark process more than it can spare on 2 cores.
 */
class Beater {
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** Each node's placement digest: its capacity and portfolios never change here. */
  private readonly digests: string[] | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: StateKeys,
    private readonly nodes: number,
  ) {
    this.digests =
      process.env['BENCH_SCHEDULER_NO_DIGEST'] === '1'
        ? undefined
        : Array.from({ length: nodes }, (_, node) => placementDigest(PER_NODE + 1, simIds(node)));
  }

  start(): void {
    this.loop = (async () => {
      // A tenth of the fleet every 500 ms: each node once every 5 s.
      for (let beat = 0; !this.stopped; beat++) {
        const started = performance.now();
        await this.beat(beat % 10, Math.floor(beat / 10));
        await sleep(Math.max(0, 500 - (performance.now() - started)));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async beat(slice: number, round: number): Promise<void> {
    const k = this.keys;
    const now = new Date().toISOString();
    const score = Date.now();
    const pipeline = this.redis.pipeline();
    for (let node = slice; node < this.nodes; node += 10) {
      const nodeId = `sim-${node}`;
      pipeline
        .set(
          k.heartbeat(nodeId),
          JSON.stringify({ _v: 1, node_id: nodeId, sent_at: now, seq: round }),
          'PX',
          15_000,
        )
        .set(
          k.nodeInfo(nodeId),
          // In the codec's order, as a node writes it: `_v`, then the placement digest (a node
          // from before the digest, BENCH_SCHEDULER_NO_DIGEST=1, writes none).
          JSON.stringify({
            ...(this.digests === undefined ? {} : { _v: 1, placement: this.digests[node] }),
            ...fleetNodeInfo(nodeId, simIds(node), now, 1_000 + node),
            capacity: PER_NODE + 1,
            uptime_seconds: round * 5,
          }),
          'PX',
          45_000,
        )
        .zadd(k.nodeRegistry(), score, nodeId);
    }
    await pipeline.exec();
  }
}

/**
 * The steady tick beside a beating fleet: `nodes` nodes beating every 5 s (`Beater`), each running
 * the 5 portfolios the seeded plan gives it, and one scheduler ticking every 5 s, as in
 * production, for `windowMs`. Every node beats once between two ticks.
 */
async function ticksBesideFleet(
  bundle: Bundle,
  nodes: number,
  windowMs: number,
  log: (m: string) => void,
): Promise<FleetTicks> {
  const server = await RedisServer.start();
  const fx = new StackFixture(server, { bundled: true });
  const beats = new Redis({ host: server.host, port: server.port });
  const fleet = new Beater(beats, fx.keys, nodes);
  try {
    await seedSimulatedPlan(fx.redis, fx.keys, nodes);
    fleet.start();
    await waitFor(async () => (await fx.redis.zcard(fx.keys.nodeRegistry())) === nodes, {
      timeoutMs: 60_000,
      description: 'every simulated node beating',
    });
    log(`scheduler (${bundle.label}): ${n(nodes)} beating nodes, window ${windowMs / 1_000} s`);
    const scheduler = await startScheduler(fx, bundle, 'fleet', {
      SCHEDULER_SETTLE_MS: '0',
      SCHEDULER_TICK_MS: '5000',
      SCHEDULER_LEADER_TTL_MS: '15000',
      SCHEDULER_OUTAGE_GRACE_MS: '15000',
    });
    // The first ticks after the start are the recovery; the steady ones follow.
    await sleep(6_000);
    const before = logEntries(scheduler, 'Tick done').length;
    const cpu0 = cpuMs(scheduler.pid);
    await sleep(windowMs);
    const cpu = cpuMs(scheduler.pid) - cpu0;
    const leading = logEntries(scheduler, 'Tick done')
      .slice(before)
      .filter((e) => e['role'] === 'leader');
    const ticks = leading.map((e) => Number(e['ms']));
    const phase = (name: string): number =>
      percentile(
        leading.map((e) => Number(e[name])),
        50,
      );
    // Stopped by SIGTERM, so that a CPU profile is written.
    await scheduler.stop();
    return {
      cpuPerTick: Math.round(cpu / Math.max(1, ticks.length)),
      readP50: phase('readMs'),
      decideP50: phase('decideMs'),
      p50: percentile(ticks, 50),
      max: Math.max(...ticks),
      count: ticks.length,
      placed: logEntries(scheduler, 'Portfolio placed').length,
    };
  } finally {
    await fleet.stop();
    beats.disconnect();
    await fx.close();
    await server.cleanup();
  }
}

/**
 * 2. Scheduler recovery (process start → plan loaded → first tick done) with 1,000 nodes and 5,000
 * portfolios; 8. how the tick and `/api/nodes` grow with a quiet, seeded fleet (100, 1,000, 5,000
 * nodes, 5 portfolios each); and the steady tick beside a beating fleet of 5,000 and 10,000 nodes.
 * Seeded as a leader left it; the new scheduler must move nothing.
 */
export const schedulerScale: Bench = async ({ quick, log }) => {
  const sizes = quick ? [100, 1_000] : [100, 1_000, 5_000];
  const fleetSizes = (process.env['BENCH_SCHEDULER_FLEET_SIZES'] ?? (quick ? '1000' : '5000,10000'))
    .split(',')
    .filter((s) => s !== '')
    .map(Number);
  const parts = (process.env['BENCH_SCHEDULER_PARTS'] ?? 'recovery,scale,fleet').split(',');
  const runs = bundles();
  const current = runs.at(-1) as Bundle;
  const loadAtStart = loadavg();
  const bare = bareNodeStartMs();
  const rows: Row[] = [];
  const scale: string[] = [
    '| nodes | portfolios | plan loaded | first tick done | Redis ready → first tick | tick p50 | tick max | /api/nodes p50 (page of 1,000) | /api/nodes p50 per node |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const recoveryTable: string[] = [
    '| bundle | process start → plan loaded | → first tick done | Redis ready → first tick | CPU until first tick | portfolios moved |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const nodes of sizes) {
    if (!parts.includes('scale') && !(nodes === 1_000 && parts.includes('recovery'))) continue;
    log(`scheduler: ${nodes} nodes`);
    const server = await RedisServer.start();
    const fx = new StackFixture(server, { bundled: true });
    try {
      await seedFleet(fx, nodes, 5, { withReports: true, ttlMs: 3_600_000 });
      if (nodes === 1_000 && parts.includes('recovery')) {
        // Three starts of each bundle, one after the other on the same fleet (each resigns when
        // stopped): the median of each figure.
        for (const bundle of runs) {
          const starts: Recovery[] = [];
          for (let i = 0; i < 3; i++)
            starts.push(await recoverOnce(fx, bundle, `s-${bundle.label}-${i}`));
          const med = (f: (r: Recovery) => number) => percentile(starts.map(f), 50);
          const recovery = {
            loaded: med((r) => r.loaded),
            first: med((r) => r.first),
            ownWork: med((r) => r.ownWork),
            cpu: med((r) => r.cpu),
            placed: Math.max(...starts.map((r) => r.placed)),
          };
          recoveryTable.push(
            `| ${bundle.label} | ${recovery.loaded} ms | ${recovery.first} ms | ${recovery.ownWork} ms | ${recovery.cpu} ms | ${recovery.placed} |`,
          );
          const label = runs.length > 1 ? ` — ${bundle.label}` : '';
          rows.push(
            {
              metric: `process start → plan loaded (1,000 × 5)${label}`,
              value: recovery.loaded,
              unit: 'ms',
              baseline: { label: 'bare node start+exit', value: bare },
            },
            {
              metric: `process start → first tick done (1,000 × 5)${label}`,
              value: recovery.first,
              unit: 'ms',
              baseline: { label: 'bare node start+exit', value: bare },
              target: { text: '< 500 ms (seed: < 5 s)', met: recovery.first < 500 },
            },
            {
              metric: `Redis ready → first tick done (1,000 × 5): the recovery work itself${label}`,
              value: recovery.ownWork,
              unit: 'ms',
              target: { text: '< 500 ms', met: recovery.ownWork < 500 },
            },
            {
              metric: `portfolios moved by the restart${label}`,
              value: recovery.placed,
              unit: '',
              target: { text: '0', met: recovery.placed === 0 },
            },
          );
        }
      }
      if (!parts.includes('scale')) continue;
      const scheduler = await startScheduler(fx, current, 's-bench', {
        SCHEDULER_TICK_MS: '1000',
        SCHEDULER_LEADER_TTL_MS: '30000',
        SCHEDULER_OUTAGE_GRACE_MS: '30000',
      });
      await waitFor(() => logEntries(scheduler, 'Tick done').length >= (quick ? 4 : 8), {
        timeoutMs: 60_000,
        description: 'ticks',
      });
      const [recovered] = logEntries(scheduler, 'Recovered: plan loaded and first tick done');
      const [ready] = logEntries(scheduler, 'Redis connection ready');
      const ownWork =
        Date.parse(String(recovered?.['timestamp'])) - Date.parse(String(ready?.['timestamp']));
      const placed = logEntries(scheduler, 'Portfolio placed').length;
      const ticks = logEntries(scheduler, 'Tick done')
        .slice(1)
        .map((e) => Number(e['ms']));
      const gateway = await fx.startGateway({
        LOG_LEVEL: 'info',
        GATEWAY_RATE_LIMIT_PER_MINUTE: '1000000',
        GATEWAY_ADDRESS_RATE_LIMIT_PER_MINUTE: '1000000',
      });
      const get = async () => (await fetch(`${gateway.url}/api/nodes?limit=1000`)).text();
      await timeEach(5, get);
      const latencies = await timeEach(quick ? 15 : 40, get);
      const api50 = percentile(latencies, 50);
      scale.push(
        `| ${n(nodes)} | ${n(nodes * 5)} | ${Number(recovered?.['planLoadedMs'])} ms | ${Number(recovered?.['recoveryMs'])} ms | ${ownWork} ms | ${percentile(ticks, 50)} ms | ${Math.max(...ticks)} ms | ${round(api50)} ms | ${round((api50 / nodes) * 1_000, 1)} µs |`,
      );
      if (placed > 0)
        scale.push(`| ⚠ ${placed} portfolios moved on restart (expected none) | | | | | | | | |`);
      if (nodes === sizes.at(-1))
        rows.push({
          metric: `steady tick p50 at ${n(nodes)} quiet nodes`,
          value: percentile(ticks, 50),
          unit: 'ms',
        });
    } finally {
      await fx.close();
      await server.cleanup();
    }
  }

  const fleetTable: string[] = [
    '| bundle | nodes | portfolios | ticks measured | tick p50 | tick max | read p50 | decide p50 | scheduler CPU per tick | portfolios moved |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const ms = (value: number): string => (Number.isNaN(value) ? '—' : `${value} ms`);
  for (const nodes of parts.includes('fleet') ? fleetSizes : []) {
    for (const bundle of runs) {
      const ticks = await ticksBesideFleet(bundle, nodes, quick ? 20_000 : 30_000, log);
      fleetTable.push(
        `| ${bundle.label} | ${n(nodes)} | ${n(nodes * PER_NODE)} | ${ticks.count} | ${ticks.p50} ms | ${ticks.max} ms | ${ms(ticks.readP50)} | ${ms(ticks.decideP50)} | ${ticks.cpuPerTick} ms | ${ticks.placed} |`,
      );
      const target = nodes >= 10_000 ? 400 : nodes >= 5_000 ? 200 : undefined;
      rows.push({
        metric: `tick p50 beside ${n(nodes)} beating nodes${runs.length > 1 ? ` — ${bundle.label}` : ''}`,
        value: ticks.p50,
        unit: 'ms',
        target:
          target === undefined
            ? undefined
            : { text: `< ${target} ms at ${n(nodes)} nodes`, met: ticks.p50 < target },
      });
    }
  }

  return {
    id: 'scheduler',
    title: '2 and 8. Scheduler recovery, and cost as the fleet grows',
    rows,
    notes: [
      'Recovery is measured by the scheduler itself from its process time origin (performance.timeOrigin), running its production bundle: the median of three starts on the same seeded fleet (each stopped, resigning, before the next); the baseline is the median wall time of `node -e 0` started and exited on the same machine, which any Node service pays.',
      'Quiet scale: each size in a fresh Redis, nodes seeded with heartbeats and reports that do not change, the scheduler ticking every 1 s, `/api/nodes?limit=1000` from the gateway bundle.',
      `Load average (1/5/15 min) when this section started: ${loadAtStart.map((l) => l.toFixed(1)).join(' / ')}; when it ended: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(
          ' / ',
        )} (on ${cpus().length} cores). Wall times grow with it; the CPU per tick counts the scheduler's own work.`,
      "Beside the fleet: each size in a fresh Redis, the plan seeded, every node's heartbeat (15 s TTL), info (changed at every beat) and registry score written every 5 s as the node's beat writes them (leases and states left out: the scheduler does not read them), the scheduler ticking every 5 s (the defaults): every node beats between two ticks. Ticks from the scheduler's log over 30 s, after 6 s of warm-up.",
    ],
    extra: [...recoveryTable, '', ...scale, '', ...fleetTable],
  };
};
