import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import {
  FAST,
  logEntries,
  metricsPortOf,
  type RedisServer,
  StackFixture,
  tick,
  waitFor,
} from '@ginkgo-live/testing';

let fx: StackFixture;
let server: RedisServer;

beforeEach(async () => {
  fx = await StackFixture.start();
  server = fx.server;
});
afterEach(() => fx.close());

function producer(): PortfolioQueues {
  return fx.track(new PortfolioQueues({ connection: fx.redis, keys: fx.keys }));
}

/** Attempt numbers of the failed heartbeat attempts, in the order they were logged. */
function attempts(node: Parameters<typeof logEntries>[0]): number[] {
  return logEntries(node, 'Heartbeat attempt failed').map((e) => Number(e['attempt']));
}

describe('execution node when Redis fails (FR-036)', () => {
  it('survives a killed Redis, retries with bounded attempts, and re-announces everything after an empty restart within the lease TTL (the book at once, no wait)', async () => {
    await fx.addToCatalog('p1');
    // Loaded at once (a portfolio with no book would wait the longer window of this TTL).
    await fx.seedBook('p1');
    // A lease TTL well above the outage below: Redis is back while the holder's lease is current
    // by its own clock, so it takes the lease back and writes its book at once. Past the TTL it
    // would claim and wait a window instead (e2e/stale-holder.test.ts).
    const ttlMs = 10_000;
    const node = await fx.startNode('n1', { HEARTBEAT_TTL_MS: String(ttlMs) });
    await fx.assign('n1', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');

    await server.kill();
    const killedAt = Date.now();
    await node.waitForLine('Heartbeat failed', 5_000);
    await waitFor(() => attempts(node).filter((a) => a === 1).length >= 3, {
      timeoutMs: 10_000,
      description: 'three failed beats',
    });
    expect(node.exit).toBeUndefined();
    // Each beat tries 1..5, then the next beat starts over: bounded attempts, never a give-up.
    const seen = attempts(node);
    expect(Math.max(...seen)).toBe(5);
    expect(seen.slice(0, 10)).toEqual([1, 2, 3, 4, 5, 1, 2, 3, 4, 5]);
    expect(logEntries(node, 'Heartbeat failed')).toHaveLength(1);
    // Within a beat the delays grow (exponential with jitter: each at least the previous one's
    // lower bound), and the last attempt schedules none.
    const delays = logEntries(node, 'Heartbeat attempt failed')
      .slice(0, 5)
      .map((e) => e['nextDelayMs'] as number | undefined);
    expect(delays[4]).toBeUndefined();
    const [d1, d2, d3, d4] = delays as number[];
    expect([d1, d2, d3, d4].every((d) => typeof d === 'number')).toBe(true);
    expect(d2).toBeGreaterThanOrEqual(d1 ?? 0);
    expect(d3).toBeGreaterThan(d1 ?? 0);
    expect(d4).toBeGreaterThan(d2 ?? 0);
    expect(d4).toBeLessThanOrEqual(400);

    await server.restart({ keepData: false });
    const back = Date.now();
    // What the test needs, not what it proves: Redis back with a beat to spare before the lease
    // (renewed before the kill) would expire by the holder's clock. About 3 s here, loaded or not.
    expect(back - killedAt).toBeLessThan(ttlMs - 2 * Number(FAST.HEARTBEAT_INTERVAL_MS));
    await waitFor(
      async () =>
        (await fx.redis.exists(
          fx.keys.heartbeat('n1'),
          fx.keys.nodeInfo('n1'),
          fx.keys.portfolioState('p1'),
        )) === 3,
      { timeoutMs: 5_000, description: 'heartbeat, info and state rewritten' },
    );
    const rewrittenMs = Date.now() - back;
    // One interval (500 ms) plus the longest retry delay of a beat and the reconnect cap.
    expect(rewrittenMs).toBeLessThan(500 + 400 + 200 + 300);
    // Taken back under the token it was loaded with (refused loads on a young Redis used others).
    const loaded = logEntries(node, 'Portfolio loaded');
    expect(loaded).toHaveLength(1);
    expect(await fx.redis.get(fx.keys.portfolioLease('p1'))).toBe(loaded[0]?.['token']);
    await waitFor(async () => (await fx.redis.exists(fx.keys.portfolioBook('p1'))) === 1, {
      timeoutMs: ttlMs,
      description: 'the book rewritten by the next flush',
    });
    // Before the lease would have expired (a claim waits a fresh-start window from the restart,
    // TTL + 2 beats, so it would come after): no claim, no wait.
    expect(Date.now() - killedAt).toBeLessThan(ttlMs);
    expect(await fx.redis.exists(fx.keys.portfolioClaims('p1'))).toBe(0);
    expect(node.lines.some((line) => line.includes('waits in Redis as a claim'))).toBe(false);
    expect(logEntries(node, 'Heartbeat recovered')).toHaveLength(1);

    // The portfolio goes on consuming on the restarted Redis.
    const queues = producer();
    for (let i = 0; i < 5; i++) await queues.add('p1', tick(i));
    await waitFor(async () => (await fx.state('p1'))?.processed_count === 5, { timeoutMs: 5_000 });
    expect((await fx.info('n1'))?.redis).toMatchObject({ healthy: true, consecutive_failures: 0 });
    expect((await fx.info('n1'))?.redis.total_failures).toBeGreaterThanOrEqual(11);
  });

  it('survives a frozen Redis, reports it unhealthy meanwhile, and recovers after thaw', async () => {
    const node = await fx.startNode('n1');
    const port = await metricsPortOf(node);
    server.freeze();
    await node.waitForLine('Heartbeat failed', 10_000);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    const body = (await health.json()) as {
      redis: { healthy: boolean; consecutive_failures: number };
    };
    expect(body.redis.healthy).toBe(false);
    expect(body.redis.consecutive_failures).toBeGreaterThanOrEqual(5);
    expect(node.exit).toBeUndefined();

    server.thaw();
    await node.waitForLine('Heartbeat recovered', 10_000);
    await waitFor(async () => (await fx.info('n1'))?.redis.healthy === true, { timeoutMs: 3_000 });
    expect(node.exit).toBeUndefined();
  });
});

describe('portfolio handover between nodes', () => {
  it('moves a portfolio under load with every event processed exactly once', async () => {
    await fx.addToCatalog('p1');
    const a = await fx.startNode('a');
    const b = await fx.startNode('b');
    await fx.assign('a', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');

    const queues = producer();
    const total = 400;
    let added = 0;
    const feeding = (async () => {
      for (let i = 0; i < total; i++) {
        const result = await queues.add('p1', tick(i));
        if (!result.ok) throw new Error(`refused: ${result.reason}`);
        added += 1;
        if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await waitFor(() => added >= 100);
    await fx.assign('a', []);
    await fx.assign('b', ['p1']);
    await feeding;

    await waitFor(
      async () => {
        const s = await fx.state('p1');
        return s?.node_id === 'b' && s.processed_count === total && s.queue_depth === 0;
      },
      { timeoutMs: 10_000, description: 'every event processed on b' },
    );
    // Count in = count out, and not one more: give a duplicate the time to show up.
    await new Promise((r) => setTimeout(r, 300));
    expect((await fx.state('p1'))?.processed_count).toBe(total);
    expect((await fx.state('p1'))?.failed_count).toBe(0);
    const unloaded = logEntries(a, 'Portfolio unloaded')[0];
    expect(Number(unloaded?.['processed'])).toBeGreaterThan(0);
    expect(Number(unloaded?.['processed'])).toBeLessThan(total);
    expect(logEntries(b, 'Portfolio loaded')[0]).toMatchObject({
      portfolioId: 'p1',
      resumed: true,
    });
  });

  it("takes over a killed node's portfolio once its lease expires, with the queued events", async () => {
    await fx.addToCatalog('p1');
    const a = await fx.startNode('a');
    await fx.startNode('b');
    await fx.assign('a', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');
    const queues = producer();
    for (let i = 0; i < 10; i++) await queues.add('p1', tick(i));
    await waitFor(async () => (await fx.state('p1'))?.processed_count === 10);
    // The book (cash, positions, counts) is flushed every STATE_FLUSH_MS; a crash loses at most
    // that much of it. Kill a only once it is saved, so the count below is exact.
    await waitFor(async () => {
      const raw = await fx.redis.get(fx.keys.portfolioBook('p1'));
      return (
        raw !== null && (JSON.parse(raw) as { processed_count: number }).processed_count === 10
      );
    });

    await a.stop('SIGKILL');
    for (let i = 10; i < 60; i++) await queues.add('p1', tick(i));
    const killedAt = Date.now();
    await fx.assign('b', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.node_id === 'b', { timeoutMs: 5_000 });
    // b waited for a's lease (TTL 2 s) before running the portfolio.
    expect(Date.now() - killedAt).toBeLessThan(2_000 + 1_000);
    await waitFor(async () => (await fx.state('p1'))?.processed_count === 60, {
      timeoutMs: 5_000,
      description: 'the events queued while the portfolio had no node',
    });
  });
});
