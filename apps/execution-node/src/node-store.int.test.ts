import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStateKeys, encodePayload, type PortfolioBook } from '@ginkgo-live/state-keys';
import { fleetNodeInfo, fleetPortfolioState, RedisServer } from '@ginkgo-live/testing';
import {
  NodeStore,
  type BeatOutcome,
  type LeaseClaim,
  type NodeStoreOptions,
} from './node-store.ts';

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

/** What a beat found about the leases (what it wrote and found is tested on its own, below). */
function leasesOf(outcome: BeatOutcome): Omit<BeatOutcome, 'stateWritten' | 'fenceFound'> {
  const { lost, resync, claiming, late } = outcome;
  return { lost, resync, claiming, ...(late === undefined ? {} : { late }) };
}

const newStore = (options: Partial<NodeStoreOptions> = {}) =>
  new NodeStore({
    redis,
    keys,
    nodeId: 'n1',
    heartbeatTtlMs: 15_000,
    nodeInfoTtlMs: 45_000,
    portfolioStateTtlMs: 45_000,
    ...options,
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
    const beat = async () =>
      leasesOf(
        await store.beat(
          encodePayload('heartbeat', { _v: 1, node_id: 'n1', sent_at: now, seq: 1 }),
          fleetNodeInfo('n1', ['p1'], now),
          waiting,
        ),
      );
    expect(await beat()).toEqual({ lost: [], resync: [], claiming: [] });
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
      claim: null,
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
    const beat = async (releasing: boolean) =>
      leasesOf(
        await store.beat(
          encodePayload('heartbeat', { _v: 1, node_id: 'n1', sent_at: now, seq: 1 }),
          fleetNodeInfo('n1', ['p1'], now),
          [{ portfolioId: 'p1', state, lease: claim(releasing) }],
        ),
      );
    expect(await commit(1, false)).toEqual({ kind: 'ok', missing: 0 });

    // The lease vanishes (Redis lost it, or it expired) while the runner is stopping.
    await redis.del(keys.portfolioLease('p1'));
    expect(await commit(2, true)).toEqual({ kind: 'nolease' });
    expect(await beat(true)).toEqual({ lost: [], resync: [], claiming: [] });
    expect(await redis.get(keys.portfolioLease('p1'))).toBe(token);
    expect(await commit(2, true)).toEqual({ kind: 'ok', missing: 0 });
    expect(await redis.exists(keys.portfolioLease('p1'))).toBe(0);
    expect(await redis.hget(keys.portfolioFence('p1'), 'released')).toBe('1');

    // Its reply lost, the final commit is sent again: it landed, so it is done, not 'nolease'.
    expect(await commit(2, true)).toEqual({ kind: 'done' });
    // A beat that raced the final commit takes nothing back: the fence says it was released.
    expect(await beat(true)).toEqual({ lost: [], resync: [], claiming: [] });
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

describe('NodeStore claims: a holder whose lease expired while Redis lost lease and fence', () => {
  // The gap is well above the 100 ms between the tests' calls: a stalled machine must not restart
  // the wait by itself.
  const window = { afterMs: 1_500, gapMs: 1_000 };
  const claimStore = () => newStore({ claimWindow: window });
  const bookAt = (token: string, version: number, processed: number): PortfolioBook => ({
    ...book(1_000 + processed),
    processed_count: processed,
    fence: { token, version },
  });
  /** One beat of p1 on node n1 under `lease`. */
  const beatWith = async (store: NodeStore, lease: LeaseClaim) => {
    const now = new Date().toISOString();
    return leasesOf(
      await store.beat(
        encodePayload('heartbeat', { _v: 1, node_id: 'n1', sent_at: now, seq: 1 }),
        fleetNodeInfo('n1', ['p1'], now),
        [{ portfolioId: 'p1', state: fleetPortfolioState('p1', 'n1', now), lease }],
      ),
    );
  };
  /** One beat of a runner holding `token`, its lease current or expired by its own clock. */
  const beatOf = (
    store: NodeStore,
    token: string,
    held: { version: number; processed: number } | 'current',
    loaded = { token: 'n0/a/1', version: 3 },
  ) =>
    beatWith(store, {
      token,
      loadedToken: loaded.token,
      loadedVersion: loaded.version,
      mayReassert: held === 'current',
      claim:
        held === 'current'
          ? null
          : { version: held.version, book: bookAt(token, held.version, held.processed) },
      releasing: false,
    });
  const processedInRedis = async (): Promise<number> =>
    (JSON.parse((await redis.get(keys.portfolioBook('p1'))) ?? '{}') as PortfolioBook)
      .processed_count;

  it('leaves its book as a claim and takes nothing while the marker is younger than the window; alone, takes the lease back with its book after it', async () => {
    await redisUpFor(2_000);
    const store = claimStore();
    const started = await redisNowMs();
    expect(await beatOf(store, 'n1/a/1', { version: 7, processed: 12 })).toEqual({
      lost: [],
      resync: [],
      claiming: [{ portfolioId: 'p1', token: 'n1/a/1', version: 7 }],
    });
    expect(await redis.exists(keys.portfolioLease('p1'), keys.portfolioFence('p1'))).toBe(0);
    expect(await redis.hget(keys.portfolioClaims('p1'), 'v:n1/a/1')).toBe('7');
    // No expiry: it may be the only copy of the book, whenever the portfolio is next acquired.
    expect(await redis.pttl(keys.portfolioClaims('p1'))).toBe(-1);
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const outcome = await beatOf(store, 'n1/a/1', { version: 7, processed: 12 });
      if (outcome.claiming.length > 0) continue;
      expect(outcome).toEqual({
        lost: [],
        resync: [{ portfolioId: 'p1', token: 'n1/a/1' }],
        claiming: [],
      });
      break;
    }
    expect((await redisNowMs()) - started).toBeGreaterThanOrEqual(1_500);
    expect(await redis.get(keys.portfolioLease('p1'))).toBe('n1/a/1');
    expect(await redis.hgetall(keys.portfolioFence('p1'))).toEqual({
      token: 'n1/a/1',
      version: '7',
    });
    expect(await processedInRedis()).toBe(12);
    expect(await redis.exists(keys.portfolioClaims('p1'))).toBe(0);
  });

  it('the assigned node’s acquire loads the highest claim once the window has passed (the claimant died or stopped), never a fresh start; a lower claimant is then lost', async () => {
    await redisUpFor(2_000);
    const store = claimStore();
    await beatOf(store, 'n1/a/1', { version: 9, processed: 20 });
    await beatOf(store, 'n3/c/1', { version: 5, processed: 8 });
    // The claimant of v9 is gone from here on; n2 is assigned the portfolio and acquires.
    const { refusals } = await acquireUntilTaken(store, window);
    expect(refusals.length).toBeGreaterThan(0);
    expect(await redis.hgetall(keys.portfolioFence('p1'))).toEqual({
      token: 'n1/a/1',
      version: '9',
    });
    expect(await processedInRedis()).toBe(20);
    expect(await redis.exists(keys.portfolioClaims('p1'))).toBe(0);
    // The lower claimant's next beat finds the lease taken: it drops its older book.
    expect(await beatOf(store, 'n3/c/1', { version: 5, processed: 8 })).toMatchObject({
      lost: [{ portfolioId: 'p1', token: 'n3/c/1' }],
    });
  });

  it('what the acquire returns when it loads a claim: the claim’s fence and book, and whose claim it was', async () => {
    await redisUpFor(2_000);
    const store = claimStore();
    await beatOf(store, 'n1/a/1', { version: 9, processed: 20 });
    const outcome = await store.acquireLease('p1', 'n2/b/1');
    expect(outcome).toMatchObject({
      ok: true,
      loaded: { token: 'n1/a/1', version: 9 },
      book: { ok: true, value: { processed_count: 20 } },
      claimOf: 'n1/a/1',
    });
  });

  it('a lower claim never wins over a higher live one: the lower claimant is lost once the window passes, the higher takes the lease back with its book', async () => {
    await redisUpFor(2_000);
    const store = claimStore();
    const high = { version: 9, processed: 20 };
    const low = { version: 5, processed: 8 };
    await beatOf(store, 'n1/a/1', high);
    // The lower claimant beats first and often; the higher one only once a gap.
    let lowOutcome = await beatOf(store, 'n3/c/1', low);
    while (lowOutcome.claiming.length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      lowOutcome = await beatOf(store, 'n3/c/1', low);
    }
    expect(lowOutcome).toEqual({
      lost: [{ portfolioId: 'p1', token: 'n3/c/1' }],
      resync: [],
      claiming: [],
    });
    // Settled for the higher claim, without a lease: its claimant continues the fence at its beat.
    expect(await redis.hgetall(keys.portfolioFence('p1'))).toEqual({
      token: 'n1/a/1',
      version: '9',
    });
    expect(await processedInRedis()).toBe(20);
    expect(await beatOf(store, 'n1/a/1', high)).toEqual({
      lost: [],
      resync: [{ portfolioId: 'p1', token: 'n1/a/1' }],
      claiming: [],
    });
    expect(await redis.get(keys.portfolioLease('p1'))).toBe('n1/a/1');
  });

  it('a holder whose lease is current by its own clock takes it back at once, claims or not; its commit ends the claims and the claimant is lost', async () => {
    await redisUpFor(2_000);
    const store = claimStore();
    await beatOf(store, 'n1/a/1', { version: 5, processed: 8 });
    const current = await beatOf(store, 'n2/b/1', 'current', { token: 'n1/a/1', version: 5 });
    expect(current).toEqual({
      lost: [],
      resync: [{ portfolioId: 'p1', token: 'n2/b/1' }],
      claiming: [],
    });
    const now = new Date().toISOString();
    expect(
      await store.commit({
        portfolioId: 'p1',
        lease: {
          token: 'n2/b/1',
          loadedToken: 'n1/a/1',
          loadedVersion: 5,
          mayReassert: true,
          releasing: false,
        },
        version: 12,
        book: bookAt('n2/b/1', 12, 30),
        state: fleetPortfolioState('p1', 'n2', now),
        applied: [],
        failed: [],
        release: false,
      }),
    ).toEqual({ kind: 'ok', missing: 0 });
    expect(await redis.exists(keys.portfolioClaims('p1'))).toBe(0);
    expect(await beatOf(store, 'n1/a/1', { version: 5, processed: 8 })).toMatchObject({
      lost: [{ portfolioId: 'p1', token: 'n1/a/1' }],
    });
    expect(await processedInRedis()).toBe(30);
  });

  it('a beat that reaches Redis later than its lease stays current (sent again after a reconnect) takes nothing back and is not renewed; in time, it takes the lease back', async () => {
    const lease = (currentForMs: number): LeaseClaim => ({
      token: 'n1/a/1',
      loadedToken: 'n0/a/1',
      loadedVersion: 3,
      mayReassert: true,
      currentForMs,
      claim: null,
      releasing: false,
    });
    // Built 2 s before it reaches Redis, with 1 s of lease left by its sender's clock.
    const resent = newStore({ claimWindow: window, clock: () => Date.now() - 2_000 });
    expect(await beatWith(resent, lease(1_000))).toEqual({
      lost: [],
      resync: [],
      claiming: [],
      late: [{ portfolioId: 'p1', token: 'n1/a/1' }],
    });
    expect(await redis.exists(keys.portfolioLease('p1'), keys.portfolioFence('p1'))).toBe(0);
    // With 5 s left it was still current when it arrived: taken back.
    expect(await beatWith(resent, lease(5_000))).toEqual({
      lost: [],
      resync: [{ portfolioId: 'p1', token: 'n1/a/1' }],
      claiming: [],
    });
    expect(await redis.get(keys.portfolioLease('p1'))).toBe('n1/a/1');
  });

  it('Redis restarted empty during the contest: the claims go with it, a live claimant writes its claim again and the wait starts over', async () => {
    const store = claimStore();
    await beatOf(store, 'n1/a/1', { version: 9, processed: 20 });
    const before = await redis.hgetall(keys.portfolioNoBook('p1'));
    redis.on('error', () => undefined); // the restart, on purpose
    await server.restart({ keepData: false });
    await redisUpFor(0);
    expect(await redis.exists(keys.portfolioClaims('p1'))).toBe(0);
    expect(await beatOf(store, 'n1/a/1', { version: 9, processed: 20 })).toMatchObject({
      claiming: [{ portfolioId: 'p1', token: 'n1/a/1', version: 9 }],
    });
    expect(await redis.hget(keys.portfolioClaims('p1'), 'v:n1/a/1')).toBe('9');
    const after = await redis.hgetall(keys.portfolioNoBook('p1'));
    expect(after.run).not.toBe(before.run);
    expect(after.first).toBe(after.last);
  });
});

describe('NodeStore beat of an idle node: what it sends', () => {
  const ids = ['p1', 'p2', 'p3', 'p4', 'p5'];
  const now = new Date().toISOString();
  const leaseOf = (id: string): LeaseClaim => ({
    token: `n1/a/${id}`,
    loadedToken: '',
    loadedVersion: 0,
    mayReassert: true,
    claim: null,
    releasing: false,
  });
  /** Every command Redis ran since the last RESETSTAT, scripts' own included, but the test's. */
  const calls = async (on: Redis = redis): Promise<Record<string, number>> =>
    Object.fromEntries(
      [...(await on.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)]
        // The registry's ZADD is the gateway's to shape (its liveness index): not counted here.
        .filter(([, name]) => name !== 'config|resetstat' && name !== 'zadd')
        .map(([, name, n]): [string, number] => [name ?? '', Number(n)]),
    );
  /** Five held leases with a fence each (a first commit), on `store`. */
  async function holdFive(store: NodeStore): Promise<void> {
    for (const id of ids) {
      const lease = leaseOf(id);
      expect(await store.acquireLease(id, lease.token)).toMatchObject({ ok: true });
      expect(
        await store.commit({
          portfolioId: id,
          lease,
          version: 1,
          book: { ...book(1_000), portfolio_id: id, fence: { token: lease.token, version: 1 } },
          state: fleetPortfolioState(id, 'n1', now),
          applied: [],
          failed: [],
          release: false,
        }),
      ).toEqual({ kind: 'ok', missing: 0 });
    }
  }
  const beatOn =
    (store: NodeStore) =>
    (seen: { fenceSeenIn?: string; writeState?: boolean }[] = ids.map(() => ({}))) =>
      store.beat(
        encodePayload('heartbeat', { _v: 1, node_id: 'n1', sent_at: now, seq: 1 }),
        fleetNodeInfo('n1', ids, now),
        ids.map((id, i) => ({
          portfolioId: id,
          state: fleetPortfolioState(id, 'n1', now),
          lease: leaseOf(id),
          ...seen[i],
        })),
      );

  it('five leases renewed in the Redis that showed their fences, states unchanged: the node keys, one INFO, a GET and a PEXPIRE per lease', async () => {
    const store = newStore();
    await holdFive(store);
    const beat = beatOn(store);
    await beat(); // loads the script: the beats below run it by its hash
    await redis.config('RESETSTAT');
    const first = await beat();
    // Nothing known: every fence checked, every state written, as every beat did before.
    expect(first.stateWritten).toEqual(ids);
    expect(first.fenceFound.map((f) => f.portfolioId)).toEqual(ids);
    expect(await calls()).toEqual({ evalsha: 1, set: 7, info: 1, get: 5, pexpire: 5, exists: 5 });
    const identity = first.fenceFound[0]?.redis ?? '';
    expect(new Set(first.fenceFound.map((f) => f.redis))).toEqual(new Set([identity]));
    expect(identity).toMatch(/^[0-9a-f]{40}:[0-9a-f]{40}:\d+$/);

    await redis.config('RESETSTAT');
    const quiet = await beat(ids.map(() => ({ fenceSeenIn: identity, writeState: false })));
    expect(quiet).toEqual({ lost: [], resync: [], claiming: [], stateWritten: [], fenceFound: [] });
    // No TIME (no lease vanished), no EXISTS, no state: 13 commands instead of 25.
    expect(await calls()).toEqual({ evalsha: 1, set: 2, info: 1, get: 5, pexpire: 5 });
    for (const id of ids) expect(await redis.pttl(keys.portfolioLease(id))).toBeGreaterThan(14_000);

    // A changed state is written, and only it; a fence due is checked, and only it.
    await redis.config('RESETSTAT');
    const some = await beat(
      ids.map((id) => ({
        ...(id === 'p4' ? {} : { fenceSeenIn: identity }),
        writeState: id === 'p2',
      })),
    );
    expect(some.stateWritten).toEqual(['p2', 'p4']);
    expect(some.fenceFound.map((f) => f.portfolioId)).toEqual(['p4']);
    expect(await calls()).toEqual({ evalsha: 1, set: 4, info: 1, get: 5, pexpire: 5, exists: 1 });
  });

  it('a fence gone from the same Redis is found by the next beat that checks it; one gone with a restart, at the first beat after it', async () => {
    const persistent = await RedisServer.start({ persistence: true });
    const client = new Redis(persistent.port, persistent.host, { maxRetriesPerRequest: 1 });
    try {
      const store = new NodeStore({
        redis: client,
        keys,
        nodeId: 'n1',
        heartbeatTtlMs: 15_000,
        nodeInfoTtlMs: 45_000,
        portfolioStateTtlMs: 45_000,
      });
      await holdFive(store);
      const beat = beatOn(store);
      const identity = (await beat()).fenceFound[0]?.redis ?? '';
      const quiet = ids.map(() => ({ fenceSeenIn: identity, writeState: false }));

      // Deleted by hand: a beat told the fence was seen lately does not look (the node checks
      // each fence at least once a lease TTL); the next that checks asks for the book again.
      await client.del(keys.portfolioFence('p3'));
      expect((await beat(quiet)).resync).toEqual([]);
      expect((await beat()).resync).toEqual([{ portfolioId: 'p3', token: 'n1/a/p3' }]);
      await client.hset(keys.portfolioFence('p3'), 'token', 'n1/a/p3', 'version', '1');

      // Lost with a restart, the leases kept (a snapshot older than the fence, say): the node
      // still says it saw the fences, but in another Redis.
      await client.del(keys.portfolioFence('p2'), keys.portfolioState('p2'));
      await persistent.restart({ keepData: true });
      await waitForReady(client);
      const after = await beat(quiet);
      expect(after.resync).toEqual([{ portfolioId: 'p2', token: 'n1/a/p2' }]);
      expect(after.stateWritten).toEqual(ids);
      expect(after.fenceFound.map((f) => f.portfolioId)).toEqual(['p1', 'p3', 'p4', 'p5']);
      expect(after.fenceFound[0]?.redis).not.toBe(identity);
      expect(await client.exists(keys.portfolioState('p2'))).toBe(1);
    } finally {
      client.disconnect();
      await persistent.cleanup();
    }
  });
});

async function waitForReady(client: Redis): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (client.status === 'ready' && (await client.ping().catch(() => '')) === 'PONG') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('Redis did not come back');
}
