/** Composition root of the api-gateway: its services wired on the app bootstrap (runtime's runApp). */
import http from 'node:http';
import v8 from 'node:v8';
import { listen, runApp } from '@ginkgo-live/runtime';
import { describeRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { createAppNotifier } from '@ginkgo-live/notification-adapter';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { describeKeys, loadConfig } from './config.ts';
import { createFleetRegistry } from './fleet-metrics.ts';
import { ControlQueue } from './control-queue.ts';
import { FleetReader } from './fleet-reader.ts';
import { FleetView } from './fleet-view.ts';
import { LeaderWatch } from './leader-watch.ts';
import { OverviewFeed } from './overview-feed.ts';
import { createApp } from './http/app.ts';

const app = 'api-gateway';
// While a page is open the fleet view replaces each portfolio's view at every beat of its node:
// long-lived objects turning over steadily, which V8 answers by growing the heap up to four times
// what is live between collections (577–801 MB at 5,000 nodes for about 160 MB live, bench/read-path.ts).
// Growing it by a quarter at most collects more often and keeps the process near what it holds.
v8.setFlagsFromString('--heap-growing-percent=25');
await runApp({
  app,
  loadConfig,
  metricsPrefix: 'ginkgo_gateway_',
  // Keys by scope and name: never a secret, and never a `[redacted]` that hides an empty list.
  describeConfig: (config) => {
    const { apiKeys: _secrets, ...security } = config.security;
    return {
      ...config,
      security: { ...security, keys: describeKeys(config.security) },
      redis: describeRedisConfig(config.redis),
    };
  },
  // `/metrics` is served by the API itself (below), on GATEWAY_PORT.
  create: ({ config, logger, metrics }) => {
    const connections = new RedisConnections({
      config: config.redis,
      app,
      instanceId: String(process.pid),
      logger,
    });
    const keys = createStateKeys(config.redis.keyPrefix);
    // The fleet kept up to date from what changed, while a page, a stream or a scrape uses it: on a
    // connection of its own, so that API requests do not wait in line behind its replies (its
    // first read after a quiet spell is the whole fleet, tens of MB at 5,000 nodes).
    const view = new FleetView(connections.connection('overview', 'request'), keys);
    const reader = new FleetReader(connections.main, keys, view);
    const overview = new OverviewFeed({
      source: view,
      logger,
      intervalMs: config.overviewIntervalMs,
    });
    // A scheduler cannot report that no scheduler leads: the gateway, alive, reads the lock.
    const notifier = createAppNotifier({
      redis: connections.main,
      keys,
      app,
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
    const server = http.createServer(
      createApp({
        overview,
        reader,
        control: new ControlQueue(connections.main, keys),
        security: config.security,
        ping: () => connections.ping(),
        registry: createFleetRegistry(reader, metrics),
        logger,
        trading: { redis: connections.main, keys },
      }),
    );
    return {
      start: async () => {
        const port = await listen(
          server,
          {
            port: config.port,
            host: config.host,
            portSetting: 'GATEWAY_PORT',
            hostSetting: 'GATEWAY_HOST',
          },
          (err) => logger.error('HTTP server error; the gateway goes on', { err }),
        );
        leaderWatch.start();
        const url = `http://${config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
        logger.info('Gateway listening', { port, url, operationsPage: `${url}/` });
        if (config.security.apiKeys.length > 0) return;
        // Said at every start, in the log an operator reads: nothing else stops a request here.
        if (config.security.auth === 'off')
          logger.error(
            `GATEWAY_AUTH=off: no API keys and listening on ${config.host}: anyone who reaches port ${port} can read the fleet, drain nodes, move portfolios, change the catalog and halt trading`,
          );
        else
          logger.warn('no API keys: open to anyone on this machine; control included', {
            host: config.host,
            fix: 'set GATEWAY_API_KEYS (name:scope:secret,…) or GATEWAY_API_KEYS_FILE',
          });
      },
      stop: async () => {
        overview.stop();
        await leaderWatch.stop();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // Open operations pages hold their event streams: requests in flight get a second, then
        // every connection is ended, or close() would wait forever.
        setTimeout(() => server.closeAllConnections(), 1_000).unref();
        await closed;
        await notifier.close();
        await connections.close();
      },
    };
  },
});
