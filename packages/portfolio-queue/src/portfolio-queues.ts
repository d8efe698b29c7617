import { randomBytes } from 'node:crypto';
import { QueueKeys, type KeysMap } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import {
  assertValidId,
  encodePayload,
  type PriceTick,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { byMaster, LuaScript } from '@ginkgo-live/redis-client';

/** Capacity of a portfolio queue when none is configured (docs/architecture.md, "Defaults"). */
export const DEFAULT_QUEUE_CAPACITY = 1_000;

/** BullMQ job name of a price tick. */
export const TICK_JOB = 'tick';

/** A tick as producers give it; `_v`, `producer` and `seq` are added by `PortfolioQueues`. */
export type TickInput = Omit<PriceTick, '_v' | 'producer' | 'seq'>;

/** How full one portfolio queue is. */
export interface QueueDepth {
  /** Events waiting or in processing. */
  depth: number;
  capacity: number;
  /** depth / capacity (may exceed 1 by the bounded overshoot of concurrent producers). */
  usage: number;
}

/** The outcome of offering an event: accepted, or refused with the reason. */
export type AddResult =
  | { ok: true; jobId: string; depth: number; seq: number }
  | { ok: false; reason: 'full'; depth: number; capacity: number }
  | { ok: false; reason: 'invalid'; problem: string };

export interface PortfolioQueuesOptions {
  /** A fail-fast (`request` profile) connection, shared by every queue of this producer (or a cluster). */
  connection: Redis | Cluster;
  keys: StateKeys;
  /** Events a queue may hold; default 1000. */
  capacity?: number;
  /**
   * This producer's id, carried by every event with its seq. Default: a new id per instance
   * (`producer-<pid>-<time>-<random>`), so a restarted producer numbers from 1 again under a new
   * name. An id given here must never be reused by a later instance: its first events would look
   * like resends of the earlier one's and be skipped.
   */
  producerId?: string;
}

/** Depth = wait + paused + prioritized + delayed + active: everything not finished (as BOUNDED_ADD counts). */
const DEPTH_PARTS = [
  ['wait', 'llen'],
  ['paused', 'llen'],
  ['prioritized', 'zcard'],
  ['delayed', 'zcard'],
  ['active', 'llen'],
] as const;

/**
 * The bounded add, in one script in the portfolio's slot: depth counted and the job stored in
 * BullMQ's layout (job hash, wait list, marker, `waiting` event) only when the queue has room, so
 * the capacity holds exactly whatever the number of producers. A job id already present (an add
 * resent after a reconnect) adds nothing and answers `dup`.
 * KEYS[1] wait  KEYS[2] paused  KEYS[3] prioritized  KEYS[4] delayed  KEYS[5] active  KEYS[6] marker
 * KEYS[7] events  KEYS[8] meta   ARGV[1] job key prefix  ARGV[2] job id  ARGV[3] job name
 * ARGV[4] data  ARGV[5] options (JSON)  ARGV[6] timestamp (ms)  ARGV[7] capacity
 * Returns { 'ok' | 'dup' | 'full', depth before the add }.
 */
const BOUNDED_ADD = new LuaScript(`
local depth = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])
  + redis.call('ZCARD', KEYS[4]) + redis.call('LLEN', KEYS[5])
local job = ARGV[1] .. ARGV[2]
if redis.call('EXISTS', job) == 1 then return { 'dup', depth } end
if depth >= tonumber(ARGV[7]) then return { 'full', depth } end
redis.call('HSET', job, 'name', ARGV[3], 'data', ARGV[4], 'opts', ARGV[5], 'timestamp', ARGV[6],
  'delay', 0, 'priority', 0)
if redis.call('HEXISTS', KEYS[8], 'paused') == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[2])
else
  redis.call('LPUSH', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[6], 0, '0')
end
redis.call('XADD', KEYS[7], 'MAXLEN', '~', 10000, '*', 'event', 'waiting', 'jobId', ARGV[2])
return { 'ok', depth }
`);

/** BullMQ job options stored with every event (read back by BullMQ's own inspection calls). */
const JOB_OPTIONS = JSON.stringify({ attempts: 1 });

/**
 * The producer side of the portfolio queues. `add` offers an event in one script that counts the
 * depth and adds only below the capacity: a full queue refuses the event at once (never blocking
 * the producer), the refusal is returned and counted in Redis.
 *
 * Every event is numbered: `producer` (this instance's id) and `seq`, 1, 2, … per portfolio, its
 * job id `<producer>-<seq>`. An add is sent as soon as it is called, so a producer's adds to one
 * portfolio reach Redis in seq order on its connection without waiting for each other; ioredis
 * resends unanswered ones in the same order after a reconnect, and a resend of a job still queued
 * adds nothing, while a consumer skips a seq it already applied. Each call uses up its seq, whatever
 * the outcome (a refused or failed seq is a gap the consumer steps over).
 */
export class PortfolioQueues {
  readonly capacity: number;
  readonly producerId: string;
  private readonly nextSeq = new Map<string, number>();
  private readonly queueKeys: QueueKeys;
  private readonly refusedLocally = new Map<string, number>();

  constructor(private readonly options: PortfolioQueuesOptions) {
    this.capacity = options.capacity ?? DEFAULT_QUEUE_CAPACITY;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${this.capacity}`);
    }
    this.queueKeys = new QueueKeys(options.keys.queuePrefix());
    this.producerId =
      options.producerId ??
      `producer-${process.pid}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    assertValidId('producer id', this.producerId);
  }

  /**
   * Offers one tick to a portfolio's queue. Rejects only when Redis fails (the event may or may
   * not have been added; if it was, it is applied once).
   */
  async add(portfolioId: string, tick: TickInput): Promise<AddResult> {
    const seq = this.nextSeq.get(portfolioId) ?? 1;
    let data: string;
    try {
      data = encodePayload('priceTick', { _v: 1, ...tick, producer: this.producerId, seq });
    } catch (err) {
      return { ok: false, reason: 'invalid', problem: (err as Error).message };
    }
    this.nextSeq.set(portfolioId, seq + 1);
    const jobId = `${this.producerId}-${seq}`;
    const keys = this.keysOf(portfolioId);
    // Sent now, before any await: the order of calls is the order on the wire.
    const [outcome, depth] = (await BOUNDED_ADD.run(
      this.options.connection,
      [
        keys.wait ?? '',
        keys.paused ?? '',
        keys.prioritized ?? '',
        keys.delayed ?? '',
        keys.active ?? '',
        keys.marker ?? '',
        keys.events ?? '',
        keys.meta ?? '',
      ],
      [keys[''] ?? '', jobId, TICK_JOB, data, JOB_OPTIONS, Date.now(), this.capacity],
    )) as [string, number];
    if (outcome === 'full') {
      this.refusedLocally.set(portfolioId, (this.refusedLocally.get(portfolioId) ?? 0) + 1);
      await this.options.connection.hincrby(this.options.keys.queueRefusals(), portfolioId, 1);
      return { ok: false, reason: 'full', depth, capacity: this.capacity };
    }
    return { ok: true, jobId, depth: outcome === 'ok' ? depth + 1 : depth, seq };
  }

  /** Depth of one queue (one round trip). */
  async depthOf(portfolioId: string): Promise<QueueDepth> {
    const depths = await this.readDepths([portfolioId]);
    return depths.get(portfolioId) ?? { depth: 0, capacity: this.capacity, usage: 0 };
  }

  /**
   * Depth, capacity and usage of many queues in one pipelined round trip (on a cluster, one
   * pipeline per master, sent together: a pipeline may not span masters).
   */
  async readDepths(portfolioIds: readonly string[]): Promise<Map<string, QueueDepth>> {
    const { connection } = this.options;
    const groups = byMaster(connection, portfolioIds, (id) => this.keysOf(id).wait ?? '');
    const replies = await Promise.all(
      groups.map((group) => {
        const pipeline = connection.pipeline();
        for (const portfolioId of group) {
          const keys = this.keysOf(portfolioId);
          for (const [part, command] of DEPTH_PARTS) pipeline[command](keys[part] ?? '');
        }
        return pipeline.exec();
      }),
    );
    const found = new Map<string, QueueDepth>();
    groups.forEach((group, g) => {
      group.forEach((portfolioId, index) => {
        let depth = 0;
        for (let part = 0; part < DEPTH_PARTS.length; part++) {
          const [err, value] = replies[g]?.[index * DEPTH_PARTS.length + part] ?? [null, 0];
          if (err) throw err;
          depth += Number(value);
        }
        found.set(portfolioId, { depth, capacity: this.capacity, usage: depth / this.capacity });
      });
    });
    // In the caller's order, as on one Redis.
    const result = new Map<string, QueueDepth>();
    for (const id of portfolioIds) {
      const depth = found.get(id);
      if (depth !== undefined) result.set(id, depth);
    }
    return result;
  }

  /** Events refused by full queues, as counted in Redis by every producer, per portfolio. */
  async readRefusals(portfolioIds: readonly string[]): Promise<Map<string, number>> {
    if (portfolioIds.length === 0) return new Map();
    const counts = await this.options.connection.hmget(
      this.options.keys.queueRefusals(),
      ...portfolioIds,
    );
    return new Map(portfolioIds.map((id, i) => [id, Number(counts[i] ?? 0)]));
  }

  /** Events this producer had refused, per portfolio (process-local). */
  refusedByThisProducer(portfolioId: string): number {
    return this.refusedLocally.get(portfolioId) ?? 0;
  }

  /** Nothing to close: the connection is the caller's. Kept so callers need not know. */
  async close(): Promise<void> {
    await Promise.resolve();
  }

  private keysOf(portfolioId: string): KeysMap {
    return this.queueKeys.getKeys(this.options.keys.portfolioQueue(portfolioId));
  }
}
