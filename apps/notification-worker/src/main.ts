/**
 * Composition root of the notification delivery worker: consumes the durable `notifications` queue
 * and delivers to every configured sink. Its own process (and container), so a slow webhook never
 * shares an event loop with trading or scheduling; run several for more throughput.
 */
import {
  CONFIG_EXIT_CODE,
  combineConfig,
  createLogger,
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

const loaded = combineConfig({
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
const { redis, logging, notify } = loaded.value;
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

handleShutdownSignals({
  logger,
  stop: async () => {
    await worker.stop();
    await connections.close();
    return 0;
  },
});

worker.start();
logger.info('Notification worker running', { sinks: sinks.length });
