import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TradingControls } from '@ginkgo-live/fleet';
import { createAppNotifier } from '@ginkgo-live/notification-adapter';
import { aclFile, RedisConnections } from '@ginkgo-live/redis-client';
import { createLogger } from '@ginkgo-live/runtime';
import { createStateKeys, encodePayload, type StateKeys } from '@ginkgo-live/state-keys';
import {
  MemoryTransport,
  RedisCluster,
  RedisServer,
  seedBook,
  waitFor,
} from '@ginkgo-live/testing';
import clusterKeySlot from 'cluster-key-slot';
import { loadConfig } from './config.ts';
import { ExecutionNode } from './execution-node.ts';

/**
 * Bounds on a machine that may be loaded (CI runs two test files at a time on two cores): a pushed
 * change is far quicker than this, and the poll and safety read it is told apart from are 10 s
 * away; a read and a load after the interval they wait for take well under `LOAD_MS`.
 */
const PUSHED_MS = 1_000;
const LOAD_MS = 500;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const NODE = 'n1';

/**
 * A Redis and a started node on it, its reads paced as given: with both the safety interval
 * (`HEARTBEAT_INTERVAL_MS`) and `ASSIGNMENT_POLL_MS` seconds long, only a push explains a node
 * that follows a write within milliseconds.
 */
async function pushedNode(env: Record<string, string>, server?: RedisServer) {
  const redisServer = server ?? (await RedisServer.start());
  if (server === undefined) cleanups.push(() => redisServer.cleanup());
  const admin = new Redis(redisServer.clientOptions());
  cleanups.push(() => admin.disconnect());
  const started = await startNode(
    { REDIS_HOST: redisServer.host, REDIS_PORT: String(redisServer.port), ...env },
    admin,
  );
  return { server: redisServer, admin, ...started };
}

/** A started node on the Redis `env` names, its catalog and books written through `admin`. */
async function startNode(env: Record<string, string>, admin: Redis) {
  const loaded = loadConfig({
    NODE_ID: NODE,
    REDIS_RECONNECT_MAX_DELAY_MS: '200',
    HEARTBEAT_TTL_MS: '12000',
    STOP_TIMEOUT_MS: '2000',
    ...env,
  });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
  const config = loaded.value;
  const logs = new MemoryTransport();
  const logger = createLogger({ app: 'test', level: 'debug', transports: [logs] });
  const connections = new RedisConnections({
    config: config.redis,
    app: 'execution-node',
    instanceId: NODE,
    logger,
  });
  cleanups.push(() => connections.close());
  expect(await connections.waitUntilReady(5_000)).toBe(true);
  const keys = createStateKeys(config.redis.keyPrefix);
  const notifier = createAppNotifier({
    redis: connections.main,
    keys,
    app: 'test',
    instanceId: NODE,
    config: config.notify,
    logger,
  });
  cleanups.push(() => notifier.close());
  const node = new ExecutionNode({ config, connections, keys, logger, version: '0', notifier });
  for (const id of ['p1', 'p2']) {
    await addToCatalog(admin, keys, id);
    // A book, so that the load is not held back by the fresh-start window.
    await seedBook(admin, keys, id, 1_000);
  }
  cleanups.push(() => node.stop());
  expect(await node.start()).toEqual({ ok: true });
  return { logs, keys, node, connections };
}

async function addToCatalog(redis: Redis, keys: StateKeys, portfolioId: string): Promise<void> {
  await redis.hset(
    keys.portfolioCatalog(),
    portfolioId,
    encodePayload('portfolioSpec', {
      _v: 1,
      portfolio_id: portfolioId,
      symbols: ['BTCUSDT'],
      strategy: { name: 'ma-crossover', params: {} },
      starting_cash: 1_000,
    }),
  );
}

/**
 * Writes the node's assignment as the plan write does: the key, then (unless `push` is false, a
 * message lost) the new version on the node's channel, in one transaction.
 */
async function assign(
  redis: Redis,
  keys: StateKeys,
  portfolioIds: string[],
  version: number,
  push = true,
): Promise<number> {
  const assignment = encodePayload('nodeAssignment', {
    _v: 1,
    node_id: NODE,
    portfolio_ids: portfolioIds,
    plan_version: version,
    updated_at: new Date().toISOString(),
  });
  if ((redis as unknown) instanceof Cluster) {
    // The plan write is one script on the {scheduler} shard; here, two commands to it.
    await redis.set(keys.nodeAssignment(NODE), assignment);
    if (push) await redis.spublish(keys.nodeOrdersChannel(NODE), String(version));
    return performance.now();
  }
  const tx = redis.multi().set(keys.nodeAssignment(NODE), assignment);
  if (push) tx.spublish(keys.nodeOrdersChannel(NODE), String(version));
  const replies = await tx.exec();
  for (const [err] of replies ?? []) if (err) throw err;
  return performance.now();
}

/** The halt record as TradingControls writes it (a test writes it without its message). */
function haltRecord(id: string): string {
  return encodePayload('tradingHalt', {
    _v: 1,
    id,
    state: 'halted',
    halted_at: new Date().toISOString(),
    by: 'desk',
    reason: null,
    lifted_at: null,
    lifted_by: null,
    lift_request_id: null,
  });
}

/** Log lines whose message starts with `start`. */
const linesStarting = (logs: MemoryTransport, start: string) =>
  logs.entries.filter((entry) => entry.message.startsWith(start));

const subscribedLines = (logs: MemoryTransport) =>
  logs.withMessage('Following the assignment and the trading controls by push').length;

/** When (performance.now()) the node runs `portfolioId`, polled every 2 ms. */
async function runningAt(node: ExecutionNode, portfolioId: string, timeoutMs: number) {
  await waitFor(
    () =>
      node.collectMetrics().portfolios.some((p) => p.portfolio_id === portfolioId) &&
      node.collectMetrics().portfolios.find((p) => p.portfolio_id === portfolioId)?.status ===
        'running',
    { timeoutMs, intervalMs: 2 },
  );
  return performance.now();
}

/** A users.acl whose node user is as before push: no channel, no probe. */
function aclWithoutPush(): string {
  const passwords = {
    'livecore-scheduler': 's',
    'api-gateway': 'g',
    'market-feed': 'f',
    'notification-worker': 'w',
    'ginkgo-ctl': 'c',
    [`execution-node.${NODE}`]: 'node-secret',
    admin: 'admin-secret',
    replica: 'replica-secret',
  };
  const acl = aclFile({ nodes: [NODE], passwords })
    .replace(/^(user execution-node\.n1 .*?)&\S+ &\S+ /m, '$1')
    .replace(/^(user execution-node\.n1 .*?) \(resetchannels &\S+ -@all \+spublish\)$/m, '$1');
  expect(acl).not.toMatch(/execution-node\.n1 .*&/);
  return acl;
}

describe('ExecutionNode follows its assignment by push', () => {
  it('loads at once on a plan write (under 1 s on a loaded machine), with the safety read and the poll 10 s away', async () => {
    const { logs, admin, keys, node } = await pushedNode({
      HEARTBEAT_INTERVAL_MS: '10000',
      HEARTBEAT_TTL_MS: '30000',
      ASSIGNMENT_POLL_MS: '10000',
    });
    await waitFor(() => subscribedLines(logs) === 1);
    // The reads that follow the subscription find nothing assigned: they are done.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const writtenAt = await assign(admin, keys, ['p1'], 1);
    const loadedAt = await runningAt(node, 'p1', 9_000);
    expect(loadedAt - writtenAt).toBeLessThan(PUSHED_MS);
    // And the unload likewise.
    const movedAt = await assign(admin, keys, ['p2'], 2);
    const p2At = await runningAt(node, 'p2', 9_000);
    expect(p2At - movedAt).toBeLessThan(PUSHED_MS);
    expect(node.collectMetrics().portfolios.map((p) => p.portfolio_id)).toEqual(['p2']);
  });

  it('a halt reaches the node by push at once (under 1 s on a loaded machine), and its lift likewise', async () => {
    const { logs, admin, keys, node } = await pushedNode({
      HEARTBEAT_INTERVAL_MS: '10000',
      HEARTBEAT_TTL_MS: '30000',
      ASSIGNMENT_POLL_MS: '10000',
    });
    await waitFor(() => subscribedLines(logs) === 1);
    await assign(admin, keys, ['p1'], 1);
    await runningAt(node, 'p1', 5_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const controls = new TradingControls(admin, keys);
    const desk = { name: 'desk', via: 'ginkgo-ctl', address: null };
    let sentAt = performance.now();
    expect(await controls.halt(desk, 'drill')).toMatchObject({ ok: true });
    await waitFor(() => node.collectMetrics().portfolios[0]?.status === 'paused', {
      timeoutMs: 9_000,
      intervalMs: 2,
    });
    expect(performance.now() - sentAt).toBeLessThan(PUSHED_MS);
    sentAt = performance.now();
    expect(await controls.unhalt(desk)).toMatchObject({ ok: true });
    await runningAt(node, 'p1', 9_000);
    expect(performance.now() - sentAt).toBeLessThan(PUSHED_MS);
  });

  it('a message lost without a reconnect costs at most one safety interval', async () => {
    const { logs, admin, keys, node } = await pushedNode({
      HEARTBEAT_INTERVAL_MS: '1000',
      // The longest TTL-and-beat the poll allows (a fresh-start window counts tries two polls apart).
      HEARTBEAT_TTL_MS: '19000',
      ASSIGNMENT_POLL_MS: '10000',
    });
    await waitFor(() => subscribedLines(logs) === 1);
    const writtenAt = await assign(admin, keys, ['p1'], 1, false);
    const loadedAt = await runningAt(node, 'p1', 5_000);
    // The safety read comes at most one interval after the previous one, plus its load.
    expect(loadedAt - writtenAt).toBeLessThan(1_000 + LOAD_MS);
  });

  it('a halt whose message was lost reaches the node within one safety interval', async () => {
    const { logs, admin, keys, node } = await pushedNode({
      HEARTBEAT_INTERVAL_MS: '1000',
      // The longest TTL-and-beat the poll allows (a fresh-start window counts tries two polls apart).
      HEARTBEAT_TTL_MS: '19000',
      ASSIGNMENT_POLL_MS: '10000',
    });
    await waitFor(() => subscribedLines(logs) === 1);
    await assign(admin, keys, ['p1'], 1);
    await runningAt(node, 'p1', 5_000);
    // The halt record as TradingControls writes it, without its message.
    await admin.set(keys.tradingHalt(), haltRecord('h1'));
    const writtenAt = performance.now();
    await waitFor(() => node.collectMetrics().portfolios[0]?.status === 'paused', {
      timeoutMs: 5_000,
      intervalMs: 2,
    });
    expect(performance.now() - writtenAt).toBeLessThan(1_000 + LOAD_MS);
  });

  it('a message sent while its connection was killed costs no safety interval: the lost subscription and the new one each read at once', async () => {
    const { logs, admin, keys, node } = await pushedNode({
      HEARTBEAT_INTERVAL_MS: '10000',
      HEARTBEAT_TTL_MS: '30000',
      ASSIGNMENT_POLL_MS: '10000',
    });
    await waitFor(() => subscribedLines(logs) === 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const pushName = `ginkgo:execution-node:${NODE}:push`;
    expect(await admin.client('LIST')).toContain(`name=${pushName}`);
    // Killed, then the write and its message at once: nobody is subscribed when it is sent.
    const tx = admin.multi().client('KILL', 'TYPE', 'pubsub');
    const writtenAt = performance.now();
    await tx.exec();
    await assign(admin, keys, ['p1'], 1);
    const loadedAt = await runningAt(node, 'p1', 9_000);
    expect(loadedAt - writtenAt).toBeLessThan(1_000);
    await waitFor(() => subscribedLines(logs) === 2);
    // Its own connection closed: said once, at info (it mends by itself, polling meanwhile).
    expect(linesStarting(logs, 'Push connection closed').map((e) => e.level)).toEqual(['info']);
    // Subscribed again: the next write is pushed.
    const nextAt = await assign(admin, keys, ['p2'], 2);
    expect((await runningAt(node, 'p2', 9_000)) - nextAt).toBeLessThan(PUSHED_MS);
  });

  it('Redis restarted empty: the node keeps what it runs (unknown is not empty), subscribes again and follows the next write by push', async () => {
    const { server, logs, admin, keys, node } = await pushedNode({
      HEARTBEAT_INTERVAL_MS: '10000',
      HEARTBEAT_TTL_MS: '30000',
      ASSIGNMENT_POLL_MS: '10000',
    });
    await waitFor(() => subscribedLines(logs) === 1);
    await assign(admin, keys, ['p1'], 1);
    await runningAt(node, 'p1', 5_000);
    await server.restart({ keepData: false });
    await waitFor(() => subscribedLines(logs) === 2, { timeoutMs: 10_000 });
    // No assignment in Redis now, and nothing sent: p1 keeps running.
    expect(await admin.exists(keys.nodeAssignment(NODE))).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(node.collectMetrics().portfolios.map((p) => [p.portfolio_id, p.status])).toEqual([
      ['p1', 'running'],
    ]);
    // The books the node holds are written back; a portfolio with a book loads at once.
    await addToCatalog(admin, keys, 'p2');
    await seedBook(admin, keys, 'p2', 1_000);
    const writtenAt = await assign(admin, keys, ['p1', 'p2'], 2);
    expect((await runningAt(node, 'p2', 9_000)) - writtenAt).toBeLessThan(PUSHED_MS);
  });

  it('a subscription that lapsed on a connection that still answers is noticed by its probe within an interval, made again, and followed by push', async () => {
    const { logs, admin, keys, node, connections } = await pushedNode({
      HEARTBEAT_INTERVAL_MS: '3000',
      HEARTBEAT_TTL_MS: '19000',
      ASSIGNMENT_POLL_MS: '10000',
    });
    await waitFor(() => subscribedLines(logs) === 1);
    // Redis forgets the subscription; the connection stays up and answers a PING.
    const subscriber = connections.connection('push', 'request');
    await subscriber.call('SUNSUBSCRIBE', keys.nodeOrdersChannel(NODE), keys.tradingChannel());
    expect(await admin.call('PUBSUB', 'SHARDNUMSUB', keys.nodeOrdersChannel(NODE))).toEqual([
      keys.nodeOrdersChannel(NODE),
      0,
    ]);
    // The next safety read's probe (within 3 s) finds nobody on the channel.
    await waitFor(() => linesStarting(logs, 'Push subscription no longer delivers').length === 1, {
      timeoutMs: 3_000 + LOAD_MS,
    });
    expect(
      logs.entries.find((e) => e.message.startsWith('Push subscription no longer delivers'))?.level,
    ).toBe('warn');
    await waitFor(() => subscribedLines(logs) === 2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const writtenAt = await assign(admin, keys, ['p1'], 1);
    expect((await runningAt(node, 'p1', 9_000)) - writtenAt).toBeLessThan(PUSHED_MS);
  });

  it('the probe wakes no read: an idle subscribed node reads once per safety interval', async () => {
    const { logs, admin, node } = await pushedNode({
      HEARTBEAT_INTERVAL_MS: '1000',
      HEARTBEAT_TTL_MS: '19000',
      ASSIGNMENT_POLL_MS: '10000',
    });
    await waitFor(() => subscribedLines(logs) === 1);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await admin.config('RESETSTAT');
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    const stats = await admin.info('commandstats');
    const calls = (name: string) =>
      Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
    // One probe per safety read (a transaction every 0.9 s), no read more: a probe that woke a
    // read would make that read probe again, and so on.
    expect(calls('exec')).toBeGreaterThan(0);
    expect(calls('spublish')).toBe(calls('exec'));
    expect(calls('ping')).toBe(0);
    expect(node.collectMetrics().status).toBe('running');
  });

  it('a pushed halt whose read failed is read again at the poll pace, not a safety interval later', async () => {
    const { logs, admin, keys, node } = await pushedNode({
      HEARTBEAT_INTERVAL_MS: '10000',
      HEARTBEAT_TTL_MS: '30000',
      ASSIGNMENT_POLL_MS: '200',
    });
    await waitFor(() => subscribedLines(logs) === 1);
    await assign(admin, keys, ['p1'], 1);
    await runningAt(node, 'p1', 5_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The halt key of the wrong type: the read the message starts fails (WRONGTYPE).
    await admin.hset(keys.tradingHalt(), 'x', 'y');
    await admin.spublish(keys.tradingChannel(), 'halt:h1');
    await waitFor(() => logs.entries.some((e) => JSON.stringify(e).includes('WRONGTYPE')));
    // Then the record as TradingControls writes it, without a message of its own.
    await admin.multi().del(keys.tradingHalt()).set(keys.tradingHalt(), haltRecord('h1')).exec();
    const writtenAt = performance.now();
    await waitFor(() => node.collectMetrics().portfolios[0]?.status === 'paused', {
      timeoutMs: 9_000,
      intervalMs: 2,
    });
    expect(performance.now() - writtenAt).toBeLessThan(200 + LOAD_MS);
    // The failed read is in the log: the retry followed a real failure.
    expect(logs.entries.some((e) => JSON.stringify(e).includes('WRONGTYPE'))).toBe(true);
  });

  it.each([
    [
      'every ASSIGNMENT_POLL_MS',
      { HEARTBEAT_INTERVAL_MS: '10000', ASSIGNMENT_POLL_MS: '200' },
      200,
    ],
    [
      'every HEARTBEAT_INTERVAL_MS when that is shorter (never slower than a subscribed node)',
      { HEARTBEAT_INTERVAL_MS: '1000', ASSIGNMENT_POLL_MS: '10000' },
      1_000,
    ],
  ] as const)(
    'a Redis that refuses the subscription (an ACL without the channels): the node polls %s and says so once',
    async (_, timings, paceMs) => {
      const server = await RedisServer.start({
        aclFile: aclWithoutPush(),
        auth: { username: 'admin', password: 'admin-secret' },
      });
      cleanups.push(() => server.cleanup());
      const { logs, admin, keys, node } = await pushedNode(
        {
          ...timings,
          HEARTBEAT_TTL_MS: '30000',
          REDIS_USERNAME: `execution-node.${NODE}`,
          REDIS_PASSWORD: 'node-secret',
        },
        server,
      );
      await waitFor(() => linesStarting(logs, 'Redis refused the push subscription').length === 1);
      const writtenAt = await assign(admin, keys, ['p1'], 1);
      const loadedAt = await runningAt(node, 'p1', 12_000);
      expect(loadedAt - writtenAt).toBeLessThan(paceMs + LOAD_MS);
      expect(subscribedLines(logs)).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(linesStarting(logs, 'Redis refused the push subscription')).toHaveLength(1);
    },
    20_000,
  );
});

/** The channels a Cluster client remembers to send again to a shard's new subscriber (ioredis 5). */
function rememberedChannels(push: Redis): string[] {
  const group = (push as unknown as { shardedSubscribers: { channels: Map<number, string[]> } })
    .shardedSubscribers;
  return [...group.channels.values()].flat().sort();
}

/** The connection of the cluster client's subscriber of the shard that serves `channel`. */
function shardSubscriberOf(push: Redis, channel: string): Redis {
  const group = (
    push as unknown as {
      shardedSubscribers: { getResponsibleSubscriber(slot: number): { getInstance(): Redis } };
    }
  ).shardedSubscribers;
  return group.getResponsibleSubscriber(clusterKeySlot(channel)).getInstance();
}

describe('ExecutionNode push on a Redis Cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await RedisCluster.start({ masters: 3, replicas: 1 });
  }, 60_000);
  afterAll(() => cluster.cleanup());

  /** A node on the cluster, subscribed, with its push connection and a count of its shards' resubscriptions. */
  async function clusterNode(env: Record<string, string> = {}) {
    const admin = cluster.client() as unknown as Redis;
    cleanups.push(() => admin.disconnect());
    const started = await startNode(
      {
        ...cluster.env,
        HEARTBEAT_INTERVAL_MS: '10000',
        HEARTBEAT_TTL_MS: '30000',
        ASSIGNMENT_POLL_MS: '10000',
        ...env,
      },
      admin,
    );
    await waitFor(() => subscribedLines(started.logs) === 1, { timeoutMs: 10_000 });
    const push = started.connections.connection('push', 'request');
    const readies = { count: 0 };
    push.on('subscribersReady', () => (readies.count += 1));
    return { admin, push, readies, ...started };
  }

  it('remembers each channel once however often its shard subscriber is made again', async () => {
    const { admin, push, readies, logs, keys, node } = await clusterNode();
    const channels = [keys.nodeOrdersChannel(NODE), keys.tradingChannel()].sort();
    expect(rememberedChannels(push)).toEqual(channels);
    const master = await cluster.masterOf(keys.nodeAssignment(NODE));
    for (let i = 1; i <= 4; i++) {
      // Its shard subscriber's connection killed: the client makes a new one and resubscribes
      // (its subscribersReady, once or more), and the node subscribes and reads again.
      const before = readies.count;
      await cluster.ask(master, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
      await waitFor(() => readies.count > before, { timeoutMs: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(readies.count).toBeGreaterThanOrEqual(4);
    expect(
      linesStarting(logs, 'Push subscription confirmed again').length + subscribedLines(logs),
    ).toBeGreaterThanOrEqual(5);
    expect(rememberedChannels(push)).toEqual(channels);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const writtenAt = await assign(admin, keys, ['p1'], 1);
    expect((await runningAt(node, 'p1', 9_000)) - writtenAt).toBeLessThan(PUSHED_MS);
  }, 60_000);

  it('a cluster that refuses the subscription: asked again once per beat, its channels never piling up in the client', async () => {
    const acl = await RedisCluster.start({
      masters: 3,
      acl: {
        file: aclWithoutPush(),
        admin: { username: 'admin', password: 'admin-secret' },
        replica: { username: 'replica', password: 'replica-secret' },
      },
    });
    cleanups.push(() => acl.cleanup());
    const admin = acl.client() as unknown as Redis;
    cleanups.push(() => admin.disconnect());
    const { logs, connections } = await startNode(
      {
        ...acl.env,
        REDIS_USERNAME: `execution-node.${NODE}`,
        REDIS_PASSWORD: 'node-secret',
        HEARTBEAT_INTERVAL_MS: '500',
        HEARTBEAT_TTL_MS: '19000',
        ASSIGNMENT_POLL_MS: '5000',
      },
      admin,
    );
    const push = connections.connection('push', 'request');
    const asked = { count: 0 };
    const ssubscribe = push.ssubscribe.bind(push);
    push.ssubscribe = ((...args: Parameters<typeof ssubscribe>) => {
      asked.count += 1;
      return ssubscribe(...args);
    }) as typeof ssubscribe;
    // Asked again at a safety read at most once per beat (500 ms here): 4 more times.
    await waitFor(() => asked.count >= 4, { timeoutMs: 10_000 });
    expect(rememberedChannels(push)).toEqual([]);
    expect(linesStarting(logs, 'Redis refused the push subscription')).toHaveLength(1);
    expect(subscribedLines(logs)).toBe(0);
  }, 60_000);

  it('a shard subscriber gone silent (its socket no longer read) is noticed by the probe, the PING going elsewhere, and made again', async () => {
    const { admin, push, logs, keys, node } = await clusterNode({
      HEARTBEAT_INTERVAL_MS: '3000',
      HEARTBEAT_TTL_MS: '19000',
    });
    const silent = shardSubscriberOf(push, keys.nodeOrdersChannel(NODE));
    expect(silent.status).toBe('ready');
    // As a half-open socket: nothing it is sent arrives, and it says nothing.
    silent.stream.pause();
    // The next safety read's probe (within 3 s) does not come back within the command timeout (2 s).
    await waitFor(() => linesStarting(logs, 'Push subscription no longer delivers').length === 1, {
      timeoutMs: 3_000 + 2_000 + LOAD_MS,
    });
    await waitFor(() => subscribedLines(logs) === 2, { timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const writtenAt = await assign(admin, keys, ['p1'], 1);
    expect((await runningAt(node, 'p1', 9_000)) - writtenAt).toBeLessThan(PUSHED_MS);
  }, 60_000);

  it("another shard's failover is no lapse of this node's subscription: nothing logged, still pushed", async () => {
    const { admin, readies, logs, keys, node } = await clusterNode();
    const ours = await cluster.masterOf(keys.nodeAssignment(NODE));
    const other = (await cluster.currentMasters()).find((m) => m.port !== ours.port);
    if (other === undefined) throw new Error('no other master');
    const replica = await cluster.replicaOf(other);
    await cluster.kill(other);
    await cluster.waitForPromotion(replica);
    await waitFor(() => readies.count > 0, { timeoutMs: 15_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(
      logs.entries
        .filter((e) => e.level === 'warn' || e.level === 'error')
        .map((e) => e.message)
        .filter((m) => m.startsWith('Push')),
    ).toEqual([]);
    expect(linesStarting(logs, 'Push subscription lost')).toEqual([]);
    const writtenAt = await assign(admin, keys, ['p1'], 1);
    expect((await runningAt(node, 'p1', 9_000)) - writtenAt).toBeLessThan(PUSHED_MS);
  }, 60_000);

  it('follows a write by push, and again after the {scheduler} shard’s master is killed and its replica promoted', async () => {
    const { admin, readies, keys, node } = await clusterNode();
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Every read of a load crosses the cluster client (and six redis-servers share two cores
    // here): a bound far below the 10 s intervals, as for the single Redis.
    const writtenAt = await assign(admin, keys, ['p1'], 1);
    expect((await runningAt(node, 'p1', 9_000)) - writtenAt).toBeLessThan(PUSHED_MS);

    const master = await cluster.masterOf(keys.nodeAssignment(NODE));
    const replica = await cluster.replicaOf(master);
    await cluster.kill(master);
    await cluster.waitForPromotion(replica);
    // The shard's subscriber was made again on the promoted replica: Redis there counts the node
    // among its channel's subscribers (whether the node also logged it depends on whether its
    // probe ran during the lapse, which the client may mend first).
    await waitFor(() => readies.count > 0, { timeoutMs: 15_000 });
    await waitFor(
      async () => {
        const [, count] = (await replica
          .command('PUBSUB', 'SHARDNUMSUB', keys.nodeOrdersChannel(NODE))
          .then((answer) => answer.split(','))) as [string, string];
        return Number(count) >= 1;
      },
      {
        timeoutMs: 10_000,
        description: 'the node subscribed to its channel on the promoted replica',
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const movedAt = await assign(admin, keys, ['p2'], 2);
    expect((await runningAt(node, 'p2', 9_000)) - movedAt).toBeLessThan(PUSHED_MS);
  }, 90_000);
});
