/** Composition root of the LiveCore scheduler: its services wired on the app bootstrap (runtime's runApp). */
import { runApp, StartupError } from '@ginkgo-live/runtime';
import { describeRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { createAppNotifier, type Notifier } from '@ginkgo-live/notification-adapter';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { readCatalogFile } from './catalog-file.ts';
import { loadConfig } from './config.ts';
import { DeferredNoticeSink } from './deferred-notices.ts';
import { Scheduler } from './scheduler.ts';
import { RedisSchedulerStore } from './scheduler-store.ts';

const processStartMs = Math.round(performance.timeOrigin);

await runApp({
  app: 'livecore-scheduler',
  loadConfig,
  metricsPrefix: 'ginkgo_scheduler_',
  instanceId: (config) => config.schedulerId,
  describeConfig: (config) => ({ ...config, redis: describeRedisConfig(config.redis) }),
  // METRICS_HOST / METRICS_PORT / METRICS_TOKEN, read by runApp (packages/runtime).
  metricsServer: { defaultPort: 9_465 },
  create: ({ config, logger, metrics }) => {
    const catalog =
      config.catalogFile === undefined ? undefined : readCatalogFile(config.catalogFile);
    if (catalog !== undefined && !catalog.ok)
      throw new StartupError(`invalid CATALOG_FILE\n${catalog.problems.join('\n')}`);
    const connections = new RedisConnections({
      config: config.redis,
      app: 'livecore-scheduler',
      instanceId: config.schedulerId,
      logger,
    });
    const keys = createStateKeys(config.redis.keyPrefix);
    // Built once the first tick is done (recovery does not wait for its BullMQ queue); what the
    // first tick tells is held until then.
    const notices = new DeferredNoticeSink();
    let notifier: Notifier | undefined;
    const scheduler = new Scheduler({
      store: new RedisSchedulerStore(connections.main, keys, config.schedulerId),
      notifier: notices.sink,
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
        catalogFile: catalog?.specs,
      },
      leaderTtlMs: config.leaderTtlMs,
      processStartMs,
    });

    const s = scheduler.status;
    const gauges: [string, string, () => number][] = [
      ['leader', '1 while this scheduler leads', () => (s.role === 'leader' ? 1 : 0)],
      ['plan_version', 'Version of the plan last read or written', () => s.planVersion],
      ['tick_duration_seconds', 'Duration of the last tick', () => s.lastTickMs / 1_000],
      [
        'redis_consecutive_failures',
        'Redis operations failed in a row (FR-037)',
        () => s.consecutiveFailures,
      ],
      [
        'recovery_seconds',
        'Process start to first tick done',
        () => (s.recovery?.firstTickMs ?? 0) / 1_000,
      ],
      ['portfolios_assigned', 'Portfolios placed on a node', () => s.assigned],
      ['portfolios_orphaned', 'Portfolios with no node, with a reason', () => s.orphaned],
      ['nodes_alive', 'Nodes alive', () => s.nodes.alive],
      ['nodes_lost', 'Nodes lost', () => s.nodes.lost],
    ];
    for (const [name, help, value] of gauges)
      metrics.gauge({ name: `ginkgo_scheduler_${name}`, help, value });
    // Counts since start are counters (rate() and increase() work on them, and a restart is a reset).
    metrics.counter({
      name: 'ginkgo_scheduler_ticks_total',
      help: 'Ticks run since start, whatever their outcome',
      value: () => s.ticks,
    });
    metrics.counter({
      name: 'ginkgo_scheduler_redis_failures_total',
      help: 'Redis operations failed since start (FR-037)',
      value: () => s.totalFailures,
    });

    return {
      health: () => ({
        healthy: true,
        body: {
          role: s.role,
          plan_version: s.planVersion,
          consecutive_failures: s.consecutiveFailures,
        },
      }),
      start: async () => {
        await connections.waitUntilReady(config.redis.connectTimeoutMs);
        await scheduler.start();
        notifier = createAppNotifier({
          redis: connections.main,
          keys,
          app: 'livecore-scheduler',
          instanceId: config.schedulerId,
          config: config.notify,
          logger,
        });
        notices.attach(notifier);
        logger.info('Scheduler running', { tickMs: config.tickMs });
      },
      stop: async () => {
        await scheduler.stop();
        await notifier?.close();
        await connections.close();
      },
    };
  },
});
