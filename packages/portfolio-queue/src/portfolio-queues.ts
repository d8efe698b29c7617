import { QueueKeys, type KeysMap } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import {
  assertValidId,
  encodePayload,
  type PriceTick,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { RecoveringQueue } from './recovering-queue.ts';

/** Capacity of a portfolio queue when none is configured (DESIGN.md). */
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
  /** Failed jobs kept per queue, with their reasons, for inspection; default 1000. */
  keepFailed?: number;
  /**
   * This producer's id, carried by every event with its seq. Default: a new id per instance
   * (`producer-<pid>-<time>`), so a restarted producer numbers from 1 again under a new name.
   */
  producerId?: string;
}

/** Depth = wait + paused + prioritized + delayed + active: everything not finished. */
const DEPTH_PARTS = [
  ['wait', 'llen'],
  ['paused', 'llen'],
  ['prioritized', 'zcard'],
  ['delayed', 'zcard'],
  ['active', 'llen'],
] as const;

/**
 * The producer side of the portfolio queues. `add` checks the depth, then adds: a full queue
 * refuses the event at once (never blocking the producer), the refusal is returned and counted in
 * Redis. Check-then-add is not atomic, so concurrent producers may overshoot the capacity by at
 * most one event each — the price of using BullMQ's own add script unchanged.
 *
 * Every event is numbered: `producer` (this instance's id) and `seq`, 1, 2, … per portfolio. Its
 * job id is `<producer>-<seq>`, so an add that ioredis resends after a reconnect finds its own job
 * and adds nothing, and a consumer that already applied the seq skips it. A refused event does not
 * use its seq (the next add takes it); an add that failed may have landed, so its seq is used up.
 * Adds to one portfolio are sent one after another, in seq order.
 */
export class PortfolioQueues {
  readonly capacity: number;
  readonly producerId: string;
  private readonly nextSeq = new Map<string, number>();
  private readonly sending = new Map<string, Promise<unknown>>();
  private readonly queues = new Map<string, RecoveringQueue>();
  private readonly queueKeys: QueueKeys;
  private readonly refusedLocally = new Map<string, number>();

  constructor(private readonly options: PortfolioQueuesOptions) {
    this.capacity = options.capacity ?? DEFAULT_QUEUE_CAPACITY;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${this.capacity}`);
    }
    this.queueKeys = new QueueKeys(options.keys.queuePrefix());
    this.producerId = options.producerId ?? `producer-${process.pid}-${Date.now().toString(36)}`;
    assertValidId('producer id', this.producerId);
  }

  /**
   * Offers one tick to a portfolio's queue, after this producer's earlier adds to it. Rejects
   * only when Redis fails (the event may or may not have been added; if it was, it is applied once).
   */
  add(portfolioId: string, tick: TickInput): Promise<AddResult> {
    const previous = this.sending.get(portfolioId) ?? Promise.resolve();
    const next = previous.then(
      () => this.addNow(portfolioId, tick),
      () => this.addNow(portfolioId, tick),
    );
    this.sending.set(portfolioId, next);
    void next
      .finally(() => {
        if (this.sending.get(portfolioId) === next) this.sending.delete(portfolioId);
      })
      .catch(() => undefined);
    return next;
  }

  private async addNow(portfolioId: string, tick: TickInput): Promise<AddResult> {
    const seq = this.nextSeq.get(portfolioId) ?? 1;
    let data: string;
    try {
      data = encodePayload('priceTick', { _v: 1, ...tick, producer: this.producerId, seq });
    } catch (err) {
      return { ok: false, reason: 'invalid', problem: (err as Error).message };
    }
    const { depth } = await this.depthOf(portfolioId);
    if (depth >= this.capacity) {
      this.refusedLocally.set(portfolioId, (this.refusedLocally.get(portfolioId) ?? 0) + 1);
      await this.options.connection.hincrby(this.options.keys.queueRefusals(), portfolioId, 1);
      return { ok: false, reason: 'full', depth, capacity: this.capacity };
    }
    const queue = await this.queue(portfolioId).get();
    // From here the event may land even if the call fails: its seq is used up either way.
    this.nextSeq.set(portfolioId, seq + 1);
    const job = await queue.add(TICK_JOB, JSON.parse(data) as PriceTick, {
      jobId: `${this.producerId}-${seq}`,
      attempts: 1,
      removeOnComplete: true,
      removeOnFail: { count: this.options.keepFailed ?? 1_000 },
    });
    return { ok: true, jobId: job.id ?? '', depth: depth + 1, seq };
  }

  /** Depth of one queue (one round trip). */
  async depthOf(portfolioId: string): Promise<QueueDepth> {
    const depths = await this.readDepths([portfolioId]);
    return depths.get(portfolioId) ?? { depth: 0, capacity: this.capacity, usage: 0 };
  }

  /** Depth, capacity and usage of many queues in one pipelined round trip. */
  async readDepths(portfolioIds: readonly string[]): Promise<Map<string, QueueDepth>> {
    const pipeline = this.options.connection.pipeline();
    for (const portfolioId of portfolioIds) {
      const keys = this.keysOf(portfolioId);
      for (const [part, command] of DEPTH_PARTS) pipeline[command](keys[part] ?? '');
    }
    const replies = (await pipeline.exec()) ?? [];
    const result = new Map<string, QueueDepth>();
    portfolioIds.forEach((portfolioId, index) => {
      let depth = 0;
      for (let part = 0; part < DEPTH_PARTS.length; part++) {
        const [err, value] = replies[index * DEPTH_PARTS.length + part] ?? [null, 0];
        if (err) throw err;
        depth += Number(value);
      }
      result.set(portfolioId, { depth, capacity: this.capacity, usage: depth / this.capacity });
    });
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

  /** Closes the BullMQ queue objects (not the shared connection, which the caller owns). */
  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
  }

  private keysOf(portfolioId: string): KeysMap {
    return this.queueKeys.getKeys(this.options.keys.portfolioQueue(portfolioId));
  }

  private queue(portfolioId: string): RecoveringQueue {
    let queue = this.queues.get(portfolioId);
    if (queue === undefined) {
      queue = new RecoveringQueue(this.options.keys.portfolioQueue(portfolioId), {
        connection: this.options.connection,
        prefix: this.options.keys.queuePrefix(),
      });
      this.queues.set(portfolioId, queue);
    }
    return queue;
  }
}
