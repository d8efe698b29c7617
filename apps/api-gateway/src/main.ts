/** Composition root of the api-gateway: config → logger → Redis → app → listen → shutdown. */
import type { AddressInfo } from 'node:net';
import {
  CONFIG_EXIT_CODE,
  createLogger,
  formatConfigIssues,
  handleShutdownSignals,
  redactSecrets,
} from '@ginkgo-live/runtime';
import { describeRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { createAppNotifier } from '@ginkgo-live/notification-adapter';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { loadConfig } from './config.ts';
import { createFleetRegistry } from './fleet-metrics.ts';
import { ControlQueue } from './control-queue.ts';
import { FleetReader } from './fleet-reader.ts';
import { LeaderWatch } from './leader-watch.ts';
import { OverviewFeed } from './overview-feed.ts';
import { createApp } from './http/app.ts';

const loaded = loadConfig(process.env);
if (!loaded.ok) {
  process.stderr.write(
    `api-gateway: invalid configuration\n${formatConfigIssues(loaded.issues)}\n`,
  );
  process.exit(CONFIG_EXIT_CODE);
}
const config = loaded.value;
const logger = createLogger({
  app: 'api-gateway',
  level: config.logging.level,
  format: config.logging.format,
});
logger.info('Configuration', {
  config: redactSecrets({ ...config, redis: describeRedisConfig(config.redis) }),
});
const connections = new RedisConnections({
  config: config.redis,
  app: 'api-gateway',
  instanceId: String(process.pid),
  logger,
});
const keys = createStateKeys(config.redis.keyPrefix);
const reader = new FleetReader(connections.main, keys);
// Samples for the page's charts from the start, so the last 10 minutes are there when it opens.
// It reads the whole fleet (tens of MB of replies at 5,000 nodes): on a connection of its own, so
// that API requests do not wait in line behind its replies and time out there.
const overview = new OverviewFeed({
  reader: new FleetReader(connections.connection('overview', 'request'), keys),
  logger,
  intervalMs: config.overviewIntervalMs,
});
overview.start();
// A scheduler cannot report that no scheduler leads: the gateway, alive, reads the lock.
const notifier = createAppNotifier({
  redis: connections.main,
  keys,
  app: 'api-gateway',
  instanceId: String(process.pid),
  config: config.notify,
  logger,
});
const leaderWatch = new LeaderWatch({
  readLeader: () => connections.main.get(keys.schedulerLeader()),
  notifier,
  logger: logger.child({ component: 'leader-watch' }),
  missingAfterMs: config.leaderMissingAfterMs,
});
leaderWatch.start();
const app = createApp({
  overview,
  reader,
  control: new ControlQueue(connections.main, keys),
  security: config.security,
  ping: () => connections.ping(),
  registry: createFleetRegistry(reader),
  logger,
});
const server = app.listen(config.port, config.host, () => {
  const { port } = server.address() as AddressInfo;
  logger.info('Gateway listening', {
    port,
    url: `http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${port}`,
    operationsPage: `http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${port}/`,
  });
});
server.on('error', (err) => {
  logger.error('Gateway cannot listen', { err });
  process.exit(1);
});
handleShutdownSignals({
  logger,
  stop: async () => {
    overview.stop();
    leaderWatch.stop();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    // Open operations pages hold their event streams: requests in flight get a second, then every
    // connection is ended, or close() would wait forever.
    setTimeout(() => server.closeAllConnections(), 1_000).unref();
    await closed;
    await notifier.close();
    await connections.close();
    return 0;
  },
});
