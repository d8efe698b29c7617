/** Composition root of the demo market feed: its services wired on the app bootstrap (runtime's runApp). */
import { runApp } from '@ginkgo-live/runtime';
import { describeRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { loadConfig } from './config.ts';
import { createFeedAlarm } from './feed-alarm.ts';
import { MarketFeed } from './market-feed.ts';

await runApp({
  app: 'market-feed',
  loadConfig,
  metricsPrefix: 'ginkgo_feed_',
  describeConfig: (config) => ({ ...config, redis: describeRedisConfig(config.redis) }),
  // METRICS_HOST / METRICS_PORT / METRICS_TOKEN, read by runApp (packages/runtime).
  metricsServer: { defaultPort: 9_467 },
  create: ({ config, logger, metrics }) => {
    const connections = new RedisConnections({
      config: config.redis,
      app: 'market-feed',
      instanceId: String(process.pid),
      logger,
    });
    const keys = createStateKeys(config.redis.keyPrefix);
    const queues = new PortfolioQueues({
      connection: connections.main,
      keys,
      capacity: config.queueCapacity,
    });
    const feed = new MarketFeed({
      redis: connections.main,
      keys,
      queues,
      ratePerSecond: config.ratePerSecond,
      volatilityBp: config.volatilityBp,
      catalogRefreshMs: config.catalogRefreshMs,
      logger,
      alarm: createFeedAlarm({ redis: connections.main, keys, logger, notify: config.notify }),
    });
    metrics.counter({
      name: 'ginkgo_feed_events_total',
      help: 'Events the feed offered a portfolio queue, by outcome: accepted, refused (the queue was full) or failed (Redis did not answer)',
      labelNames: ['portfolio_id', 'outcome'],
      samples: () =>
        [...feed.byPortfolio].flatMap(([portfolio_id, c]) =>
          (['accepted', 'refused', 'failed'] as const).map((outcome) => ({
            labels: { portfolio_id, outcome },
            value: c[outcome],
          })),
        ),
    });
    metrics.gauge({
      name: 'ginkgo_feed_portfolios',
      help: 'Portfolios the feed publishes to (from the catalog it last read)',
      value: () => feed.fed.portfolios,
    });
    metrics.gauge({
      name: 'ginkgo_feed_symbols',
      help: 'Symbols the feed publishes',
      value: () => feed.fed.symbols,
    });
    return {
      health: () => ({ healthy: true, body: { status: 'running', ...feed.counters } }),
      start: async () => {
        await connections.waitUntilReady(config.redis.connectTimeoutMs);
        feed.start();
        logger.info('Market feed running', { ratePerSecond: config.ratePerSecond });
      },
      stop: async () => {
        await feed.stop();
        await queues.close();
        await connections.close();
      },
    };
  },
});
