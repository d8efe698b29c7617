import { QueueKeys } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import { LuaScript, type RedisLike } from '@ginkgo-live/redis-client';
import type { StateKeys } from '@ginkgo-live/state-keys';
import { QueueWakeups, type QueueWaitMember } from './queue-wakeups.ts';

/**
 * The BullMQ keys of one portfolio queue that a consumer reads and, in its fenced commit, changes.
 * All of them carry the portfolio's hash tag, so they sit in its slot with its lease and book.
 */
export interface PortfolioQueueLayout {
  /** Prefix of a job's hash: `<jobPrefix><jobId>`. */
  jobPrefix: string;
  /** LIST of waiting job ids: producers push on the left, the oldest is on the right. */
  wait: string;
  /** LIST of jobs a BullMQ worker holds (only ever filled by workers of an earlier release). */
  active: string;
  /** ZSET of failed job ids by finish time, with their reasons in the job hashes. */
  failed: string;
  /** ZSET BullMQ's add touches when a job becomes available: what a consumer blocks on. */
  marker: string;
}

/** The layout of a portfolio's queue. */
export function portfolioQueueLayout(keys: StateKeys, portfolioId: string): PortfolioQueueLayout {
  const all = new QueueKeys(keys.queuePrefix()).getKeys(keys.portfolioQueue(portfolioId));
  const key = (name: string): string => all[name] ?? '';
  return {
    jobPrefix: key(''),
    wait: key('wait'),
    active: key('active'),
    failed: key('failed'),
    marker: key('marker'),
  };
}

/** A job waiting in a portfolio queue, as stored by BullMQ. */
export interface QueuedEvent {
  jobId: string;
  /** The job's data (JSON); null when the job id is listed but its hash is missing. */
  data: string | null;
  /** When it was added (epoch ms). */
  timestamp: number;
}

/**
 * The oldest waiting jobs, oldest first, with their data: nothing is moved or locked. Only the
 * commit of the lease holder removes a job, so what this returns stays at the head of the queue
 * until then. KEYS[1] wait   ARGV[1] job prefix   ARGV[2] how many
 */
const PEEK = new LuaScript(`
local ids = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[2]), -1)
local out = {}
for i = #ids, 1, -1 do
  local fields = redis.call('HMGET', ARGV[1] .. ids[i], 'data', 'timestamp')
  table.insert(out, ids[i])
  table.insert(out, fields[1] or '')
  table.insert(out, fields[2] or '0')
end
return out
`);

/** Reads the head of one portfolio queue and waits for it to fill. */
export class PortfolioQueueReader {
  readonly layout: PortfolioQueueLayout;
  /** Whether the last peek found the queue empty. */
  private lastPeekEmpty = false;
  private blockedOnEmpty = false;
  /** Whether the last wait ended without a mark (its timeout), no peek since. */
  private lastWaitTimedOut = false;
  /** Its place in the shared waits (with `QueueWakeups`), from its first wait to `close`. */
  private member: QueueWaitMember | undefined;
  private closed = false;

  /**
   * @param redis fail-fast connection for the reads.
   * @param blocking a connection of its own for the blocking wait (closed by `close`), or the
   * process's shared waits (`QueueWakeups`, left by `close`).
   */
  constructor(
    private readonly redis: RedisLike,
    private readonly blocking: Redis | Cluster | QueueWakeups,
    keys: StateKeys,
    portfolioId: string,
  ) {
    this.layout = portfolioQueueLayout(keys, portfolioId);
  }

  /**
   * Up to `max` of the oldest waiting jobs, oldest first. Right after a wait that timed out (no add
   * marked the queue meanwhile, so it is most likely still empty), a plain `LLEN` says so first: one
   * command instead of the script and its read, the cost of an idle runner's every look.
   */
  async peek(max: number): Promise<QueuedEvent[]> {
    if (this.lastWaitTimedOut) {
      this.lastWaitTimedOut = false;
      if ((await this.redis.llen(this.layout.wait)) === 0) {
        this.lastPeekEmpty = true;
        return [];
      }
    }
    const flat = (await PEEK.run(
      this.redis,
      [this.layout.wait],
      [this.layout.jobPrefix, max],
    )) as string[];
    const events: QueuedEvent[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const data = flat[i + 1] ?? '';
      events.push({
        jobId: flat[i] ?? '',
        data: data === '' ? null : data,
        timestamp: Number(flat[i + 2] ?? 0),
      });
    }
    this.lastPeekEmpty = events.length === 0;
    if (!this.lastPeekEmpty) this.blockedOnEmpty = false;
    return events;
  }

  /**
   * Whether the queue is known to hold nothing now, without asking Redis: the last peek found it
   * empty and the wait that followed is still blocked — an add (the bounded add of
   * `PortfolioQueues`, which marks the queue) would have ended it. So a reader of queue depths may
   * count it as 0. A wait that ended, or a peek that found events, says nothing about now.
   */
  get idle(): boolean {
    return this.blockedOnEmpty;
  }

  /**
   * Waits until an add marks the queue (BullMQ's marker) or `timeoutMs` passes. A wake-up can be
   * missed (another reader took the marker): callers peek again after the timeout anyway. With the
   * shared waits (`QueueWakeups`) `timeoutMs` is theirs, and a wait that times out looks at the
   * queue for its reader: it ends only once there is something to read (or on an error).
   */
  async waitForEvents(timeoutMs: number): Promise<void> {
    if (this.blocking instanceof QueueWakeups) {
      // Shared: it ends only on a mark (or a look that found the queue filled), never on a
      // timeout of its own, so the next peek need not look first.
      if (this.closed) throw new Error('Queue reader closed');
      this.member ??= this.blocking.join(this.layout);
      this.blockedOnEmpty = this.lastPeekEmpty;
      try {
        await this.blocking.wait(this.member);
      } finally {
        this.blockedOnEmpty = false;
      }
      return;
    }
    this.blockedOnEmpty = this.lastPeekEmpty;
    this.lastWaitTimedOut = false;
    try {
      const marked = await this.blocking.bzpopmin(
        this.layout.marker,
        Math.max(0.01, timeoutMs / 1_000),
      );
      this.lastWaitTimedOut = marked === null;
    } finally {
      this.blockedOnEmpty = false;
    }
  }

  /**
   * Closes the blocking connection (a wait in progress ends with an error), or leaves the shared
   * waits (a wait in progress ends; a later one throws).
   */
  close(): void {
    this.closed = true;
    if (!(this.blocking instanceof QueueWakeups)) {
      this.blocking.disconnect();
      return;
    }
    if (this.member !== undefined) this.blocking.leave(this.member);
    this.member = undefined;
  }
}
