import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import type { Notification } from '@ginkgo-live/state-keys';
import {
  appEntry,
  logEntries,
  metricsPortOf,
  ManagedProcess,
  StackFixture,
  tick,
  waitFor,
  WebhookReceiver,
} from '@ginkgo-live/testing';

let fx: StackFixture;
let receiver: WebhookReceiver<Notification>;
let url: string;

const CAPACITY = 20;
const NOTIFY = {
  PORTFOLIO_QUEUE_CAPACITY: String(CAPACITY),
  QUEUE_SAMPLE_MS: '100',
  NOTIFY_DELIVERY_TIMEOUT_MS: '3000',
};

beforeEach(async () => {
  fx = await StackFixture.start();
  receiver = new WebhookReceiver<Notification>();
  url = await receiver.start();
  fx.onClose(() => receiver.stop());
});
afterEach(() => fx.close());

function startDeliveryWorker(): ManagedProcess {
  const worker = ManagedProcess.start(
    appEntry('notification-worker', 'notification-worker', {
      ...fx.server.env,
      REDIS_KEY_PREFIX: fx.keys.prefix,
      NOTIFY_WEBHOOK_URL: url,
      NOTIFY_DELIVERY_TIMEOUT_MS: NOTIFY.NOTIFY_DELIVERY_TIMEOUT_MS,
      METRICS_PORT: '0',
      LOG_FORMAT: 'json',
    }),
  );
  fx.onClose(() => worker.stop('SIGKILL'));
  return worker;
}

/** A previous owner still holds the portfolio: assigned nodes wait (and watch its queue). */
/** A previous owner holds the portfolio: its lease, and the book it wrote. */
async function holdLease(portfolioId: string): Promise<void> {
  await fx.seedBook(portfolioId);
  await fx.redis.set(fx.keys.portfolioLease(portfolioId), 'previous-owner', 'PX', 60_000);
}

async function fill(queues: PortfolioQueues, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) await queues.add('p1', tick(i));
}

const ofKind = (kind: string, status = 'firing') =>
  receiver.received.filter((r) => r.body.kind === kind && r.body.status === status);

describe('queue notifications from a node, delivered to a real webhook', () => {
  it('sends one queue_full within 1 s, none while it stays full, one resolved once drained', async () => {
    await startDeliveryWorker().waitForLine('Notification worker running', 20_000);
    await fx.addToCatalog('p1');
    await holdLease('p1');
    const node = await fx.startNode('n1', { ...NOTIFY, NOTIFY_WEBHOOK_URL: url });
    const metricsPort = await metricsPortOf(node);
    await fx.assign('n1', ['p1']);
    const queues = new PortfolioQueues({ connection: fx.redis, keys: fx.keys, capacity: CAPACITY });
    fx.track(queues);

    await fill(queues, 0, CAPACITY);
    const fullAt = Date.now();
    await waitFor(() => ofKind('queue_full').length === 1, {
      timeoutMs: 2_000,
      description: 'queue_full',
    });
    expect(Date.now() - fullAt).toBeLessThan(1_000);
    expect(ofKind('queue_full')[0]?.body).toMatchObject({
      level: 'critical',
      subject: { portfolio_id: 'p1' },
      details: { node_id: 'n1', portfolio_id: 'p1', depth: CAPACITY, capacity: CAPACITY, usage: 1 },
    });

    // Producers keep pushing into the full queue: refused, and no second notice.
    await fill(queues, CAPACITY, 10);
    // The node has seen the refusals (so it sampled the still-full queue since), and everything
    // raised so far has been delivered: still one queue_full.
    // (Read from the node's own metrics: a node waiting for the lease writes no portfolio state,
    // which belongs to the holder.)
    await waitFor(
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        return /ginkgo_portfolio_events_refused_total\{[^}]*portfolio_id="p1"[^}]*\} 10\b/.test(
          text,
        );
      },
      { timeoutMs: 3_000 },
    );
    await waitFor(
      async () => (await fx.redis.llen(fx.keys.notificationHistory())) === receiver.received.length,
    );
    expect(ofKind('queue_full')).toHaveLength(1);

    await fx.redis.del(fx.keys.portfolioLease('p1')); // the previous owner lets go
    await waitFor(() => receiver.received.some((r) => r.body.status === 'resolved'), {
      timeoutMs: 5_000,
    });
    expect(receiver.received.filter((r) => r.body.status === 'resolved')).toHaveLength(1);
    expect(receiver.received.find((r) => r.body.status === 'resolved')?.body).toMatchObject({
      kind: 'queue_full',
      subject: { portfolio_id: 'p1' },
    });
    // The resolved notice goes out once the queue is below 60 %: the rest drains after it.
    await waitFor(async () => (await fx.state('p1'))?.processed_count === CAPACITY, {
      timeoutMs: 5_000,
      description: 'every queued event processed',
    });
  });

  it('sends one notification when two nodes watch the same full queue', async () => {
    await startDeliveryWorker().waitForLine('Notification worker running', 20_000);
    await fx.addToCatalog('p1');
    await holdLease('p1');
    await Promise.all([
      fx.startNode('a', { ...NOTIFY, NOTIFY_WEBHOOK_URL: url }),
      fx.startNode('b', { ...NOTIFY, NOTIFY_WEBHOOK_URL: url }),
    ]);
    await fx.assign('a', ['p1']);
    await fx.assign('b', ['p1']);
    const queues = new PortfolioQueues({ connection: fx.redis, keys: fx.keys, capacity: CAPACITY });
    fx.track(queues);
    const [a, b] = fx.processes;
    if (a === undefined || b === undefined) throw new Error('two nodes expected');
    await fill(queues, 0, CAPACITY);
    await waitFor(() => ofKind('queue_full').length >= 1, { timeoutMs: 2_000 });
    // Both nodes raised it: one sent it, the other was suppressed by the shared cooldown.
    const said = (node: typeof a, message: string) =>
      logEntries(node, message).filter((e) => e['kind'] === 'queue_full').length;
    await waitFor(
      () =>
        said(a, 'Notification raised') + said(b, 'Notification raised') === 1 &&
        said(a, 'Notification suppressed by cooldown') +
          said(b, 'Notification suppressed by cooldown') ===
          1,
      {
        timeoutMs: 3_000,
        description: 'one node to send and the other to be suppressed',
      },
    );
    await waitFor(
      async () => (await fx.redis.llen(fx.keys.notificationHistory())) === receiver.received.length,
    );
    expect(ofKind('queue_full')).toHaveLength(1);
  });

  it('keeps processing events while the webhook hangs', async () => {
    receiver.answers = Array.from({ length: 20 }, () => 'hang' as const);
    await startDeliveryWorker().waitForLine('Notification worker running', 20_000);
    await fx.addToCatalog('p1');
    await holdLease('p1');
    await fx.startNode('n1', { ...NOTIFY, NOTIFY_WEBHOOK_URL: url });
    await fx.assign('n1', ['p1']);
    const queues = new PortfolioQueues({ connection: fx.redis, keys: fx.keys, capacity: CAPACITY });
    fx.track(queues);
    await fill(queues, 0, CAPACITY);
    await waitFor(() => receiver.hanging >= 1, {
      timeoutMs: 3_000,
      description: 'a delivery hanging',
    });

    const released = Date.now();
    await fx.redis.del(fx.keys.portfolioLease('p1'));
    await waitFor(async () => (await fx.state('p1'))?.processed_count === CAPACITY, {
      timeoutMs: 3_000,
    });
    // Every event was processed within the 3 s the hanging delivery is still waiting for.
    expect(Date.now() - released).toBeLessThan(3_000);
    expect(receiver.received.filter((r) => r.body.kind === 'queue_full')).toHaveLength(0);
  });
});
