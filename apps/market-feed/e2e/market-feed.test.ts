import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { createStateKeys, encodePayload } from '@ginkgo-live/state-keys';
import { appEntry, ManagedProcess, RedisServer, waitFor } from '@ginkgo-live/testing';

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
      appEntry('feed', 'market-feed', {
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

  it('counts what it offered each portfolio in /metrics: accepted up to the capacity, then refused', async () => {
    const server = await RedisServer.start();
    cleanups.push(() => server.cleanup());
    const redis = new Redis(server.port, server.host);
    cleanups.push(() => {
      redis.disconnect();
    });
    const keys = createStateKeys('feedm:');
    await redis.hset(
      keys.portfolioCatalog(),
      'p1',
      encodePayload('portfolioSpec', {
        _v: 1,
        portfolio_id: 'p1',
        symbols: ['BTC'],
        strategy: { name: 'ma-crossover', params: {} },
        starting_cash: 1_000,
      }),
    );
    const feed = ManagedProcess.start(
      appEntry('feed', 'market-feed', {
        ...server.env,
        REDIS_KEY_PREFIX: 'feedm:',
        FEED_RATE: '50',
        PORTFOLIO_QUEUE_CAPACITY: '10',
        METRICS_PORT: '0',
        LOG_FORMAT: 'json',
      }),
    );
    cleanups.push(() => feed.stop('SIGKILL'));
    const port = (
      JSON.parse(await feed.waitForLine('Metrics listening', 20_000)) as { port: number }
    ).port;
    const scrape = async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const value = (outcome: string) =>
        Number(
          new RegExp(
            `^ginkgo_feed_events_total\\{portfolio_id="p1",outcome="${outcome}"\\} (\\d+)$`,
            'm',
          ).exec(text)?.[1] ?? NaN,
        );
      return { text, accepted: value('accepted'), refused: value('refused') };
    };
    await waitFor(async () => (await scrape()).refused > 0, { timeoutMs: 10_000 });
    const { text, accepted } = await scrape();
    // Nothing consumes: every accepted event is still in the queue, and the queue is full.
    expect(accepted).toBe(10);
    expect(await new PortfolioQueues({ connection: redis, keys }).depthOf('p1')).toMatchObject({
      depth: 10,
    });
    expect(text).toContain('# TYPE ginkgo_feed_events_total counter');
    expect(text).toMatch(/^ginkgo_feed_portfolios 1$/m);
    expect(text).toMatch(/^ginkgo_feed_symbols 1$/m);
  });

  it('exits 2 naming a bad FEED_RATE', async () => {
    const feed = ManagedProcess.start(appEntry('feed', 'market-feed', { FEED_RATE: 'fast' }));
    cleanups.push(() => feed.stop('SIGKILL'));
    expect((await feed.waitForExit(20_000)).code).toBe(2);
    expect(feed.output).toContain('FEED_RATE: must be an integer, got "fast"');
  });
});
