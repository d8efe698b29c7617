import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import { portfolioQueueLayout, PortfolioQueueReader } from '@ginkgo-live/portfolio-queue';
import { createStateKeys, encodePayload, type PortfolioBook } from '@ginkgo-live/state-keys';
import { fleetNodeInfo, MemoryTransport, RedisServer, waitFor } from '@ginkgo-live/testing';
import { NodeStore, type CommitRequest } from './node-store.ts';
import { PortfolioRunner } from './portfolio-runner.ts';

/*
 * Runners and their claims on a real Redis: what a runner claims with when Redis has lost lease and
 * fence after its lease expired by its own clock, and when it may stop on a claim. The beats are
 * driven here as ExecutionNode's beat handles their outcome, so each step is placed on purpose.
 */

const keys = createStateKeys('ns:');
const logger = createLogger({ app: 'test', transports: [new MemoryTransport()] });
/** Lease TTL of these runners (ms): short, so an expiry by the runner's own clock comes quickly. */
const TTL = 300;
/** Fresh-start window of the claims (ms); the gap is far above the 100 ms between beats here. */
const WINDOW = { afterMs: 1_500, gapMs: 1_000 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let server: RedisServer;
let redis: Redis;
const cleanups: (() => unknown)[] = [];

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.port, server.host);
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  redis.disconnect();
  await server.cleanup();
});

const storeOf = (nodeId: string, claimWindow = WINDOW) =>
  new NodeStore({
    redis,
    keys,
    nodeId,
    heartbeatTtlMs: TTL,
    nodeInfoTtlMs: 45_000,
    portfolioStateTtlMs: 45_000,
    claimWindow,
  });

const savedBook = (token: string, version: number, processed: number): PortfolioBook => ({
  _v: 1,
  portfolio_id: 'p1',
  node_id: token.split('/')[0] ?? '',
  cash: 1_000,
  positions: {},
  last_prices: {},
  strategy_state: {},
  processed_count: processed,
  failed_count: 0,
  updated_at: new Date().toISOString(),
  fence: { token, version },
});

/** Writes the book and fence a holder committed at `version`. */
async function seedBook(token: string, version: number, processed: number): Promise<void> {
  await redis.hset(keys.portfolioFence('p1'), 'token', token, 'version', String(version));
  await redis.set(
    keys.portfolioBook('p1'),
    encodePayload('portfolioBook', savedBook(token, version, processed)),
  );
}

let jobs = 0;
/** Queues `n` events of a producer that does not number them (nothing tells a replay apart). */
async function queueUnnumbered(n: number): Promise<void> {
  const layout = portfolioQueueLayout(keys, 'p1');
  for (let i = 0; i < n; i++) {
    const id = `job${++jobs}`;
    const tick = {
      _v: 1 as const,
      symbol: 'X',
      price: 10,
      volume: 1,
      event_time: new Date().toISOString(),
    };
    await redis.hset(
      `${layout.jobPrefix}${id}`,
      'data',
      encodePayload('priceTick', tick),
      'timestamp',
      Date.now(),
    );
    await redis.lpush(layout.wait, id);
  }
}

interface Runner {
  runner: PortfolioRunner;
  store: NodeStore;
  nodeId: string;
  /** Events the strategy was given. */
  ticks: () => number;
  /** Told it lost the portfolio, by a commit or a beat. */
  lost: boolean;
}

/**
 * A runner of p1 under `token`, its book loaded at `loaded`; its lease sent `sentAgoMs` ago. Its
 * commits go through `commit` when given (to cut it off from Redis), else the store's.
 */
function runnerOf(
  token: string,
  loaded: { token: string; version: number; processed: number },
  options: {
    sentAgoMs?: number;
    commit?: (store: NodeStore, request: CommitRequest) => ReturnType<NodeStore['commit']>;
  } = {},
): Runner {
  const nodeId = token.split('/')[0] ?? '';
  const store = storeOf(nodeId);
  let ticks = 0;
  const r: Runner = {
    runner: undefined as unknown as PortfolioRunner,
    store,
    nodeId,
    ticks: () => ticks,
    lost: false,
  };
  const runner = new PortfolioRunner({
    spec: {
      _v: 1,
      portfolio_id: 'p1',
      symbols: ['X'],
      strategy: { name: 'counting', params: {} },
      starting_cash: 1_000,
    },
    nodeId,
    strategy: {
      name: 'counting',
      onTick: () => {
        ticks++;
        return [];
      },
      snapshot: () => ({}),
    },
    saved: savedBook(loaded.token, loaded.version, loaded.processed),
    lease: {
      token,
      loaded: { token: loaded.token, version: loaded.version },
      sentAt: performance.now() - (options.sentAgoMs ?? 0),
    },
    leaseTtlMs: TTL,
    openReader: () => {
      const blocking = new Redis(server.port, server.host);
      cleanups.push(() => blocking.disconnect());
      return new PortfolioQueueReader(redis, blocking, keys, 'p1');
    },
    idleWaitMs: 100,
    commit: (request) => (options.commit ?? ((s, r) => s.commit(r)))(store, request),
    batchSize: 10,
    queueCapacity: 100,
    logger,
    onChange: () => undefined,
    onLost: () => {
      r.lost = true;
    },
  });
  cleanups.push(() => runner.stop(true));
  r.runner = runner;
  return r;
}

/** One beat of `r`, its outcome handled as ExecutionNode's beat does. */
async function beat(r: Runner) {
  const startedAt = performance.now();
  const lease = r.runner.leaseClaim();
  const now = new Date().toISOString();
  const outcome = await r.store.beat(
    encodePayload('heartbeat', { _v: 1, node_id: r.nodeId, sent_at: now, seq: 1 }),
    fleetNodeInfo(r.nodeId, ['p1'], now),
    [{ portfolioId: 'p1', state: r.runner.state(), lease }],
  );
  if (lease !== null) {
    // As ExecutionNode's beat: a claim, or a beat that came later than its lease, renews nothing.
    const notRenewed = outcome.lost.length + outcome.claiming.length + (outcome.late?.length ?? 0);
    if (notRenewed === 0) r.runner.leaseRenewed(startedAt);
    r.runner.claimReported(outcome.claiming[0]?.version, startedAt);
  }
  if (outcome.resync.length > 0) r.runner.requestSync();
  if (outcome.lost.length > 0) {
    r.lost = true;
    await r.runner.stop(true);
  }
  return outcome;
}

/** Waits until this test's Redis has been up `ms` (uptime counts whole seconds). */
/**
 * Redis restarts empty (or fails over to a replica without the claim `a` reported at version 5),
 * then `a` stops: the stop waits while no claim is in Redis, and ends as a claim (version 5, 42
 * events) only once the next beat has written the claim again.
 */
async function stopEndsOnRewrittenClaim(a: Runner): Promise<void> {
  await redis.flushall();
  let stopped = false;
  const stop = a.runner.stop().then((released) => {
    stopped = true;
    return released;
  });
  await sleep(500);
  expect(stopped).toBe(false);
  expect(await redis.exists(keys.portfolioClaims('p1'))).toBe(0);
  expect(await beat(a)).toMatchObject({ claiming: [{ token: 'n1/a/1', version: 5 }] });
  expect(await stop).toBe(false);
  expect(a.runner.stoppedAsClaim()).toBe(true);
  expect(await redis.hget(keys.portfolioClaims('p1'), 'v:n1/a/1')).toBe('5');
  const claimed = JSON.parse(
    (await redis.hget(keys.portfolioClaims('p1'), 'b:n1/a/1')) ?? '{}',
  ) as PortfolioBook;
  expect(claimed.processed_count).toBe(42);
}

async function redisUpFor(ms: number): Promise<void> {
  await waitFor(
    async () =>
      Number(/uptime_in_seconds:(\d+)/.exec(await redis.info('server'))?.[1]) * 1_000 >= ms,
    { timeoutMs: ms + 5_000, intervalMs: 100 },
  );
}

const fence = () => redis.hgetall(keys.portfolioFence('p1'));
const processedInRedis = async (): Promise<number> =>
  (JSON.parse((await redis.get(keys.portfolioBook('p1'))) ?? '{}') as PortfolioBook)
    .processed_count;
const queued = () => redis.llen(portfolioQueueLayout(keys, 'p1').wait);

describe('PortfolioRunner claims', () => {
  it('claims with its last committed book, never the batch in flight: a stale holder whose commit never landed ties with the node that committed that version since, and loses nothing of it', async () => {
    await redisUpFor(2_000);
    // A holds p1 at (n0,5); cut off from Redis, its commit of v6 (3 events) never lands.
    await seedBook('n0/z/1', 5, 5);
    let cutOff = true;
    // A's token is the greater one: without the fix it wins the tie.
    const a = runnerOf(
      'n2/a/1',
      { token: 'n0/z/1', version: 5, processed: 5 },
      {
        commit: (store, request) =>
          cutOff ? Promise.reject(new Error('cut off from Redis')) : store.commit(request),
      },
    );
    expect(await a.store.acquireLease('p1', 'n2/a/1')).toMatchObject({ ok: true });
    await queueUnnumbered(3);
    a.runner.start();
    await waitFor(() => a.ticks() === 3);
    // A's lease expires; B takes p1 over from (n0,5) and commits v6 with 10 events.
    await waitFor(async () => (await redis.exists(keys.portfolioLease('p1'))) === 0);
    await queueUnnumbered(7);
    const b = runnerOf('n1/b/1', { token: 'n0/z/1', version: 5, processed: 5 });
    expect(await b.store.acquireLease('p1', 'n1/b/1')).toMatchObject({ ok: true });
    b.runner.start();
    await waitFor(async () => (await fence()).version === '6');
    expect(b.ticks()).toBe(10);
    expect(await processedInRedis()).toBe(15);
    // Redis restarts empty after both leases expired by their holders' own clocks; A is back.
    await redis.flushall();
    cutOff = false;
    await sleep(TTL + 50);
    expect(b.runner.leaseClaim()?.claim?.version).toBe(6);
    await waitFor(
      async () => {
        const [oa, ob] = [await beat(a), await beat(b)];
        return oa.claiming.length + ob.claiming.length === 0;
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    expect(a.lost).toBe(true);
    // B's claim settled (fence n1/b/1 v6), and B wrote its book again at once (v7).
    expect((await fence()).token).toBe('n1/b/1');
    await waitFor(async () => (await fence()).version === '7');
    expect(await processedInRedis()).toBe(15);
  });

  it('a claim that wins writes the batch in flight once: its commit lands after the settle and removes its jobs, none applied twice', async () => {
    await redisUpFor(2_000);
    // Redis back empty after an outage past A's lease; 3 unnumbered events arrive meanwhile.
    const a = runnerOf('n1/a/1', { token: 'n1/a/1', version: 5, processed: 5 }, { sentAgoMs: TTL });
    await queueUnnumbered(3);
    a.runner.start();
    await waitFor(() => a.ticks() === 3);
    // Settled for its claim (v5), its commit of v6 lands; the beats go on (they renew the lease).
    await waitFor(
      async () => {
        await beat(a);
        return Number((await fence()).version ?? 0) >= 6 && (await queued()) === 0;
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    await beat(a);
    await sleep(300);
    expect(a.ticks()).toBe(3);
    expect(await processedInRedis()).toBe(8);
    expect(a.lost).toBe(false);
  });

  it('counts its lease from when the acquire was sent: built longer than the TTL after it, it claims instead of putting its book back at once', async () => {
    await redisUpFor(2_000);
    const a = runnerOf(
      'n2/a/1',
      { token: 'n0/z/1', version: 5, processed: 5 },
      { sentAgoMs: TTL + 1 },
    );
    const lease = a.runner.leaseClaim();
    expect(lease?.mayReassert).toBe(false);
    expect(lease?.claim?.version).toBe(5);
    // Redis lost lease and fence (it restarted empty): the beat leaves the book as a claim.
    expect(await beat(a)).toEqual({
      lost: [],
      resync: [],
      claiming: [{ portfolioId: 'p1', token: 'n2/a/1', version: 5 }],
      stateWritten: [],
      fenceFound: [],
    });
    expect(await redis.exists(keys.portfolioFence('p1'), keys.portfolioLease('p1'))).toBe(0);
  });

  it('a stop leaves its book as a claim only once a beat sent after its final commit found no lease wrote the claim (Redis may have lost an earlier one)', async () => {
    await redisUpFor(2_000);
    const a = runnerOf(
      'n1/a/1',
      { token: 'n1/a/1', version: 5, processed: 42 },
      { sentAgoMs: TTL },
    );
    a.runner.start();
    expect(await beat(a)).toMatchObject({ claiming: [{ token: 'n1/a/1', version: 5 }] });
    // Redis restarts empty again (or fails over to a replica without the claim), then a stop.
    await stopEndsOnRewrittenClaim(a);
  });

  it('a stop does not end as a claim while its batch commit may have landed unanswered: it waits for its claim to settle, and the batch lands', async () => {
    await redisUpFor(2_000);
    await seedBook('n1/a/1', 5, 5);
    await redis.set(keys.portfolioLease('p1'), 'n1/a/1', 'PX', TTL);
    let first = true;
    const a = runnerOf(
      'n1/a/1',
      { token: 'n1/a/1', version: 5, processed: 5 },
      {
        commit: async (store, request) => {
          if (!first) return store.commit(request);
          first = false;
          // The commit of v6 lands (its 3 jobs removed); Redis is killed before the reply reaches
          // the runner and comes back empty.
          const landed = await store.commit(request);
          expect(landed.kind).toBe('ok');
          expect(await processedInRedis()).toBe(8);
          await redis.flushall();
          throw new Error('Connection is closed.');
        },
      },
    );
    await queueUnnumbered(3);
    a.runner.start();
    await waitFor(() => a.ticks() === 3);
    // The outage outlasted the lease: A claims with its last committed book, v5.
    await sleep(TTL + 200);
    expect(await beat(a)).toMatchObject({ claiming: [{ token: 'n1/a/1', version: 5 }] });
    let stopped = false;
    const stop = a.runner.stop().then((released) => {
      stopped = true;
      return released;
    });
    await sleep(150);
    expect(await beat(a)).toMatchObject({ claiming: [{ token: 'n1/a/1', version: 5 }] });
    await sleep(300);
    // Ended here as a claim, the next node would load v5 and the 3 events would be gone.
    expect(stopped).toBe(false);
    expect(a.runner.stoppedAsClaim()).toBe(false);
    // Its own beats settle its claim after the window; its commit of v6 lands again, then the
    // final commit releases the lease.
    await waitFor(
      async () => {
        await beat(a);
        return stopped;
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    expect(await stop).toBe(true);
    expect(a.runner.stoppedAsClaim()).toBe(false);
    expect(a.ticks()).toBe(3);
    expect(await processedInRedis()).toBe(8);
    expect(await fence()).toEqual({ token: 'n1/a/1', version: '7', released: '1' });
    expect(await redis.exists(keys.portfolioLease('p1'))).toBe(0);
  });

  it("a stop during the batch commit's wait for its lease trusts only a claim written by a beat sent after the stop (Redis may have lost one reported before)", async () => {
    await redisUpFor(2_000);
    // Redis back empty after an outage past A's lease; 3 events arrive meanwhile.
    const a = runnerOf(
      'n1/a/1',
      { token: 'n1/a/1', version: 5, processed: 42 },
      { sentAgoMs: TTL },
    );
    await queueUnnumbered(3);
    a.runner.start();
    await waitFor(() => a.ticks() === 3);
    // The batch commit (v6) has found no lease; a beat sent after that writes the claim (v5).
    await sleep(200);
    expect(await beat(a)).toMatchObject({ claiming: [{ token: 'n1/a/1', version: 5 }] });
    // Redis restarts empty again, then a stop, with no beat in between (the 3 events stay queued).
    await stopEndsOnRewrittenClaim(a);
  });
});
