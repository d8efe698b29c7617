import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { createStateKeys, encodePayload } from '@ginkgo-live/state-keys';
import { ManagedProcess, RedisServer, tsEntry, waitFor } from '@ginkgo-live/testing';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('market feed process', () => {
  it('publishes ticks for the symbols each catalogued portfolio follows, at the configured rate', async () => {
    const server = await RedisServer.start();
    cleanups.push(() => server.cleanup());
    const keys = createStateKeys('feed:');
    const redis = new Redis(server.port, server.host);
    cleanups.push(() => {
      redis.disconnect();
    });
    const spec = (id: string, symbols: string[]) =>
      encodePayload('portfolioSpec', {
        _v: 1,
        portfolio_id: id,
        symbols,
        strategy: { name: 'ma-crossover', params: {} },
        starting_cash: 1_000,
      });
    await redis.hset(
      keys.portfolioCatalog(),
      'p1',
      spec('p1', ['BTC']),
      'p2',
      spec('p2', ['BTC', 'ETH']),
    );

    const feed = ManagedProcess.start(
      tsEntry('feed', 'apps/market-feed/src/main.ts', {
        ...server.env,
        REDIS_KEY_PREFIX: 'feed:',
        FEED_RATE: '20',
        LOG_FORMAT: 'json',
      }),
    );
    cleanups.push(() => feed.stop('SIGKILL'));
    await feed.waitForLine('Market feed running', 20_000);
    const started = Date.now();
    const queues = new PortfolioQueues({ connection: redis, keys });
    cleanups.push(() => queues.close());
    await waitFor(async () => (await queues.depthOf('p1')).depth >= 20, { timeoutMs: 5_000 });
    const seconds = (Date.now() - started) / 1_000;
    const depths = await queues.readDepths(['p1', 'p2']);
    const p1 = depths.get('p1')?.depth ?? 0;
    const p2 = depths.get('p2')?.depth ?? 0;
    // p2 follows two symbols: two ticks per round, p1 one.
    expect(p2).toBeGreaterThanOrEqual(2 * p1 - 4);
    expect(p1 / seconds).toBeLessThan(20 * 1.5 + 5);
    const exit = await feed.stop('SIGTERM');
    expect(exit.code).toBe(0);
  });

  it('exits 2 naming a bad FEED_RATE', async () => {
    const feed = ManagedProcess.start(
      tsEntry('feed', 'apps/market-feed/src/main.ts', { FEED_RATE: 'fast' }),
    );
    cleanups.push(() => feed.stop('SIGKILL'));
    expect((await feed.waitForExit(20_000)).code).toBe(2);
    expect(feed.output).toContain('FEED_RATE: must be an integer, got "fast"');
  });
});
