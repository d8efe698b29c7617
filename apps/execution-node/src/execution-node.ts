import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { PeriodicLoop, type Logger } from '@ginkgo-live/runtime';
import type { RedisConnections } from '@ginkgo-live/redis-client';
import { PortfolioQueueReader, PortfolioQueues, QueueWakeups } from '@ginkgo-live/portfolio-queue';
import type { Notifier } from '@ginkgo-live/notification-adapter';
import {
  encodePayload,
  placementDigest,
  type NodeInfo,
  type NodeStatus,
  type PortfolioBook,
  type PortfolioSpec,
  type PortfolioState,
  type RedisHealth,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import type { NodeConfig } from './config.ts';
import { HeartbeatLoop } from './heartbeat-loop.ts';
import { NodeStore, type BeatFence, type BeatLease, type LeaseClaim } from './node-store.ts';
import { OrdersPush } from './orders-push.ts';
import type { LatencyHistogram } from './latency-window.ts';
import { PortfolioRunner, type Hold, type RunnerLease } from './portfolio-runner.ts';
import { ProcessStatsSampler } from './process-stats.ts';
import { DEFAULT_THRESHOLDS, QueuePressureWatcher } from './queue-pressure.ts';
import { createStrategy, type Strategy } from './strategies/index.ts';
import {
  NO_HOLDS,
  settleHolds,
  type Holds,
  type MissingHolds,
  type TradingControlsSeen,
} from './trading-hold.ts';

export interface ExecutionNodeOptions {
  config: NodeConfig;
  connections: RedisConnections;
  keys: StateKeys;
  logger: Logger;
  version: string;
  /** Raises queue notifications (fire-and-forget). */
  notifier: Notifier;
}

/** The node's numbers at one moment: `collect_metrics()` (T066), also served as Prometheus text. */
export interface NodeMetrics {
  node_id: string;
  status: NodeStatus;
  uptime_seconds: number;
  portfolio_count: number;
  capacity: number;
  events_per_second: number;
  queue_usage_max: number;
  cpu_percent: number;
  memory_rss_bytes: number;
  heap_used_bytes: number;
  redis: RedisHealth;
  portfolios: PortfolioState[];
  /** Each portfolio's latency since it started here (not in the state: Prometheus only). */
  latency: Map<string, LatencyHistogram>;
}

export type StartResult = { ok: true } | { ok: false; reason: string };

/**
 * The execution node: claims its id, beats (FR-036), runs the portfolios its assignment names (at
 * most its capacity, each under a lease so no two nodes run one portfolio), keeps node info and
 * portfolio states in Redis, and drains on stop.
 */
export class ExecutionNode {
  status: NodeStatus = 'starting';
  private readonly startedAt = new Date();
  private readonly store: NodeStore;
  private readonly queues: PortfolioQueues;
  /** The runners' waits on their empty queues: one blocking wait for all (per slot on a cluster). */
  private readonly wakeups: QueueWakeups;
  private readonly heartbeat: HeartbeatLoop;
  private readonly pressure: QueuePressureWatcher;
  private readonly runners = new Map<string, PortfolioRunner>();
  /** The queue reader of each portfolio's current runner, and which were sampled since its load. */
  private readonly readers = new Map<string, PortfolioQueueReader>();
  private readonly sampled = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly stats = new ProcessStatsSampler();
  private readonly loops: PeriodicLoop[] = [];
  private readonly log: Logger;
  private readonly reported = new Set<string>();
  private seq = 0;
  /** This process among all that ever ran under the node id: part of every lease token. */
  private readonly instance = `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
  private leaseEpoch = 0;
  /** When (performance.now()) the last beat attempt started, and when a freeze was last noticed. */
  private lastBeatAttemptAt: number | undefined;
  /** What the beats last wrote and found, per runner (see `remember`). */
  private beatMemo = new WeakMap<PortfolioRunner, BeatMemo>();
  private readonly youngRedisReported = new Set<string>();
  /** Portfolios whose last load threw (logged once until one does not). */
  private readonly loadFailing = new Set<string>();
  private lastProcessed = new Map<string, { count: number; at: number }>();
  private stopping: Promise<boolean> | undefined;
  /**
   * The halt and pauses this process holds (kept while Redis cannot be read, and while Redis
   * shows no record of them: only their lift ends them — `settleHolds`).
   */
  private holds: Holds = NO_HOLDS;
  /** Holds kept that Redis no longer shows, as last told (`halt_missing`); null: none told. */
  private missingTold: string | null = null;
  /** At start: a `halt_missing` of this node's previous process may still be firing. */
  private missingMayFire = true;
  /**
   * Readings of the controls are numbered when issued and applied only in that order: the trading
   * read and the assignment read read them concurrently, and an older reading must not undo a newer.
   */
  private tradingIssued = 0;
  private tradingApplied = 0;
  /** The push subscription (none with `ASSIGNMENT_PUSH=off`). */
  private push: OrdersPush | undefined;
  private ordersLoop: PeriodicLoop | undefined;
  private tradingLoop: PeriodicLoop | undefined;
  /**
   * Whether the last assignment read succeeded and left nothing to retry (every portfolio it names
   * loaded, none waiting for its lease or its fresh start): only then may the next read wait for a
   * push or the safety interval. Likewise for the last trading read.
   */
  private ordersSettled = false;
  private tradingSettled = false;
  /** A push (or a subscription gained or lost) asked for the next trading read. */
  private tradingPushed = false;
  /** When (performance.now()) the last trading reading that succeeded was issued, by either read. */
  private tradingReadAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: ExecutionNodeOptions) {
    const { config, connections, keys } = options;
    this.log = options.logger.child({ component: 'node' });
    this.store = new NodeStore({
      redis: connections.main,
      keys,
      nodeId: config.nodeId,
      heartbeatTtlMs: config.heartbeatTtlMs,
      nodeInfoTtlMs: config.nodeInfoTtlMs,
      portfolioStateTtlMs: config.portfolioStateTtlMs,
      claimWindow: { afterMs: freshStartAfterMs(config), gapMs: claimGapMs(config) },
    });
    this.pressure = new QueuePressureWatcher(
      options.notifier,
      config.nodeId,
      DEFAULT_THRESHOLDS,
      ({ portfolioId, depth, capacity }) =>
        this.log.error(
          'A queue is deeper than PORTFOLIO_QUEUE_CAPACITY: a producer enforces a larger capacity; set the one value for the feed and the nodes alike',
          { portfolioId, depth, capacity },
        ),
    );
    this.queues = new PortfolioQueues({
      connection: connections.main,
      keys,
      capacity: config.queueCapacity,
    });
    this.wakeups = new QueueWakeups({
      redis: connections.main,
      // A blocking connection of its own (the waits block it), named after the node (and the
      // slot, on a cluster).
      openBlocking: (slot) =>
        connections.connection('workers', 'blocking').duplicate({
          connectionName: `ginkgo:execution-node:${config.nodeId}:queues${slot === null ? '' : `:${slot}`}`,
        }),
      // An add ends the wait at once; a wake-up lost (a blocking socket dead without a word) costs
      // at most a beat and the command timeout, as a push lost does.
      lookAfterMs: config.heartbeatIntervalMs,
      owner: config.nodeId,
    });
    this.heartbeat = new HeartbeatLoop({
      intervalMs: config.heartbeatIntervalMs,
      maxAttempts: config.heartbeatRetryAttempts,
      baseDelayMs: config.heartbeatRetryBaseDelayMs,
      budgetMs: config.heartbeatTtlMs - config.heartbeatIntervalMs,
      beat: () => this.beat(),
      // Redis may have come back empty: every state and book is written again at once.
      onRecovered: () => {
        for (const id of this.runners.keys()) this.dirty.add(id);
      },
      logger: options.logger.child({ component: 'heartbeat' }),
    });
  }

  private get config(): NodeConfig {
    return this.options.config;
  }

  /**
   * Waits for Redis, claims the node id (refused while a live node holds it), sends the first
   * beat and starts following the assignment.
   */
  async start(): Promise<StartResult> {
    const { connections } = this.options;
    if (!(await connections.waitUntilReady(this.config.redis.connectTimeoutMs))) {
      this.log.warn('Waiting for Redis before claiming the node id');
      while (!(await connections.waitUntilReady(this.config.redis.connectTimeoutMs))) {
        if (this.stopRequested()) return this.stoppedWhileStarting();
      }
    }
    const claim = await this.store.claimNodeId(this.heartbeatPayload());
    if (!claim.ok) {
      return {
        ok: false,
        reason: `node id ${this.config.nodeId} is held by a live node (its heartbeat expires in ${claim.pttlMs} ms); choose another NODE_ID or wait`,
      };
    }
    // A stop that came while the claim was in flight has drained an empty node and deleted its
    // keys: going on would beat again and take leases in a process about to exit.
    if (this.stopRequested()) return this.stoppedWhileStarting();
    this.status = 'running';
    await this.heartbeat.start();
    if (this.stopRequested()) return this.stoppedWhileStarting();
    const loop = (
      name: string,
      intervalMs: number | (() => number),
      run: () => Promise<void>,
    ): PeriodicLoop => new PeriodicLoop({ name, intervalMs, run, logger: this.log });
    // Apart from the assignment read, whose reconcile may wait on a slow unload or load: a halt is
    // applied at its push (or within the interval) whatever a reconcile waits for.
    this.tradingLoop = loop(
      'trading read',
      () => this.tradingPaceMs(),
      () => this.pollTrading(),
    );
    this.ordersLoop = loop(
      'assignment read',
      () => this.ordersPaceMs(),
      () => this.reconcile(),
    );
    this.loops.push(
      this.tradingLoop,
      this.ordersLoop,
      loop('state flush', this.config.stateFlushMs, () => this.flush()),
      loop('queue sample', this.config.queueSampleMs, () => this.sampleQueues()),
    );
    for (const loop of this.loops) loop.start();
    if (this.config.push) this.startPush();
    this.log.info('Execution node running', {
      capacity: this.config.capacity,
      push: this.config.push,
    });
    return { ok: true };
  }

  /**
   * Follows the node's channel and the trading channel on a connection of its own
   * (`ginkgo:execution-node:<id>:push`). A message runs the matching read at once — coalesced by
   * its loop: one read in flight and at most one more pending, however many messages came.
   */
  private startPush(): void {
    const { connections, keys } = this.options;
    const readTrading = (): void => {
      this.tradingPushed = true;
      this.tradingLoop?.trigger();
    };
    const readAll = (): void => {
      readTrading();
      this.ordersLoop?.trigger();
    };
    this.push = new OrdersPush({
      subscriber: connections.connection('push', 'request'),
      publisher: connections.main,
      ordersChannel: keys.nodeOrdersChannel(this.config.nodeId),
      tradingChannel: keys.tradingChannel(),
      onOrders: () => this.ordersLoop?.trigger(),
      onTrading: readTrading,
      onSubscribed: readAll,
      // The reads wait the safety interval while subscribed: back to the poll pace at once.
      onLost: readAll,
      retryMs: this.config.heartbeatIntervalMs,
      echoTimeoutMs: this.config.redis.commandTimeoutMs,
      logger: this.options.logger.child({ component: 'push' }),
    });
    this.push.start();
  }

  /**
   * How long a read waits for the next one. Subscribed and settled: the safety interval, one beat
   * (a message lost costs at most that). Otherwise — push off, not subscribed (its connection down,
   * Redis refused it), or something to retry (a read that failed, a load waiting for its lease or
   * its fresh start) — `ASSIGNMENT_POLL_MS`, as before push.
   */
  private readPaceMs(settled: boolean): number {
    return this.push?.subscribed === true && settled
      ? this.config.heartbeatIntervalMs
      : this.pollPaceMs();
  }

  /**
   * The poll: `ASSIGNMENT_POLL_MS`, but never slower than a subscribed node's safety read (an
   * `ASSIGNMENT_POLL_MS` set above `HEARTBEAT_INTERVAL_MS`).
   */
  private pollPaceMs(): number {
    return Math.min(this.config.assignmentPollMs, this.config.heartbeatIntervalMs);
  }

  /**
   * The assignment read's safety read comes a tenth of an interval early: it reads the controls
   * too (one transaction), so, idle, it is always the fresher reading when the trading read's turn
   * comes, and the controls are read once an interval, not twice.
   */
  private ordersPaceMs(): number {
    const pace = this.readPaceMs(this.ordersSettled);
    return this.push?.subscribed === true && this.ordersSettled ? Math.round(pace * 0.9) : pace;
  }

  /**
   * The trading read's pace: as above, except that its safety read comes only once the last
   * reading of the controls, by either read, is an interval old: at least one reading an interval,
   * whatever the assignment read waits for (a slow load).
   */
  private tradingPaceMs(): number {
    if (this.push?.subscribed !== true || !this.tradingSettled) return this.pollPaceMs();
    return Math.max(1, this.tradingReadAt + this.config.heartbeatIntervalMs - performance.now());
  }

  /**
   * A stop arrived during start: let the drain finish, then delete the node keys again (the claim
   * or a first beat may have landed after the drain deleted them). Nothing was started; the stop
   * decides the exit, so this is no refusal.
   */
  /** A method, not a field test: the compiler would keep a check's narrowing across the awaits. */
  private stopRequested(): boolean {
    return this.stopping !== undefined;
  }

  private async stoppedWhileStarting(): Promise<StartResult> {
    await this.stopping;
    await this.heartbeat.stop();
    try {
      await this.store.forgetNode();
    } catch (err) {
      this.log.warn('Could not delete the node keys; they expire by themselves', { err });
    }
    this.log.info('Stopped while starting; nothing was started');
    return { ok: true };
  }

  /**
   * Drains: status draining, stop taking events, finish events in hand within the stop budget,
   * write final states (stopped), release leases, delete heartbeat and info. Resolves to whether
   * everything went cleanly. Idempotent.
   */
  stop(): Promise<boolean> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  /** The node's numbers now (T066). */
  collectMetrics(): NodeMetrics {
    const stats = this.stats.sample();
    const portfolios = [...this.runners.values()].map((r) => r.state());
    return {
      node_id: this.config.nodeId,
      status: this.status,
      uptime_seconds: (Date.now() - this.startedAt.getTime()) / 1_000,
      // A paused portfolio is still held here: it resumes where it is.
      portfolio_count: portfolios.filter((p) => p.status === 'running' || p.status === 'paused')
        .length,
      capacity: this.config.capacity,
      events_per_second: sum([...this.runners.values()].map((r) => r.eventsPerSecond)),
      queue_usage_max: Math.max(0, ...portfolios.map((p) => p.queue_usage)),
      cpu_percent: stats.cpuPercent,
      memory_rss_bytes: stats.rssBytes,
      heap_used_bytes: stats.heapUsedBytes,
      redis: this.heartbeat.health(),
      portfolios,
      latency: new Map([...this.runners].map(([id, r]) => [id, r.latencyHistogram()])),
    };
  }

  private heartbeatPayload(): string {
    return encodePayload('heartbeat', {
      _v: 1,
      node_id: this.config.nodeId,
      sent_at: new Date().toISOString(),
      seq: this.seq++,
    });
  }

  private info(): NodeInfo {
    const m = this.collectMetrics();
    const now = new Date().toISOString();
    const portfolioIds = m.portfolios.map((p) => p.portfolio_id);
    return {
      _v: 1,
      // Lets the scheduler skip decoding this info while its placement is the one it knows.
      placement: placementDigest(m.capacity, portfolioIds),
      node_id: m.node_id,
      host: hostname(),
      pid: process.pid,
      version: this.options.version,
      status: m.status,
      started_at: this.startedAt.toISOString(),
      uptime_seconds: m.uptime_seconds,
      last_heartbeat: now,
      portfolio_ids: portfolioIds,
      portfolio_count: m.portfolio_count,
      capacity: m.capacity,
      queue_usage_max: m.queue_usage_max,
      queue_usage: Object.fromEntries(m.portfolios.map((p) => [p.portfolio_id, p.queue_usage])),
      events_per_second: m.events_per_second,
      cpu_percent: m.cpu_percent,
      memory_rss_bytes: m.memory_rss_bytes,
      heap_used_bytes: m.heap_used_bytes,
      redis: m.redis,
    };
  }

  /** One heartbeat attempt: heartbeat, info, every state, leases renewed — one round trip. */
  private async beat(): Promise<void> {
    const startedAt = performance.now();
    // Attempts come at least every interval while the process runs, Redis reachable or not: a gap
    // longer than the lease TTL means the process itself was frozen (SIGSTOP, a stalled host).
    const previous = this.lastBeatAttemptAt;
    this.lastBeatAttemptAt = startedAt;
    if (previous !== undefined && startedAt - previous > this.config.heartbeatTtlMs) {
      this.log.warn('This process was frozen longer than the lease TTL', {
        frozenMs: Math.round(startedAt - previous),
      });
    }
    const runners = [...this.runners.values()];
    const info = this.info();
    // The info lands only if this write succeeds, so it says so: Redis reachable as of now.
    info.redis = {
      ...info.redis,
      healthy: true,
      consecutive_failures: 0,
      last_success_at: info.last_heartbeat,
    };
    const claims = runners.map((r) => {
      const state = r.state();
      return { runner: r, lease: r.leaseClaim(), state, content: stateContent(state) };
    });
    const {
      lost,
      resync,
      claiming,
      late = [],
      stateWritten,
      fenceFound,
    } = await this.store
      .beat(
        this.heartbeatPayload(),
        info,
        claims.map(({ runner, lease, state, content }) => {
          const memo = this.beatMemo.get(runner);
          const written = memo?.state;
          const fence = lease === null ? undefined : memo?.fence;
          return {
            portfolioId: runner.portfolioId,
            state,
            lease,
            // Changed, or its last write a third of its TTL old: written (and always where the
            // beat finds Redis changed, or takes a lease back).
            writeState:
              written === undefined ||
              written.content !== content ||
              startedAt - written.at >= this.stateRefreshMs(),
            ...(fence !== undefined &&
            fence.token === lease?.token &&
            startedAt - fence.at < this.fenceRecheckMs()
              ? { fenceSeenIn: fence.redis }
              : {}),
          };
        }),
      )
      .catch((err: unknown) => {
        // A failed beat confirms no claim: one reported earlier may be gone with the Redis that
        // failed it (restarted empty again), and a stop must not end on it.
        for (const { runner, lease } of claims) {
          if (lease !== null) runner.claimReported(undefined, startedAt);
        }
        // Nor anything written or found before it: the next beat writes every state and checks
        // every fence, whatever Redis it reaches.
        this.beatMemo = new WeakMap();
        throw err;
      });
    this.remember(claims, startedAt, stateWritten, fenceFound, [
      ...lost,
      ...resync,
      ...claiming,
      ...late,
    ]);
    // A claim was not renewed: counted as renewed, the next beat would take the lease back at once.
    const notRenewed = new Set([...lost, ...claiming, ...late].map((l) => l.token));
    const claimedVersions = new Map(claiming.map((c) => [c.token, c.version]));
    for (const { runner, lease } of claims) {
      if (lease === null) continue;
      if (!notRenewed.has(lease.token)) runner.leaseRenewed(startedAt);
      // Every beat that carried the runner says whether its claim is in Redis as of now; a claim
      // reported earlier may be gone (Redis restarted empty again, or failed over without it).
      runner.claimReported(claimedVersions.get(lease.token), startedAt);
    }
    for (const { portfolioId, token, version } of claiming) {
      const runner = this.runners.get(portfolioId);
      if (runner?.leaseClaim()?.token !== token) continue;
      this.reportOnce(
        `claim:${token}`,
        'Portfolio lease and book gone from Redis after this node lost its lease; its book waits in Redis as a claim (the highest version is loaded after a fresh-start window)',
        { portfolioId, version, waitMs: freshStartAfterMs(this.config) },
      );
    }
    for (const { portfolioId, token } of resync) {
      const runner = this.runners.get(portfolioId);
      if (runner?.leaseClaim()?.token !== token) continue;
      this.log.warn('Portfolio book missing or its lease had vanished; writing the book again', {
        portfolioId,
      });
      runner.requestSync();
    }
    await this.dropLost(lost);
  }

  /**
   * What the beats wrote and found for each runner: its state written at `at` with `content`, and
   * its lease's fence found in the Redis `redis` at `at`. Forgotten for a lease the beat did not
   * renew plainly (taken back, lost, claimed, late), and for every runner after a failed beat.
   */
  private remember(
    claims: readonly { runner: PortfolioRunner; lease: LeaseClaim | null; content: string }[],
    at: number,
    stateWritten: readonly string[],
    fenceFound: readonly BeatFence[],
    unsettled: readonly BeatLease[],
  ): void {
    const written = new Set(stateWritten);
    const unsettledTokens = new Set(unsettled.map((l) => l.token));
    for (const { runner, lease, content } of claims) {
      const memo = this.beatMemo.get(runner) ?? {};
      if (written.has(runner.portfolioId)) memo.state = { content, at };
      const found = fenceFound.find((f) => f.token === lease?.token);
      if (found !== undefined) memo.fence = { token: found.token, redis: found.redis, at };
      if (lease === null || unsettledTokens.has(lease.token)) delete memo.fence;
      this.beatMemo.set(runner, memo);
    }
  }

  /**
   * An unchanged state is written again once its last write is this old: a third of its TTL, so
   * two beats in a row may fail before it expires.
   */
  private stateRefreshMs(): number {
    return this.config.portfolioStateTtlMs / 3 - this.config.heartbeatIntervalMs / 2;
  }

  /**
   * A fence found is checked again, in the same Redis, once its last check is this old: about a
   * lease TTL (every third beat by default). A Redis that changed (restarted, promoted) has every
   * fence checked at its first beat (see NodeStore's BEAT).
   */
  private fenceRecheckMs(): number {
    return this.config.heartbeatTtlMs - this.config.heartbeatIntervalMs / 2;
  }

  /** Follows the assignment, and says whether anything is left to retry. */
  private async reconcile(): Promise<void> {
    this.ordersSettled = false;
    this.push?.check();
    this.ordersSettled = await this.reconcileOnce();
  }

  /**
   * Loads what the assignment names (up to capacity), unloads what it no longer names. Resolves
   * to whether it is done: every portfolio it names runs here (or failed for good).
   */
  private async reconcileOnce(): Promise<boolean> {
    if (this.status !== 'running') return true;
    const seq = ++this.tradingIssued;
    const issuedAt = performance.now();
    const { assignment, trading } = await this.store.readOrders();
    this.tradingReadAt = Math.max(this.tradingReadAt, issuedAt);
    // Before anything else, and before anything is loaded: a halt stops every portfolio at once.
    this.follow(trading, seq);
    // No assignment written (yet, or Redis restarted empty): unknown is not empty — keep running.
    // Nothing to retry: the write that brings one pushes it (and the safety read finds it).
    if (assignment === null) return true;
    if (!assignment.ok) {
      this.reportOnce(
        `assignment:${assignment.error.problem}`,
        'Assignment is malformed; keeping the current portfolios',
        {
          problem: assignment.error.problem,
        },
      );
      return true;
    }
    const wanted = assignment.value.portfolio_ids;
    if (wanted.length > this.config.capacity) {
      this.reportOnce(
        `capacity:${assignment.value.plan_version}`,
        'Assignment exceeds capacity; running the first ones',
        {
          assigned: wanted.length,
          capacity: this.config.capacity,
        },
      );
    }
    const desired = new Set(wanted.slice(0, this.config.capacity));
    for (const [id, runner] of this.runners) {
      if (!desired.has(id)) await this.unload(runner);
    }
    for (const id of desired) {
      const runner = this.runners.get(id);
      if (runner === undefined || runner.status === 'loading') await this.loadOne(id, runner);
    }
    return [...desired].every((id) => {
      const runner = this.runners.get(id);
      return runner !== undefined && runner.status !== 'loading';
    });
  }

  /**
   * One portfolio's load, its failure kept to it: a load that throws every time (INFO denied or
   * renamed on this Redis, a spec read failing) must not keep the portfolios after it from loading.
   * Logged once per run of failures, like a loop's, and again when it loads.
   */
  private async loadOne(portfolioId: string, waiting: PortfolioRunner | undefined): Promise<void> {
    try {
      await this.load(portfolioId, waiting);
    } catch (err) {
      if (this.loadFailing.has(portfolioId)) return;
      this.loadFailing.add(portfolioId);
      this.log.error('Portfolio load failed; trying again at the next poll', { portfolioId, err });
      return;
    }
    if (this.loadFailing.delete(portfolioId))
      this.log.info('Portfolio load no longer fails', { portfolioId });
  }

  /** An operator's hold on a portfolio now: the fleet halt, its pause, or none. */
  private holdOf(portfolioId: string): Hold | null {
    if (this.holds.halt !== null) return 'halt';
    return this.holds.paused.has(portfolioId) ? 'pause' : null;
  }

  /** Reads the halt and pauses and applies them (the trading read). */
  private async pollTrading(): Promise<void> {
    const pushed = this.tradingPushed;
    this.tradingPushed = false;
    this.tradingSettled = false;
    if (this.status !== 'running') return;
    // The safety read, when the assignment read (which reads the controls too, in its
    // transaction) did so less than an interval ago: nothing a second read would add. Still read
    // when that read is slow or stuck on a load: then its reading grows old and this one is due.
    if (
      !pushed &&
      this.push?.subscribed === true &&
      performance.now() - this.tradingReadAt < this.config.heartbeatIntervalMs
    ) {
      this.tradingSettled = true;
      return;
    }
    const seq = ++this.tradingIssued;
    const issuedAt = performance.now();
    let trading: TradingControlsSeen;
    try {
      trading = await this.store.readTrading();
    } catch (err) {
      // A pushed change not read yet: retried at the poll pace, not skipped as fresh by the next
      // turn (the last reading that succeeded predates the push).
      if (pushed) this.tradingPushed = true;
      throw err;
    }
    this.follow(trading, seq);
    this.tradingReadAt = Math.max(this.tradingReadAt, issuedAt);
    this.tradingSettled = true;
  }

  /**
   * Applies the halt and pauses read by the reading numbered `seq` to every portfolio here; a
   * reading older than one already applied is dropped.
   */
  private follow(trading: TradingControlsSeen, seq: number): void {
    if (seq < this.tradingApplied) return;
    this.tradingApplied = seq;
    const before = this.holds.halt;
    const { holds, missing } = settleHolds(this.holds, trading);
    this.holds = holds;
    if (holds.halt !== null && before === null)
      this.log.warn('Trading halted: no portfolio applies events until the halt is lifted', {
        id: holds.halt.id,
        by: holds.halt.by,
        reason: holds.halt.reason,
      });
    else if (holds.halt === null && before !== null)
      this.log.info('Trading halt lifted; portfolios go on in queue order', { id: before.id });
    this.tellMissing(missing);
    for (const runner of this.runners.values()) runner.setHold(this.holdOf(runner.portfolioId));
  }

  /**
   * Says so when this node keeps a halt or pause Redis no longer shows (an error in the log and a
   * critical `halt_missing`), and resolves it once a reading settles them all.
   */
  private tellMissing(missing: MissingHolds): void {
    const none = missing.halt === null && missing.paused.length === 0;
    const told = none ? null : JSON.stringify(missing);
    if (told === this.missingTold && !(none && this.missingMayFire)) return;
    const subject = { nodeId: this.config.nodeId };
    if (none) {
      if (this.missingTold !== null)
        this.log.info('Redis shows the halts and pauses this node holds again', {});
      this.options.notifier.resolve('halt_missing', subject, {});
      this.missingMayFire = false;
    } else {
      this.log.error(
        'Redis no longer shows a halt or pause this node holds; it stays held until an operator halts (or pauses) and resumes again',
        { haltId: missing.halt, paused: missing.paused },
      );
      this.options.notifier.raise('halt_missing', subject, {
        halt_id: missing.halt,
        paused: missing.paused,
      });
      this.missingMayFire = true;
    }
    this.missingTold = told;
  }

  private async load(portfolioId: string, waiting: PortfolioRunner | undefined): Promise<void> {
    const spec = await this.store.readSpec(portfolioId);
    if (spec === null || !spec.ok) {
      const problem = spec === null ? 'not in the catalog' : spec.error.problem;
      this.reportOnce(`spec:${portfolioId}:${problem}`, 'Assigned portfolio cannot be loaded', {
        portfolioId,
        problem,
      });
      return;
    }
    const token = `${this.config.nodeId}/${this.instance}/${++this.leaseEpoch}`;
    // The lease counts from before the acquire was sent: this process may freeze before it reads
    // the reply, past the TTL, while another node takes the portfolio over.
    const sentAt = performance.now();
    // Refused before the lease is taken: a lease held even for a moment by a node that will not
    // start the portfolio makes its holder's beat or commit fail 'lost' and drop the book.
    const acquired = await this.store.acquireLease(portfolioId, token, {
      freshStart: { afterMs: freshStartAfterMs(this.config), gapMs: this.freshStartGapMs() },
    });
    if (!acquired.ok && 'redisUptimeMs' in acquired) {
      this.reportFreshStartWait(portfolioId, acquired.redisUptimeMs, acquired.noBookSeenMs);
      // Listed meanwhile as loading, like a portfolio waiting for its lease: the node info names
      // it (so the scheduler does not nudge a node that has seen its assignment) and operators see
      // its state, written where no other node's is.
      if (waiting === undefined)
        this.runners.set(portfolioId, this.newRunner(spec.value, undefined, undefined, null));
      return;
    }
    if (!acquired.ok) {
      // Its previous owner is still finishing (or died and its lease has not expired yet).
      if (waiting === undefined) {
        this.runners.set(portfolioId, this.newRunner(spec.value, undefined, undefined, null));
        this.log.info('Waiting for the portfolio lease', { portfolioId });
      }
      return;
    }
    // The controls again, now that the lease is ours: the reading this reconcile began with may
    // predate a pause the previous owner saw and obeyed before it released; read after the
    // lease was taken, it cannot (the release came before the take, and the pause before it).
    const seq = ++this.tradingIssued;
    try {
      this.follow(await this.store.readTrading(), seq);
    } catch (err) {
      await this.store.giveBack(portfolioId, token).catch(() => undefined);
      throw err;
    }
    if (acquired.reclaimedJobs > 0) {
      this.log.warn("Jobs held by an earlier release's worker put back at the head of the queue", {
        portfolioId,
        jobs: acquired.reclaimedJobs,
      });
    }
    const lease: RunnerLease = { token, loaded: acquired.loaded, sentAt };
    let saved = acquired.book;
    if (saved === null && acquired.loaded === null) {
      // No book and no fence: a new portfolio, one from before the hash tags, or one Redis lost
      // (ACQUIRE took the lease only once Redis had been up long enough for its holder to write
      // it back).
      try {
        saved = await this.store.readLegacyBook(portfolioId);
      } catch (err) {
        // The lease is ours but the load cannot finish: give it back, try again later.
        await this.store.giveBack(portfolioId, token).catch(() => undefined);
        throw err;
      }
    }
    if (saved !== null && !saved.ok) {
      this.log.error('Portfolio book is malformed; starting from the catalog', {
        portfolioId,
        problem: saved.error.problem,
      });
    }
    const book = saved?.ok === true ? saved.value : undefined;
    const strategy = createStrategy(spec.value.strategy, book?.strategy_state);
    const runner = this.newRunner(
      spec.value,
      strategy.ok ? strategy.strategy : undefined,
      book,
      lease,
    );
    this.runners.set(portfolioId, runner);
    if (!strategy.ok) {
      runner.fail(strategy.reason);
      this.log.error('Portfolio cannot run', { portfolioId, reason: strategy.reason });
      return;
    }
    // Read after the lease was taken, before the start: a node started while halted, or taking
    // over a paused portfolio, applies nothing.
    runner.setHold(this.holdOf(portfolioId));
    runner.start();
    this.dirty.add(portfolioId);
    this.log.info('Portfolio loaded', {
      portfolioId,
      held: this.holdOf(portfolioId),
      resumed: book !== undefined,
      version: acquired.loaded?.version ?? 0,
      token,
      ...(acquired.claimOf === undefined ? {} : { claimOf: acquired.claimOf }),
    });
    // A later wait of the same portfolio (Redis emptied again) is worth a line of its own.
    this.youngRedisReported.delete(portfolioId);
  }

  /**
   * Two acquires further apart than this start the wait over (a Redis frozen, or its clock
   * stepped, meanwhile): about a beat, so a freeze leaves the holders at least a lease TTL and a
   * beat afterwards — and at least two assignment polls, so a poll that runs late does not keep a
   * new portfolio waiting for ever.
   */
  private freshStartGapMs(): number {
    return Math.max(this.config.heartbeatIntervalMs, 2 * this.config.assignmentPollMs);
  }

  private reportFreshStartWait(portfolioId: string, uptimeMs: number, noBookSeenMs: number): void {
    if (this.youngRedisReported.has(portfolioId)) return;
    this.youngRedisReported.add(portfolioId);
    const waitMs = freshStartAfterMs(this.config) - Math.min(uptimeMs, noBookSeenMs);
    if (uptimeMs < freshStartAfterMs(this.config))
      this.log.warn(
        'Redis started moments ago (it may have come back empty) and has no book of this portfolio; waiting for a node that holds it to write it back',
        { portfolioId, uptimeMs, waitMs },
      );
    else
      this.log.warn(
        'Redis has no book of this portfolio (new, or lost with its data); waiting for a node that holds it to write it back before starting it fresh',
        { portfolioId, uptimeMs, noBookSeenMs, waitMs },
      );
  }

  private newRunner(
    spec: PortfolioSpec,
    strategy: Strategy | undefined,
    saved: PortfolioBook | undefined,
    lease: RunnerLease | null,
  ): PortfolioRunner {
    const { connections, keys } = this.options;
    const portfolioId = spec.portfolio_id;
    this.readers.delete(portfolioId);
    this.sampled.delete(portfolioId);
    return new PortfolioRunner({
      spec,
      nodeId: this.config.nodeId,
      strategy,
      saved,
      lease,
      leaseTtlMs: this.config.heartbeatTtlMs,
      openReader: () => {
        const reader = new PortfolioQueueReader(connections.main, this.wakeups, keys, portfolioId);
        this.readers.set(portfolioId, reader);
        return reader;
      },
      // The shared waits time out on their own (`lookAfterMs` above); this is theirs too.
      idleWaitMs: this.config.heartbeatIntervalMs,
      commit: (request) => this.store.commit(request),
      batchSize: this.config.eventBatchMax,
      queueCapacity: this.config.queueCapacity,
      logger: this.options.logger,
      onChange: () => this.dirty.add(portfolioId),
      onLost: () => {
        const current = this.runners.get(portfolioId);
        if (current === undefined || current.leaseClaim() !== null) return;
        this.runners.delete(portfolioId);
        this.dirty.delete(portfolioId);
        this.ordersSettled = false;
        this.ordersLoop?.trigger();
      },
    });
  }

  private async unload(runner: PortfolioRunner, force = false): Promise<void> {
    const claim = runner.leaseClaim();
    let released = await runner.stop(force);
    if (!released && runner.status === 'error' && claim !== null) {
      // It never ran, so it has no book to write: only the lease goes back.
      await this.store.giveBack(runner.portfolioId, claim.token);
      released = true;
    }
    if (this.runners.get(runner.portfolioId) === runner) this.runners.delete(runner.portfolioId);
    this.dirty.delete(runner.portfolioId);
    this.pressure.forget(runner.portfolioId);
    this.log.info('Portfolio unloaded', {
      portfolioId: runner.portfolioId,
      processed: runner.processed,
      released,
      ...(runner.stoppedAsClaim() ? { leftAsClaim: true } : {}),
    });
  }

  /** Writes changed states (coalesced: at most once per flush interval); books are committed. */
  private async flush(): Promise<void> {
    const ids = [...this.dirty].filter((id) => this.runners.get(id)?.isActive === true);
    this.dirty.clear();
    const writes = ids.flatMap((id) => {
      const runner = this.runners.get(id);
      const token = runner?.leaseClaim()?.token;
      return runner === undefined || token === undefined
        ? []
        : [{ portfolioId: id, state: runner.state(), token }];
    });
    try {
      const lost = await this.store.flush(writes);
      await this.dropLost(
        lost.map((portfolioId) => ({
          portfolioId,
          token: writes.find((w) => w.portfolioId === portfolioId)?.token ?? '',
        })),
      );
    } catch (err) {
      for (const id of ids) this.dirty.add(id); // written again at the next flush
      throw err;
    }
  }

  /**
   * Reads queue depths and refusals of every portfolio in one go — except the queues whose runner
   * waits on them empty (`PortfolioQueueReader.idle`): their depth is 0 without asking, and nothing
   * was refused since (a queue is refused only when full). The first add wakes the runner, and the
   * queue is read again from the next sample, so a queue filling (a slow strategy, a halt) is seen
   * at the same pace as before; a node whose queues are empty reads none.
   */
  private async sampleQueues(): Promise<void> {
    const all = [...this.runners.keys()];
    const ids = all.filter((id) => !(this.readers.get(id)?.idle === true && this.sampled.has(id)));
    const [depths, refusals] =
      ids.length === 0
        ? [new Map<string, { depth: number }>(), new Map<string, number>()]
        : await Promise.all([this.queues.readDepths(ids), this.queues.readRefusals(ids)]);
    for (const id of ids) this.sampled.add(id);
    const now = Date.now();
    for (const id of all) {
      const runner = this.runners.get(id);
      if (runner === undefined) continue;
      const depth = depths.get(id)?.depth ?? 0;
      const refused = refusals.get(id) ?? runner.refused;
      const last = this.lastProcessed.get(id);
      runner.eventsPerSecond =
        last === undefined
          ? 0
          : ((runner.processed - last.count) * 1_000) / Math.max(1, now - last.at);
      this.lastProcessed.set(id, { count: runner.processed, at: now });
      this.pressure.observe({
        portfolioId: id,
        depth,
        capacity: this.config.queueCapacity,
        refused,
      });
      if (depth !== runner.queueDepth || refused !== runner.refused) {
        runner.queueDepth = depth;
        runner.refused = refused;
        this.dirty.add(id);
      }
    }
  }

  /** Portfolios whose lease or book another process holds stop here at once, writing nothing. */
  private async dropLost(lost: readonly BeatLease[]): Promise<void> {
    for (const { portfolioId, token } of lost) {
      const runner = this.runners.get(portfolioId);
      // A beat about an earlier runner of the portfolio says nothing about this one.
      if (runner === undefined || runner.leaseClaim()?.token !== token) continue;
      this.log.error('Portfolio lease held by another process; stopping it here', { portfolioId });
      this.runners.delete(portfolioId);
      // Still assigned here until the plan says otherwise: read again at the poll pace.
      this.ordersSettled = false;
      this.ordersLoop?.trigger();
      await runner.stop(true);
    }
  }

  private reportOnce(key: string, message: string, fields: Record<string, unknown>): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.log.warn(message, fields);
  }

  private async drain(): Promise<boolean> {
    this.log.info('Draining', { portfolios: this.runners.size });
    this.status = 'draining';
    this.push?.stop();
    // The budget counts from here, whatever the steps below wait for.
    const budget = new Promise<'late'>((resolve) =>
      setTimeout(() => resolve('late'), this.config.stopTimeoutMs).unref(),
    );
    await Promise.race([Promise.all(this.loops.map((loop) => loop.stop())), budget]);
    // Say so at once, not at the next beat; a failure here changes nothing about the drain.
    await Promise.race([
      this.beat().catch((err: unknown) => {
        this.log.debug('Draining beat failed', { err });
      }),
      budget,
    ]);
    // The heartbeat keeps running until the portfolios are released: their leases stay renewed.
    let clean = true;
    const runners = [...this.runners.values()];
    const finished = Promise.all(
      runners.map((r) =>
        this.unload(r).catch((err: unknown) => {
          clean = false;
          this.log.error('Portfolio did not stop cleanly', { portfolioId: r.portfolioId, err });
        }),
      ),
    );
    if ((await Promise.race([finished, budget])) === 'late') {
      clean = false;
      this.log.error(
        'Stop budget exceeded; abandoning uncommitted events (they stay queued and run elsewhere)',
        { budgetMs: this.config.stopTimeoutMs },
      );
      await Promise.all([...this.runners.values()].map((r) => r.stop(true)));
    }
    this.status = 'stopping';
    await Promise.race([this.heartbeat.stop(), budget]);
    try {
      await this.store.forgetNode();
    } catch (err) {
      clean = false;
      this.log.error('Could not delete the node keys; they expire by themselves', { err });
    }
    await this.queues.close();
    this.wakeups.close();
    this.log.info('Execution node stopped', { clean });
    return clean;
  }
}

/**
 * A portfolio with no book and no fence starts from its catalog entry — but not while Redis has
 * been up, or the portfolio has been seen without a book, for less than a lease TTL and two beats
 * (ACQUIRE refuses it): Redis may have come back empty (or a replica that copied an empty master
 * taken over), and a node that holds the portfolio in memory has until then to write it back (a
 * fresh start would reset it). Checked whatever this process saw: one started after Redis
 * restarted empty never saw it come back. Every new portfolio waits this once. The same window
 * times the contest of claims (NodeStore's BEAT): every live holder beats within it.
 */
function freshStartAfterMs(config: NodeConfig): number {
  return config.heartbeatTtlMs + 2 * config.heartbeatIntervalMs;
}

/**
 * Two claims of a claimant further apart than this start its contest's wait over (Redis frozen, or
 * its clock stepped, meanwhile). A live claimant's successful beats come at most about a lease TTL
 * apart (a beat's retries fit in TTL − interval), so a claimant alone still settles its contest;
 * and a freeze that goes unnoticed still leaves two beats of the window after it.
 */
function claimGapMs(config: NodeConfig): number {
  return Math.max(config.heartbeatTtlMs, 2 * config.assignmentPollMs);
}

/** What the beats last wrote and found for one runner (performance.now() times). */
interface BeatMemo {
  state?: { content: string; at: number };
  fence?: { token: string; redis: string; at: number };
}

/** A state as the beat compares it with the one it last wrote: all but its write time. */
function stateContent(state: PortfolioState): string {
  return JSON.stringify({ ...state, updated_at: '' });
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
