import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { PeriodicLoop, type Logger } from '@ginkgo-live/runtime';
import { LuaScript } from '@ginkgo-live/redis-client';

/**
 * Take or renew the lease: the caller holds it afterwards, or someone else does.
 * KEYS[1] lease key   ARGV[1] owner   ARGV[2] TTL ms
 * Returns 1 when the caller holds it, 0 when another owner does.
 */
const TAKE = new LuaScript(`
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if owner then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`);

/** Release: delete the lease only when the caller still holds it. KEYS[1] lease key  ARGV[1] owner */
const RELEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

export interface OutageReporterLeaseOptions {
  /** A fail-fast (`request` profile) connection. */
  redis: Redis;
  /** `notify:outage_reporter` (state-keys `notificationOutageReporter`). */
  key: string;
  /** Who the caller is (app and instance); a random suffix makes it unique to this process. */
  owner: string;
  /** Lease TTL, renewed every third of it. */
  ttlMs: number;
  logger: Logger;
  /** Each renewal's outcome: false when Redis did not answer (a sign that it is away). */
  onRenewal?: (reachedRedis: boolean) => void;
}

/**
 * While Redis is away nothing shared can decide who tells the webhooks, so it is decided before:
 * every process that could tell them keeps trying to hold one lease in Redis, and the process that
 * held it when the outage began is the one that reports it (and its end). Everyone else only holds
 * its notifications until Redis is back. The holder's own estimate of its lease ends no later than
 * Redis's (it counts from before the call), so two processes never both believe they hold it.
 */
export class OutageReporterLease {
  private readonly owner: string;
  /** `performance.now()` until which this process surely holds the lease; -1 when it does not. */
  private heldUntil = -1;
  private readonly loop: PeriodicLoop;

  constructor(private readonly options: OutageReporterLeaseOptions) {
    this.owner = `${options.owner}:${randomUUID().slice(0, 8)}`;
    this.loop = new PeriodicLoop({
      name: 'outage reporter lease',
      intervalMs: options.ttlMs / 3,
      logger: options.logger,
      run: () => this.renew(),
      // The notifier's owner may exit without closing it: the lease then just expires.
      unref: true,
    });
  }

  /** Starts taking and renewing the lease (the first try at once). Idempotent. */
  start(): void {
    this.loop.start();
  }

  /** Stops renewing (after a renewal in flight) and gives the lease up, so another process takes it without waiting. */
  async stop(): Promise<void> {
    if (!this.loop.running) return;
    await this.loop.stop();
    if (this.heldUntil < performance.now()) return;
    this.heldUntil = -1;
    try {
      await RELEASE.run(this.options.redis, [this.options.key], [this.owner]);
    } catch {
      // Redis is away: the lease expires by itself within its TTL.
    }
  }

  /** Whether this process held the lease at `atMs` (a `performance.now()` reading). */
  heldAt(atMs: number): boolean {
    return atMs <= this.heldUntil;
  }

  /** Whether this process holds the lease now. */
  get isHolder(): boolean {
    return this.heldAt(performance.now());
  }

  private async renew(): Promise<void> {
    const startedAt = performance.now();
    let reached = true;
    try {
      const held = await TAKE.run(
        this.options.redis,
        [this.options.key],
        [this.owner, this.options.ttlMs],
      );
      const wasHolder = this.isHolder;
      this.heldUntil = held === 1 ? startedAt + this.options.ttlMs : -1;
      if (held === 1 && !wasHolder)
        this.options.logger.info('Holding the outage reporter lease', { owner: this.owner });
    } catch (err) {
      reached = false;
      this.options.logger.debug('Outage reporter lease not renewed', { err });
    }
    this.options.onRenewal?.(reached);
  }
}
