/** Composition root of the execution node: its services wired on the app bootstrap (runtime's runApp). */
import { runApp, StartupError } from '@ginkgo-live/runtime';
import { describeRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { createAppNotifier } from '@ginkgo-live/notification-adapter';
import { createStateKeys } from '@ginkgo-live/state-keys';
import pkg from '../package.json' with { type: 'json' };
import { loadConfig } from './config.ts';
import { ExecutionNode } from './execution-node.ts';
import { registerNodeMetrics } from './metrics.ts';

const app = 'execution-node';
await runApp({
  app,
  loadConfig,
  metricsPrefix: 'ginkgo_node_',
  instanceId: (config) => config.nodeId,
  describeConfig: (config) => ({ ...config, redis: describeRedisConfig(config.redis) }),
  // METRICS_HOST / METRICS_PORT / METRICS_TOKEN, read by runApp (packages/runtime).
  metricsServer: { defaultPort: 9_464 },
  // The drain gives up at STOP_TIMEOUT_MS; this is the backstop if anything after it hangs.
  hardExitAfterMs: (config) => config.stopTimeoutMs + 1_000,
  create: ({ config, logger, metrics }) => {
    const connections = new RedisConnections({
      config: config.redis,
      app,
      instanceId: config.nodeId,
      logger,
    });
    const keys = createStateKeys(config.redis.keyPrefix);
    const notifier = createAppNotifier({
      redis: connections.main,
      keys,
      app,
      instanceId: config.nodeId,
      config: config.notify,
      logger,
    });
    const node = new ExecutionNode({
      config,
      connections,
      keys,
      logger,
      version: pkg.version,
      notifier,
    });
    registerNodeMetrics(metrics, () => node.collectMetrics());
    return {
      health: () => {
        const m = node.collectMetrics();
        return {
          healthy: m.status === 'running' || m.status === 'starting',
          body: {
            status: m.status,
            node_id: m.node_id,
            redis: m.redis,
            portfolios: m.portfolio_count,
          },
        };
      },
      start: async () => {
        const started = await node.start();
        if (!started.ok) {
          logger.error('Refusing to start', { reason: started.reason });
          throw new StartupError(started.reason, 1);
        }
      },
      stop: async () => {
        const clean = await node.stop();
        await notifier.close();
        await connections.close();
        return clean;
      },
    };
  },
});
