/** Composition root of the demo market feed. */
import { CONFIG_EXIT_CODE, createLogger, formatConfigIssues } from '@ginkgo-live/runtime';
import { RedisConnections } from '@ginkgo-live/redis-client';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { loadConfig } from './config.ts';
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
});

const report = setInterval(() => logger.info('Feed counters', { ...feed.counters }), 10_000);
let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) process.exit(130);
  stopping = true;
  logger.info('Shutting down', { signal, ...feed.counters });
  clearInterval(report);
  await feed.stop();
  await queues.close();
  await connections.close();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

await connections.waitUntilReady(config.redis.connectTimeoutMs);
await feed.start();
logger.info('Market feed running', { ratePerSecond: config.ratePerSecond });
