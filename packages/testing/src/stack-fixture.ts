import { Redis, type Cluster } from 'ioredis';
import {
  createStateKeys,
  decodePayload,
  encodePayload,
  type NodeInfo,
  type PortfolioSpec,
  type PortfolioBook,
  type PortfolioState,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { appEntry, ManagedProcess } from './managed-process.ts';
import type { RedisCluster } from './redis-cluster.ts';
import { RedisServer, type RedisServerOptions } from './redis-server.ts';
import type { SentinelGroup } from './sentinel-group.ts';

/** Short timings so the tests see many beats quickly; the defaults are covered by unit tests. */
export const FAST = {
  HEARTBEAT_INTERVAL_MS: '500',
  HEARTBEAT_TTL_MS: '2000',
  HEARTBEAT_RETRY_BASE_DELAY_MS: '50',
  NODE_INFO_TTL_MS: '6000',
  PORTFOLIO_STATE_TTL_MS: '6000',
  ASSIGNMENT_POLL_MS: '100',
  QUEUE_SAMPLE_MS: '200',
  STATE_FLUSH_MS: '100',
  REDIS_RECONNECT_MAX_DELAY_MS: '200',
  REDIS_COMMAND_TIMEOUT_MS: '500',
  STOP_TIMEOUT_MS: '1500',
  METRICS_PORT: '0',
  LOG_FORMAT: 'json',
  LOG_LEVEL: 'debug',
} as const;

/**
 * How long a node started with `FAST` waits before it starts a portfolio Redis has no book of
 * (HEARTBEAT_TTL_MS + 2 beats): from Redis's start, and from the first time it found that
 * portfolio without a book. Every new portfolio waits it once; a test that times a first load
 * adds it, or gives the portfolio a book first (`seedBook`).
 */
export const FRESH_START_MS =
  Number(FAST.HEARTBEAT_TTL_MS) + 2 * Number(FAST.HEARTBEAT_INTERVAL_MS);

/**
 * Writes the book (and its fence) a previous owner of the portfolio left: nothing traded yet,
 * `startingCash` in cash. A node loads it at once, without the fresh-start wait of a portfolio
 * Redis has no book of.
 */
export async function seedBook(
  redis: Redis | Cluster,
  keys: StateKeys,
  portfolioId: string,
  startingCash = 10_000,
): Promise<void> {
  const fence = { token: 'previous-owner/0/1', version: 1 };
  const book: PortfolioBook = {
    _v: 1,
    portfolio_id: portfolioId,
    node_id: 'previous-owner',
    cash: startingCash,
    positions: {},
    last_prices: {},
    strategy_state: {},
    processed_count: 0,
    failed_count: 0,
    updated_at: new Date().toISOString(),
    fence,
  };
  await redis
    .multi()
    .set(keys.portfolioBook(portfolioId), encodePayload('portfolioBook', book))
    .hset(keys.portfolioFence(portfolioId), 'token', fence.token, 'version', String(fence.version))
    .exec();
}

export interface StackFixtureOptions {
  /** Default true: the apps' production bundles; false: their sources, with tsx. */
  bundled?: boolean;
  sentinel?: SentinelGroup;
  cluster?: RedisCluster;
  prefix?: string;
  /** How long each app may take to say it runs (default 20 s). */
  startTimeoutMs?: number;
}

/**
 * A test's view of one Redis and the app processes it starts: an inspecting client, the key set of
 * a unique prefix, helpers to seed the catalog and assignments and to read what the apps wrote.
 */
export class StackFixture {
  readonly keys: StateKeys;
  readonly redis: Redis;
  readonly processes: ManagedProcess[] = [];

  /** What `close()` ends before it stops the apps, last registered first (`onClose`, `track`). */
  private readonly closers: (() => unknown)[] = [];
  /** Set by `start()`: the fixture started this server, and `close()` removes it. */
  private ownsServer = false;

  /**
   * Apps run from their production bundles (`dist/main.js`, kept current by the integration
   * tests' global setup, scripts/test-setup.ts), as the image runs them; with `bundled: false`,
   * from source with tsx. With `sentinel`, the apps and this fixture's client reach Redis through
   * that group's sentinels. With `cluster`, the apps get `REDIS_CLUSTER_NODES` and this fixture's
   * client is a cluster client (typed as `Redis`, as the apps hold theirs; `server` is then any
   * node of it).
   */
  constructor(
    readonly server: RedisServer,
    private readonly options: StackFixtureOptions = {},
  ) {
    // A test may need the prefix before the server starts (an ACL file names the keys).
    this.keys = createStateKeys(options.prefix ?? StackFixture.newPrefix());
    const sentinel = options.sentinel;
    this.redis =
      options.cluster !== undefined
        ? (options.cluster.client() as unknown as Redis)
        : sentinel === undefined
          ? new Redis({ ...server.clientOptions(), maxRetriesPerRequest: null })
          : new Redis({
              sentinels: sentinel.sentinels.map((s) => ({ host: s.host, port: s.port })),
              name: sentinel.masterName,
              maxRetriesPerRequest: null,
              // The harness's user on an ACL-enabled group.
              username: sentinel.master.clientOptions().username,
              password: sentinel.master.clientOptions().password,
              ...(sentinel.tls === undefined
                ? {}
                : {
                    tls: sentinel.tls.clientTls,
                    sentinelTLS: sentinel.tls.clientTls,
                    enableTLSForSentinelMode: true,
                  }),
            });
    this.redis.on('error', () => {
      // Tests kill and freeze Redis on purpose; this client waits it out.
    });
  }

  private get startTimeoutMs(): number {
    return this.options.startTimeoutMs ?? 20_000;
  }

  /**
   * A fresh Redis (`redis` options) and a fixture on it, which `close()` removes with everything
   * else: the usual start of an end-to-end test.
   */
  static async start(
    options: StackFixtureOptions & { redis?: RedisServerOptions } = {},
  ): Promise<StackFixture> {
    const { redis, ...fixtureOptions } = options;
    const fx = new StackFixture(await RedisServer.start(redis), fixtureOptions);
    fx.ownsServer = true;
    return fx;
  }

  /** Has `close()` run `closer` before it stops the apps (the last registered first). */
  onClose(closer: () => unknown): void {
    this.closers.push(closer);
  }

  /** Has `close()` close `thing` (a producer's queues, a relay) before it stops the apps; returns it. */
  track<T extends { close(): Promise<unknown> }>(thing: T): T {
    this.onClose(() => thing.close());
    return thing;
  }

  /** A key prefix no other test uses. */
  static newPrefix(): string {
    return `t${Date.now()}${Math.floor(Math.random() * 1_000)}:`;
  }

  /** How the apps reach Redis: the server's host and port, or the sentinel group. */
  private get redisEnv(): Record<string, string> {
    return this.options.cluster?.env ?? this.options.sentinel?.env ?? this.server.env;
  }

  private entry(name: string, app: string, env: Record<string, string>) {
    return appEntry(name, app, env, this.options.bundled !== false);
  }

  /** Starts a node process and waits until it runs. */
  async startNode(
    nodeId: string,
    env: Record<string, string> = {},
    waitRunning = true,
  ): Promise<ManagedProcess> {
    const node = ManagedProcess.start(
      this.entry(`node ${nodeId}`, 'execution-node', {
        ...FAST,
        ...this.redisEnv,
        REDIS_KEY_PREFIX: this.keys.prefix,
        NODE_ID: nodeId,
        ...env,
      }),
    );
    this.processes.push(node);
    if (waitRunning) await node.waitForLine('Execution node running', this.startTimeoutMs);
    return node;
  }

  /** Starts a scheduler process and waits until its first tick is done. */
  async startScheduler(
    id: string,
    env: Record<string, string> = {},
    waitRecovered = true,
  ): Promise<ManagedProcess> {
    const scheduler = ManagedProcess.start(
      this.entry(`scheduler ${id}`, 'livecore-scheduler', {
        ...FAST,
        SCHEDULER_TICK_MS: '500',
        SCHEDULER_LEADER_TTL_MS: '2000',
        SCHEDULER_OUTAGE_GRACE_MS: '2000',
        ...this.redisEnv,
        REDIS_KEY_PREFIX: this.keys.prefix,
        SCHEDULER_ID: id,
        ...env,
      }),
    );
    this.processes.push(scheduler);
    if (waitRecovered) await scheduler.waitForLine('Scheduler running', this.startTimeoutMs);
    return scheduler;
  }

  /** Starts an api-gateway process on a free port; resolves with it and its base URL. */
  async startGateway(
    env: Record<string, string> = {},
  ): Promise<{ process: ManagedProcess; url: string }> {
    const gateway = ManagedProcess.start(
      this.entry('api-gateway', 'api-gateway', {
        ...FAST,
        ...this.redisEnv,
        REDIS_KEY_PREFIX: this.keys.prefix,
        GATEWAY_PORT: '0',
        ...env,
      }),
    );
    this.processes.push(gateway);
    const line = await gateway.waitForLine('Gateway listening', this.startTimeoutMs);
    const port = (JSON.parse(line) as { port: number }).port;
    return { process: gateway, url: `http://127.0.0.1:${port}` };
  }

  /** Starts a notification-worker process (log sink) and waits until it runs. */
  async startNotificationWorker(env: Record<string, string> = {}): Promise<ManagedProcess> {
    const worker = ManagedProcess.start(
      this.entry('notification-worker', 'notification-worker', {
        ...FAST,
        ...this.redisEnv,
        REDIS_KEY_PREFIX: this.keys.prefix,
        ...env,
      }),
    );
    this.processes.push(worker);
    await worker.waitForLine('Notification worker running', this.startTimeoutMs);
    return worker;
  }

  /** Starts the demo market feed (the producer of every catalogued portfolio) and waits until it runs. */
  async startFeed(env: Record<string, string> = {}): Promise<ManagedProcess> {
    const feed = ManagedProcess.start(
      this.entry('market-feed', 'market-feed', {
        ...FAST,
        ...this.redisEnv,
        REDIS_KEY_PREFIX: this.keys.prefix,
        FEED_CATALOG_REFRESH_MS: '200',
        ...env,
      }),
    );
    this.processes.push(feed);
    await feed.waitForLine('Market feed running', this.startTimeoutMs);
    return feed;
  }

  /** Names of the Redis connections whose client name contains `part` (from CLIENT LIST). */
  async connectionNames(part: string): Promise<string[]> {
    return String(await this.redis.client('LIST'))
      .split('\n')
      .map((line) => /name=(\S*)/.exec(line)?.[1] ?? '')
      .filter((name) => name.includes(part))
      .sort();
  }

  /** The plan: portfolio → node id (or `orphaned: reason`). */
  async plan(): Promise<Record<string, string>> {
    const raw = await this.redis.hgetall(this.keys.portfolioAssignments());
    const out: Record<string, string> = {};
    for (const [id, value] of Object.entries(raw)) {
      const decoded = decodePayload('assignment', id, value);
      if (!decoded.ok) throw new Error(decoded.error.problem);
      out[id] = decoded.value.node_id ?? `orphaned: ${decoded.value.reason ?? ''}`;
    }
    return out;
  }

  async addToCatalog(portfolioId: string, overrides: Partial<PortfolioSpec> = {}): Promise<void> {
    const spec: PortfolioSpec = {
      _v: 1,
      portfolio_id: portfolioId,
      symbols: ['BTCUSDT'],
      strategy: { name: 'ma-crossover', params: { fast: 2, slow: 4 } },
      starting_cash: 10_000,
      ...overrides,
    };
    await this.redis.hset(
      this.keys.portfolioCatalog(),
      portfolioId,
      encodePayload('portfolioSpec', spec),
    );
  }

  /** See `seedBook`. */
  async seedBook(portfolioId: string, startingCash?: number): Promise<void> {
    await seedBook(this.redis, this.keys, portfolioId, startingCash);
  }

  /** Writes a node's assignment and pushes it, as the scheduler's plan write does. */
  async assign(nodeId: string, portfolioIds: string[], version = Date.now()): Promise<void> {
    await this.redis.set(
      this.keys.nodeAssignment(nodeId),
      encodePayload('nodeAssignment', {
        _v: 1,
        node_id: nodeId,
        portfolio_ids: portfolioIds,
        plan_version: version,
        updated_at: new Date().toISOString(),
      }),
    );
    await this.redis.spublish(this.keys.nodeOrdersChannel(nodeId), String(version));
  }

  async state(portfolioId: string): Promise<PortfolioState | null> {
    const key = this.keys.portfolioState(portfolioId);
    const raw = await this.redis.get(key);
    if (raw === null) return null;
    const decoded = decodePayload('portfolioState', key, raw);
    if (!decoded.ok) throw new Error(decoded.error.problem);
    return decoded.value;
  }

  /** A portfolio's book (what the node committed), decoded; null when there is none. */
  async book(portfolioId: string): Promise<PortfolioBook | null> {
    const key = this.keys.portfolioBook(portfolioId);
    const raw = await this.redis.get(key);
    if (raw === null) return null;
    const decoded = decodePayload('portfolioBook', key, raw);
    if (!decoded.ok) throw new Error(decoded.error.problem);
    return decoded.value;
  }

  async info(nodeId: string): Promise<NodeInfo | null> {
    const key = this.keys.nodeInfo(nodeId);
    const raw = await this.redis.get(key);
    if (raw === null) return null;
    const decoded = decodePayload('nodeInfo', key, raw);
    if (!decoded.ok) throw new Error(decoded.error.problem);
    return decoded.value;
  }

  /** Closes what `track` was given, kills the apps, and removes Redis when `start()` started it. */
  async close(): Promise<void> {
    for (const close of this.closers.splice(0).reverse()) await close();
    await Promise.all(this.processes.map((p) => p.stop('SIGKILL')));
    this.redis.disconnect();
    if (this.ownsServer) await this.server.cleanup();
  }
}

/** The port a node's metrics server bound (from its JSON log). */
export async function metricsPortOf(node: ManagedProcess): Promise<number> {
  const line = await node.waitForLine('Metrics listening');
  return (JSON.parse(line) as { port: number }).port;
}

/** Parsed JSON log entries of a process with a given message. */
export function logEntries(node: ManagedProcess, message: string): Record<string, unknown>[] {
  return node.lines
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry['message'] === message);
}

export function tick(n: number): {
  symbol: string;
  price: number;
  volume: number;
  event_time: string;
} {
  return {
    symbol: 'BTCUSDT',
    price: 100 + Math.sin(n / 5) * 10,
    volume: 1,
    event_time: new Date(1_790_000_000_000 + n).toISOString(),
  };
}
