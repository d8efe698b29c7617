import { Cluster, type Redis } from 'ioredis';
import { keySlot, type RedisLike } from '@ginkgo-live/redis-client';
import type { PortfolioQueueLayout } from './queue-reader.ts';

export interface QueueWakeupsOptions {
  /** A fail-fast connection, never blocked: the looks and the wake-ups of the waits. */
  redis: RedisLike;
  /**
   * Opens a blocking connection of its own, for the queues of one hash slot (all of them on one
   * Redis). It is disconnected when no queue of that slot is waited on any more, and by `close`.
   */
  openBlocking: (slot: number | null) => Redis | Cluster;
  /**
   * How long one wait blocks before the queues waited on are looked at (ms): an add ends it at
   * once, so this bounds only a wake-up lost (another reader took the marker, a blocking
   * connection dead without a word).
   */
  lookAfterMs: number;
  /** Names the wake-up key of this process's waits (`<queue>:wakeup:<owner>`): the node id. */
  owner: string;
}

/** One reader's place in the waits (`join`). */
export interface QueueWaitMember {
  layout: PortfolioQueueLayout;
  /** Set while its reader waits: ends the wait. */
  resolve: (() => void) | undefined;
  /** An add marked its queue while its reader did not wait: the next wait ends at once. */
  marked: boolean;
}

/** The waits of the queues in one hash slot (every queue on one Redis). */
interface Group {
  slot: number | null;
  members: Set<QueueWaitMember>;
  blocking: Redis | Cluster;
  /**
   * Its waits' own key, which a `ZADD` ends them with: in the slot of the queue it was made for
   * (its hash tag), which it stays in whatever queues come and go.
   */
  wakeKey: string;
  /** Whether a wait is in flight, and whether it was woken already. */
  blocked: boolean;
  woken: boolean;
}

/**
 * One blocking wait for all the queues a process reads, instead of one per queue (and one blocking
 * connection): `BZPOPMIN` on every queue's marker at once (BullMQ's marker, which the bounded add
 * sets), per hash slot on a Redis Cluster (a command's keys share a slot). A marker popped ends
 * its reader's wait, or, while that reader is busy, its next wait at once — so an add is never
 * missed, as with a wait of its own. A reader that joins or leaves makes the wait in flight end
 * (a `ZADD` on the wait's own wake-up key) and start again with the new set, so a new queue's add
 * ends its wait at once too, and a queue left is no longer popped here (a marker popped for a
 * queue that left meanwhile is put back for whoever reads it now).
 *
 * Every `lookAfterMs` (the wait's timeout, when nothing ends it earlier) the queues whose readers
 * wait are looked at (one `EXISTS` of their wait lists): any non-empty, and those readers look
 * themselves; else nothing more is sent. On one Redis an idle process so sends two commands per
 * `lookAfterMs`, whatever its queues.
 */
export class QueueWakeups {
  private readonly groups = new Map<number | null, Group>();
  private closed = false;

  constructor(private readonly options: QueueWakeupsOptions) {}

  /** Adds a reader's queue to the waits; `leave` removes it. */
  join(layout: PortfolioQueueLayout): QueueWaitMember {
    const member: QueueWaitMember = { layout, resolve: undefined, marked: false };
    if (this.closed) return member;
    const slot = this.options.redis instanceof Cluster ? keySlot(layout.marker) : null;
    let group = this.groups.get(slot);
    if (group === undefined) {
      group = {
        slot,
        members: new Set(),
        blocking: this.options.openBlocking(slot),
        wakeKey: `${layout.jobPrefix}wakeup:${this.options.owner}`,
        blocked: false,
        woken: false,
      };
      this.groups.set(slot, group);
      group.members.add(member);
      void this.run(group);
    } else {
      group.members.add(member);
      this.wake(group);
    }
    return member;
  }

  /** Ends the member's wait, if any, and drops its queue from the waits. */
  leave(member: QueueWaitMember): void {
    member.resolve?.();
    member.resolve = undefined;
    for (const group of this.groups.values()) {
      if (group.members.delete(member)) this.wake(group);
    }
  }

  /**
   * Resolves when an add marked the member's queue (since its last wait), when a look found one of
   * the waiting queues non-empty, when a wait failed (Redis away: the reader's own read meets the
   * error), or on `leave`.
   */
  wait(member: QueueWaitMember): Promise<void> {
    // Closed: a reader started after the close would otherwise peek and wait in a tight loop;
    // its runner backs off on the rejection.
    if (this.closed) return Promise.reject(new Error('Queue waits closed'));
    if (member.marked) {
      member.marked = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      member.resolve = resolve;
    });
  }

  /** Ends every wait and disconnects the blocking connections. */
  close(): void {
    this.closed = true;
    for (const group of this.groups.values()) {
      for (const member of group.members) this.end(member);
      group.members.clear();
      group.blocking.disconnect();
    }
    this.groups.clear();
  }

  /** A method, not a field test: the compiler would keep a check's narrowing across the awaits. */
  private isClosed(): boolean {
    return this.closed;
  }

  private end(member: QueueWaitMember): void {
    member.resolve?.();
    member.resolve = undefined;
  }

  /** The members changed: the wait in flight ends, and the next one waits on the new set. */
  private wake(group: Group): void {
    if (!group.blocked || group.woken) return;
    group.woken = true;
    // Failing, the wait ends anyway (its connection fails too) or at its timeout.
    void Promise.resolve(this.options.redis.zadd(group.wakeKey, 0, 'wakeup')).catch(
      () => undefined,
    );
  }

  private async run(group: Group): Promise<void> {
    const { lookAfterMs } = this.options;
    const { wakeKey } = group;
    // The looks keep their pace whatever ends the waits: a queue whose wake-up was lost is looked
    // at within `lookAfterMs` even while the other queues' adds end every wait early.
    let lookedAt = performance.now();
    while (!this.closed && group.members.size > 0) {
      const members = [...group.members];
      group.blocked = true;
      group.woken = false;
      let popped: [string, string, string] | null;
      try {
        popped = await group.blocking.bzpopmin(
          ...new Set(members.map((m) => m.layout.marker)),
          wakeKey,
          Math.max(0.01, (lookedAt + lookAfterMs - performance.now()) / 1_000),
        );
      } catch {
        group.blocked = false;
        if (this.isClosed()) break;
        // Redis away, or the connection closed: every reader looks for itself and meets the
        // error there (and backs off), as with a wait of its own.
        for (const member of group.members) this.end(member);
        await sleep(100);
        continue;
      } finally {
        group.blocked = false;
      }
      if (popped !== null && popped[0] !== wakeKey) {
        const [key, value, score] = popped;
        await this.marked(group, key, value, score);
        // BZPOPMIN takes the first marked key in its list only: the others' adds (a feed round adds
        // to every queue at once) would each wait a turn in join order, and behind a busy queue
        // whose marker is set again at every add, the last ones until the look. Every other marker
        // set now is taken in the same turn.
        await this.drain(group, key);
      }
      if (popped === null || performance.now() - lookedAt >= lookAfterMs) {
        lookedAt = performance.now();
        await this.look(group);
      }
    }
    if (this.groups.get(group.slot) === group && group.members.size === 0) {
      this.groups.delete(group.slot);
      group.blocking.disconnect();
    }
  }

  /** A marker taken: its members' waits end (or their next one returns at once). */
  private async marked(group: Group, key: string, value: string, score: string): Promise<void> {
    const marked = [...group.members].filter((m) => m.layout.marker === key);
    for (const member of marked) {
      if (member.resolve !== undefined) this.end(member);
      else member.marked = true;
    }
    // The queue left while the wait was in flight: its marker goes back for its new reader.
    if (marked.length === 0)
      await Promise.resolve(this.options.redis.zadd(key, score, value)).catch(() => undefined);
  }

  /** Takes every member's marker set now but `taken`'s, without blocking (one pipeline). */
  private async drain(group: Group, taken: string): Promise<void> {
    const keys = [...new Set([...group.members].map((m) => m.layout.marker))].filter(
      (key) => key !== taken,
    );
    if (keys.length === 0) return;
    const pipeline = this.options.redis.pipeline();
    for (const key of keys) pipeline.zpopmin(key);
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await pipeline.exec();
    } catch {
      // Not taken: the next BZPOPMIN (or the look) finds them.
      return;
    }
    for (const [i, key] of keys.entries()) {
      const [err, reply] = replies?.[i] ?? [null, []];
      if (err !== null || !Array.isArray(reply) || reply.length < 2) continue;
      await this.marked(group, key, String(reply[0]), String(reply[1]));
    }
  }

  /** Every `lookAfterMs`: the waiting queues, any of them non-empty, look themselves. */
  private async look(group: Group): Promise<void> {
    const waiting = [...group.members].filter((m) => m.resolve !== undefined);
    if (waiting.length === 0) return;
    let found: number;
    try {
      found = await this.options.redis.exists(...new Set(waiting.map((m) => m.layout.wait)));
    } catch {
      found = 1;
    }
    if (found > 0) for (const member of waiting) this.end(member);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
