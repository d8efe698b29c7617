import type { Redis } from 'ioredis';
import type { JobsOptions } from 'bullmq';
import type { Logger } from '@ginkgo-live/runtime';
import { encodePayload, type Notification, type StateKeys } from '@ginkgo-live/state-keys';
import { SendFailed } from './notification-step.ts';

/** Where jobs are added: a BullMQ queue that is ready (a `RecoveringQueue` in the apps). */
export interface QueueSource {
  get(): Promise<{ add(name: string, data: Notification, opts: JobsOptions): Promise<unknown> }>;
  close(): Promise<void>;
}

export interface NotificationQueueOptions {
  source: QueueSource;
  /** `NOTIFY_DELIVERY_ATTEMPTS`: the delivery worker tries a job this many times. */
  attempts: number;
  logger: Logger;
}

/**
 * The enqueueing side: a notification becomes one job of the durable `notifications` queue, the
 * interface by which the delivery worker receives work. The job id is the notification's id, so a
 * send retried after a lost reply is not queued twice.
 */
export class NotificationQueue {
  constructor(private readonly options: NotificationQueueOptions) {}

  /**
   * The `notifications` queue of state-keys on a connection. BullMQ is loaded, and the queue made,
   * at the first notification: an app that starts and tells nothing (the scheduler's recovery, most
   * of its life) neither evaluates BullMQ nor opens the queue.
   */
  static open(redis: Redis, keys: StateKeys, attempts: number, logger: Logger): NotificationQueue {
    let queue: Promise<QueueSource> | undefined;
    const opened = (): Promise<QueueSource> =>
      (queue ??= import('@ginkgo-live/portfolio-queue').then(
        ({ RecoveringQueue }) =>
          new RecoveringQueue(keys.notificationsQueue(), {
            connection: redis,
            prefix: keys.queuePrefix(),
          }),
      ));
    const source: QueueSource = {
      get: async () => (await opened()).get(),
      close: async () => {
        if (queue !== undefined) await (await queue).close();
      },
    };
    return new NotificationQueue({ source, attempts, logger });
  }

  /** Adds the job; a payload that breaks its schema is a `PayloadEncodeError` (a bug). */
  async add(notification: Notification): Promise<void> {
    // Encoded then parsed: what is queued is exactly what the schema lets through.
    const data = JSON.parse(encodePayload('notification', notification)) as Notification;
    const queue = await this.options.source.get();
    await queue.add('notification', data, {
      jobId: notification.id,
      attempts: this.options.attempts,
      backoff: { type: 'custom' },
      removeOnComplete: { count: 1_000 },
      removeOnFail: { count: 5_000 },
    });
    this.options.logger.info('Notification raised', {
      notificationId: notification.id,
      kind: notification.kind,
      notificationLevel: notification.level,
      status: notification.status,
    });
  }

  /** Adds the job; any failure says that only this send is left to do (`SendFailed`). */
  async send(notification: Notification): Promise<void> {
    try {
      await this.add(notification);
    } catch (err) {
      throw new SendFailed(notification, err);
    }
  }

  async close(): Promise<void> {
    await this.options.source.close();
  }
}
