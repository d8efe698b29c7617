import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { MemoryTransport, RedisServer, waitFor } from '@ginkgo-live/testing';
import { PortfolioQueueReader, PortfolioQueues, QueueWakeups, type TickInput } from './index.ts';

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const tick = (n: number): TickInput => ({
  symbol: 'BTCUSDT',
  price: 100 + n,
  volume: 1,
  event_time: new Date(1_700_000_000_000 + n).toISOString(),
});

const IDS = ['p1', 'p2', 'p3', 'p4', 'p5'];

/** A Redis, a producer, shared waits (`lookAfterMs`) and a reader per portfolio on them. */
async function setUp(lookAfterMs: number) {
  const server = await RedisServer.start();
  closers.push(() => server.cleanup());
  const conns = new RedisConnections({
    config: unwrapConfig(loadRedisConfig(server.env)),
    app: 'wakeups-test',
    instanceId: 'n1',
    logger: createLogger({ app: 'wakeups-test', transports: [new MemoryTransport()] }),
  });
  closers.push(() => conns.close(500));
  await conns.waitUntilReady(5_000);
  const keys = createStateKeys('w:');
  const queues = new PortfolioQueues({ connection: conns.main, keys, capacity: 100 });
  const wakeups = new QueueWakeups({
    redis: conns.main,
    openBlocking: () =>
      conns.connection('reader', 'blocking').duplicate({ connectionName: 'test:queues' }),
    lookAfterMs,
    owner: 'n1',
  });
  closers.push(() => wakeups.close());
  const readers = new Map(
    IDS.map((id) => [id, new PortfolioQueueReader(conns.main, wakeups, keys, id)]),
  );
  /** Starts a wait of every reader (after an empty peek); resolves to when each ended. */
  const waitAll = async (ids = IDS) => {
    const ended = new Map<string, number>();
    for (const id of ids) {
      const reader = readers.get(id);
      if (reader === undefined) continue;
      expect(await reader.peek(10)).toEqual([]);
      void reader.waitForEvents(lookAfterMs).then(() => ended.set(id, performance.now()));
    }
    return ended;
  };
  /** Clients blocked in a command now (CLIENT LIST flag b), by name. */
  const blockedClients = async () =>
    String(await conns.main.client('LIST'))
      .split('\n')
      .filter((line) => /flags=\S*b/.test(line))
      .map((line) => /name=(\S*)/.exec(line)?.[1] ?? '');
  const calls = async (): Promise<Record<string, number>> => {
    const stats = await conns.main.info('commandstats');
    return Object.fromEntries(
      [...stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)]
        // The test's own: INFO, RESETSTAT and CLIENT LIST.
        .filter(([, name]) => !['info', 'config|resetstat', 'client|list'].includes(name ?? ''))
        .map(([, name, n]): [string, number] => [name ?? '', Number(n)]),
    );
  };
  return { conns, keys, queues, wakeups, readers, waitAll, blockedClients, calls };
}

describe('QueueWakeups: one blocking wait for every queue of a process', () => {
  it('five readers waiting on empty queues block one connection; an add ends only its reader’s wait, at once', async () => {
    const { queues, waitAll, blockedClients } = await setUp(5_000);
    const ended = await waitAll();
    await waitFor(async () => (await blockedClients()).length === 1);
    expect(await blockedClients()).toEqual(['test:queues']);
    const added = performance.now();
    await queues.add('p3', tick(1));
    await waitFor(() => ended.has('p3'), { timeoutMs: 1_000, intervalMs: 5 });
    expect((ended.get('p3') ?? Infinity) - added).toBeLessThan(200);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect([...ended.keys()]).toEqual(['p3']);
    // Waiting on the other four again, still one connection.
    await waitFor(async () => (await blockedClients()).length === 1);
  });

  it('an idle wait sends one BZPOPMIN and one EXISTS per timeout, whatever the number of queues', async () => {
    const { conns, waitAll, blockedClients, calls } = await setUp(200);
    await waitAll();
    // Counted at moments the wait is blocked: each timed-out wait has had its look by then.
    const blocked = () =>
      waitFor(async () => (await blockedClients()).length === 1, { intervalMs: 5 });
    await blocked();
    await conns.main.config('RESETSTAT');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await blocked();
    const sent = await calls();
    expect(Object.keys(sent).sort()).toEqual(['bzpopmin', 'exists']);
    // One look per timed-out wait. At the window's start a wait may time out between the check
    // that it blocks and the RESETSTAT: its look is counted, the wait itself not (seen once at
    // load 10 in CI), so the looks may be one more than the waits, never fewer.
    expect(sent['exists'] ?? 0).toBeGreaterThanOrEqual(sent['bzpopmin'] ?? 0);
    expect(sent['exists'] ?? 0).toBeLessThanOrEqual((sent['bzpopmin'] ?? 0) + 1);
    // About five timeouts of 200 ms in a second, for five queues (a wait each would be 25).
    expect(sent['bzpopmin']).toBeLessThanOrEqual(6);
  });

  it('a reader that joins while the wait is in flight is woken at once by an add to its queue', async () => {
    const { queues, waitAll, blockedClients } = await setUp(5_000);
    await waitAll(['p1', 'p2']);
    await waitFor(async () => (await blockedClients()).length === 1);
    const ended = await waitAll(['p5']);
    // The wait in flight ends and starts again with p5's marker among its keys.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await waitFor(async () => (await blockedClients()).length === 1);
    const added = performance.now();
    await queues.add('p5', tick(1));
    await waitFor(() => ended.has('p5'), { timeoutMs: 1_000, intervalMs: 5 });
    expect((ended.get('p5') ?? Infinity) - added).toBeLessThan(200);
  });

  it('an add while its reader is busy ends the reader’s next wait at once', async () => {
    const { queues, readers, waitAll, blockedClients } = await setUp(5_000);
    await waitAll(['p1', 'p2']);
    await queues.add('p1', tick(1));
    const reader = readers.get('p1');
    expect(await reader?.peek(10)).toHaveLength(1);
    // Busy (its wait over): the next add's marker is taken by the shared wait, for p1.
    await waitFor(async () => (await blockedClients()).length === 1);
    await queues.add('p1', tick(2));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    await reader?.waitForEvents(5_000);
    expect(performance.now() - started).toBeLessThan(100);
  });

  it('a wake-up lost (the marker taken by another reader): the look at the timeout ends the waits', async () => {
    const { conns, readers, waitAll, blockedClients } = await setUp(300);
    const ended = await waitAll(['p1', 'p2']);
    await waitFor(async () => (await blockedClients()).length === 1);
    // A job in p2's list whose marker another reader took: nothing wakes the shared wait.
    const started = performance.now();
    await conns.main.lpush(readers.get('p2')?.layout.wait ?? '', 'job-1');
    await waitFor(() => ended.has('p2'), { timeoutMs: 2_000, intervalMs: 5 });
    expect((ended.get('p2') ?? Infinity) - started).toBeLessThan(300 + 200);
    // One EXISTS for the slot says only that one of them filled: every waiting reader looks.
    expect(ended.has('p1')).toBe(true);
  });

  it('a wake-up lost while another queue’s adds end every wait early: still looked at within lookAfterMs', async () => {
    const { conns, queues, readers, waitAll, blockedClients } = await setUp(300);
    const ended = await waitAll(['p1', 'p2']);
    await waitFor(async () => (await blockedClients()).length === 1);
    const feeding = { on: true };
    const busy = (async () => {
      for (let i = 0; feeding.on; i++) {
        await queues.add('p1', tick(i));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const started = performance.now();
    await conns.main.lpush(readers.get('p2')?.layout.wait ?? '', 'job-1');
    await waitFor(() => ended.has('p2'), { timeoutMs: 2_000, intervalMs: 5 });
    feeding.on = false;
    await busy;
    expect((ended.get('p2') ?? Infinity) - started).toBeLessThan(300 + 200);
  });

  it('adds to every queue at once end every wait in one turn, not one BZPOPMIN each in join order', async () => {
    const { conns, readers, waitAll, blockedClients, calls } = await setUp(5_000);
    const ended = await waitAll();
    await waitFor(async () => (await blockedClients()).length === 1);
    await conns.main.config('RESETSTAT');
    // The markers of all five set in one step, as a feed round's adds land while the wait blocks.
    const marking = conns.main.multi();
    for (const id of IDS) marking.zadd(readers.get(id)?.layout.marker ?? '', 0, '0');
    await marking.exec();
    await waitFor(() => ended.size === IDS.length, { timeoutMs: 1_000, intervalMs: 5 });
    const sent = await calls();
    expect(sent['bzpopmin']).toBe(1);
    expect(sent['zpopmin']).toBe(IDS.length - 1);
  });

  it('a reader made after the waits closed is refused, not left to peek and wait in a tight loop', async () => {
    const { conns, keys, wakeups } = await setUp(5_000);
    wakeups.close();
    const late = new PortfolioQueueReader(conns.main, wakeups, keys, 'p9');
    await expect(late.waitForEvents(100)).rejects.toThrow(/closed/);
  });

  it('a reader that left no longer takes its queue’s marker', async () => {
    const { conns, queues, readers, waitAll, blockedClients } = await setUp(5_000);
    await waitAll(['p1', 'p2']);
    await waitFor(async () => (await blockedClients()).length === 1);
    readers.get('p2')?.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await queues.add('p2', tick(1));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await conns.main.zcard(readers.get('p2')?.layout.marker ?? '')).toBe(1);
    await expect(readers.get('p2')?.waitForEvents(100)).rejects.toThrow(/closed/);
  });
});
