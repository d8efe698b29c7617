import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { loadNotificationConfig } from '@ginkgo-live/notification-adapter';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { MemoryTransport, RedisServer, waitFor } from '@ginkgo-live/testing';
import { createFeedAlarm } from './feed-alarm.ts';
import { MarketFeed } from './market-feed.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('MarketFeed on a real Redis', () => {
  it('publishes to the catalogued portfolio, logs a Redis outage once and its recovery with the count', async () => {
    const server = await RedisServer.start({ persistence: true });
    cleanups.push(() => server.cleanup());
    const logs = new MemoryTransport();
    const logger = createLogger({ app: 'feed-test', level: 'debug', transports: [logs] });
    const connections = new RedisConnections({
      config: unwrapConfig(
        loadRedisConfig({
          ...server.env,
          REDIS_COMMAND_TIMEOUT_MS: '300',
          REDIS_RECONNECT_MAX_DELAY_MS: '100',
        }),
      ),
      app: 'market-feed',
      instanceId: 'test',
      logger,
    });
    cleanups.push(() => connections.close());
    await connections.waitUntilReady(5_000);
    const keys = createStateKeys('');
    await connections.main.hset(
      keys.portfolioCatalog(),
      'p1',
      JSON.stringify({
        _v: 1,
        portfolio_id: 'p1',
        symbols: ['BTCUSDT'],
        strategy: { name: 'ma-crossover', params: {} },
        starting_cash: 1_000,
      }),
    );
    const queues = new PortfolioQueues({ connection: connections.main, keys, capacity: 10_000 });
    cleanups.push(() => queues.close());
    const feed = new MarketFeed({
      redis: connections.main,
      keys,
      queues,
      ratePerSecond: 20,
      volatilityBp: 10,
      catalogRefreshMs: 200,
      logger,
      alarm: createFeedAlarm({
        redis: connections.main,
        keys,
        logger,
        notify: unwrapConfig(loadNotificationConfig({})),
      }),
      reportMs: 60_000,
    });
    feed.start();
    cleanups.push(() => feed.stop());

    await waitFor(() => feed.counters.accepted >= 5, { description: 'ticks accepted' });

    await server.kill();
    // One portfolio on one symbol: one offer a round, so failed offers count failed rounds.
    await waitFor(
      () => feed.counters.failed >= 5 && logs.withMessage('Catalog refresh failed').length > 0,
      { timeoutMs: 10_000, description: 'five failed rounds and a failed catalog read' },
    );
    expect(logs.withMessage('Publish round failed')).toHaveLength(1);
    expect(logs.withMessage('Catalog refresh failed')).toHaveLength(1);

    await server.restart({ keepData: true });
    await waitFor(() => logs.withMessage('Publish round recovered').length === 1, {
      timeoutMs: 10_000,
      description: 'the feed publishing again',
    });
    const [recovered] = logs.withMessage('Publish round recovered');
    expect(recovered?.['failedRuns']).toBe(feed.counters.failed);
    const before = feed.counters.accepted;
    await waitFor(() => feed.counters.accepted >= before + 3, {
      description: 'ticks accepted again',
    });
    expect(logs.withMessage('Publish round failed')).toHaveLength(1);
  });
});
