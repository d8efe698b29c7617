import { Cluster, type Redis } from 'ioredis';
import { byMaster } from '@ginkgo-live/redis-client';
import type { StateKeys } from '@ginkgo-live/state-keys';

/** What one `PTTL` said of a node's heartbeat key, by the liveness rule. */
type Seen = 'alive' | 'absent' | 'no ttl';

interface Known {
  id: string;
  key: string;
  seen: Seen;
  /** When its `PTTL` was last read (this process's monotonic clock, ms). */
  checkedAtMs: number;
}

export interface LivenessIndexOptions {
  /** Keys per `EXISTS` (one Redis): a chunk whose count is off has each of its keys read again. */
  chunk?: number;
  /**
   * A key that exists is read again with `PTTL` at least this often (ms): `EXISTS` cannot tell a
   * key that lost its TTL (made permanent by hand) from a live one. Default 60 s.
   */
  recheckMs?: number;
  /** At most this many of those re-reads per call, so that none of them is a whole-fleet read. */
  recheckBatch?: number;
  /** A monotonic clock (ms). */
  now?: () => number;
}

/**
 * Every node's liveness by the one rule (its heartbeat key exists with a TTL), without a command
 * per node on one Redis. The first call reads a `PTTL` per heartbeat. Later calls expect each key
 * to be as last seen and check that with one `EXISTS` per chunk of keys expected to exist and one
 * per chunk expected not to: Redis counts the keys that exist now, by its own clock (an expired key
 * does not). A count that is off — a node died or came back, a key was deleted — has that chunk's
 * keys read again with `PTTL`. So the answer is what a `PTTL` of every key would say now, whatever
 * the nodes' clocks or TTLs (no time is compared here), except for a key whose TTL was removed by
 * hand (it still exists): that is seen at the key's next `PTTL`, within `recheckMs` while the index
 * is used. A key seen without a TTL is read with `PTTL` at every call. Two counts per chunk, not one: a node that died and one that came back in the same
 * chunk would leave a single count unchanged.
 *
 * On a Redis Cluster each heartbeat has its own hash slot (`heartbeat:node:{id}`), and a
 * multi-key `EXISTS` cannot span slots: there a `PTTL` per node is read every call, pipelined per
 * master.
 */
export class LivenessIndex {
  private known = new Map<string, Known>();
  private readonly chunk: number;
  private readonly recheckMs: number;
  private readonly recheckBatch: number;
  private readonly now: () => number;

  constructor(
    private readonly redis: Redis,
    private readonly keys: StateKeys,
    options: LivenessIndexOptions = {},
  ) {
    this.chunk = options.chunk ?? 250;
    this.recheckMs = options.recheckMs ?? 60_000;
    this.recheckBatch = options.recheckBatch ?? 100;
    this.now = options.now ?? (() => performance.now());
  }

  /**
   * Whether each of `ids` is alive now; rejects when Redis fails. What was seen before is only ever
   * a guess that the next call checks, so a failed call leaves nothing to forget.
   */
  async online(ids: readonly string[]): Promise<Map<string, boolean>> {
    const started = this.now();
    const known = this.known;
    const next = new Map<string, Known>();
    const toRead: string[] = [];
    const expectPresent: Known[] = [];
    const expectAbsent: Known[] = [];
    const cluster = this.redis instanceof Cluster;
    let rechecks = 0;
    for (const id of ids) {
      const before = known.get(id);
      // A key without a TTL exists whether or not a beat gave it one since: only PTTL tells.
      if (before === undefined || cluster || before.seen === 'no ttl') {
        toRead.push(id);
        continue;
      }
      next.set(id, before);
      if (before.seen === 'absent') expectAbsent.push(before);
      else if (rechecks < this.recheckBatch && started - before.checkedAtMs >= this.recheckMs) {
        rechecks += 1;
        toRead.push(id);
      } else expectPresent.push(before);
    }

    // Round trip 1: the PTTLs of new or due nodes, and the counts of every chunk.
    const present = chunks(expectPresent, this.chunk);
    const absent = chunks(expectAbsent, this.chunk);
    const pttls = new Map<string, number>();
    const counted = await this.readTtls(toRead, [...present, ...absent], pttls);

    // Round trip 2, only when a count was off: that chunk's keys, one PTTL each.
    const stale: string[] = [];
    present.forEach((group, i) => {
      if (counted[i] !== group.length) for (const k of group) stale.push(k.id);
    });
    absent.forEach((group, i) => {
      if (counted[present.length + i] !== 0) for (const k of group) stale.push(k.id);
    });
    if (stale.length > 0) await this.readTtls(stale, [], pttls);

    const checkedAtMs = this.now();
    for (const [id, ttl] of pttls)
      next.set(id, {
        id,
        key: this.keys.heartbeat(id),
        // -2: no key; -1: a key without a TTL, never alive by the rule.
        seen: ttl >= 0 ? 'alive' : ttl === -1 ? 'no ttl' : 'absent',
        checkedAtMs,
      });
    this.known = next;
    const out = new Map<string, boolean>();
    for (const id of ids) out.set(id, next.get(id)?.seen === 'alive');
    return out;
  }

  /**
   * `PTTL` of each of `ids`' heartbeats into `pttls` (pipelined per master on a cluster), and one
   * `EXISTS` per group of `counts` in the first pipeline: their replies, in order.
   */
  private async readTtls(
    ids: readonly string[],
    counts: readonly Known[][],
    pttls: Map<string, number>,
  ): Promise<number[]> {
    const groups = byMaster(this.redis, ids, (id) => this.keys.heartbeat(id));
    if (counts.length > 0 && groups.length === 0) groups.push([]);
    const replies = await Promise.all(
      groups.map(async (group, g) => {
        const pipeline = this.redis.pipeline();
        for (const id of group) pipeline.pttl(this.keys.heartbeat(id));
        const withCounts = g === 0 ? counts : [];
        for (const chunk of withCounts) pipeline.exists(...chunk.map((k) => k.key));
        const got = (await pipeline.exec()) ?? [];
        if (got.length !== group.length + withCounts.length)
          throw new Error('Liveness index: a reply is missing');
        const values = got.map(([err, value]) => {
          if (err) throw err;
          return value as number;
        });
        group.forEach((id, i) => pttls.set(id, values[i] as number));
        return values.slice(group.length);
      }),
    );
    return replies.flat();
  }
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
