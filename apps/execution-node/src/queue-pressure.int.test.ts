import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import {
  loadNotificationConfig,
  Notifier,
  QueueFullAlarm,
} from '@ginkgo-live/notification-adapter';
import { createStateKeys, type Notification } from '@ginkgo-live/state-keys';
import { MemoryTransport, RedisServer } from '@ginkgo-live/testing';
import { QueuePressureWatcher } from './queue-pressure.ts';

let server: RedisServer;
const cleanups: (() => Promise<unknown>)[] = [];
const keys = createStateKeys(`qp${Date.now()}:`);
const logger = createLogger({ app: 'test', transports: [new MemoryTransport()] });

beforeEach(async () => {
  server = await RedisServer.start();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await server.cleanup();
});

/** A notifier on its own connection, as each process has one; no webhook (nothing direct). */
function notifier(app: string): Notifier {
  const redis = new Redis({ host: server.host, port: server.port, maxRetriesPerRequest: 1 });
  const n = new Notifier({
    redis,
    keys,
    source: { app, nodeId: app },
    config: unwrapConfig(loadNotificationConfig({})),
    logger,
    directSinks: [],
  });
  cleanups.push(async () => {
    await n.close();
    redis.disconnect();
  });
  return n;
}

/** What went on the notifications queue, as `kind:status:portfolio`. */
async function queued(): Promise<string[]> {
  const redis = new Redis({ host: server.host, port: server.port });
  const queue = new Queue(keys.notificationsQueue(), {
    connection: redis,
    prefix: keys.queuePrefix(),
  });
  const jobs = await queue.getJobs(['waiting']);
  await queue.close();
  redis.disconnect();
  return jobs
    .map((job) => job.data as Notification)
    .sort((a, b) => a.created_at.localeCompare(b.created_at))
    .map((n) => `${n.kind}:${n.status}:${n.subject.portfolio_id ?? '-'}`);
}

describe('the queue condition shared by the node and the producer', () => {
  it('is one queue_full and one resolved notice whichever of them sees it first or last', async () => {
    const nodeNotifier = notifier('execution-node');
    const feedNotifier = notifier('market-feed');
    const node = new QueuePressureWatcher(nodeNotifier, 'n1');
    const producer = new QueueFullAlarm({ notifier: feedNotifier, producer: 'feed', logger });

    producer.refused('p1', { depth: 20, capacity: 20 });
    await feedNotifier.settle();
    // The node thaws and samples the full queue: the same condition, already told.
    node.observe({ portfolioId: 'p1', depth: 20, capacity: 20, refused: 7 });
    await nodeNotifier.settle();
    // The node drains it; both see it low and both resolve: one resolved notice.
    node.observe({ portfolioId: 'p1', depth: 2, capacity: 20, refused: 7 });
    await nodeNotifier.settle();
    producer.accepted('p1', { depth: 3, capacity: 20 });
    await feedNotifier.settle();

    expect(await queued()).toEqual(['queue_full:firing:p1', 'queue_full:resolved:p1']);
  });
});
