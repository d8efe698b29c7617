import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStateKeys, encodePayload, type PortfolioBook } from '@ginkgo-live/state-keys';
import { fleetNodeInfo, fleetPortfolioState, RedisServer } from '@ginkgo-live/testing';
import { NodeStore } from './node-store.ts';

let server: RedisServer;
let redis: Redis;
const keys = createStateKeys('ns:');

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.port, server.host);
});
afterEach(async () => {
  redis.disconnect();
  await server.cleanup();
});

/** Every key of this test's Redis, by SCAN (KEYS blocks a server; the apps never use it). */
async function everyKey(): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'COUNT', 100);
    found.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return found.sort();
}

const newStore = () =>
  new NodeStore({
    redis,
    keys,
    nodeId: 'n1',
    heartbeatTtlMs: 15_000,
    nodeInfoTtlMs: 45_000,
    portfolioStateTtlMs: 45_000,
  });

const book = (cash: number): PortfolioBook => ({
  _v: 1,
  portfolio_id: 'p1',
  node_id: 'n1',
  cash,
  positions: {},
  last_prices: {},
  strategy_state: {},
  processed_count: 3,
  failed_count: 0,
  updated_at: new Date().toISOString(),
});

describe('NodeStore books written before the hash tags', () => {
  it('reads the old book only when asked for a portfolio without a book; acquire reads the new one', async () => {
    const store = newStore();
    expect(await store.readLegacyBook('p1')).toBeNull();
    await redis.set('ns:portfolio:p1:book', encodePayload('portfolioBook', book(750)));
    expect(await store.readLegacyBook('p1')).toMatchObject({ ok: true, value: { cash: 750 } });
    expect(await store.acquireLease('p1', 'n1/a/1')).toMatchObject({ ok: true, book: null });
    await redis.del(keys.portfolioLease('p1'));
    await redis.set(keys.portfolioBook('p1'), encodePayload('portfolioBook', book(900)));
    expect(await store.acquireLease('p1', 'n1/a/2')).toMatchObject({
      ok: true,
      loaded: null,
      book: { ok: true, value: { cash: 900 } },
    });
    expect(await store.acquireLease('p1', 'n1/a/3')).toEqual({ ok: false, holder: 'n1/a/2' });
  });
});

describe('NodeStore beat of a portfolio waiting for its lease', () => {
  it('writes its state where none is, never over the state of the node holding the lease', async () => {
    const store = newStore();
    const now = new Date().toISOString();
    const waiting = [
      { portfolioId: 'p1', state: fleetPortfolioState('p1', 'n1', now), lease: null },
    ];
    const beat = () =>
      store.beat(
        encodePayload('heartbeat', { _v: 1, node_id: 'n1', sent_at: now, seq: 1 }),
        fleetNodeInfo('n1', ['p1'], now),
        waiting,
      );
    expect(await beat()).toEqual({ lost: [], resync: [] });
    expect(await redis.get(keys.portfolioState('p1'))).toContain('"node_id":"n1"');
    await redis.set(
      keys.portfolioState('p1'),
      encodePayload('portfolioState', fleetPortfolioState('p1', 'holder', now)),
    );
    await beat();
    expect(await redis.get(keys.portfolioState('p1'))).toContain('"node_id":"holder"');
  });
});

describe('NodeStore final commit after the lease vanished', () => {
  it('the beat takes the lease back for a releasing runner unless its final commit released it; a retry of a landed final commit is done', async () => {
    const store = newStore();
    const now = new Date().toISOString();
    const token = 'n1/a/1';
    expect(await store.acquireLease('p1', token)).toMatchObject({ ok: true, loaded: null });
    const claim = (releasing: boolean) => ({
      token,
      loadedToken: '',
      loadedVersion: 0,
      mayReassert: true,
      releasing,
    });
    const state = fleetPortfolioState('p1', 'n1', now);
    const commit = (version: number, release: boolean) =>
      store.commit({
        portfolioId: 'p1',
        lease: claim(release),
        version,
        book: { ...book(1_000), fence: { token, version } },
        state,
        applied: [],
        failed: [],
        release,
      });
    const beat = (releasing: boolean) =>
      store.beat(
        encodePayload('heartbeat', { _v: 1, node_id: 'n1', sent_at: now, seq: 1 }),
        fleetNodeInfo('n1', ['p1'], now),
        [{ portfolioId: 'p1', state, lease: claim(releasing) }],
      );
    expect(await commit(1, false)).toEqual({ kind: 'ok', missing: 0 });

    // The lease vanishes (Redis lost it, or it expired) while the runner is stopping.
    await redis.del(keys.portfolioLease('p1'));
    expect(await commit(2, true)).toEqual({ kind: 'nolease' });
    expect(await beat(true)).toEqual({ lost: [], resync: [] });
    expect(await redis.get(keys.portfolioLease('p1'))).toBe(token);
    expect(await commit(2, true)).toEqual({ kind: 'ok', missing: 0 });
    expect(await redis.exists(keys.portfolioLease('p1'))).toBe(0);
    expect(await redis.hget(keys.portfolioFence('p1'), 'released')).toBe('1');

    // Its reply lost, the final commit is sent again: it landed, so it is done, not 'nolease'.
    expect(await commit(2, true)).toEqual({ kind: 'done' });
    // A beat that raced the final commit takes nothing back: the fence says it was released.
    expect(await beat(true)).toEqual({ lost: [], resync: [] });
    expect(await redis.exists(keys.portfolioLease('p1'))).toBe(0);
  });
});

describe('NodeStore acquire on a young Redis', () => {
  it('does not take the lease of a portfolio with no fence and no book while Redis is younger than asked; takes it with a book, a fence, or no wait asked', async () => {
    const store = newStore();
    const young = { freshStart: { afterMs: 60_000, gapMs: 1_000 } };
    const refused = await store.acquireLease('p1', 'n2/b/1', young);
    expect(refused).toMatchObject({ ok: false });
    expect('redisUptimeMs' in refused && refused.redisUptimeMs).toBeLessThan(60_000);
    // Not even for a moment: the lease key was never written (only the no-book marker).
    expect(await everyKey()).toEqual([keys.portfolioNoBook('p1')]);
    // A lease held by another is reported as held, young or not.
    await redis.set(keys.portfolioLease('p1'), 'n1/a/1');
    expect(await store.acquireLease('p1', 'n2/b/2', young)).toEqual({
      ok: false,
      holder: 'n1/a/1',
    });
    await redis.del(keys.portfolioLease('p1'));
    // A fence (a book Redis has, or had written), or a book: no fresh start, no wait.
    await redis.hset(keys.portfolioFence('p1'), 'token', 'n1/a/1', 'version', '4');
    expect(await store.acquireLease('p1', 'n2/b/3', young)).toMatchObject({
      ok: true,
      loaded: { token: 'n1/a/1', version: 4 },
    });
    await redis.del(keys.portfolioLease('p1'), keys.portfolioFence('p1'));
    await redis.set(keys.portfolioBook('p1'), encodePayload('portfolioBook', book(900)));
    expect(await store.acquireLease('p1', 'n2/b/4', young)).toMatchObject({ ok: true });
    await redis.del(keys.portfolioLease('p1'), keys.portfolioBook('p1'));
    // Redis up longer than asked (here: no wait asked): a fresh start takes the lease.
    expect(await store.acquireLease('p1', 'n2/b/5')).toMatchObject({ ok: true, loaded: null });
    expect(await redis.get(keys.portfolioLease('p1'))).toBe('n2/b/5');
  });
});

async function redisNowMs(): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1_000 + Math.floor(Number(us) / 1_000);
}

/** Waits until this test's Redis has been up `ms` (uptime counts whole seconds). */
async function redisUpFor(ms: number): Promise<void> {
  for (;;) {
    const info = await redis.info('server');
    if (Number(/uptime_in_seconds:(\d+)/.exec(info)?.[1]) * 1_000 >= ms) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Acquires every 100 ms until the lease is taken; the refusals seen on the way. */
async function acquireUntilTaken(
  store: NodeStore,
  freshStart: { afterMs: number; gapMs: number },
): Promise<{ refusals: { noBookSeenMs: number }[]; takenAtMs: number }> {
  const refusals: { noBookSeenMs: number }[] = [];
  for (let i = 0; ; i++) {
    const outcome = await store.acquireLease('p1', `n2/b/${i}`, { freshStart });
    if (outcome.ok) return { refusals, takenAtMs: await redisNowMs() };
    if (!('noBookSeenMs' in outcome)) throw new Error(`held by ${outcome.holder}`);
    refusals.push({ noBookSeenMs: outcome.noBookSeenMs });
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('NodeStore acquire of a portfolio Redis has no book of, on a Redis up for long', () => {
  // The gap is well above the 100 ms between the tests' acquires: a stalled machine must not
  // restart the wait by itself.
  const freshStart = { afterMs: 1_500, gapMs: 1_000 };

  it('waits the window from the first acquire that finds no book (a promoted replica that copied an empty master looks old): the first acquire writes only the marker', async () => {
    await redisUpFor(2_000);
    const store = newStore();
    const first = await store.acquireLease('p1', 'n2/a/1', { freshStart });
    expect(first).toMatchObject({ ok: false, noBookSeenMs: 0 });
    expect('redisUptimeMs' in first && first.redisUptimeMs >= 2_000).toBe(true);
    expect(await everyKey()).toEqual([keys.portfolioNoBook('p1')]);
    const marker = await redis.hgetall(keys.portfolioNoBook('p1'));
    expect(marker.first).toBe(marker.last);
    const ttl = await redis.pttl(keys.portfolioNoBook('p1'));
    expect(ttl > 0 && ttl <= 3 * 1_500).toBe(true);

    const { refusals, takenAtMs } = await acquireUntilTaken(store, freshStart);
    expect(refusals.every((r) => r.noBookSeenMs < 1_500)).toBe(true);
    expect(takenAtMs - Number(marker.first) >= 1_500).toBe(true);
    expect(await redis.hget(keys.portfolioNoBook('p1'), 'first')).toBe(marker.first);
  });

  it('starts the wait over after a gap between two acquires longer than asked (Redis frozen meanwhile)', async () => {
    await redisUpFor(2_000);
    const store = newStore();
    expect(await store.acquireLease('p1', 'n2/a/1', { freshStart })).toMatchObject({
      ok: false,
      noBookSeenMs: 0,
    });
    // Frozen for longer than the window: the time it stood still counts as neither uptime nor
    // the portfolio's time without a book.
    server.freeze();
    await new Promise((resolve) => setTimeout(resolve, 1_700));
    server.thaw();
    expect(await store.acquireLease('p1', 'n2/a/2', { freshStart })).toMatchObject({
      ok: false,
      noBookSeenMs: 0,
    });
    const restarted = Number(await redis.hget(keys.portfolioNoBook('p1'), 'first'));
    const { refusals, takenAtMs } = await acquireUntilTaken(store, freshStart);
    expect(refusals.every((r) => r.noBookSeenMs < 1_500)).toBe(true);
    expect(takenAtMs - restarted >= 1_500).toBe(true);
  });
});

describe('NodeStore acquire: what the no-book marker cannot vouch for', () => {
  const freshStart = { afterMs: 1_500, gapMs: 1_000 };

  async function runId(): Promise<string> {
    return /run_id:(\w+)/.exec(await redis.info('server'))?.[1] ?? '';
  }

  async function seedMarker(fields: { first: number; last: number; run: string }): Promise<void> {
    await redis.hset(keys.portfolioNoBook('p1'), {
      first: String(fields.first),
      last: String(fields.last),
      run: fields.run,
    });
  }

  it('a marker a window old does not start a portfolio on a Redis up for less than the window (restarted empty, marker reloaded)', async () => {
    const now = await redisNowMs();
    await seedMarker({ first: now - 10_000, last: now - 100, run: await runId() });
    const outcome = await newStore().acquireLease('p1', 'n2/a/1', { freshStart });
    expect(outcome).toMatchObject({ ok: false });
    expect('redisUptimeMs' in outcome && outcome.redisUptimeMs).toBeLessThan(1_500);
    expect('noBookSeenMs' in outcome && outcome.noBookSeenMs).toBeGreaterThanOrEqual(9_900);
  });

  it('a marker written by another Redis process (a promoted replica holds its master’s) starts the wait over', async () => {
    await redisUpFor(2_000);
    const now = await redisNowMs();
    await seedMarker({ first: now - 10_000, last: now - 100, run: 'f'.repeat(40) });
    expect(await newStore().acquireLease('p1', 'n2/a/1', { freshStart })).toMatchObject({
      ok: false,
      noBookSeenMs: 0,
    });
    expect(await redis.hget(keys.portfolioNoBook('p1'), 'run')).toBe(await runId());
    // The same marker written by this process: old enough, taken.
    await seedMarker({ first: now - 10_000, last: await redisNowMs(), run: await runId() });
    expect(await newStore().acquireLease('p1', 'n2/a/2', { freshStart })).toMatchObject({
      ok: true,
    });
  });

  it('a marker last written in the future (the clock stepped back) starts the wait over', async () => {
    await redisUpFor(2_000);
    const now = await redisNowMs();
    await seedMarker({ first: now - 10_000, last: now + 60_000, run: await runId() });
    expect(await newStore().acquireLease('p1', 'n2/a/1', { freshStart })).toMatchObject({
      ok: false,
      noBookSeenMs: 0,
    });
  });
});
