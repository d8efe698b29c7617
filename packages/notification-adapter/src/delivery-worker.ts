import type * as BullMQ from 'bullmq';
import type { Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@ginkgo-live/runtime';
import { backoffDelayMs } from '@ginkgo-live/redis-client';
import {
  decodePayload,
  encodePayload,
  type Notification,
  type NotificationRecord,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { routeOf, type Routing } from './routes.ts';
import type { Silences } from './silences.ts';
import { DeliveryError, type Sink } from './sinks.ts';

export interface DeliveryWorkerOptions {
  /** A `blocking` profile connection (BullMQ worker). */
  connection: Redis;
  /** A `request` profile connection, for the history list. */
  redis: Redis;
  keys: StateKeys;
  sinks: Sink[];
  /** Which notifications go to which sinks; without it, every one goes to every sink. */
  routing?: Routing | undefined;
  /** Operators' silences: a notification one matches is recorded as silenced, sent nowhere. */
  silences?: Silences | undefined;
  /** First retry delay, doubling with jitter, in ms. */
  backoffMs: number;
  /** Entries kept in `notifications:history`. */
  historySize: number;
  logger: Logger;
}

/** Thrown to retry: says which sinks failed and how long the receivers asked us to wait. */
class RetryDelivery extends Error {
  override readonly name = 'RetryDelivery';

  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

interface Progress {
  delivered: string[];
}

/** What the worker did since it started, for `/metrics`. */
export interface DeliveryStats {
  /** Per sink: deliveries that arrived, and attempts that failed (each retry counts). */
  sinks: Map<string, { delivered: number; failed: number }>;
  /** Notifications by how they ended: delivered, partial, failed, silenced. */
  outcomes: Map<string, number>;
}

/**
 * Consumes `notifications` and delivers each to every sink its route names (every sink without
 * routes). A sink that took a notification is not
 * sent it again on a retry (the delivered sinks are kept in the job's progress). Failures are retried
 * with exponential backoff, never sooner than a receiver's `429 Retry-After`; after the last attempt
 * the job stays in the failed set with the reason of every failed sink. Each outcome is recorded in
 * `notifications:history` (newest first, capped). Sink errors never carry the URL.
 */
export class NotificationDeliveryWorker {
  private worker: Worker | undefined;
  /**
   * BullMQ, loaded by `start` rather than with the package: every app that raises notifications
   * imports this package, and only the notification worker runs a delivery worker.
   */
  private bullmq: typeof BullMQ | undefined;
  private starting: Promise<void> | undefined;
  private stopping = false;
  private readonly log: Logger;
  readonly stats: DeliveryStats = { sinks: new Map(), outcomes: new Map() };

  constructor(private readonly options: DeliveryWorkerOptions) {
    this.log = options.logger.child({ component: 'notification-delivery' });
  }

  /** Starts consuming once BullMQ is loaded (at once when it already is); `stop` waits for that. */
  start(): void {
    if (this.starting !== undefined) return;
    this.stopping = false;
    this.starting = import('bullmq').then(
      (bullmq) => {
        this.bullmq = bullmq;
        if (!this.stopping) this.run(bullmq);
      },
      (err: unknown) => {
        this.log.error('Delivery worker could not load BullMQ', { err });
      },
    );
  }

  private run({ Worker, UnrecoverableError }: typeof BullMQ): void {
    const { keys, backoffMs } = this.options;
    this.worker = new Worker(keys.notificationsQueue(), (job) => this.process(job), {
      connection: this.options.connection,
      prefix: keys.queuePrefix(),
      concurrency: 8,
      settings: {
        backoffStrategy: (attemptsMade: number, _type?: string, err?: Error) => {
          const backoff = backoffDelayMs(attemptsMade, {
            baseDelayMs: backoffMs,
            maxDelayMs: backoffMs * 64,
          });
          const asked = err instanceof RetryDelivery ? err.retryAfterMs : 0;
          return Math.max(backoff, asked);
        },
      },
    });
    this.worker.on('error', (err) => this.log.warn('Delivery worker error', { err }));
    this.worker.on('failed', (job, err) => {
      if (
        !(err instanceof UnrecoverableError) &&
        (job?.attemptsMade ?? 0) < (job?.opts.attempts ?? 1)
      )
        return;
      this.log.error('Notification delivery failed for good', {
        notificationId: job?.id,
        reason: err.message,
      });
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.starting;
    this.starting = undefined;
    await this.worker?.close();
    this.worker = undefined;
  }

  /** Jobs are processed only by the worker `run` made, once BullMQ was loaded. */
  private unrecoverable(message: string): Error {
    if (this.bullmq === undefined) return new Error(message);
    return new this.bullmq.UnrecoverableError(message);
  }

  private async process(job: Job): Promise<void> {
    const decoded = decodePayload(
      'notification',
      `notifications:${job.id ?? '?'}`,
      JSON.stringify(job.data),
    );
    if (!decoded.ok) throw this.unrecoverable(`Malformed notification: ${decoded.error.problem}`);
    const notification = decoded.value;
    const progress = (job.progress as Partial<Progress> | number | undefined) ?? {};
    const delivered = new Set(typeof progress === 'object' ? (progress.delivered ?? []) : []);
    const failures = new Map<string, DeliveryError | Error>();
    const { sinks, route } = this.route(notification);
    // Asked before any sink took it (a retry after a partial delivery finishes what it began). A
    // failed read throws: the job is retried, never sent while it may be silenced, never dropped.
    if (delivered.size === 0) {
      const silence = await this.options.silences?.silencing(notification);
      if (silence !== undefined) {
        await this.record(
          notification,
          delivered,
          failures,
          job.attemptsMade + 1,
          route,
          silence.id,
        );
        this.log.info('Notification silenced', {
          notificationId: notification.id,
          kind: notification.kind,
          silenceId: silence.id,
        });
        return;
      }
    }
    for (const sink of sinks) {
      if (delivered.has(sink.name)) continue;
      const counts = this.sinkStats(sink.name);
      try {
        await sink.deliver(notification);
        delivered.add(sink.name);
        counts.delivered += 1;
      } catch (err) {
        failures.set(sink.name, err instanceof Error ? err : new Error(String(err)));
        counts.failed += 1;
      }
    }
    await job.updateProgress({ delivered: [...delivered] } satisfies Progress);
    const attempt = job.attemptsMade + 1;
    const reasons = [...failures.values()].map((e) => e.message).join('; ');
    const permanent = [...failures.values()].every(
      (e) => e instanceof DeliveryError && e.isPermanent,
    );
    const isLast = attempt >= (job.opts.attempts ?? 1) || (failures.size > 0 && permanent);
    if (failures.size === 0 || isLast)
      await this.record(notification, delivered, failures, attempt, route);
    if (failures.size === 0) return;
    if (isLast) throw this.unrecoverable(`Delivery failed after ${attempt} attempt(s): ${reasons}`);
    const retryAfterMs = Math.max(
      0,
      ...[...failures.values()].map((e) =>
        e instanceof DeliveryError ? (e.retryAfterMs ?? 0) : 0,
      ),
    );
    throw new RetryDelivery(`Delivery failed (attempt ${attempt}): ${reasons}`, retryAfterMs);
  }

  private sinkStats(name: string): { delivered: number; failed: number } {
    let counts = this.stats.sinks.get(name);
    if (counts === undefined) {
      counts = { delivered: 0, failed: 0 };
      this.stats.sinks.set(name, counts);
    }
    return counts;
  }

  /** The sinks a notification goes to, and which route said so (`file:line`, or `default`). */
  private route(n: Notification): { sinks: Sink[]; route: string | undefined } {
    const routing = this.options.routing;
    if (routing === undefined) return { sinks: this.options.sinks, route: undefined };
    const route = routeOf(routing, n);
    const names = route?.sinks ?? routing.defaultSinks;
    return {
      sinks: this.options.sinks.filter((sink) => names.includes(sink.name)),
      route: route === undefined ? 'default' : `${routing.file}:${route.line}`,
    };
  }

  private async record(
    notification: Notification,
    delivered: Set<string>,
    failures: Map<string, Error>,
    attempts: number,
    route: string | undefined,
    silencedBy?: string,
  ): Promise<void> {
    const sinks: Record<string, string> = {};
    for (const name of delivered) sinks[name] = 'delivered';
    for (const [name, err] of failures) sinks[name] = err.message;
    const status: NotificationRecord['delivery']['status'] =
      silencedBy !== undefined
        ? 'silenced'
        : failures.size === 0
          ? 'delivered'
          : delivered.size === 0
            ? 'failed'
            : 'partial';
    this.stats.outcomes.set(status, (this.stats.outcomes.get(status) ?? 0) + 1);
    const record: NotificationRecord = {
      ...notification,
      delivery: {
        status,
        sinks,
        attempts,
        finished_at: new Date().toISOString(),
        ...(route === undefined ? {} : { route }),
        ...(silencedBy === undefined ? {} : { silenced_by: silencedBy }),
      },
    };
    const key = this.options.keys.notificationHistory();
    await this.options.redis
      .multi()
      .lpush(key, encodePayload('notificationRecord', record))
      .ltrim(key, 0, this.options.historySize - 1)
      .exec();
  }
}
