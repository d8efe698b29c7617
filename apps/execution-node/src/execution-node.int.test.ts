import { Redis } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TradingControls } from '@ginkgo-live/fleet';
import { createAppNotifier } from '@ginkgo-live/notification-adapter';
import { RedisConnections } from '@ginkgo-live/redis-client';
import { createLogger } from '@ginkgo-live/runtime';
import { createStateKeys, decodePayload, encodePayload } from '@ginkgo-live/state-keys';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { MemoryTransport, RedisServer, seedBook, waitFor } from '@ginkgo-live/testing';
import { loadConfig } from './config.ts';
import { ExecutionNode } from './execution-node.ts';
import { NodeStore } from './node-store.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A Redis, and a node on it (not started) with its connections, logs and notifier. */
async function nodeOnRedis(assignmentPollMs: number, env: Record<string, string> = {}) {
  const server = await RedisServer.start();
  cleanups.push(() => server.cleanup());
  const loaded = loadConfig({
    NODE_ID: 'n1',
    REDIS_HOST: server.host,
    REDIS_PORT: String(server.port),
    HEARTBEAT_INTERVAL_MS: '200',
    HEARTBEAT_TTL_MS: '3000',
    STOP_TIMEOUT_MS: '2000',
    ASSIGNMENT_POLL_MS: String(assignmentPollMs),
    // At most the TTL (config.ts refuses more): the default 5 s cap is above this short TTL.
    REDIS_RECONNECT_MAX_DELAY_MS: '3000',
    ...env,
  });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
  const config = loaded.value;
  const logs = new MemoryTransport();
  const logger = createLogger({ app: 'test', transports: [logs] });
  const connections = new RedisConnections({
    config: config.redis,
    app: 'test',
    instanceId: 'n1',
    logger,
  });
  cleanups.push(() => connections.close());
  expect(await connections.waitUntilReady(5_000)).toBe(true);
  const keys = createStateKeys(config.redis.keyPrefix);
  const notifier = createAppNotifier({
    redis: connections.main,
    keys,
    app: 'test',
    instanceId: 'n1',
    config: config.notify,
    logger,
  });
  cleanups.push(() => notifier.close());
  const node = new ExecutionNode({ config, connections, keys, logger, version: '0', notifier });
  return { server, logs, redis: connections.main, keys, node };
}

async function redisUptimeMs(redis: Awaited<ReturnType<typeof nodeOnRedis>>['redis']) {
  const info = await redis.info('server');
  return Number(/uptime_in_seconds:(\d+)/.exec(info)?.[1]) * 1_000;
}

async function addToCatalog(
  redis: Awaited<ReturnType<typeof nodeOnRedis>>['redis'],
  keys: Awaited<ReturnType<typeof nodeOnRedis>>['keys'],
  portfolioId: string,
): Promise<void> {
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

async function assign(
  redis: Awaited<ReturnType<typeof nodeOnRedis>>['redis'],
  keys: Awaited<ReturnType<typeof nodeOnRedis>>['keys'],
  portfolioIds: string[],
  planVersion: number,
): Promise<void> {
  await redis.set(
    keys.nodeAssignment('n1'),
    encodePayload('nodeAssignment', {
      _v: 1,
      node_id: 'n1',
      portfolio_ids: portfolioIds,
      plan_version: planVersion,
      updated_at: new Date().toISOString(),
    }),
  );
}

describe('ExecutionNode start and stop', () => {
  it('a stop that arrives while the node id claim is in flight: nothing starts, no key is left', async () => {
    const { server, logs, redis, keys, node } = await nodeOnRedis(100);

    // Redis frozen: the claim is sent and waits; the stop (SIGTERM) comes meanwhile.
    server.freeze();
    const started = node.start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stopped = node.stop();
    await new Promise((resolve) => setTimeout(resolve, 200));
    server.thaw();
    expect(await started).toEqual({ ok: true });
    expect(await stopped).toBe(true);

    // Several beat intervals later: no beat, no registry entry, no loop ran.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await redis.exists(keys.heartbeat('n1'), keys.nodeInfo('n1'))).toBe(0);
    expect(await redis.zscore(keys.nodeRegistry(), 'n1')).toBeNull();
    expect(logs.withMessage('Execution node running')).toHaveLength(0);
    expect(logs.withMessage('Stopped while starting; nothing was started')).toHaveLength(1);
    expect(node.status).not.toBe('running');
  });
});

describe('ExecutionNode load under a pause', () => {
  it('a pause written after the reconcile read the controls, before the lease was taken, holds the portfolio from its start', async () => {
    // The polls run at start, then not again for a while (the longest the 3 s TTL allows): only
    // the load's own read can see it.
    const { logs, redis, keys, node } = await nodeOnRedis(1_600);
    await redis.hset(
      keys.portfolioCatalog(),
      'p1',
      encodePayload('portfolioSpec', {
        _v: 1,
        portfolio_id: 'p1',
        symbols: ['BTCUSDT'],
        strategy: { name: 'ma-crossover', params: {} },
        starting_cash: 1_000,
      }),
    );
    await redis.set(
      keys.nodeAssignment('n1'),
      encodePayload('nodeAssignment', {
        _v: 1,
        node_id: 'n1',
        portfolio_ids: ['p1'],
        plan_version: 1,
        updated_at: new Date().toISOString(),
      }),
    );
    // The previous owner saw a pause and obeyed it before releasing (its book is there, so the
    // first load is not held back as a fresh start): here the pause lands just before this node's
    // acquire, after its reconcile read the controls.
    await seedBook(redis, keys, 'p1', 1_000);
    const controls = new TradingControls(redis, keys);
    const desk = { name: 'desk', via: 'ginkgo-ctl', address: null };
    const acquire = Object.getOwnPropertyDescriptor(NodeStore.prototype, 'acquireLease')
      ?.value as NodeStore['acquireLease'];
    const spy = vi
      .spyOn(NodeStore.prototype, 'acquireLease')
      .mockImplementationOnce(async function (this: NodeStore, ...args) {
        expect(await controls.pause(args[0], desk, null)).toMatchObject({ ok: true });
        return Reflect.apply(acquire, this, args);
      });
    cleanups.push(() => spy.mockRestore());
    cleanups.push(() => node.stop());
    expect(await node.start()).toEqual({ ok: true });
    await waitFor(() => logs.withMessage('Portfolio loaded').length === 1, { timeoutMs: 5_000 });
    expect(spy).toHaveBeenCalledTimes(1);
    expect(logs.withMessage('Portfolio loaded')[0]).toMatchObject({ held: 'pause' });
    expect(node.collectMetrics().portfolios.map((p) => [p.portfolio_id, p.status])).toEqual([
      ['p1', 'paused'],
    ]);
  });
});

describe('ExecutionNode final commit of an unload', () => {
  it('waits out the lease coming back and then more Redis errors in a row than any cap, and releases the lease with the book written', async () => {
    const { logs, redis, keys, node } = await nodeOnRedis(100);
    await addToCatalog(redis, keys, 'p1');
    await assign(redis, keys, ['p1'], 1);
    cleanups.push(() => node.stop());
    expect(await node.start()).toEqual({ ok: true });
    await waitFor(() => logs.withMessage('Portfolio loaded').length === 1, { timeoutMs: 10_000 });

    // The final commit first finds the lease gone (Redis restarted empty, the beat not yet round),
    // then Redis fails six times in a row (down for seconds) before it answers again.
    const commit = Object.getOwnPropertyDescriptor(NodeStore.prototype, 'commit')
      ?.value as NodeStore['commit'];
    const answers: ('nolease' | 'error')[] = [
      'nolease',
      'nolease',
      'nolease',
      ...Array<'error'>(6).fill('error'),
    ];
    const spy = vi.spyOn(NodeStore.prototype, 'commit').mockImplementation(async function (
      this: NodeStore,
      request,
    ) {
      const answer = request.release ? answers.shift() : undefined;
      if (answer === 'nolease') return { kind: 'nolease' };
      if (answer === 'error') throw new Error('Connection is closed.');
      return Reflect.apply<NodeStore, [typeof request], ReturnType<NodeStore['commit']>>(
        commit,
        this,
        [request],
      );
    });
    cleanups.push(() => spy.mockRestore());
    await assign(redis, keys, [], 2);
    await waitFor(() => logs.withMessage('Portfolio unloaded').length === 1, {
      timeoutMs: 10_000,
    });
    expect(answers).toEqual([]);
    expect(logs.withMessage('Portfolio unloaded')[0]).toMatchObject({
      portfolioId: 'p1',
      released: true,
    });
    expect(logs.withMessage('Final commit failed; the lease expires by itself')).toHaveLength(0);
    expect(await redis.exists(keys.portfolioLease('p1'))).toBe(0);
    expect(await redis.hget(keys.portfolioFence('p1'), 'released')).toBe('1');
    expect(await redis.get(keys.portfolioBook('p1'))).toContain('"portfolio_id":"p1"');
  });
});

describe('ExecutionNode fresh start on a young Redis', () => {
  it('a process that never saw Redis come back still waits out the window before starting a portfolio with no book', async () => {
    // Redis just started (as after a restart that lost everything); this process never saw it go.
    const { logs, redis, keys, node } = await nodeOnRedis(100);
    const windowMs = 3_000 + 2 * 200;
    await addToCatalog(redis, keys, 'p1');
    await assign(redis, keys, ['p1'], 1);
    cleanups.push(() => node.stop());
    expect(await node.start()).toEqual({ ok: true });
    // Meanwhile the node lists it as loading, in its info (so the scheduler does not nudge it) and
    // in its state.
    await waitFor(
      async () => {
        const raw = await redis.get(keys.nodeInfo('n1'));
        return raw !== null && decodePayload('nodeInfo', 'info', raw).ok && raw.includes('"p1"');
      },
      { timeoutMs: 3_000, description: 'p1 in the node info' },
    );
    expect(logs.withMessage('Portfolio loaded')).toHaveLength(0);
    const waitingState = decodePayload(
      'portfolioState',
      'state',
      (await redis.get(keys.portfolioState('p1'))) ?? '',
    );
    expect(waitingState.ok && [waitingState.value.status, waitingState.value.node_id]).toEqual([
      'loading',
      'n1',
    ]);
    await waitFor(() => logs.withMessage('Portfolio loaded').length === 1, { timeoutMs: 10_000 });
    expect(await redisUptimeMs(redis)).toBeGreaterThanOrEqual(windowMs);
    expect(
      logs.withMessage(
        'Redis started moments ago (it may have come back empty) and has no book of this portfolio; waiting for a node that holds it to write it back',
      ),
    ).toMatchObject([{ portfolioId: 'p1' }]);
    expect(logs.withMessage('Portfolio loaded')[0]).toMatchObject({ resumed: false });
  });
});

describe('ExecutionNode waiting out a young Redis', () => {
  it('never holds the lease meanwhile, not even for a moment: the holder writing the book back cannot see it taken', async () => {
    const { server, logs, redis, keys, node } = await nodeOnRedis(100);
    await addToCatalog(redis, keys, 'p1');
    await assign(redis, keys, ['p1'], 1);
    // Every write to the lease key, as Redis sees it (keyspace notifications).
    await redis.config('SET', 'notify-keyspace-events', 'Kg$x');
    const subscriber = new Redis(server.port, server.host);
    cleanups.push(() => subscriber.disconnect());
    const writes: string[] = [];
    subscriber.on('message', (_channel: string, event: string) => writes.push(event));
    await subscriber.subscribe(`__keyspace@0__:${keys.portfolioLease('p1')}`);
    cleanups.push(() => node.stop());
    expect(await node.start()).toEqual({ ok: true });
    const waiting =
      'Redis started moments ago (it may have come back empty) and has no book of this portfolio; waiting for a node that holds it to write it back';
    await waitFor(() => logs.withMessage(waiting).length === 1, { timeoutMs: 5_000 });
    // Ten assignment polls while Redis is still young, each trying the load again.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(logs.withMessage('Portfolio loaded')).toHaveLength(0);
    expect(await redisUptimeMs(redis)).toBeLessThan(3_000 + 2 * 200);
    expect(writes).toEqual([]);
    // Past the window it starts, taking the lease then.
    await waitFor(() => logs.withMessage('Portfolio loaded').length === 1, { timeoutMs: 10_000 });
    expect(writes[0]).toBe('set');
  });
});

describe('ExecutionNode load failing for one portfolio', () => {
  it('a load that throws every poll (INFO denied to the node) leaves the portfolios after it loading', async () => {
    const { logs, redis, keys, node } = await nodeOnRedis(100);
    await addToCatalog(redis, keys, 'p1');
    await addToCatalog(redis, keys, 'p2');
    // p2 has a fence, so its ACQUIRE never asks INFO; p1 has none and no book, so it does — and
    // INFO is denied: p1's load throws every time.
    await redis.hset(keys.portfolioFence('p2'), 'token', 'n0/a/1', 'version', '1');
    await redis.call('ACL', 'SETUSER', 'default', '-info');
    await assign(redis, keys, ['p1', 'p2'], 1);
    cleanups.push(() => node.stop());
    expect(await node.start()).toEqual({ ok: true });
    await waitFor(() => logs.withMessage('Portfolio loaded').length === 1, { timeoutMs: 5_000 });
    expect(logs.withMessage('Portfolio loaded')[0]).toMatchObject({ portfolioId: 'p2' });
    // Five more polls: p1 still fails, logged once.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(logs.withMessage('Portfolio load failed; trying again at the next poll')).toMatchObject([
      { portfolioId: 'p1' },
    ]);
    expect(await redis.exists(keys.portfolioLease('p1'))).toBe(0);
    // p2's beats do not need INFO either (it tells them which Redis showed a fence: without it,
    // every beat checks the fence and writes the state, as before): every one succeeds.
    expect(node.collectMetrics().redis).toMatchObject({ healthy: true, total_failures: 0 });
    expect(await redis.pttl(keys.portfolioLease('p2'))).toBeGreaterThan(2_000);
  });
});

describe('ExecutionNode idle: what its beats and waits send', () => {
  it('renews every lease each beat, writes no unchanged state and checks no fence seen lately, waits once for all its queues; a state changed is written by the next beat; Redis back empty has every state at the next beat', async () => {
    // Fences checked again after 10 s, states written again after 15 s: neither within the window.
    const { server, redis, keys, node } = await nodeOnRedis(100, { HEARTBEAT_TTL_MS: '10000' });
    const ids = ['a', 'b', 'c'];
    for (const id of ids) {
      await addToCatalog(redis, keys, id);
      await seedBook(redis, keys, id);
    }
    expect(await node.start()).toEqual({ ok: true });
    cleanups.push(() => node.stop());
    await assign(redis, keys, ids, 1);
    const states = async () =>
      Promise.all(
        ids.map(async (id) => {
          const raw = await redis.get(keys.portfolioState(id));
          const decoded = raw === null ? null : decodePayload('portfolioState', id, raw);
          return decoded?.ok === true ? decoded.value : null;
        }),
      );
    await waitFor(async () => (await states()).every((s) => s?.status === 'running'));
    // Every first beat done (fences found, states written), the reads at their idle pace.
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    await redis.config('RESETSTAT');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const stats = await redis.info('commandstats');
    const count = (name: string): number =>
      Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
    // Idle, the beat is the only script run (no peek, no flush): one per beat.
    const beats = count('evalsha');
    expect(beats).toBeGreaterThanOrEqual(5);
    expect({
      pexpire: count('pexpire'),
      set: count('set'),
      info: count('info'),
      time: count('time'),
    }).toEqual({ pexpire: 3 * beats, set: 2 * beats, info: beats, time: 0 });
    // One blocking wait for the three queues, a beat long (not one per queue), and after each
    // that timed out one EXISTS of their lists (at most: the last may not have looked yet). A
    // fence checked each beat would add three per beat.
    expect(count('bzpopmin')).toBeLessThanOrEqual(1_500 / 200 + 1);
    expect(count('exists')).toBeLessThanOrEqual(count('bzpopmin'));

    // A state that changed without a flush (its events per second back to 0 after a burst) is
    // written by the next beat.
    const producer = new PortfolioQueues({ connection: redis, keys });
    for (let i = 0; i < 5; i++)
      await producer.add('a', {
        symbol: 'BTCUSDT',
        price: 100 + i,
        volume: 1,
        event_time: new Date().toISOString(),
      });
    await waitFor(async () => (await states())[0]?.processed_count === 5);
    await waitFor(async () => (await states())[0]?.events_per_second !== 0, { timeoutMs: 2_000 });
    await waitFor(async () => (await states())[0]?.events_per_second === 0, { timeoutMs: 2_000 });

    // Redis back empty: every state is written again by the first beat that reaches it.
    await server.restart({ keepData: false });
    const back = performance.now();
    await waitFor(async () => (await states()).every((s) => s !== null), { timeoutMs: 5_000 });
    // A reconnect (its backoff restarts small), then a beat.
    expect(performance.now() - back).toBeLessThan(2_000);
  });
});
