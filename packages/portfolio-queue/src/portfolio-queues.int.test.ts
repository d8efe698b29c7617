import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { createStateKeys, type PriceTick } from '@ginkgo-live/state-keys';
import { MemoryTransport, RedisServer, waitFor } from '@ginkgo-live/testing';
import { PortfolioQueueReader, PortfolioQueues, RecoveringQueue, type TickInput } from './index.ts';

const closers: (() => Promise<unknown>)[] = [];
let server: RedisServer | undefined;

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await server?.cleanup();
  server = undefined;
});

async function redis() {
  server ??= await RedisServer.start();
  const current = server;
  const conns = new RedisConnections({
    config: unwrapConfig(loadRedisConfig(current.env)),
    app: 'queue-test',
    instanceId: String(closers.length),
    logger: createLogger({ app: 'queue-test', transports: [new MemoryTransport()] }),
  });
  closers.push(() => conns.close(500));
  await conns.waitUntilReady(5_000);
  return conns;
}

/** A unique prefix per test: no test sees another's keys. */
const keysFor = (name: string) => createStateKeys(`${name}-${Date.now()}:`);

const tick = (n: number): TickInput => ({
  symbol: 'BTCUSDT',
  price: 100 + n,
  volume: 1,
  event_time: new Date(1_700_000_000_000 + n).toISOString(),
});

function producer(
  conns: RedisConnections,
  keys: ReturnType<typeof createStateKeys>,
  capacity: number,
) {
  const queues = new PortfolioQueues({ connection: conns.main, keys, capacity });
  closers.push(() => queues.close());
  return queues;
}

/** A reader of p1's queue, its blocking connection closed after the test. */
function openReader(conns: RedisConnections, keys: ReturnType<typeof createStateKeys>) {
  const reader = new PortfolioQueueReader(
    conns.main,
    conns.connection('reader', 'blocking').duplicate(),
    keys,
    'p1',
  );
  closers.push(async () => {
    reader.close();
    await Promise.resolve();
  });
  return reader;
}

describe('PortfolioQueues on real Redis', () => {
  it('accepts events up to capacity, then refuses at once and counts the refusal', async () => {
    const conns = await redis();
    const keys = keysFor('cap');
    const queues = producer(conns, keys, 5);
    for (let i = 0; i < 5; i++) {
      expect(await queues.add('p1', tick(i))).toMatchObject({ ok: true, depth: i + 1 });
    }
    const started = performance.now();
    const refused = await queues.add('p1', tick(5));
    expect(performance.now() - started).toBeLessThan(100);
    expect(refused).toEqual({ ok: false, reason: 'full', depth: 5, capacity: 5 });
    await queues.add('p1', tick(6));
    expect(queues.refusedByThisProducer('p1')).toBe(2);
    expect(await queues.readRefusals(['p1', 'p2'])).toEqual(
      new Map([
        ['p1', 2],
        ['p2', 0],
      ]),
    );
    expect(await queues.depthOf('p1')).toEqual({ depth: 5, capacity: 5, usage: 1 });
  });

  it('holds the capacity exactly with concurrent producers (the depth check and the add are one script)', async () => {
    const keys = keysFor('concurrent');
    const capacity = 40;
    const producers: PortfolioQueues[] = [];
    // Six producers, each with its own connection, as six feed processes would have.
    for (let i = 0; i < 6; i++) producers.push(producer(await redis(), keys, capacity));
    // Each producer adds one event at a time until it is refused, all of them at once.
    const accepted = await Promise.all(
      producers.map(async (queues, p) => {
        let count = 0;
        for (let i = 0; ; i++) {
          const result = await queues.add('shared', tick(p * 1_000 + i));
          if (!result.ok) return count;
          count += 1;
        }
      }),
    );
    const total = accepted.reduce((a, b) => a + b, 0);
    const { depth } = await producer(await redis(), keys, capacity).depthOf('shared');
    expect(depth).toBe(total);
    expect(depth).toBe(capacity);
  });

  it('reads depth, capacity and usage of many queues in one call', async () => {
    const conns = await redis();
    const keys = keysFor('many');
    const queues = producer(conns, keys, 10);
    const ids = Array.from({ length: 200 }, (_, i) => `p${i}`);
    await Promise.all(
      ids
        .slice(0, 3)
        .map((id, i) =>
          Promise.all(Array.from({ length: i + 1 }, (_, n) => queues.add(id, tick(n)))),
        ),
    );
    const depths = await queues.readDepths(ids);
    expect(depths.size).toBe(200);
    expect(depths.get('p0')).toEqual({ depth: 1, capacity: 10, usage: 0.1 });
    expect(depths.get('p2')).toEqual({ depth: 3, capacity: 10, usage: 0.3 });
    expect(depths.get('p199')).toEqual({ depth: 0, capacity: 10, usage: 0 });
  });

  it('refuses an invalid tick with the reason, touching nothing', async () => {
    const conns = await redis();
    const queues = producer(conns, keysFor('invalid'), 10);
    const result = await queues.add('p1', { ...tick(1), price: -3 });
    expect(result).toMatchObject({ ok: false, reason: 'invalid' });
    expect(result.ok ? '' : 'problem' in result ? result.problem : '').toMatch(/price/);
    expect((await queues.depthOf('p1')).depth).toBe(0);
  });
});

describe('RecoveringQueue', () => {
  it('heals a queue whose start met a Redis failure, where a plain BullMQ queue stays broken', async () => {
    const conns = await redis();
    const current = server;
    if (current === undefined) throw new Error('no server');
    // The queues start while Redis is frozen (their version check hangs), then Redis dies.
    current.freeze();
    const options = { connection: conns.main, prefix: 'heal' };
    const plain = new Queue('q', options);
    plain.on('error', () => undefined);
    closers.push(() => plain.close().catch(() => undefined));
    const recovering = new RecoveringQueue('q', options);
    closers.push(() => recovering.close().catch(() => undefined));
    const first = recovering.get();
    await current.kill();
    await expect(first).rejects.toThrow();
    await expect(plain.waitUntilReady()).rejects.toThrow();

    await current.restart();
    await waitFor(() => conns.main.status === 'ready', { timeoutMs: 5_000 });
    const queue = await waitFor(() => recovering.get().catch(() => undefined), {
      timeoutMs: 5_000,
      description: 'the recovering queue to heal',
    });
    await expect(queue.add('x', {})).resolves.toBeDefined();
    // BullMQ keeps the failed initialisation of the plain queue.
    await expect(plain.waitUntilReady()).rejects.toThrow();
  });
});

describe('numbered events and PortfolioQueueReader', () => {
  it("numbers each portfolio's events 1, 2, … and the reader sees them oldest first, moving nothing", async () => {
    const conns = await redis();
    const keys = keysFor('order');
    const queues = new PortfolioQueues({ connection: conns.main, keys, producerId: 'feed-1' });
    closers.push(() => queues.close());
    for (let i = 0; i < 5; i++)
      expect(await queues.add('p1', tick(i))).toMatchObject({ seq: i + 1 });
    expect(await queues.add('p2', tick(0))).toMatchObject({ ok: true, seq: 1, jobId: 'feed-1-1' });
    const blocking = conns.connection('reader', 'blocking').duplicate();
    const reader = new PortfolioQueueReader(conns.main, blocking, keys, 'p1');
    closers.push(async () => {
      reader.close();
      await Promise.resolve();
    });
    const events = await reader.peek(3);
    expect(events.map((e) => e.jobId)).toEqual(['feed-1-1', 'feed-1-2', 'feed-1-3']);
    const ticks = events.map((e) => JSON.parse(e.data ?? '') as PriceTick);
    expect(ticks.map((t) => [t.producer, t.seq, t.price])).toEqual([
      ['feed-1', 1, 100],
      ['feed-1', 2, 101],
      ['feed-1', 3, 102],
    ]);
    expect((await reader.peek(10)).map((e) => e.jobId)).toHaveLength(5);
    expect((await queues.depthOf('p1')).depth).toBe(5);
  });

  it('a refused add uses up its seq; a resend of a queued job id adds nothing', async () => {
    const conns = await redis();
    const keys = keysFor('seq');
    const queues = new PortfolioQueues({
      connection: conns.main,
      keys,
      capacity: 2,
      producerId: 'feed-2',
    });
    closers.push(() => queues.close());
    await queues.add('p1', tick(0));
    await queues.add('p1', tick(1));
    expect(await queues.add('p1', tick(2))).toMatchObject({ ok: false, reason: 'full' });
    // The refused seq (3) is a gap: the next add takes 4.
    const raw = new Queue(keys.portfolioQueue('p1'), {
      connection: conns.main,
      prefix: keys.queuePrefix(),
    });
    closers.push(() => raw.close());
    // What ioredis does when it resends an add after a reconnect: the same job id again.
    await raw.add('tick', { resent: true }, { jobId: 'feed-2-2' });
    expect((await queues.depthOf('p1')).depth).toBe(2);
    await raw.remove('feed-2-1');
    expect(await queues.add('p1', tick(3))).toMatchObject({ ok: true, seq: 4 });
  });

  it('wakes a waiting reader when an event is added, and times out when none is', async () => {
    const conns = await redis();
    const keys = keysFor('wake');
    const queues = producer(conns, keys, 100);
    const reader = openReader(conns, keys);
    let started = performance.now();
    await reader.waitForEvents(300);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    started = performance.now();
    const waiting = reader.waitForEvents(5_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await queues.add('p1', tick(1));
    await waiting;
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('after a wait that timed out, looks with one LLEN; events added since are read in full', async () => {
    const conns = await redis();
    const keys = keysFor('look');
    const queues = producer(conns, keys, 100);
    const reader = openReader(conns, keys);
    const calls = async (): Promise<Record<string, number>> => {
      const stats = await conns.main.info('commandstats');
      const count = (name: string): number =>
        Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
      return { llen: count('llen'), evalsha: count('evalsha') + count('eval') };
    };
    expect(await reader.peek(10)).toEqual([]);
    await reader.waitForEvents(50);
    await conns.main.config('RESETSTAT');
    expect(await reader.peek(10)).toEqual([]);
    expect(await calls()).toEqual({ llen: 1, evalsha: 0 });
    // Added while nobody waited (so no wait ended by it): the next wait pops the mark at once.
    await reader.waitForEvents(50);
    await queues.add('p1', tick(1));
    await conns.main.config('RESETSTAT');
    const events = await reader.peek(10);
    expect(events).toHaveLength(1);
    expect(await calls()).toEqual({ llen: 1, evalsha: 1 });
  });

  it('is idle (its queue known empty) only while a wait that followed an empty peek is blocked', async () => {
    const conns = await redis();
    const keys = keysFor('idle');
    const queues = producer(conns, keys, 100);
    const reader = openReader(conns, keys);
    expect(reader.idle).toBe(false);
    // A wait without a peek before it knows nothing.
    await reader.waitForEvents(50);
    expect(await reader.peek(10)).toEqual([]);
    let waiting = reader.waitForEvents(5_000);
    expect(reader.idle).toBe(true);
    await queues.add('p1', tick(1));
    await waiting;
    expect(reader.idle).toBe(false);
    // Events found: the next wait (the marker of that add already taken) is not idle either.
    expect(await reader.peek(10)).toHaveLength(1);
    waiting = reader.waitForEvents(50);
    expect(reader.idle).toBe(false);
    await waiting;
    expect(reader.idle).toBe(false);
  });
});
