import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '@ginkgo-live/runtime';
import type {
  Notification,
  NotificationLevel,
  NotificationSubject,
  StateKeys,
} from '@ginkgo-live/state-keys';
import {
  CONDITIONS,
  dedupeSubject,
  KINDS,
  kindsOf,
  raisedText,
  resolvedText,
  type ConditionDetails,
  type ConditionName,
  type ConditionSubject,
  type KindDetails,
  type KindName,
  type KindSubject,
  type LevelArg,
} from './catalogue.ts';
import type { NotificationConfig } from './config.ts';
import { mostSevere, SharedDedupe } from './dedupe.ts';
import { NotificationQueue } from './notification-queue.ts';
import type { Step } from './notification-step.ts';
import { OutageBuffer } from './outage-buffer.ts';
import { OutageReporterLease } from './outage-reporter.ts';
import { RedisOutage } from './redis-outage.ts';
import { routedSinks } from './routes.ts';
import { createSinks, LogSink, type Sink } from './sinks.ts';

/**
 * The kinds raised through the queue and the shared dedupe. `redis_unavailable` is not: it is told
 * straight to the webhooks by `RedisOutage`, when the queue cannot be reached.
 */
export type QueuedKind = Exclude<KindName, 'redis_unavailable'>;
export type QueuedCondition = Exclude<ConditionName, 'redis_unavailable'>;

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

/**
 * How every app tells operators: `raise(kind, subject, details)` and `resolve(condition, subject,
 * details)`, by the names of the catalogue. Never throws into the caller and never blocks it — the
 * work runs in the background. Three parts do it: the shared dedupe (`SharedDedupe`: is this
 * occurrence new, who tells that it cleared), the queue (`NotificationQueue`: the durable
 * `notifications` queue), and the outage buffer (`OutageBuffer`: what waits while Redis is away).
 * The outage itself is told once for the fleet (`RedisOutage`): by the process that held the
 * outage reporter lease when it began.
 */
export class Notifier {
  private readonly dedupe: SharedDedupe;
  private readonly queue: NotificationQueue;
  private readonly buffer: OutageBuffer;
  private readonly pending = new Set<Promise<void>>();
  /** "Redis available again", queued before the held steps. */
  private backNotice: Notification | undefined;
  private readonly lease: OutageReporterLease | undefined;
  private readonly outage: RedisOutage;
  private readonly log: Logger;
  private readonly onClose = (): void => this.outage.lost();
  private readonly onReady = (): void => this.outage.back();

  constructor(private readonly options: NotifierOptions) {
    this.log = options.logger.child({ component: 'notifier' });
    this.dedupe = new SharedDedupe(options.redis, options.keys, options.config);
    this.queue = NotificationQueue.open(
      options.redis,
      options.keys,
      options.config.deliveryAttempts,
      this.log,
    );
    this.buffer = new OutageBuffer({
      capacity: options.config.bufferSize,
      perform: (step) => this.perform(step),
      isConnected: () => options.redis.status === 'ready',
      onUnreachable: () => this.outage.lost(),
      beforeReplay: () => this.sendBackNotice(),
      // Redis answered: an outage seen only through failed commands (no reconnect) ends here.
      afterReplay: (replayed) => {
        if (replayed) this.outage.reachable();
      },
      track: (work) => this.track(work),
      logger: this.log,
    });
    this.lease = this.createLease();
    this.outage = new RedisOutage({
      redis: options.redis,
      downAfterMs: options.config.redisDownAfterMs,
      lease: this.lease,
      directSinks: options.directSinks,
      app: options.source.app,
      logger: this.log,
      notice: (notice) => this.build(notice),
      held: () => this.buffer.summary(),
      onBack: (resolved) => {
        if (resolved !== undefined) this.backNotice = resolved;
        this.track(this.buffer.replay());
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

  /**
   * Raises one occurrence of a kind of the catalogue: sent unless the shared dedupe already told it
   * (within the level's cooldown, by any process). Returns at once; never throws.
   */
  raise<K extends QueuedKind>(
    kind: K,
    subject: KindSubject<K>,
    details: KindDetails<K>,
    ...[level]: LevelArg<K>
  ): void {
    this.guarded(kind, () => {
      const spec = KINDS[kind];
      const levels: readonly NotificationLevel[] = spec.levels;
      const asked = level as NotificationLevel | undefined;
      // The compiler keeps callers to the catalogue; this is for a caller it cannot see.
      if (asked !== undefined && !levels.includes(asked))
        throw new RangeError(`${kind} has no level ${asked} (it has ${levels.join(', ')})`);
      this.raiseStep({
        kind,
        level: asked ?? levels[0] ?? 'critical',
        group: CONDITIONS[spec.condition].group,
        subject: dedupeSubject(subject),
        text: raisedText(kind, subject, details),
      });
    });
  }

  /**
   * Tells that a condition of the catalogue cleared: one resolved notice across every process (the
   * one that clears it sends it), which also ends the cooldowns of its kinds. Never throws.
   */
  resolve<C extends QueuedCondition>(
    condition: C,
    subject: ConditionSubject<C>,
    details: ConditionDetails<C>,
  ): void {
    this.guarded(condition, () => {
      const text = resolvedText(condition, subject, details);
      this.track(
        this.buffer.attempt({
          op: 'resolve',
          group: CONDITIONS[condition].group,
          subject: dedupeSubject(subject),
          kinds: kindsOf(condition),
          ...text,
        }),
      );
    });
  }

  /** Waits for the notifications in flight (for tests and shutdown). */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Raises and resolves held while Redis is away. */
  get buffered(): number {
    return this.buffer.size;
  }

  /** Whether this process is the one that would report a Redis outage now. */
  get isOutageReporter(): boolean {
    return this.lease?.isHolder ?? false;
  }

  async close(): Promise<void> {
    this.outage.stop();
    this.buffer.stop();
    this.options.redis.off('close', this.onClose);
    this.options.redis.off('ready', this.onReady);
    await this.settle();
    await this.lease?.stop();
    await this.queue.close();
  }

  /** Only a process that can reach the webhooks without Redis may be the one to tell them. */
  private createLease(): OutageReporterLease | undefined {
    const { options } = this;
    if (!options.directSinks.some((sink) => sink.name !== 'log')) return undefined;
    return new OutageReporterLease({
      redis: options.redis,
      key: options.keys.notificationOutageReporter(),
      owner: `${options.source.app}:${options.source.nodeId ?? '-'}`,
      ttlMs: options.config.outageReporterTtlMs,
      logger: this.log,
      onRenewal: (reachedRedis) => (reachedRedis ? this.outage.reachable() : this.outage.lost()),
    });
  }

  private raiseStep(raise: {
    kind: string;
    level: NotificationLevel;
    group: string;
    subject: NotificationSubject;
    text: { title: string; message: string; details: Record<string, unknown> };
  }): void {
    const notification = this.build({
      kind: raise.kind,
      level: raise.level,
      status: 'firing',
      subject: raise.subject,
      ...raise.text,
    });
    const { kind, level, group, subject } = raise;
    this.track(this.buffer.attempt({ op: 'raise', kind, level, group, subject, notification }));
  }

  /** Runs a caller's raise or resolve; a bug in it is logged, never thrown into the caller. */
  private guarded(name: string, work: () => void): void {
    try {
      work();
    } catch (err) {
      this.log.error('Notification lost to a bug', { kind: name, err });
    }
  }

  private track(work: Promise<void>): void {
    const guarded = work.catch((err: unknown) => {
      this.log.error('Notification lost to a bug', { err });
    });
    this.pending.add(guarded);
    void guarded.finally(() => this.pending.delete(guarded));
  }

  /** A notification as every sink receives it, from this process. */
  private build(n: {
    kind: string;
    level: NotificationLevel;
    status: Notification['status'];
    title: string;
    message: string;
    details: Record<string, unknown>;
    subject?: NotificationSubject;
  }): Notification {
    return {
      _v: 1,
      id: randomUUID(),
      kind: n.kind,
      level: n.level,
      status: n.status,
      title: n.title,
      message: n.message,
      details: n.details,
      subject: { node_id: n.subject?.nodeId ?? null, portfolio_id: n.subject?.portfolioId ?? null },
      source: { app: this.options.source.app, node_id: this.options.source.nodeId },
      created_at: new Date().toISOString(),
    };
  }

  /** Dedupe, then the queue: the step done against Redis (failures go back to the buffer). */
  private async perform(step: Step): Promise<void> {
    switch (step.op) {
      case 'raise':
        if (await this.dedupe.claim(step)) await this.queue.send(step.notification);
        else
          this.log.debug('Notification suppressed by cooldown', {
            kind: step.kind,
            level: step.level,
            subject: step.subject,
          });
        return;
      case 'resolve': {
        // The resolved notice speaks for the most severe condition that was firing.
        const fields = await this.dedupe.clear(step);
        const top = mostSevere(fields);
        if (top === undefined) return;
        await this.queue.send(
          this.build({
            ...top,
            status: 'resolved',
            subject: step.subject,
            title: step.title,
            message: step.message,
            details: { ...step.details, resolved: fields },
          }),
        );
        return;
      }
      case 'send':
        return this.queue.send(step.notification);
    }
  }

  private async sendBackNotice(): Promise<void> {
    if (this.backNotice === undefined) return;
    await this.queue.add(this.backNotice);
    this.backNotice = undefined;
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
    directSinks: routedSinks(
      [
        ...createSinks(options.config),
        new LogSink(options.logger.child({ component: 'log-sink' })),
      ],
      options.config.routing,
    ),
  });
}
