/** Composition root of the execution node: config → logger → Redis → services → start → shutdown. */
import {
  CONFIG_EXIT_CODE,
  createLogger,
  formatConfigIssues,
  handleShutdownSignals,
  MetricsServer,
  redactSecrets,
} from '@ginkgo-live/runtime';
import { describeRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { createAppNotifier } from '@ginkgo-live/notification-adapter';
import { createStateKeys } from '@ginkgo-live/state-keys';
import pkg from '../package.json' with { type: 'json' };
import { loadConfig } from './config.ts';
import { ExecutionNode } from './execution-node.ts';
import { createNodeRegistry } from './metrics.ts';

const loaded = loadConfig(process.env);
if (!loaded.ok) {
  process.stderr.write(
    `execution-node: invalid configuration\n${formatConfigIssues(loaded.issues)}\n`,
  );
  process.exit(CONFIG_EXIT_CODE);
}
const config = loaded.value;
const logger = createLogger({
  app: 'execution-node',
  nodeId: config.nodeId,
  level: config.logging.level,
  format: config.logging.format,
});
logger.info('Configuration', {
  config: redactSecrets({ ...config, redis: describeRedisConfig(config.redis) }),
});

const connections = new RedisConnections({
  config: config.redis,
  app: 'execution-node',
  instanceId: config.nodeId,
  logger,
});
const keys = createStateKeys(config.redis.keyPrefix);
const notifier = createAppNotifier({
  redis: connections.main,
  keys,
  app: 'execution-node',
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
const metrics = new MetricsServer({
  host: config.metricsHost,
  port: config.metricsPort,
  registry: createNodeRegistry(() => node.collectMetrics()),
  health: () => {
    const m = node.collectMetrics();
    return {
      healthy: m.status === 'running' || m.status === 'starting',
      body: { status: m.status, node_id: m.node_id, redis: m.redis, portfolios: m.portfolio_count },
    };
  },
});

handleShutdownSignals({
  logger,
  // The drain gives up at STOP_TIMEOUT_MS; this is the backstop if anything after it hangs.
  hardExitAfterMs: config.stopTimeoutMs + 1_000,
  stop: async () => {
    const clean = await node.stop();
    await notifier.close();
    await metrics.stop();
    await connections.close();
    return clean ? 0 : 1;
  },
});

const port = await metrics.start();
logger.info('Metrics listening', { port, path: '/metrics' });
const started = await node.start();
if (!started.ok) {
  logger.error('Refusing to start', { reason: started.reason });
  process.stderr.write(`execution-node: ${started.reason}\n`);
  await metrics.stop();
  await connections.close();
  process.exit(1);
}
