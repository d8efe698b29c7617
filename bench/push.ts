import { execFileSync } from 'node:child_process';
import { availableParallelism as availableCores, loadavg } from 'node:os';
import path from 'node:path';
import { build, type Plugin } from 'esbuild';
import { Redis } from 'ioredis';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { decodePayload } from '@ginkgo-live/state-keys';
import {
  FAST,
  logEntries,
  ManagedProcess,
  REPO_ROOT,
  RedisServer,
  StackFixture,
  waitFor,
} from '@ginkgo-live/testing';
// The scheduler's own plan write (its Lua script, which pushes), driven by the benchmark: the
// harness reaches into the app here, as fleet-sim.ts does for the node's beat.
import { RedisSchedulerStore } from '../apps/livecore-scheduler/src/scheduler-store.ts';
import { commandsProcessed, percentile, round, sleep, type Bench, type Row } from './lib.ts';

/**
 * The node's defaults (docs/architecture.md): a beat every 5 s, the old poll every 250 ms, and the
 * 45 s TTLs of info and state (not the fixture's 6 s, which a 5 s beat must write every beat).
 */
const DEFAULTS = {
  HEARTBEAT_INTERVAL_MS: '5000',
  HEARTBEAT_TTL_MS: '15000',
  NODE_INFO_TTL_MS: '45000',
  PORTFOLIO_STATE_TTL_MS: '45000',
  ASSIGNMENT_POLL_MS: '250',
  QUEUE_SAMPLE_MS: '500',
  STATE_FLUSH_MS: '250',
  LOG_LEVEL: 'info',
};

/** Plan writes as the scheduler leader makes them, each naming one node's new assignment. */
class PlanWriter {
  private version = 0;
  private readonly store: RedisSchedulerStore;

  constructor(redis: Redis, fx: StackFixture) {
    this.store = new RedisSchedulerStore(redis, fx.keys, 'bench');
  }

  /** Writes `nodeId` → `portfolioIds`; resolves to the wall-clock time (ms) just before the write. */
  async assign(nodeId: string, portfolioIds: string[]): Promise<number> {
    if (!(await this.store.lead(60_000))) throw new Error('bench: could not take the leader lock');
    const at = Date.now();
    this.version = await this.store.writePlan({
      expectedVersion: this.version,
      meta: {
        _v: 1,
        version: this.version + 1,
        updated_at: new Date(at).toISOString(),
        leader: 'bench',
      },
      nodes: [],
      assignments: [],
      nodeAssignments: new Map([[nodeId, portfolioIds]]),
      results: [],
      consumedRequests: 0,
    });
    return at;
  }
}

/**
 * When (wall-clock ms, the node's own log time) the node logged `message` at or after `since`
 * with the given fields.
 */
async function loggedAt(
  node: ManagedProcess,
  message: string,
  fields: Record<string, string>,
  since: number,
): Promise<number> {
  let at = Number.NaN;
  await waitFor(
    () => {
      const entry = logEntries(node, message).find(
        (e) =>
          Object.entries(fields).every(([k, v]) => e[k] === v) &&
          Date.parse(String(e['timestamp'])) >= since,
      );
      if (entry === undefined) return false;
      at = Date.parse(String(entry['timestamp']));
      return true;
    },
    { timeoutMs: 20_000, intervalMs: 5 },
  );
  return at;
}

/**
 * Plan write → `Portfolio loaded` on the node, `samples` times, moving it between two portfolios;
 * with push also plan write → the message received (the node's debug line).
 */
async function writeToLoad(
  fx: StackFixture,
  plans: PlanWriter,
  nodeId: string,
  push: boolean,
  samples: number,
): Promise<{ loaded: number[]; received: number[] }> {
  const ids = [`${nodeId}-a`, `${nodeId}-b`];
  for (const id of ids) {
    await fx.addToCatalog(id);
    await fx.seedBook(id);
  }
  const node = await fx.startNode(nodeId, {
    ...DEFAULTS,
    ASSIGNMENT_PUSH: push ? 'on' : 'off',
    LOG_LEVEL: 'debug',
  });
  if (push)
    await waitFor(
      () =>
        logEntries(node, 'Following the assignment and the trading controls by push').length > 0,
      { timeoutMs: 10_000 },
    );
  const loaded: number[] = [];
  const received: number[] = [];
  const channel = fx.keys.nodeOrdersChannel(nodeId);
  for (let i = 0; i < samples; i++) {
    const id = ids[i % 2] ?? '';
    const at = await plans.assign(nodeId, [id]);
    loaded.push((await loggedAt(node, 'Portfolio loaded', { portfolioId: id }, at)) - at);
    if (push) received.push((await loggedAt(node, 'Push received', { channel }, at)) - at);
    // Apart from the poll's phase: the next write lands anywhere in its interval.
    await sleep(100 + ((i * 37) % 250));
  }
  await node.stop('SIGTERM');
  return { loaded, received };
}

/**
 * Starts a node from `bundle` (a file built by `buildNodeAt`) instead of the app's own
 * `dist/main.js`, with the environment `StackFixture.startNode` gives it.
 */
async function startNodeFrom(
  fx: StackFixture,
  server: RedisServer,
  bundle: string,
  nodeId: string,
  env: Record<string, string>,
): Promise<ManagedProcess> {
  const node = ManagedProcess.start({
    name: `node ${nodeId}`,
    command: process.execPath,
    args: [bundle],
    env: {
      ...FAST,
      ...server.env,
      REDIS_KEY_PREFIX: fx.keys.prefix,
      NODE_ID: nodeId,
      ...env,
    },
  });
  await node.waitForLine('Execution node running', 30_000);
  return node;
}

/**
 * The execution node's bundle as it was at git `ref`: the files of the node and of
 * `packages/portfolio-queue` that differ from `ref` are read from `ref`, everything else as it is
 * (so only what changed there is compared). Written beside the app's own bundle, whose
 * dependencies it resolves.
 */
async function buildNodeAt(ref: string | undefined): Promise<string> {
  const changed = new Set(
    ref === undefined
      ? []
      : execFileSync(
          'git',
          [
            'diff',
            '--name-only',
            ref,
            '--',
            'apps/execution-node/src',
            'packages/portfolio-queue/src',
          ],
          { cwd: REPO_ROOT, encoding: 'utf8' },
        )
          .split('\n')
          .filter((f) => f.endsWith('.ts')),
  );
  const atRef: Plugin = {
    name: 'at-ref',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) =>
        args.path.startsWith('@ginkgo-live/') ? undefined : { path: args.path, external: true },
      );
      b.onLoad({ filter: /\.ts$/ }, (args) => {
        const file = path.relative(REPO_ROOT, args.path);
        if (!changed.has(file)) return undefined;
        const contents = execFileSync('git', ['show', `${ref ?? 'HEAD'}:${file}`], {
          cwd: REPO_ROOT,
          encoding: 'utf8',
        });
        return { contents, loader: 'ts', resolveDir: path.dirname(args.path) };
      });
    },
  };
  const app = path.join(REPO_ROOT, 'apps', 'execution-node');
  const outfile = path.join(app, 'dist', ref === undefined ? 'main-now.js' : 'main-before.js');
  await build({
    entryPoints: [path.join(app, 'src', 'main.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    plugins: [atRef],
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return outfile;
}

interface IdleOps {
  perNode: number;
  byCommand: Map<string, number>;
  /** Event → applied (the node's own latency_ms, enqueue to commit), ms; only with `events`. */
  eventLatency?: { p50: number; p99: number };
}

/**
 * Redis commands per second per node, idle (no events), over `windowMs`, `nodes` nodes ×
 * `portfolios`; then, with `events`, that many events to one portfolio, 100-350 ms apart, and the
 * node's latency of them. `bundle`: the node built at another commit (`buildNodeAt`).
 */
async function idleOps(
  fx: StackFixture,
  admin: Redis,
  plans: PlanWriter,
  tag: string,
  nodes: number,
  portfolios: number,
  push: boolean,
  windowMs: number,
  options: { bundle?: string; server?: RedisServer; events?: number } = {},
): Promise<IdleOps> {
  const started: ManagedProcess[] = [];
  for (let n = 0; n < nodes; n++) {
    const nodeId = `${tag}-${n}`;
    const ids = Array.from({ length: portfolios }, (_, i) => `${nodeId}-p${i}`);
    for (const id of ids) {
      await fx.addToCatalog(id);
      await fx.seedBook(id);
    }
    const env = { ...DEFAULTS, ASSIGNMENT_PUSH: push ? 'on' : 'off' };
    const node =
      options.bundle !== undefined && options.server !== undefined
        ? await startNodeFrom(fx, options.server, options.bundle, nodeId, env)
        : await fx.startNode(nodeId, env);
    started.push(node);
    await plans.assign(nodeId, ids);
    await waitFor(() => logEntries(node, 'Portfolio loaded').length === ids.length, {
      timeoutMs: 20_000,
    });
  }
  // Settled: every load done, the reads at their idle pace.
  await sleep(6_000);
  await admin.config('RESETSTAT');
  const ops0 = await commandsProcessed(admin);
  const t0 = performance.now();
  await sleep(windowMs);
  const ops = (await commandsProcessed(admin)) - ops0;
  const elapsed = (performance.now() - t0) / 1_000;
  const byCommand = new Map<string, number>();
  for (const line of (await admin.info('commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (match?.[1] !== undefined && match[1] !== 'info' && match[1] !== 'config')
      byCommand.set(match[1], Number(match[2]) / elapsed / nodes);
  }
  const result: IdleOps = { perNode: ops / elapsed / nodes, byCommand };
  if (options.events !== undefined && portfolios > 0) {
    const portfolioId = `${tag}-0-p0`;
    const producer = new PortfolioQueues({ connection: admin, keys: fx.keys });
    for (let i = 0; i < options.events; i++) {
      await producer.add(portfolioId, {
        symbol: 'BTCUSDT',
        price: 100 + (i % 7),
        volume: 1,
        event_time: new Date().toISOString(),
      });
      // Each event lands on an idle runner, anywhere in its wait.
      await sleep(100 + ((i * 37) % 250));
    }
    const events = options.events;
    await waitFor(
      async () => {
        const raw = await admin.get(fx.keys.portfolioState(portfolioId));
        const key = fx.keys.portfolioState(portfolioId);
        const state = raw === null ? undefined : decodePayload('portfolioState', key, raw);
        if (state?.ok !== true || state.value.processed_count < events) return false;
        if (state.value.latency_ms !== null) result.eventLatency = state.value.latency_ms;
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
  }
  for (const node of started) await node.stop('SIGTERM');
  return result;
}

function top(byCommand: Map<string, number>): string {
  return [...byCommand.entries()]
    .sort((a, b) => b[1] - a[1])
    .filter(([, v]) => v >= 0.05)
    .map(([name, v]) => `${name} ${round(v, 2)}`)
    .join(', ');
}

/**
 * 10. Push instead of polling: plan write → node running the portfolio (p50/p99) with push and
 * with the poll it replaces (`ASSIGNMENT_PUSH=off`, the old 250 ms), and Redis commands per second
 * per idle node, both ways, in the same run. Real node processes (production bundles) on one Redis;
 * the plan written by the scheduler's own script.
 */
export const pushLatency: Bench = async ({ quick, log }) => {
  const rows: Row[] = [];
  const server = await RedisServer.start();
  const fx = new StackFixture(server, { bundled: true });
  const admin = new Redis({ host: server.host, port: server.port });
  const plans = new PlanWriter(admin, fx);
  const samples = quick ? 12 : 40;
  const nodes = quick ? 2 : 4;
  const windowMs = quick ? 10_000 : 30_000;
  try {
    log(`push: plan write → loaded, ${samples} moves with push, then with the 250 ms poll`);
    const pushed = await writeToLoad(fx, plans, 'push-node', true, samples);
    const polled = await writeToLoad(fx, plans, 'poll-node', false, samples);
    const p = (values: number[], q: number) => percentile(values, q);
    // The load itself: from the message to the portfolio running (a read, the unload of the
    // other portfolio, the load), per move.
    const load = pushed.loaded.map((ms, i) => ms - (pushed.received[i] ?? Number.NaN));
    rows.push(
      {
        metric: 'plan write → message at the node, p50',
        value: p(pushed.received, 50),
        unit: 'ms',
      },
      {
        metric: 'plan write → message at the node, p99',
        value: p(pushed.received, 99),
        unit: 'ms',
        target: { text: '< 50 ms', met: p(pushed.received, 99) < 50 },
      },
      {
        metric: 'plan write → portfolio loaded, p50 (push)',
        value: p(pushed.loaded, 50),
        unit: 'ms',
        baseline: { label: 'polled every 250 ms', value: p(polled.loaded, 50) },
      },
      {
        metric: 'plan write → portfolio loaded, p99 (push)',
        value: p(pushed.loaded, 99),
        unit: 'ms',
        baseline: { label: 'polled every 250 ms', value: p(polled.loaded, 99) },
      },
      {
        metric: 'message → portfolio loaded (read, unload, load), p50',
        value: p(load, 50),
        unit: 'ms',
      },
      {
        metric: 'message → portfolio loaded (read, unload, load), p99',
        value: p(load, 99),
        unit: 'ms',
      },
    );

    log(`push: idle Redis commands per node, ${nodes} nodes, ${windowMs / 1_000} s each way`);
    const bare = {
      push: await idleOps(fx, admin, plans, 'bare-push', nodes, 0, true, windowMs),
      poll: await idleOps(fx, admin, plans, 'bare-poll', nodes, 0, false, windowMs),
    };
    const events = quick ? 20 : 60;
    const beforeRef = process.env['BENCH_PUSH_BEFORE'];
    const loadAtStart = loadavg()[0] ?? 0;
    // The node as it was at BENCH_PUSH_BEFORE (a git ref), measured right before this tree's.
    const before =
      beforeRef === undefined || beforeRef === ''
        ? undefined
        : await idleOps(fx, admin, plans, 'idle-before', nodes, 5, true, windowMs, {
            bundle: await buildNodeAt(beforeRef),
            server,
            events,
          });
    const full = {
      // Against the earlier node, this tree's built the same way.
      push: await idleOps(fx, admin, plans, 'idle-push', nodes, 5, true, windowMs, {
        events,
        ...(before === undefined ? {} : { bundle: await buildNodeAt(undefined), server }),
      }),
      poll: await idleOps(fx, admin, plans, 'idle-poll', nodes, 5, false, windowMs),
    };
    const loadAtEnd = loadavg()[0] ?? 0;
    rows.push(
      {
        metric: 'Redis commands/s per node, no portfolio (beat + reads), push',
        value: round(bare.push.perNode, 2),
        unit: 'ops/s',
        baseline: { label: 'polled every 250 ms', value: round(bare.poll.perNode, 2) },
        target: { text: '≤ 3', met: bare.push.perNode <= 3 },
      },
      {
        metric: 'Redis commands/s per idle node with 5 portfolios, push',
        value: round(full.push.perNode, 2),
        unit: 'ops/s',
        baseline: { label: 'polled every 250 ms', value: round(full.poll.perNode, 2) },
      },
    );
    if (before !== undefined)
      rows.push({
        metric: `Redis commands/s per idle node with 5 portfolios, push, against the node at ${beforeRef}`,
        value: round(full.push.perNode, 2),
        unit: 'ops/s',
        baseline: { label: `at ${beforeRef}`, value: round(before.perNode, 2) },
        target: { text: '≤ 3', met: full.push.perNode <= 3 },
      });
    const latency = full.push.eventLatency;
    if (latency !== undefined)
      rows.push(
        {
          metric: 'event → applied on an idle node with 5 portfolios, p50',
          value: latency.p50,
          unit: 'ms',
          ...(before?.eventLatency === undefined
            ? {}
            : { baseline: { label: `at ${beforeRef}`, value: before.eventLatency.p50 } }),
        },
        {
          metric: 'event → applied on an idle node with 5 portfolios, p99',
          value: latency.p99,
          unit: 'ms',
          ...(before?.eventLatency === undefined
            ? {}
            : { baseline: { label: `at ${beforeRef}`, value: before.eventLatency.p99 } }),
        },
      );
    return {
      id: 'push',
      title: '10. Push instead of polling',
      rows,
      notes: [
        `Plan write → loaded: the scheduler's own plan write (RedisSchedulerStore.writePlan, whose script SPUBLISHes the new version to the node), timed from just before the write to the node's "Portfolio loaded" log line (its own clock, ms), moving one node back and forth between two portfolios that have books (no fresh-start wait; each move includes unloading the other), ${samples} moves each way, 100-350 ms apart. Default timings: HEARTBEAT_INTERVAL_MS 5000, ASSIGNMENT_POLL_MS 250; the baseline is the same node with ASSIGNMENT_PUSH=off.`,
        `Idle ops: ${nodes} real nodes, settled (every load done), then INFO total_commands_processed over ${windowMs / 1_000} s, divided by nodes; commands inside scripts count, as Redis counts them (a beat is an EVALSHA and the writes it makes). No portfolio: the beat and the assignment and trading reads alone. Per node and command — no portfolio, push: ${top(bare.push.byCommand)}; polled: ${top(bare.poll.byCommand)}. With 5 portfolios (books seeded, queues empty), push: ${top(full.push.byCommand)}; polled: ${top(full.poll.byCommand)}.`,
        `With portfolios, an idle node's cost is its beat (one script, and every command in it: a GET and a PEXPIRE per lease and one INFO each beat; a fence's EXISTS and an unchanged state's SET only every third beat, or at once when Redis changed), its safety read (one script) and probe, and one blocking wait for all its queues (BZPOPMIN a beat long, then one EXISTS of their lists); it reads no queue depth while its runners wait on empty queues.${
          before === undefined
            ? ''
            : ` Against the node at ${beforeRef} (built from that commit's node and portfolio-queue sources, BENCH_PUSH_BEFORE), measured just before in the same run: ${top(before.byCommand)}.`
        } Event → applied: ${events} events to one portfolio of an idle node, 100-350 ms apart, the node's own latency_ms (enqueue to commit). Load average (1 min) ${round(loadAtStart, 1)} before the idle runs, ${round(loadAtEnd, 1)} after, on ${String(availableCores())} cores.`,
      ],
    };
  } finally {
    admin.disconnect();
    await fx.close();
    await server.cleanup();
  }
};
