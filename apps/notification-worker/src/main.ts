/**
 * Composition root of the notification delivery worker: consumes the durable `notifications` queue
 * and delivers to every configured sink. Its own process (and container), so a slow webhook never
 * shares an event loop with trading or scheduling; run several for more throughput.
 */
import { runApp } from '@ginkgo-live/runtime';
import { describeRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import {
  createSinks,
  LogSink,
  NotificationDeliveryWorker,
  Silences,
} from '@ginkgo-live/notification-adapter';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { loadConfig } from './config.ts';

await runApp({
  app: 'notification-worker',
  loadConfig,
  metricsPrefix: 'ginkgo_notification_worker_',
  describeConfig: (config) => ({ ...config, redis: describeRedisConfig(config.redis) }),
  // METRICS_HOST / METRICS_PORT / METRICS_TOKEN, read by runApp (packages/runtime).
  metricsServer: { defaultPort: 9_466 },
  create: ({ config, logger, metrics }) => {
    const { redis, notify } = config;
    const sinks = [
      ...createSinks(notify),
      ...(notify.logSink ? [new LogSink(logger.child({ component: 'log-sink' }))] : []),
    ];
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
      routing: notify.routing,
      silences: new Silences(connections.main, createStateKeys(redis.keyPrefix)),
      backoffMs: notify.deliveryBackoffMs,
      historySize: notify.historySize,
      logger,
    });
    metrics.counter({
      name: 'ginkgo_notification_sink_deliveries_total',
      help: 'Deliveries to a sink, by outcome: delivered, or failed (each failed attempt counts; a retry may deliver it later)',
      labelNames: ['sink', 'outcome'],
      samples: () =>
        [...worker.stats.sinks].flatMap(([sink, c]) => [
          { labels: { sink, outcome: 'delivered' }, value: c.delivered },
          { labels: { sink, outcome: 'failed' }, value: c.failed },
        ]),
    });
    metrics.counter({
      name: 'ginkgo_notifications_total',
      help: 'Notifications the worker finished, by how: delivered, partial (some sinks failed for good), failed (every sink), silenced',
      labelNames: ['outcome'],
      samples: () =>
        ['delivered', 'partial', 'failed', 'silenced'].map((outcome) => ({
          labels: { outcome },
          value: worker.stats.outcomes.get(outcome) ?? 0,
        })),
    });
    return {
      health: () => ({
        healthy: true,
        body: { status: 'running', redis: connections.statuses().map((s) => s.state) },
      }),
      start: () => {
        worker.start();
        logger.info('Notification worker running', {
          sinks: sinks.map((s) => s.name),
          routes:
            notify.routing === undefined
              ? 'none: every notification to every sink'
              : `${notify.routing.routes.length} from ${notify.routing.file}, default: ${notify.routing.defaultSinks.join(', ') || 'none'}`,
          attempts: notify.deliveryAttempts,
        });
        return Promise.resolve();
      },
      stop: async () => {
        await worker.stop();
        await connections.close();
      },
    };
  },
});
