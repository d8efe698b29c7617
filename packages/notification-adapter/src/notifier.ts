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
import {
  describeStep,
  isBug,
  remainderOf,
  SendFailed,
  type NotifyInput,
  type ResolveInput,
  type Step,
} from './notification-step.ts';
import { OutageReporterLease } from './outage-reporter.ts';
import { RedisOutage } from './redis-outage.ts';
import { createWebhookSinks, LogSink, type Sink } from './sinks.ts';

export type { NotifyInput, ResolveInput } from './notification-step.ts';

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

export interface NotifierOptions {
  /** A fail-fast (`request` profile) connection. */
  redis: Redis;
  keys: StateKeys;
  /** Who raises: app and node id, carried in every notification. */
  source: { app: string; nodeId: string | null };
  config: NotificationConfig;
  logger: Logger;
  /**
   * Where "Redis unavailable" goes directly when Redis is away (the HTTP sinks and the log). A
   * notifier with an HTTP sink competes for the outage reporter lease; one without never reports.
   */
  directSinks: Sink[];
}

const SEVERITY: Record<NotificationLevel, number> = { info: 0, warning: 1, error: 2, critical: 3 };

/**
 * `notify()` for every app: never throws into the caller and never blocks it — the work runs in
 * the background and lands on the durable `notifications` queue. Dedupe and cooldown are shared by
 * every process through Redis, keyed by (kind, node, portfolio, level). While Redis is away raises
 * and resolves wait in a bounded buffer, and go through that same dedupe when it is back, so what
 * several processes held is told once. The outage itself is told once for the fleet (`RedisOutage`):
 * by the process that held the outage reporter lease when it began.
 */
export class Notifier {
  private readonly queue: RecoveringQueue;
  private readonly pending = new Set<Promise<void>>();
  private readonly buffer: Step[] = [];
  private dropped = 0;
  private backNotice: Notification | undefined;
  private isSendingHeld = false;
  /** Asks for a replay, counted: one asked while a replay runs makes it run another pass. */
  private replayRequests = 0;
  private replayTimer: NodeJS.Timeout | undefined;
  private readonly lease: OutageReporterLease | undefined;
  private readonly outage: RedisOutage;
  private readonly log: Logger;
  private readonly onClose = (): void => this.outage.lost();
  private readonly onReady = (): void => this.outage.back();

  constructor(private readonly options: NotifierOptions) {
    this.log = options.logger.child({ component: 'notifier' });
    this.queue = new RecoveringQueue(options.keys.notificationsQueue(), {
      connection: options.redis,
      prefix: options.keys.queuePrefix(),
    });
    this.lease = this.createLease();
    this.outage = new RedisOutage({
      redis: options.redis,
      downAfterMs: options.config.redisDownAfterMs,
      lease: this.lease,
      directSinks: options.directSinks,
      app: options.source.app,
      logger: this.log,
      notice: (status, text, details) =>
        this.build({ kind: 'redis_unavailable', level: 'critical', ...text, details }, status),
      held: () => ({ lines: this.buffer.map(describeStep), dropped: this.dropped }),
      onBack: (resolved) => {
        if (resolved !== undefined) this.backNotice = resolved;
        this.track(this.sendHeld());
      },
      track: (work) => this.track(work),
      toldKey: options.keys.notificationOutageTold(),
      lateKey: options.keys.notificationOutageLate(),
      // Long enough for the reporter to reconnect and say it told (half its lease TTL).
      lateAfterMs: Math.max(1_000, options.config.outageReporterTtlMs / 2),
    });
    options.redis.on('close', this.onClose);
    options.redis.on('ready', this.onReady);
    this.lease?.start();
  }

  /** Raises a notification. Returns at once; never throws. */
  notify(input: NotifyInput): void {
    let level = normalizeLevel(input.level);
    if (level === undefined) {
      this.log.warn('Unknown notification level; sending as error', {
        level: input.level,
        kind: input.kind,
      });
      level = 'error';
    }
    const notification = this.build({ ...input, level }, 'firing');
    this.track(this.attempt({ op: 'raise', input, level, notification }));
  }

  /** Tells that a condition cleared (one resolved notice across every process). Never throws. */
  resolve(input: ResolveInput): void {
    this.track(this.attempt({ op: 'resolve', input }));
  }

  /** Waits for the notifications in flight (for tests and shutdown). */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Raises and resolves held while Redis is away. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** Whether this process is the one that would report a Redis outage now. */
  get isOutageReporter(): boolean {
    return this.lease?.isHolder ?? false;
  }

  async close(): Promise<void> {
    this.outage.stop();
    clearTimeout(this.replayTimer);
    this.options.redis.off('close', this.onClose);
    this.options.redis.off('ready', this.onReady);
    await this.settle();
    await this.lease?.stop();
    await this.queue.close();
  }

  /** Only a process that can reach the webhooks without Redis may be the one to tell them. */
  private createLease(): OutageReporterLease | undefined {
    const { options } = this;
    if (!options.directSinks.some((sink) => !(sink instanceof LogSink))) return undefined;
    return new OutageReporterLease({
      redis: options.redis,
      key: options.keys.notificationOutageReporter(),
      owner: `${options.source.app}:${options.source.nodeId ?? '-'}`,
      ttlMs: options.config.outageReporterTtlMs,
      logger: this.log,
      onRenewal: (reachedRedis) => (reachedRedis ? this.outage.reachable() : this.outage.lost()),
    });
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
    input: NotifyInput & { level: NotificationLevel },
    status: Notification['status'] = 'firing',
  ): Notification {
    const subject = this.subject(input.subject);
    return {
      _v: 1,
      id: randomUUID(),
      kind: input.kind,
      level: input.level,
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

  /**
   * Does one step now; when Redis fails, holds what is left of it. While older steps are held it
   * waits behind them: a resolve done before the raise it answers would leave that raise firing.
   */
  private async attempt(step: Step): Promise<void> {
    if (this.buffer.length > 0) {
      this.hold(step, undefined);
      return;
    }
    try {
      await this.perform(step);
    } catch (err) {
      if (isBug(err)) throw err;
      this.hold(remainderOf(step, err), err);
    }
  }

  private async perform(step: Step): Promise<void> {
    switch (step.op) {
      case 'raise':
        return this.raise(step.input, step.level, step.notification);
      case 'resolve':
        return this.clear(step.input);
      case 'send':
        return this.send(step.notification);
    }
  }

  private async raise(
    input: NotifyInput,
    level: NotificationLevel,
    notification: Notification,
  ): Promise<void> {
    const subject = this.subject(input.subject);
    const { keys } = this.options;
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
    await this.send(notification);
  }

  private async clear(input: ResolveInput): Promise<void> {
    const subject = this.subject(input.subject);
    const { keys } = this.options;
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
    const details = { ...input.details, resolved: fields };
    await this.send(this.build({ ...input, kind, level, details }, 'resolved'));
  }

  /** Adds to the queue; a failure says that only this send is left (`SendFailed`). */
  private async send(notification: Notification): Promise<void> {
    try {
      await this.enqueue(notification);
    } catch (err) {
      throw new SendFailed(notification, err);
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

  /**
   * Redis is away: keep the step (bounded, oldest dropped first) for later. A failure on a
   * connection that stays up (a timeout) brings no reconnect event: a replay is tried shortly.
   */
  private hold(step: Step, err: unknown): void {
    if (this.buffer.length >= this.options.config.bufferSize) {
      this.buffer.shift();
      this.dropped += 1;
    }
    this.buffer.push(step);
    this.log.warn('Notification held: Redis unavailable', {
      step: describeStep(step),
      buffered: this.buffer.length,
      err: err instanceof SendFailed ? err.cause : err,
    });
    if (err !== undefined) this.outage.lost();
    if (this.options.redis.status === 'ready') this.scheduleReplay();
  }

  private scheduleReplay(): void {
    if (this.replayTimer !== undefined) return;
    this.replayTimer = setTimeout(() => {
      this.replayTimer = undefined;
      this.track(this.sendHeld());
    }, 250);
    this.replayTimer.unref();
  }

  /**
   * Sends the "back" notice, then does the held steps, oldest first, each removed only once done (a
   * held raise claims the shared dedupe then, so what several processes held is sent once); a
   * failure keeps the rest and tries again shortly (or at the next reconnect).
   */
  private async sendHeld(): Promise<void> {
    this.replayRequests += 1;
    if (this.isSendingHeld) return;
    this.isSendingHeld = true;
    try {
      let served: number;
      do {
        served = this.replayRequests;
        await this.drainHeld();
      } while (this.replayRequests !== served);
    } catch (err) {
      this.log.warn('Could not send the held notifications yet; retrying', {
        held: this.buffer.length,
        err,
      });
      if (this.options.redis.status === 'ready') this.scheduleReplay();
    } finally {
      this.isSendingHeld = false;
    }
  }

  private async drainHeld(): Promise<void> {
    if (this.backNotice !== undefined) {
      await this.enqueue(this.backNotice);
      this.backNotice = undefined;
    }
    const replayed = this.buffer.length > 0;
    while (this.buffer.length > 0) await this.replayOldest();
    this.dropped = 0;
    // Redis answered: an outage seen only through failed commands (no reconnect) ends here.
    if (replayed) this.outage.reachable();
  }

  /** Does the oldest held step; on failure it stays first, reduced to what is left of it. */
  private async replayOldest(): Promise<void> {
    const step = this.buffer[0];
    if (step === undefined) return;
    try {
      await this.perform(step);
    } catch (err) {
      const at = this.buffer.indexOf(step);
      if (!isBug(err)) {
        if (at >= 0) this.buffer[at] = remainderOf(step, err);
        throw err;
      }
      this.log.error('Notification lost to a bug', { step: describeStep(step), err });
    }
    const at = this.buffer.indexOf(step);
    if (at >= 0) this.buffer.splice(at, 1);
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
