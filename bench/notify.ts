import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import type { Notification } from '@ginkgo-live/state-keys';
import { RedisServer, StackFixture, tick, waitFor, WebhookReceiver } from '@ginkgo-live/testing';
import { percentile, timeEach, type Bench } from './lib.ts';

const CAPACITY = 20;

/**
 * 6. Queue full → notification at a local webhook: a real node (default queue sampling, 500 ms)
 * and the real notification worker; each trial fills a different portfolio's queue (a previous
 * owner holds its lease, so nothing drains it) and times until the webhook has its queue_full.
 */
export const notifyLatency: Bench = async ({ quick, log }) => {
  const trials = quick ? 4 : 20;
  const server = await RedisServer.start();
  const fx = new StackFixture(server, { bundled: true });
  const receiver = new WebhookReceiver<Notification>();
  const url = await receiver.start();
  try {
    const ids = Array.from({ length: trials }, (_, i) => `q${i}`);
    for (const id of ids) {
      await fx.addToCatalog(id);
      await fx.redis.set(fx.keys.portfolioLease(id), 'previous-owner', 'PX', 600_000);
    }
    await fx.startNotificationWorker({ NOTIFY_WEBHOOK_URL: url, LOG_LEVEL: 'info' });
    await fx.startNode('nq', {
      LOG_LEVEL: 'info',
      NODE_CAPACITY: String(trials),
      PORTFOLIO_QUEUE_CAPACITY: String(CAPACITY),
      QUEUE_SAMPLE_MS: '500',
    });
    await fx.assign('nq', ids);
    await waitFor(async () => (await fx.state(ids.at(-1) ?? '')) !== null, { timeoutMs: 20_000 });
    const queues = new PortfolioQueues({ connection: fx.redis, keys: fx.keys, capacity: CAPACITY });
    const latencies: number[] = [];
    for (const id of ids) {
      log(`notify: trial ${id}`);
      for (let i = 0; i < CAPACITY - 1; i++) await queues.add(id, tick(i));
      const filledAt = performance.now();
      await queues.add(id, tick(CAPACITY));
      await waitFor(
        () =>
          receiver.received.some(
            (r) => r.body.kind === 'queue_full' && r.body.subject.portfolio_id === id,
          ),
        { timeoutMs: 10_000, intervalMs: 5, description: `queue_full for ${id}` },
      );
      latencies.push(performance.now() - filledAt);
    }
    await queues.close();
    // Baseline: one POST to the same receiver from here.
    const direct = await timeEach(trials, () =>
      fetch(url, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }),
    );
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    return {
      id: 'notify',
      title: '6. Queue full → notification at a webhook',
      rows: [
        {
          metric: 'queue full → webhook p50',
          value: p50,
          unit: 'ms',
          baseline: { label: 'direct POST p50', value: percentile(direct, 50) },
          target: { text: '< 1 s', met: p50 < 1_000 },
        },
        {
          metric: 'queue full → webhook p99',
          value: p99,
          unit: 'ms',
          baseline: { label: 'direct POST p99', value: percentile(direct, 99) },
          target: { text: '< 1 s', met: p99 < 1_000 },
        },
      ],
      notes: [
        `${trials} trials, each on its own portfolio. The path: the node samples its queues every QUEUE_SAMPLE_MS (default 500 ms, so up to 500 ms of the figure is waiting for the sample), raises through the shared Lua dedupe into the notifications queue, the notification worker delivers.`,
      ],
    };
  } finally {
    await fx.close();
    await receiver.stop();
    await server.cleanup();
  }
};
