/**
 * Composition root of the notification delivery worker: consumes the durable `notifications` queue
 * and delivers to every configured sink. Its own process (and container), so a slow webhook never
 * shares an event loop with trading or scheduling; run several for more throughput.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';
import {
  CONFIG_EXIT_CODE,
  combineConfig,
  createLogger,
  envInt,
  envString,
  MetricsServer,
  parseEnv,
  formatConfigIssues,
  handleShutdownSignals,
  loadLoggingConfig,
} from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import {
  createWebhookSinks,
  loadNotificationConfig,
  LogSink,
  NotificationDeliveryWorker,
} from '@ginkgo-live/notification-adapter';
import { createStateKeys } from '@ginkgo-live/state-keys';

const serverSchema = z.object({
  /** `METRICS_PORT`: `/health` and `/metrics`, default 9466 (0 picks a free port). */
  METRICS_PORT: envInt({ default: 9_466, min: 0, max: 65_535 }),
  METRICS_HOST: envString(),
});
const loaded = combineConfig({
  server: parseEnv(serverSchema, process.env),
  redis: loadRedisConfig(process.env),
  logging: loadLoggingConfig(process.env),
  notify: loadNotificationConfig(process.env),
});
if (!loaded.ok) {
  process.stderr.write(
    `notification-worker: invalid configuration\n${formatConfigIssues(loaded.issues)}\n`,
  );
  process.exit(CONFIG_EXIT_CODE);
}
const { server, redis, logging, notify } = loaded.value;
const logger = createLogger({
  app: 'notification-worker',
  level: logging.level,
  format: logging.format,
});
const sinks = [
  ...createWebhookSinks(notify),
  ...(notify.logSink ? [new LogSink(logger.child({ component: 'log-sink' }))] : []),
];
logger.info('Configuration', {
  sinks: sinks.map((s) => s.name),
  attempts: notify.deliveryAttempts,
});

const connections = new RedisConnections({
  config: redis,
  app: 'notification-worker',
  instanceId: String(process.pid),
  logger,
});
const worker = new NotificationDeliveryWorker({
  connection: connections.connection('deliveries', 'blocking'),
  redis: connections.main,
  keys: createStateKeys(redis.keyPrefix),
  sinks,
  backoffMs: notify.deliveryBackoffMs,
  historySize: notify.historySize,
  logger,
});

const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'ginkgo_notification_worker_' });
const metrics = new MetricsServer({
  host: server.METRICS_HOST ?? '0.0.0.0',
  port: server.METRICS_PORT,
  registry,
  health: () => {
    const redisState = connections.statuses().map((s) => s.state);
    return { healthy: true, body: { status: 'running', redis: redisState } };
  },
});

handleShutdownSignals({
  logger,
  stop: async () => {
    await worker.stop();
    await metrics.stop();
    await connections.close();
    return 0;
  },
});

const port = await metrics.start();
worker.start();
logger.info('Notification worker running', { sinks: sinks.length, healthPort: port });
