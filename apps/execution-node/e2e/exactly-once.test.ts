import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { appliedSeqs, SEQ_CHECKSUM_MODULUS } from '@ginkgo-live/state-keys';
import {
  logEntries,
  type ManagedProcess,
  type RedisServer,
  StackFixture,
  tick,
  waitFor,
} from '@ginkgo-live/testing';

/**
 * Exactly once, in order, through the faults a node meets: every event a producer was told was
 * accepted is in the portfolio's book once, in seq order — checked from what the book itself says
 * it applied (first..last minus gaps, count, order-sensitive checksum) against the producer's own
 * list of accepted seqs, with equality. Short timings (FAST: heartbeat 500 ms, lease TTL 2 s).
 */
let fx: StackFixture;
let server: RedisServer;

beforeEach(async () => {
  fx = await StackFixture.start();
  server = fx.server;
});
afterEach(() => fx.close());

const PRODUCER = 'test-feed';

function producerQueues(): PortfolioQueues {
  return fx.track(
    new PortfolioQueues({ connection: fx.redis, keys: fx.keys, producerId: PRODUCER }),
  );
}

/**
 * Offers one numbered tick to every portfolio every few ms until stopped, recording the seqs
 * accepted. Pass the queues of an earlier feed to go on with its numbering.
 */
function feed(portfolioIds: readonly string[], queues = producerQueues()) {
  const accepted = new Map<string, number[]>(portfolioIds.map((id) => [id, []]));
  const control = { stopped: false };
  let n = 0;
  const running = (async () => {
    while (!control.stopped) {
      for (const id of portfolioIds) {
        const result = await queues.add(id, tick(n++));
        if (result.ok) accepted.get(id)?.push(result.seq);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    queues,
    accepted,
    total: () => [...accepted.values()].reduce((sum, seqs) => sum + seqs.length, 0),
    stop: async () => {
      control.stopped = true;
      await running;
    },
  };
}

const book = (portfolioId: string) => fx.book(portfolioId);

/** The process part of the lease tokens a node process logs (`<node>/<process>/<epoch>`). */
function tokenOf(node: ManagedProcess): string {
  const token = logEntries(node, 'Portfolio loaded')[0]?.['token'];
  if (typeof token !== 'string') throw new Error(`${node.name} loaded nothing`);
  return token.split('/')[1] ?? '';
}

/** Waits until the portfolio's queue is empty and its book has applied `count` events. */
async function settled(portfolioId: string, count: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () =>
      (await fx.redis.llen(
        `${fx.keys.queuePrefix()}:${fx.keys.portfolioQueue(portfolioId)}:wait`,
      )) === 0 && (await book(portfolioId))?.applied?.producers[PRODUCER]?.count === count,
    { timeoutMs, intervalMs: 100, description: `${portfolioId}: ${count} events in the book` },
  );
}

/** The book applied exactly the accepted seqs: each once, in increasing order. */
async function expectExactlyOnce(portfolioId: string, accepted: readonly number[]): Promise<void> {
  const b = await book(portfolioId);
  const range = b?.applied?.producers[PRODUCER];
  if (range === undefined) throw new Error(`${portfolioId}: nothing applied`);
  const { seqs, complete } = appliedSeqs(range);
  expect(complete).toBe(true);
  expect(seqs).toEqual(accepted);
  expect(range.count).toBe(accepted.length);
  expect(range.checksum).toBe(
    accepted.reduce((h, seq) => (h * 31 + seq) % SEQ_CHECKSUM_MODULUS, 0),
  );
  expect(b?.processed_count).toBe(accepted.length);
}

describe('exactly once through node faults', () => {
  it('a node SIGKILLed under a steady feed: the next owner applies every accepted event once, in order', async ({
    annotate,
  }) => {
    await fx.addToCatalog('p1');
    await fx.addToCatalog('p2');
    const a = await fx.startNode('a');
    const b = await fx.startNode('b');
    await fx.assign('a', ['p1', 'p2']);
    await waitFor(async () => (await fx.state('p2'))?.status === 'running');
    const producer = feed(['p1', 'p2']);
    await waitFor(() => producer.total() >= 200, { timeoutMs: 10_000 });
    await a.stop('SIGKILL');
    await fx.assign('b', ['p1', 'p2']);
    await waitFor(() => producer.total() >= 600, { timeoutMs: 20_000 });
    await producer.stop();
    for (const id of ['p1', 'p2']) {
      const accepted = producer.accepted.get(id) ?? [];
      await settled(id, accepted.length);
      await expectExactlyOnce(id, accepted);
      expect((await book(id))?.fence?.token).toMatch(/^b\//);
    }
    await annotate(`accepted ${producer.total()}, all in the books once, in order`);
    expect(b.exit).toBeUndefined();
  });

  it('a node frozen past its lease while its portfolio moved: after the thaw it commits nothing and lives on', async () => {
    await fx.addToCatalog('p1');
    const a = await fx.startNode('a');
    const b = await fx.startNode('b');
    await fx.assign('a', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');
    const producer = feed(['p1']);
    await waitFor(() => producer.total() >= 100, { timeoutMs: 10_000 });
    a.signal('SIGSTOP');
    await fx.assign('a', []);
    await fx.assign('b', ['p1']);
    await waitFor(async () => (await book('p1'))?.fence?.token.startsWith('b/') === true, {
      timeoutMs: 10_000,
      description: 'b committed p1',
    });
    a.signal('SIGCONT');
    await waitFor(() => producer.total() >= 400, { timeoutMs: 20_000 });
    await producer.stop();
    const accepted = producer.accepted.get('p1') ?? [];
    await settled('p1', accepted.length);
    await expectExactlyOnce('p1', accepted);
    expect(a.exit).toBeUndefined();
    expect(b.exit).toBeUndefined();
  });

  it('a thawed node finds its lease free but the book written by another since (ABA): it drops its copy and reloads', async () => {
    await fx.addToCatalog('p1');
    const a = await fx.startNode('a');
    const b = await fx.startNode('b');
    await fx.assign('a', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');
    const producer = feed(['p1']);
    await waitFor(() => producer.total() >= 100, { timeoutMs: 10_000 });
    a.signal('SIGSTOP');
    // b takes p1 over, applies events, and lets it go again: the lease is free, the book is b's.
    await fx.assign('b', ['p1']);
    await waitFor(async () => (await book('p1'))?.fence?.token.startsWith('b/') === true, {
      timeoutMs: 10_000,
    });
    await waitFor(() => producer.total() >= 250, { timeoutMs: 10_000 });
    await fx.assign('b', []);
    await waitFor(async () => (await fx.redis.exists(fx.keys.portfolioLease('p1'))) === 0, {
      timeoutMs: 5_000,
      description: 'b released the lease',
    });
    // a is still assigned p1: it thaws, must not take its old lease back, reloads b's book instead.
    a.signal('SIGCONT');
    await waitFor(
      () => logEntries(a, 'Portfolio lease held by another process; stopping it here').length === 1,
      {
        timeoutMs: 5_000,
      },
    );
    await waitFor(() => producer.total() >= 400, { timeoutMs: 20_000 });
    await producer.stop();
    const accepted = producer.accepted.get('p1') ?? [];
    await settled('p1', accepted.length);
    await expectExactlyOnce('p1', accepted);
    expect(a.exit).toBeUndefined();
    expect(b.exit).toBeUndefined();
  });

  it('a replacement process under the same NODE_ID while the first is frozen: the thawed one commits nothing', async () => {
    await fx.addToCatalog('p1');
    const first = await fx.startNode('n1');
    await fx.assign('n1', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');
    const producer = feed(['p1']);
    await waitFor(() => producer.total() >= 100, { timeoutMs: 10_000 });
    first.signal('SIGSTOP');
    // Its heartbeat expires (TTL 2 s); a new process takes the same id and the same assignment.
    await waitFor(async () => (await fx.redis.exists(fx.keys.heartbeat('n1'))) === 0, {
      timeoutMs: 5_000,
    });
    const second = await fx.startNode('n1');
    await waitFor(
      async () => {
        const token = (await book('p1'))?.fence?.token ?? '';
        return token.startsWith('n1/') && !token.startsWith(`n1/${tokenOf(first)}`);
      },
      { timeoutMs: 10_000, description: 'the second process committed p1' },
    );
    first.signal('SIGCONT');
    await waitFor(() => producer.total() >= 400, { timeoutMs: 20_000 });
    await producer.stop();
    const accepted = producer.accepted.get('p1') ?? [];
    await settled('p1', accepted.length);
    await expectExactlyOnce('p1', accepted);
    expect(second.exit).toBeUndefined();
  });

  it('Redis restarted empty: the node writes back the books it holds, they are not reset', async () => {
    await fx.addToCatalog('p1');
    const a = await fx.startNode('a');
    await fx.assign('a', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');
    let producer = feed(['p1']);
    await waitFor(() => producer.total() >= 100, { timeoutMs: 10_000 });
    await producer.stop();
    const before = producer.accepted.get('p1') ?? [];
    await settled('p1', before.length);
    const cash = (await book('p1'))?.cash;

    await server.kill();
    await server.restart({ keepData: false });
    await waitFor(async () => (await book('p1')) !== null, {
      timeoutMs: 5_000,
      description: 'the book written back',
    });
    await expectExactlyOnce('p1', before);
    expect((await book('p1'))?.cash).toBe(cash);

    // The catalog and assignment are gone with the rest; the node keeps running what it has.
    await fx.addToCatalog('p1');
    producer = feed(['p1'], producer.queues);
    await waitFor(() => producer.total() >= 100, { timeoutMs: 10_000 });
    await producer.stop();
    const after = [...before, ...(producer.accepted.get('p1') ?? [])];
    await settled('p1', after.length);
    await expectExactlyOnce('p1', after);
    expect(a.exit).toBeUndefined();
  });

  it('Redis gone longer than the lease TTL, back empty, the portfolio given to another node at once: the holder writes its book back, nobody starts it afresh', async () => {
    await fx.addToCatalog('p1');
    const a = await fx.startNode('a');
    const b = await fx.startNode('b');
    await fx.assign('a', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');
    let producer = feed(['p1']);
    await waitFor(() => producer.total() >= 100, { timeoutMs: 10_000 });
    await producer.stop();
    const before = producer.accepted.get('p1') ?? [];
    await settled('p1', before.length);

    await server.kill();
    await new Promise((resolve) => setTimeout(resolve, 3_000)); // lease TTL 2 s
    await server.restart({ keepData: false });
    // As a scheduler that has not heard from a yet might: p1 to b, straight away.
    await fx.addToCatalog('p1');
    await fx.assign('b', ['p1']);
    await waitFor(async () => (await book('p1')) !== null, {
      timeoutMs: 5_000,
      description: 'the book written back',
    });
    expect((await book('p1'))?.fence?.token).toMatch(/^a\//);
    await expectExactlyOnce('p1', before);

    // Moved for real now: b loads a's book and goes on from it.
    await fx.assign('a', []);
    await waitFor(async () => (await fx.state('p1'))?.node_id === 'b', { timeoutMs: 10_000 });
    producer = feed(['p1'], producer.queues);
    await waitFor(() => producer.total() >= 100, { timeoutMs: 10_000 });
    await producer.stop();
    const all = [...before, ...(producer.accepted.get('p1') ?? [])];
    await settled('p1', all.length);
    await expectExactlyOnce('p1', all);
    expect(logEntries(b, 'Portfolio loaded').map((e) => e['resumed'])).toEqual([true]);
    expect(a.exit).toBeUndefined();
  });

  it('skips an event its producer sent again (same producer, same seq) after it was applied', async () => {
    await fx.addToCatalog('p1');
    await fx.startNode('a');
    await fx.assign('a', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');
    const first = new PortfolioQueues({
      connection: fx.redis,
      keys: fx.keys,
      producerId: PRODUCER,
    });
    fx.track(first);
    for (let i = 0; i < 20; i++) await first.add('p1', tick(i));
    await settled('p1', 20);
    // The same producer id numbering from 1 again: every one of these is a resend of an applied seq.
    const again = new PortfolioQueues({
      connection: fx.redis,
      keys: fx.keys,
      producerId: PRODUCER,
    });
    fx.track(again);
    for (let i = 0; i < 10; i++) expect(await again.add('p1', tick(i))).toMatchObject({ ok: true });
    for (let i = 0; i < 25; i++) await first.add('p1', tick(20 + i));
    await settled('p1', 45);
    await expectExactlyOnce(
      'p1',
      Array.from({ length: 45 }, (_, i) => i + 1),
    );
  });

  it('a stop with Redis frozen ends within its budget (exit 1), and the events it had not committed run on the next owner', async () => {
    await fx.addToCatalog('p1');
    const a = await fx.startNode('a', { STOP_TIMEOUT_MS: '1500' });
    await fx.assign('a', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');
    const producer = feed(['p1']);
    await waitFor(() => producer.total() >= 100, { timeoutMs: 10_000 });
    await producer.stop();
    server.freeze();
    const stopping = Date.now();
    const exit = await a.stop('SIGTERM', 10_000);
    const tookMs = Date.now() - stopping;
    server.thaw();
    expect(exit.code).toBe(1);
    // The budget, plus at most the 1 s backstop, plus 1 s for the exit to be seen on a loaded
    // machine (a stop that hangs takes the whole 10 s wait above).
    expect(tookMs).toBeLessThan(1_500 + 1_000 + 1_000);
    await fx.startNode('b');
    await fx.assign('b', ['p1']);
    const accepted = producer.accepted.get('p1') ?? [];
    await settled('p1', accepted.length);
    await expectExactlyOnce('p1', accepted);
  });
});
