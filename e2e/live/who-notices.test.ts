import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Notification } from '@ginkgo-live/state-keys';
import {
  logEntries,
  type ManagedProcess,
  type RedisServer,
  StackFixture,
  waitFor,
  WebhookReceiver,
} from '@ginkgo-live/testing';

/**
 * Issue 15, "who notices a fault must not be the component that failed": each fault's notification
 * comes from a live process other than the faulty one, once, with one resolved notice — checked at
 * a real webhook behind the real delivery worker, with the faulty processes frozen or killed.
 */
let fx: StackFixture;
let server: RedisServer;
let receiver: WebhookReceiver<Notification>;
let url: string;

beforeEach(async () => {
  fx = await StackFixture.start();
  server = fx.server;
  receiver = new WebhookReceiver<Notification>();
  url = await receiver.start();
  fx.onClose(() => receiver.stop());
});
afterEach(() => fx.close());

/** Notices of a kind and status (optionally about one portfolio) the webhook got. */
function received(kind: string, status: 'firing' | 'resolved', portfolioId?: string) {
  return receiver.received
    .map((r) => r.body)
    .filter(
      (n) =>
        n.kind === kind &&
        n.status === status &&
        (portfolioId === undefined || n.subject.portfolio_id === portfolioId),
    );
}

/**
 * Everything the delivery worker finished is at the webhook: the history (one entry per finished
 * delivery) counts as many as the webhook got, but `notInHistory` of them — posted straight by a
 * notifier while Redis was away, or recorded in a Redis that has since restarted empty.
 */
async function deliveriesSettled(notInHistory = 0): Promise<void> {
  await waitFor(
    async () =>
      (await fx.redis.llen(fx.keys.notificationHistory())) ===
      receiver.received.length - notInHistory,
    { timeoutMs: 5_000, description: 'every queued notification delivered' },
  );
}

describe('who notices a fault, once', () => {
  it('every node frozen: the producer raises one queue_full for the portfolio, resolved once the node thaws', async () => {
    const capacity = { PORTFOLIO_QUEUE_CAPACITY: '20' };
    // A lease long enough that the short freeze below costs the node nothing but time.
    const slowLease = {
      HEARTBEAT_TTL_MS: '10000',
      NODE_INFO_TTL_MS: '30000',
      PORTFOLIO_STATE_TTL_MS: '30000',
    };
    const notify = { NOTIFY_WEBHOOK_URL: url };
    await fx.startNotificationWorker(notify);
    await fx.addToCatalog('p1');
    // It has traded before: its first load is not held back by the fresh-start window (11 s with
    // this lease).
    await fx.seedBook('p1');
    const node = await fx.startNode('a', { ...capacity, ...slowLease, ...notify });
    await fx.assign('a', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running', {
      timeoutMs: 10_000,
      description: 'p1 running on a',
    });
    await fx.startFeed({ ...capacity, ...notify, FEED_RATE: '50' });
    await waitFor(async () => ((await fx.state('p1'))?.processed_count ?? 0) > 0, {
      timeoutMs: 10_000,
      description: 'the feed reaching p1',
    });

    node.signal('SIGSTOP');
    fx.onClose(() => node.signal('SIGCONT'));
    await waitFor(() => received('queue_full', 'firing', 'p1').length === 1, {
      timeoutMs: 5_000,
      description: 'queue_full while the only consumer is frozen',
    });
    expect(received('queue_full', 'firing', 'p1')[0]).toMatchObject({
      level: 'critical',
      subject: { node_id: null, portfolio_id: 'p1' },
      source: { app: 'market-feed' },
      details: { depth: 20, capacity: 20 },
    });

    node.signal('SIGCONT');
    await waitFor(() => received('queue_full', 'resolved', 'p1').length === 1, {
      timeoutMs: 10_000,
      description: 'the resolved notice once the node drains the queue',
    });
    // The thawed node saw the full queue too: its queue_full went through the same dedupe.
    await deliveriesSettled();
    expect(received('queue_full', 'firing', 'p1')).toHaveLength(1);
    expect(received('queue_full', 'resolved', 'p1')).toHaveLength(1);
  }, 60_000);

  it('a node frozen past its heartbeat TTL: the scheduler raises one node_lost, resolved once it beats again', async () => {
    const notify = { NOTIFY_WEBHOOK_URL: url };
    await fx.startNotificationWorker(notify);
    const node = await fx.startNode('a', notify);
    await fx.startScheduler('s1', notify);
    await waitFor(async () => (await fx.redis.hget(fx.keys.executionNodes(), 'a')) !== null, {
      description: 'the scheduler to know a',
    });

    node.signal('SIGSTOP');
    fx.onClose(() => node.signal('SIGCONT'));
    await waitFor(() => received('node_lost', 'firing').length === 1, {
      timeoutMs: 10_000,
      description: 'node_lost while a is frozen',
    });
    expect(received('node_lost', 'firing')[0]).toMatchObject({
      level: 'critical',
      subject: { node_id: 'a' },
      source: { app: 'livecore-scheduler' },
    });
    node.signal('SIGCONT');
    await waitFor(() => received('node_lost', 'resolved').length === 1, {
      timeoutMs: 10_000,
      description: 'the resolved notice once a beats again',
    });
    await deliveriesSettled();
    expect(received('node_lost', 'firing')).toHaveLength(1);
    expect(received('node_lost', 'resolved')).toHaveLength(1);
  }, 60_000);

  it('every scheduler killed: the gateways raise one scheduler_leader_missing, resolved when a scheduler leads again', async () => {
    const notify = { NOTIFY_WEBHOOK_URL: url };
    const watch = { ...notify, GATEWAY_LEADER_MISSING_AFTER_MS: '1500' };
    await fx.startNotificationWorker(notify);
    const schedulers = await Promise.all([
      fx.startScheduler('s1', notify),
      fx.startScheduler('s2', notify),
    ]);
    await Promise.all([fx.startGateway(watch), fx.startGateway(watch)]);
    await waitFor(async () => (await fx.redis.get(fx.keys.schedulerLeader())) !== null, {
      description: 'a leader',
    });

    await Promise.all(schedulers.map((s) => s.stop('SIGKILL')));
    await waitFor(() => received('scheduler_leader_missing', 'firing').length === 1, {
      timeoutMs: 10_000,
      description: 'scheduler_leader_missing',
    });
    expect(received('scheduler_leader_missing', 'firing')[0]).toMatchObject({
      level: 'critical',
      source: { app: 'api-gateway' },
    });

    await fx.startScheduler('s3', notify);
    await waitFor(() => received('scheduler_leader_missing', 'resolved').length === 1, {
      timeoutMs: 10_000,
      description: 'the resolved notice',
    });
    await deliveriesSettled();
    expect(received('scheduler_leader_missing', 'firing')).toHaveLength(1);
    expect(received('scheduler_leader_missing', 'resolved')).toHaveLength(1);
    expect(received('scheduler_leader_missing', 'resolved')[0]?.details).toMatchObject({
      leader: 's3',
    });
  }, 60_000);

  it('Redis killed then restarted empty: one "Redis unavailable" and one "available again" for the fleet, one catalog missing and its resolved notice', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-catalog-'));
    fx.onClose(() => rmSync(dir, { recursive: true, force: true }));
    const catalog = path.join(dir, 'catalog.json');
    writeFileSync(
      catalog,
      JSON.stringify([
        {
          portfolio_id: 'p1',
          symbols: ['BTCUSDT'],
          strategy: { name: 'ma-crossover', params: { fast: 2, slow: 4 } },
          starting_cash: 10_000,
        },
      ]),
    );
    const notify = { NOTIFY_WEBHOOK_URL: url, NOTIFY_REDIS_DOWN_AFTER_MS: '1000' };
    await fx.startNotificationWorker(notify);
    const apps: ManagedProcess[] = await Promise.all([
      fx.startScheduler('s1', { ...notify, CATALOG_FILE: catalog }),
      fx.startNode('a', notify),
      fx.startNode('b', notify),
      fx.startGateway(notify).then((g) => g.process),
      fx.startFeed(notify),
    ]);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running', {
      timeoutMs: 10_000,
      description: 'p1 running',
    });
    await waitFor(async () => (await fx.redis.get(fx.keys.notificationOutageReporter())) !== null, {
      description: 'an outage reporter',
    });

    const beforeOutage = receiver.received.length;
    await server.kill();
    const decided = (p: ManagedProcess) =>
      logEntries(p, 'Redis unavailable: told the webhooks directly').length +
      logEntries(p, 'Redis unavailable; the outage reporter tells the webhooks').length;
    // Every app saw the outage outlast the threshold and decided whether it reports it.
    await waitFor(() => apps.every((p) => decided(p) === 1), {
      timeoutMs: 10_000,
      description: 'every app to decide about the outage',
    });
    const reporters = apps.filter(
      (p) => logEntries(p, 'Redis unavailable: told the webhooks directly').length === 1,
    );
    expect(reporters).toHaveLength(1);
    await waitFor(() => received('redis_unavailable', 'firing').length === 1, {
      timeoutMs: 5_000,
    });

    await server.restart({ keepData: false });
    await waitFor(
      () =>
        received('redis_unavailable', 'resolved').length === 1 &&
        received('catalog_missing', 'resolved').length === 1,
      { timeoutMs: 15_000, description: 'Redis back and the catalog reloaded' },
    );
    await deliveriesSettled(beforeOutage + 1);
    expect(received('redis_unavailable', 'firing')).toHaveLength(1);
    expect(received('redis_unavailable', 'resolved')).toHaveLength(1);
    expect(received('catalog_missing', 'firing')).toHaveLength(1);
    expect(received('catalog_missing', 'resolved')).toHaveLength(1);
    for (const p of apps) expect(p.exit, p.name).toBeUndefined();
  }, 90_000);

  it('the outage reporter killed just before Redis goes: the outage is told late, once, with its resolved notice', async () => {
    const notify = { NOTIFY_WEBHOOK_URL: url, NOTIFY_REDIS_DOWN_AFTER_MS: '1000' };
    await fx.addToCatalog('p1');
    const apps: ManagedProcess[] = await Promise.all([
      fx.startNode('a', notify),
      fx.startNode('b', notify),
      fx.startNode('c', notify),
    ]);
    await waitFor(
      () =>
        apps.filter((p) => logEntries(p, 'Holding the outage reporter lease').length > 0).length ===
        1,
      { description: 'one outage reporter' },
    );
    const reporter = apps.find(
      (p) => logEntries(p, 'Holding the outage reporter lease').length > 0,
    );
    if (reporter === undefined) throw new Error('no reporter');
    await reporter.stop('SIGKILL');
    await server.kill();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    // Nobody told it while it lasted: the process that would have is gone.
    expect(received('redis_unavailable', 'firing')).toHaveLength(0);
    await server.restart({ keepData: false });
    await waitFor(() => received('redis_unavailable', 'resolved').length === 1, {
      timeoutMs: 15_000,
      description: 'the outage told late',
    });
    await new Promise((resolve) => setTimeout(resolve, 6_000)); // every other late teller's wait
    expect(received('redis_unavailable', 'firing')).toHaveLength(1);
    expect(received('redis_unavailable', 'resolved')).toHaveLength(1);
    expect(received('redis_unavailable', 'firing')[0]?.details).toMatchObject({ late: true });
    for (const p of apps.filter((q) => q !== reporter)) expect(p.exit, p.name).toBeUndefined();
  }, 60_000);
});
