import { describe, expect, it } from 'vitest';
import type { JobsOptions } from 'bullmq';
import { createLogger } from '@ginkgo-live/runtime';
import { PayloadEncodeError, type Notification } from '@ginkgo-live/state-keys';
import { MemoryTransport } from '@ginkgo-live/testing';
import { NotificationQueue } from './notification-queue.ts';
import { isBug, remainderOf, SendFailed } from './notification-step.ts';

const notification: Notification = {
  _v: 1,
  id: '7d3c0c55-3f43-4d2b-9d43-d1b7a4c2c001',
  kind: 'node_lost',
  level: 'critical',
  status: 'firing',
  title: 'Node n1 lost',
  message: 'No heartbeat from n1; its portfolios are moved to other nodes.',
  details: { node_id: 'n1', last_seen: null },
  subject: { node_id: 'n1', portfolio_id: null },
  source: { app: 'livecore-scheduler', node_id: 's1' },
  created_at: '2026-12-01T00:00:00.000Z',
};

/** A queue over a scripted BullMQ queue: records each add, or fails them. */
function setup(fail?: Error) {
  const added: { name: string; data: Notification; opts: JobsOptions }[] = [];
  const logs = new MemoryTransport();
  const queue = new NotificationQueue({
    source: {
      get: () =>
        Promise.resolve({
          add: (name: string, data: Notification, opts: JobsOptions) => {
            if (fail !== undefined) return Promise.reject(fail);
            added.push({ name, data, opts });
            return Promise.resolve();
          },
        }),
      close: () => Promise.resolve(),
    },
    attempts: 6,
    logger: createLogger({ app: 'test', transports: [logs] }),
  });
  return { queue, added, logs };
}

describe('NotificationQueue', () => {
  it('adds one job: the notification as data, its id as job id (a resend is not queued twice), the delivery attempts', async () => {
    const { queue, added, logs } = setup();
    await queue.send(notification);
    expect(added).toEqual([
      {
        name: 'notification',
        data: notification,
        opts: {
          jobId: notification.id,
          attempts: 6,
          backoff: { type: 'custom' },
          removeOnComplete: { count: 1_000 },
          removeOnFail: { count: 5_000 },
        },
      },
    ]);
    expect(logs.entries.map((e) => e.message)).toEqual(['Notification raised']);
  });

  it('says a failed add is only a send left to do, not a claim to make again', async () => {
    const { queue } = setup(new Error('Connection is closed.'));
    const err = await queue.send(notification).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SendFailed);
    expect(isBug(err)).toBe(false);
    expect(
      remainderOf(
        {
          op: 'raise',
          kind: 'node_lost',
          level: 'critical',
          group: 'node',
          subject: { nodeId: 'n1', portfolioId: null },
          notification,
        },
        err,
      ),
    ).toEqual({ op: 'send', notification });
  });

  it('refuses a notification that breaks its schema before it reaches Redis: a bug, never held', async () => {
    const { queue, added } = setup();
    const err = await queue.send({ ...notification, title: '' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SendFailed);
    expect((err as SendFailed).cause).toBeInstanceOf(PayloadEncodeError);
    expect(isBug(err)).toBe(true);
    expect(added).toEqual([]);
  });
});
