/** Composition root of the demo market feed. */
import {
  CONFIG_EXIT_CODE,
  createLogger,
  formatConfigIssues,
  handleShutdownSignals,
} from '@ginkgo-live/runtime';
import { RedisConnections } from '@ginkgo-live/redis-client';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { loadConfig } from './config.ts';
import { createFeedAlarm } from './feed-alarm.ts';
import { MarketFeed } from './market-feed.ts';

const loaded = loadConfig(process.env);
if (!loaded.ok) {
  process.stderr.write(
    `market-feed: invalid configuration\n${formatConfigIssues(loaded.issues)}\n`,
  );
  process.exit(CONFIG_EXIT_CODE);
}
const config = loaded.value;
const logger = createLogger({
  app: 'market-feed',
  level: config.logging.level,
  format: config.logging.format,
});
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

const report = setInterval(() => logger.info('Feed counters', { ...feed.counters }), 10_000);
handleShutdownSignals({
  logger,
  stop: async () => {
    clearInterval(report);
    logger.info('Feed counters', { ...feed.counters });
    await feed.stop();
    await queues.close();
    await connections.close();
    return 0;
  },
});

await connections.waitUntilReady(config.redis.connectTimeoutMs);
await feed.start();
logger.info('Market feed running', { ratePerSecond: config.ratePerSecond });
