import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import type { Logger } from '@ginkgo-live/runtime';
import type { Notification } from '@ginkgo-live/state-keys';
import type { OutageReporterLease } from './outage-reporter.ts';
import type { Sink } from './sinks.ts';

/** What the notifier holds while Redis is away, for the "Redis unavailable" notice. */
export interface HeldSummary {
  /** One line per held step, oldest first. */
  lines: string[];
  /** Steps dropped because the buffer was full. */
  dropped: number;
}

export interface RedisOutageOptions {
  /** The notifier's connection: its `status` says whether Redis is back. */
  redis: Redis;
  /** Redis away this long is reported (`NOTIFY_REDIS_DOWN_AFTER_MS`). */
  downAfterMs: number;
  /** The lease that says whether this process reports; none: it never does. */
  lease: OutageReporterLease | undefined;
  /** Where the report goes while the queue cannot be reached. */
  directSinks: Sink[];
  /** App that reports, named in the message. */
  app: string;
  logger: Logger;
  /** Builds a `redis_unavailable` notice as the notifier builds every notification. */
  notice: (
    status: Notification['status'],
    text: { title: string; message: string },
    details: Record<string, unknown>,
  ) => Notification;
  held: () => HeldSummary;
  /** Redis is back; with the resolved notice to queue when this process reported the outage. */
  onBack: (resolved: Notification | undefined) => void;
  /** Runs background work the notifier waits for at close. */
  track: (work: Promise<void>) => void;
}

/**
 * A Redis outage as one process sees it: when it began, whether it lasted long enough to report,
 * and whether this process is the one that reports it — the one that held the outage reporter lease
 * when it began — so the fleet sends one "Redis unavailable" and one "Redis available again".
 */
export class RedisOutage {
  private downSince: number | undefined;
  /** `performance.now()` when the outage began, to ask the lease who held it then. */
  private downAtMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private reported = false;

  constructor(private readonly options: RedisOutageOptions) {}

  /** Redis did not answer (a closed connection, a failed command): the outage begins, once. */
  lost(): void {
    if (this.downSince !== undefined) return;
    this.downSince = Date.now();
    this.downAtMs = performance.now();
    this.timer = setTimeout(() => this.options.track(this.report()), this.options.downAfterMs);
    this.timer.unref();
  }

  /** Redis answered: an outage seen only through a failed command (no reconnect) is over. */
  reachable(): void {
    if (this.downSince !== undefined && this.options.redis.status === 'ready') this.back();
  }

  /** The connection is ready again. */
  back(): void {
    clearTimeout(this.timer);
    const since = this.downSince;
    this.downSince = undefined;
    let resolved: Notification | undefined;
    if (since !== undefined && this.reported) {
      this.reported = false;
      const held = this.options.held();
      resolved = this.options.notice(
        'resolved',
        {
          title: 'Redis available again',
          message: `Redis is back after ${Math.round((Date.now() - since) / 1_000)} s.`,
        },
        { held: held.lines.length, dropped: held.dropped },
      );
    }
    this.options.onBack(resolved);
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** Straight to the webhooks, once per outage, by the process that held the lease when it began. */
  private async report(): Promise<void> {
    if (this.downSince === undefined || this.reported) return;
    if (this.options.redis.status === 'ready') return;
    const held = this.options.held();
    if (this.options.lease?.heldAt(this.downAtMs) !== true) {
      this.options.logger.warn('Redis unavailable; the outage reporter tells the webhooks', {
        held: held.lines.length,
      });
      return;
    }
    this.reported = true;
    const notice = this.options.notice(
      'firing',
      {
        title: 'Redis unavailable',
        message: `${this.options.app} cannot reach Redis for ${Math.round((Date.now() - this.downSince) / 1_000)} s; notifications are held until it is back.`,
      },
      { since: new Date(this.downSince).toISOString(), held: held.lines, dropped: held.dropped },
    );
    const results = await Promise.allSettled(
      this.options.directSinks.map((sink) => sink.deliver(notice)),
    );
    const failed = results.filter((r) => r.status === 'rejected').length;
    this.options.logger.error('Redis unavailable: told the webhooks directly', {
      sinks: results.length,
      failed,
    });
  }
}
