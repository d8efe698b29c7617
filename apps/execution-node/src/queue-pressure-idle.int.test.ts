import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { TradingControls } from '@ginkgo-live/fleet';
import { createAppNotifier } from '@ginkgo-live/notification-adapter';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { RedisConnections } from '@ginkgo-live/redis-client';
import { createLogger } from '@ginkgo-live/runtime';
import { createStateKeys, encodePayload, type Notification } from '@ginkgo-live/state-keys';
import { MemoryTransport, RedisServer, seedBook, waitFor } from '@ginkgo-live/testing';
import { loadConfig } from './config.ts';
import { ExecutionNode } from './execution-node.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const NODE = 'n1';
const PORTFOLIOS = ['p1', 'p2'];
const CAPACITY = 20;

/** A Redis and a node on it running p1 and p2, their queues empty, sampled every 100 ms. */
async function idleNode() {
  const server = await RedisServer.start();
  cleanups.push(() => server.cleanup());
  const admin = new Redis(server.clientOptions());
  cleanups.push(() => admin.disconnect());
  const loaded = loadConfig({
    NODE_ID: NODE,
    REDIS_HOST: server.host,
    REDIS_PORT: String(server.port),
    HEARTBEAT_INTERVAL_MS: '2000',
    HEARTBEAT_TTL_MS: '12000',
    QUEUE_SAMPLE_MS: '100',
    PORTFOLIO_QUEUE_CAPACITY: String(CAPACITY),
    STOP_TIMEOUT_MS: '2000',
  });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
  const config = loaded.value;
  const logger = createLogger({ app: 'test', transports: [new MemoryTransport()] });
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
  for (const id of PORTFOLIOS) {
    await admin.hset(
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
    await seedBook(admin, keys, id, 1_000);
  }
  await admin.set(
    keys.nodeAssignment(NODE),
    encodePayload('nodeAssignment', {
      _v: 1,
      node_id: NODE,
      portfolio_ids: PORTFOLIOS,
      plan_version: 1,
      updated_at: new Date().toISOString(),
    }),
  );
  const node = new ExecutionNode({ config, connections, keys, logger, version: '0', notifier });
  cleanups.push(() => node.stop());
  expect(await node.start()).toEqual({ ok: true });
  await waitFor(
    () => node.collectMetrics().portfolios.filter((p) => p.status === 'running').length === 2,
  );
  const producer = new PortfolioQueues({ connection: admin, keys, capacity: CAPACITY });
  return { admin, keys, node, producer };
}

/** Calls of each command since the last `CONFIG RESETSTAT`. */
async function calls(admin: Redis): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (const line of (await admin.info('commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (match?.[1] !== undefined) found.set(match[1], Number(match[2]));
  }
  return found;
}

const tick = (price: number) => ({
  symbol: 'BTCUSDT',
  price,
  volume: 1,
  event_time: new Date().toISOString(),
});

describe('ExecutionNode queue sample of an idle node', () => {
  it('reads no queue depth while its runners wait on empty queues; an event still wakes its runner at once', async () => {
    const { admin, node, producer } = await idleNode();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await admin.config('RESETSTAT');
    // Fifteen samples' time.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const idle = await calls(admin);
    // Every depth read has its ZCARDs (prioritized, delayed) and the refusals' HMGET; an LLEN here
    // may be a runner's look after its wait timed out, not a sample.
    expect(['zcard', 'hmget'].map((c) => idle.get(c) ?? 0)).toEqual([0, 0]);
    // An event is applied at once: the runner's wait (a beat long now) ends at the add.
    const addedAt = performance.now();
    expect(await producer.add('p1', tick(100))).toMatchObject({ ok: true });
    await waitFor(
      () =>
        node.collectMetrics().portfolios.find((p) => p.portfolio_id === 'p1')?.processed_count ===
        1,
      { timeoutMs: 5_000, intervalMs: 2 },
    );
    expect(performance.now() - addedAt).toBeLessThan(1_000);
  });

  it('a queue filling while its runner is held is read at the sample pace: queue_full is raised with the refusals counted', async () => {
    const { admin, keys, node, producer } = await idleNode();
    const controls = new TradingControls(admin, keys);
    expect(
      await controls.halt({ name: 'desk', via: 'ginkgo-ctl', address: null }, 'drill'),
    ).toMatchObject({ ok: true });
    await waitFor(() => node.collectMetrics().portfolios.every((p) => p.status === 'paused'));
    for (let i = 0; i < CAPACITY; i++)
      expect(await producer.add('p2', tick(100 + i))).toMatchObject({ ok: true });
    expect(await producer.add('p2', tick(1))).toMatchObject({ ok: false, reason: 'full' });
    await waitFor(() => {
      const p2 = node.collectMetrics().portfolios.find((p) => p.portfolio_id === 'p2');
      return p2?.queue_depth === CAPACITY && p2.refused_count === 1;
    });
    const queue = new Queue(keys.notificationsQueue(), {
      connection: admin.duplicate(),
      prefix: keys.queuePrefix(),
    });
    cleanups.push(() => queue.close());
    await waitFor(async () =>
      (await queue.getJobs(['waiting'])).some(
        (job) =>
          (job.data as Notification).kind === 'queue_full' &&
          (job.data as Notification).subject.portfolio_id === 'p2',
      ),
    );
    // p1 stayed empty and idle: depth 0, nothing raised for it.
    expect(node.collectMetrics().portfolios.find((p) => p.portfolio_id === 'p1')?.queue_depth).toBe(
      0,
    );
  });
});
