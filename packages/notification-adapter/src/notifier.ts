import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '@ginkgo-live/runtime';
import { RecoveringQueue } from '@ginkgo-live/portfolio-queue';
import { LuaScript } from '@ginkgo-live/redis-client';
import {
  encodePayload,
  type Notification,
  type NotificationLevel,
  type NotificationSubject,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import type { NotificationConfig } from './config.ts';
import { normalizeLevel } from './levels.ts';
import { createWebhookSinks, LogSink, type Sink } from './sinks.ts';

/**
 * Raise: marks the condition active and claims the cooldown of (kind, subject, level).
 * KEYS[1] cooldown key   KEYS[2] active hash of the condition group
 * ARGV[1] cooldown ms    ARGV[2] field `kind|level`   ARGV[3] now (ms)
 * Returns 1 when this caller should send (cooldown was free), 0 when it is suppressed.
 */
const RAISE = new LuaScript(`
redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
if tonumber(ARGV[1]) <= 0 then return 1 end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
`);

/**
 * Resolve: the caller that deletes the active hash sends the one resolved notice; its cooldowns go
 * too, so a new occurrence is told at once.
 * KEYS[1] active hash   KEYS[2..] cooldown keys of the group
 * Returns the fields (`kind|level`) that were active, or an empty list when nothing was.
 */
const RESOLVE = new LuaScript(`
local fields = redis.call('HKEYS', KEYS[1])
if #fields == 0 then return {} end
redis.call('DEL', unpack(KEYS))
return fields
`);

/** A notification as a caller raises it. */
export interface NotifyInput {
  /** `queue_full`, `node_lost`… (lowercase, digits, `_`). */
  kind: string;
  /** info, warning (or WARN), error, critical (or ALERT). */
  level: string;
  title: string;
  message: string;
  details?: Record<string, unknown>;
  /** What it is about: part of the dedupe key with kind and level. */
  subject?: Partial<NotificationSubject>;
  /** The condition it belongs to, for the resolved notice; default the kind. */
  group?: string;
}

/** A condition that cleared. */
export interface ResolveInput {
  group: string;
  subject?: Partial<NotificationSubject>;
  title: string;
  message: string;
  details?: Record<string, unknown>;
  /** Every (kind, level) the group may have raised, so their cooldowns are cleared. */
  kinds: readonly { kind: string; level: NotificationLevel }[];
}

export interface NotifierOptions {
  /** A fail-fast (`request` profile) connection. */
  redis: Redis;
  keys: StateKeys;
  /** Who raises: app and node id, carried in every notification. */
  source: { app: string; nodeId: string | null };
  config: NotificationConfig;
  logger: Logger;
  /** Where "Redis unavailable" goes directly when Redis is away (the HTTP sinks and the log). */
  directSinks: Sink[];
}

const SEVERITY: Record<NotificationLevel, number> = { info: 0, warning: 1, error: 2, critical: 3 };

/**
 * `notify()` for every app: never throws into the caller and never blocks it — the work runs in
 * the background and lands on the durable `notifications` queue. Dedupe and cooldown are shared by
 * every process through Redis, keyed by (kind, node, portfolio, level). When Redis is away,
 * notifications wait in a bounded buffer; after `redisDownAfterMs` a "Redis unavailable" notice and
 * the buffer go straight to the webhooks, once per outage, and a "Redis back" notice follows.
 */
export class Notifier {
  private readonly queue: RecoveringQueue;
  private readonly pending = new Set<Promise<void>>();
  private readonly buffer: Notification[] = [];
  private dropped = 0;
  private downSince: number | undefined;
  private downTimer: NodeJS.Timeout | undefined;
  private reportedOutage = false;
  private backNotice: Notification | undefined;
  private isSendingHeld = false;
  private readonly log: Logger;
  private readonly onClose = (): void => this.redisLost();
  private readonly onReady = (): void => this.redisBack();

  constructor(private readonly options: NotifierOptions) {
    this.log = options.logger.child({ component: 'notifier' });
    this.queue = new RecoveringQueue(options.keys.notificationsQueue(), {
      connection: options.redis,
      prefix: options.keys.queuePrefix(),
    });
    options.redis.on('close', this.onClose);
    options.redis.on('ready', this.onReady);
  }

  /** Raises a notification. Returns at once; never throws. */
  notify(input: NotifyInput): void {
    this.track(this.raise(input));
  }

  /** Tells that a condition cleared (one resolved notice across every process). Never throws. */
  resolve(input: ResolveInput): void {
    this.track(this.clear(input));
  }

  /** Waits for the notifications in flight (for tests and shutdown). */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Notifications held while Redis is away. */
  get buffered(): number {
    return this.buffer.length;
  }

  async close(): Promise<void> {
    clearTimeout(this.downTimer);
    this.options.redis.off('close', this.onClose);
    this.options.redis.off('ready', this.onReady);
    await this.settle();
    await this.queue.close();
  }

  private track(work: Promise<void>): void {
    const guarded = work.catch((err: unknown) => {
      this.log.error('Notification lost to a bug', { err });
    });
    this.pending.add(guarded);
    void guarded.finally(() => this.pending.delete(guarded));
  }

  private subject(input: Partial<NotificationSubject> | undefined): NotificationSubject {
    return { nodeId: input?.nodeId ?? null, portfolioId: input?.portfolioId ?? null };
  }

  private build(
    input: NotifyInput,
    level: NotificationLevel,
    status: Notification['status'],
  ): Notification {
    const subject = this.subject(input.subject);
    return {
      _v: 1,
      id: randomUUID(),
      kind: input.kind,
      level,
      status,
      title: input.title,
      message: input.message,
      details: input.details ?? {},
      subject: { node_id: subject.nodeId, portfolio_id: subject.portfolioId },
      source: { app: this.options.source.app, node_id: this.options.source.nodeId },
      created_at: new Date().toISOString(),
    };
  }

  private cooldownMs(level: NotificationLevel): number {
    const c = this.options.config;
    return level === 'warning'
      ? c.warningCooldownMs
      : level === 'info'
        ? c.infoCooldownMs
        : c.criticalCooldownMs;
  }

  private async raise(input: NotifyInput): Promise<void> {
    let level = normalizeLevel(input.level);
    if (level === undefined) {
      this.log.warn('Unknown notification level; sending as error', {
        level: input.level,
        kind: input.kind,
      });
      level = 'error';
    }
    const notification = this.build(input, level, 'firing');
    const subject = this.subject(input.subject);
    const { keys } = this.options;
    try {
      const send = await RAISE.run(
        this.options.redis,
        [
          keys.notificationCooldown(input.kind, subject, level),
          keys.notificationActive(input.group ?? input.kind, subject),
        ],
        [this.cooldownMs(level), `${input.kind}|${level}`, Date.now()],
      );
      if (send !== 1) {
        this.log.debug('Notification suppressed by cooldown', { kind: input.kind, level, subject });
        return;
      }
      await this.enqueue(notification);
    } catch (err) {
      this.hold(notification, err);
    }
  }

  private async clear(input: ResolveInput): Promise<void> {
    const subject = this.subject(input.subject);
    const { keys } = this.options;
    try {
      const fields = (await RESOLVE.run(
        this.options.redis,
        [
          keys.notificationActive(input.group, subject),
          ...input.kinds.map((k) => keys.notificationCooldown(k.kind, subject, k.level)),
        ],
        [],
      )) as string[];
      if (fields.length === 0) return;
      // The resolved notice speaks for the most severe condition that was firing.
      const [kind, level] = fields
        .map((f) => f.split('|') as [string, NotificationLevel])
        .sort((a, b) => SEVERITY[b[1]] - SEVERITY[a[1]])[0] ?? [input.group, 'info'];
      await this.enqueue(
        this.build(
          {
            kind,
            level,
            title: input.title,
            message: input.message,
            details: { ...input.details, resolved: fields },
            subject: input.subject,
          },
          level,
          'resolved',
        ),
      );
    } catch (err) {
      this.log.warn('Could not resolve a notification while Redis is away', {
        group: input.group,
        err,
      });
    }
  }

  private async enqueue(notification: Notification): Promise<void> {
    const queue = await this.queue.get();
    await queue.add(
      'notification',
      JSON.parse(encodePayload('notification', notification)) as Notification,
      {
        jobId: notification.id,
        attempts: this.options.config.deliveryAttempts,
        backoff: { type: 'custom' },
        removeOnComplete: { count: 1_000 },
        removeOnFail: { count: 5_000 },
      },
    );
    this.log.info('Notification raised', {
      notificationId: notification.id,
      kind: notification.kind,
      notificationLevel: notification.level,
      status: notification.status,
    });
  }

  /** Redis is away: keep the notification (bounded, oldest dropped first) for later. */
  private hold(notification: Notification, err: unknown): void {
    if (this.buffer.length >= this.options.config.bufferSize) {
      this.buffer.shift();
      this.dropped += 1;
    }
    this.buffer.push(notification);
    this.log.warn('Notification held: Redis unavailable', {
      kind: notification.kind,
      buffered: this.buffer.length,
      err,
    });
    this.redisLost();
  }

  private redisLost(): void {
    if (this.downSince !== undefined) return;
    this.downSince = Date.now();
    this.downTimer = setTimeout(
      () => this.track(this.reportOutage()),
      this.options.config.redisDownAfterMs,
    );
    this.downTimer.unref();
  }

  /** Straight to the webhooks, once per outage: Redis is away, and what is waiting. */
  private async reportOutage(): Promise<void> {
    if (this.downSince === undefined || this.reportedOutage) return;
    if (this.options.redis.status === 'ready') return;
    this.reportedOutage = true;
    const notice = this.build(
      {
        kind: 'redis_unavailable',
        level: 'critical',
        title: 'Redis unavailable',
        message: `${this.options.source.app} cannot reach Redis for ${Math.round((Date.now() - this.downSince) / 1_000)} s; notifications are held until it is back.`,
        details: {
          since: new Date(this.downSince).toISOString(),
          held: this.buffer.map((n) => `${n.level} ${n.kind}: ${n.title}`),
          dropped: this.dropped,
        },
      },
      'critical',
      'firing',
    );
    const results = await Promise.allSettled(
      this.options.directSinks.map((sink) => sink.deliver(notice)),
    );
    const failed = results.filter((r) => r.status === 'rejected').length;
    this.log.error('Redis unavailable: told the webhooks directly', {
      sinks: results.length,
      failed,
    });
  }

  /** Redis is back: say so through the queue and send what was held. */
  private redisBack(): void {
    clearTimeout(this.downTimer);
    const since = this.downSince;
    this.downSince = undefined;
    if (since !== undefined && this.reportedOutage) {
      this.reportedOutage = false;
      this.backNotice = this.build(
        {
          kind: 'redis_unavailable',
          level: 'critical',
          title: 'Redis available again',
          message: `Redis is back after ${Math.round((Date.now() - since) / 1_000)} s.`,
          details: { held: this.buffer.length, dropped: this.dropped },
        },
        'critical',
        'resolved',
      );
    }
    this.track(this.sendHeld());
  }

  /**
   * Sends the "back" notice and the held notifications, oldest first, each removed only once it is
   * on the queue; a failure keeps the rest and tries again shortly (or at the next reconnect).
   */
  private async sendHeld(): Promise<void> {
    if (this.isSendingHeld) return;
    this.isSendingHeld = true;
    try {
      if (this.backNotice !== undefined) {
        await this.enqueue(this.backNotice);
        this.backNotice = undefined;
      }
      while (this.buffer.length > 0) {
        const next = this.buffer[0];
        if (next === undefined) break;
        await this.enqueue(next);
        this.buffer.shift();
      }
      this.dropped = 0;
    } catch (err) {
      this.log.warn('Could not send the held notifications yet; retrying', {
        held: this.buffer.length,
        err,
      });
      if (this.options.redis.status === 'ready') {
        setTimeout(() => this.track(this.sendHeld()), 250).unref();
      }
    } finally {
      this.isSendingHeld = false;
    }
  }
}

/**
 * The notifier an app builds in its composition root: source tagged with app and instance, direct
 * sinks (for "Redis unavailable") from the same config as the delivery worker's, plus the log.
 */
export function createAppNotifier(options: {
  redis: Redis;
  keys: StateKeys;
  app: string;
  instanceId: string;
  config: NotificationConfig;
  logger: Logger;
}): Notifier {
  return new Notifier({
    redis: options.redis,
    keys: options.keys,
    source: { app: options.app, nodeId: options.instanceId },
    config: options.config,
    logger: options.logger,
    directSinks: [
      ...createWebhookSinks(options.config),
      new LogSink(options.logger.child({ component: 'log-sink' })),
    ],
  });
}
