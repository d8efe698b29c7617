import { QueueKeys, type KeysMap } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import { encodePayload, type PriceTick, type StateKeys } from '@ginkgo-live/state-keys';
import { RecoveringQueue } from './recovering-queue.ts';

/** Capacity of a portfolio queue when none is configured (DESIGN.md). */
export const DEFAULT_QUEUE_CAPACITY = 1_000;

/** BullMQ job name of a price tick. */
export const TICK_JOB = 'tick';

/** A tick as producers give it; the `_v` version is added by the producer. */
export type TickInput = Omit<PriceTick, '_v'>;

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
  | { ok: true; jobId: string; depth: number }
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
 */
export class PortfolioQueues {
  readonly capacity: number;
  private readonly queues = new Map<string, RecoveringQueue>();
  private readonly queueKeys: QueueKeys;
  private readonly refusedLocally = new Map<string, number>();

  constructor(private readonly options: PortfolioQueuesOptions) {
    this.capacity = options.capacity ?? DEFAULT_QUEUE_CAPACITY;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${this.capacity}`);
    }
    this.queueKeys = new QueueKeys(options.keys.queuePrefix());
  }

  /** Offers one tick to a portfolio's queue. Rejects only when Redis fails. */
  async add(portfolioId: string, tick: TickInput): Promise<AddResult> {
    let data: string;
    try {
      data = encodePayload('priceTick', { _v: 1, ...tick });
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
    const job = await queue.add(TICK_JOB, JSON.parse(data) as PriceTick, {
      attempts: 1,
      removeOnComplete: true,
      removeOnFail: { count: this.options.keepFailed ?? 1_000 },
    });
    return { ok: true, jobId: job.id ?? '', depth: depth + 1 };
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
