import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import type { Logger } from '@ginkgo-live/runtime';
import type { Notification } from '@ginkgo-live/state-keys';
import { raisedText, resolvedText } from './catalogue.ts';
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
  /** Builds a notification as the notifier builds every one (id, source, time). */
  notice: (notice: {
    kind: 'redis_unavailable';
    level: 'critical';
    status: Notification['status'];
    title: string;
    message: string;
    details: Record<string, unknown>;
  }) => Notification;
  held: () => HeldSummary;
  /** Redis is back; with the resolved notice to queue when this process reported the outage. */
  onBack: (resolved: Notification | undefined) => void;
  /** Runs background work the notifier waits for at close. */
  track: (work: Promise<void>) => void;
  /** `notify:outage_told` and `notify:outage_late` (state-keys). */
  toldKey: string;
  lateKey: string;
  /** How long after Redis is back the others wait for the reporter to say it told. Default 2 s. */
  lateAfterMs?: number;
}

/** Outages seen by two processes that overlap within this much (clock skew, reconnect order) are one. */
const SAME_OUTAGE_SLACK_MS = 3_000;

/**
 * A Redis outage as one process sees it: when it began, whether it lasted long enough to report,
 * and whether this process is the one that reports it — the one that held the outage reporter lease
 * when it began — so the fleet sends one "Redis unavailable" and one "Redis available again".
 *
 * The holder may be gone (killed just before the outage, its lease not yet expired): then nobody
 * told it while it lasted. Once Redis is back the reporter records what it told; every other process
 * that saw a reportable outage waits a moment, and if none was told, one of them (`SET NX`) tells it
 * late — "was unavailable", then "available again" — so an outage is never silent.
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
    const until = Date.now();
    if (since !== undefined && this.reported) {
      this.options.track(this.recordTold(since, until));
    } else if (
      since !== undefined &&
      until - since >= this.options.downAfterMs &&
      this.options.lease !== undefined &&
      !this.options.lease.heldAt(this.downAtMs)
    ) {
      this.options.track(this.tellLate(since, until));
    }
    let resolved: Notification | undefined;
    if (since !== undefined && this.reported) {
      this.reported = false;
      const held = this.options.held();
      resolved = this.notice(
        'resolved',
        resolvedText(
          'redis_unavailable',
          {},
          {
            seconds: Math.round((Date.now() - since) / 1_000),
            held: held.lines.length,
            dropped: held.dropped,
          },
        ),
      );
    }
    this.options.onBack(resolved);
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private notice(
    status: Notification['status'],
    text: { title: string; message: string; details: Record<string, unknown> },
  ): Notification {
    return this.options.notice({ kind: 'redis_unavailable', level: 'critical', status, ...text });
  }

  /** The reporter says which outage it told, so that nobody tells it again. */
  private async recordTold(since: number, until: number): Promise<void> {
    try {
      await this.options.redis.set(this.options.toldKey, `${since}-${until}`, 'PX', 120_000);
    } catch (err) {
      this.options.logger.debug('Could not record the outage told', { err });
    }
  }

  /** Tells an outage late when its reporter did not (at most one process, through `SET NX`). */
  private async tellLate(since: number, until: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, this.options.lateAfterMs ?? 2_000));
    try {
      const told = await this.options.redis.get(this.options.toldKey);
      const [from, to] = (told ?? '').split('-').map(Number);
      if (
        from !== undefined &&
        to !== undefined &&
        from <= until + SAME_OUTAGE_SLACK_MS &&
        to >= since - SAME_OUTAGE_SLACK_MS
      ) {
        return;
      }
      const mine = await this.options.redis.set(
        this.options.lateKey,
        this.options.app,
        'PX',
        15_000,
        'NX',
      );
      if (mine !== 'OK') return;
      await this.recordTold(since, until);
    } catch (err) {
      this.options.logger.debug('Could not check whether the outage was told', { err });
      return;
    }
    const seconds = Math.round((until - since) / 1_000);
    const late = {
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      seconds,
      late: true,
    } as const;
    const firing = this.notice('firing', raisedText('redis_unavailable', {}, late));
    const resolved = this.notice('resolved', resolvedText('redis_unavailable', {}, late));
    for (const notice of [firing, resolved]) {
      await Promise.allSettled(this.options.directSinks.map((sink) => sink.deliver(notice)));
    }
    this.options.logger.warn('Redis outage nobody told: told the webhooks late', { seconds });
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
    const notice = this.notice(
      'firing',
      raisedText(
        'redis_unavailable',
        {},
        {
          app: this.options.app,
          since: new Date(this.downSince).toISOString(),
          seconds: Math.round((Date.now() - this.downSince) / 1_000),
          held: held.lines,
          dropped: held.dropped,
        },
      ),
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
