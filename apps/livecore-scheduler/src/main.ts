/** Composition root of the LiveCore scheduler: config → logger → Redis → services → start → shutdown. */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
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
import { readCatalogFile } from './catalog-file.ts';
import { loadConfig } from './config.ts';
import { Scheduler } from './scheduler.ts';
import { RedisSchedulerStore } from './scheduler-store.ts';

const processStartMs = Math.round(performance.timeOrigin);
const loaded = loadConfig(process.env);
if (!loaded.ok) {
  process.stderr.write(
    `livecore-scheduler: invalid configuration\n${formatConfigIssues(loaded.issues)}\n`,
  );
  process.exit(CONFIG_EXIT_CODE);
}
const config = loaded.value;
const catalog = config.catalogFile === undefined ? undefined : readCatalogFile(config.catalogFile);
if (catalog !== undefined && !catalog.ok) {
  process.stderr.write(
    `livecore-scheduler: invalid CATALOG_FILE\n${catalog.problems.join('\n')}\n`,
  );
  process.exit(CONFIG_EXIT_CODE);
}
const logger = createLogger({
  app: 'livecore-scheduler',
  nodeId: config.schedulerId,
  level: config.logging.level,
  format: config.logging.format,
});
logger.info('Configuration', {
  config: redactSecrets({ ...config, redis: describeRedisConfig(config.redis) }),
});

const connections = new RedisConnections({
  config: config.redis,
  app: 'livecore-scheduler',
  instanceId: config.schedulerId,
  logger,
});
const keys = createStateKeys(config.redis.keyPrefix);
const notifier = createAppNotifier({
  redis: connections.main,
  keys,
  app: 'livecore-scheduler',
  instanceId: config.schedulerId,
  config: config.notify,
  logger,
});
const scheduler = new Scheduler({
  store: new RedisSchedulerStore(connections.main, keys, config.schedulerId),
  notifier,
  logger,
  settings: {
    schedulerId: config.schedulerId,
    tickMs: config.tickMs,
    defaultCapacity: config.defaultCapacity,
    outageGraceMs: config.outageGraceMs,
    orphanNotifyAfterMs: config.orphanNotifyAfterMs,
    settleMs: config.settleMs,
    nodeRetentionMs: config.nodeRetentionMs,
    rebalancePerMinute: config.rebalancePerMinute,
    catalogFile: catalog?.ok === true ? catalog.specs : undefined,
  },
  leaderTtlMs: config.leaderTtlMs,
  processStartMs,
});

const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'ginkgo_scheduler_' });
const gauge = (name: string, help: string, read: () => number): void => {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
};
const s = scheduler.status;
gauge('ginkgo_scheduler_leader', '1 while this scheduler leads', () =>
  s.role === 'leader' ? 1 : 0,
);
gauge(
  'ginkgo_scheduler_plan_version',
  'Version of the plan last read or written',
  () => s.planVersion,
);
gauge(
  'ginkgo_scheduler_tick_duration_seconds',
  'Duration of the last tick',
  () => s.lastTickMs / 1_000,
);
gauge('ginkgo_scheduler_ticks', 'Ticks run since start, whatever their outcome', () => s.ticks);
gauge(
  'ginkgo_scheduler_redis_consecutive_failures',
  'Redis operations failed in a row (FR-037)',
  () => s.consecutiveFailures,
);
gauge(
  'ginkgo_scheduler_redis_failures',
  'Redis operations failed since start (FR-037)',
  () => s.totalFailures,
);
gauge(
  'ginkgo_scheduler_recovery_seconds',
  'Process start to first tick done',
  () => (s.recovery?.firstTickMs ?? 0) / 1_000,
);
gauge('ginkgo_scheduler_portfolios_assigned', 'Portfolios placed on a node', () => s.assigned);
gauge(
  'ginkgo_scheduler_portfolios_orphaned',
  'Portfolios with no node, with a reason',
  () => s.orphaned,
);
gauge('ginkgo_scheduler_nodes_alive', 'Nodes alive', () => s.nodes.alive);
gauge('ginkgo_scheduler_nodes_lost', 'Nodes lost', () => s.nodes.lost);
const metrics = new MetricsServer({
  host: config.metricsHost,
  port: config.metricsPort,
  registry,
  health: () => ({
    healthy: true,
    body: {
      role: s.role,
      plan_version: s.planVersion,
      consecutive_failures: s.consecutiveFailures,
    },
  }),
});

handleShutdownSignals({
  logger,
  stop: async () => {
    await scheduler.stop();
    await notifier.close();
    await metrics.stop();
    await connections.close();
    return 0;
  },
});

const port = await metrics.start();
logger.info('Metrics listening', { port, path: '/metrics' });
await connections.waitUntilReady(config.redis.connectTimeoutMs);
await scheduler.start();
logger.info('Scheduler running', { tickMs: config.tickMs });
