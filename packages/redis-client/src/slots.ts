// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- the package ships no types; packages compiling this file through the workspace need the declaration too
/// <reference path="./cluster-key-slot.d.ts" />
import calculateSlot from 'cluster-key-slot';
import { Cluster, type Redis } from 'ioredis';

/** A connection to one Redis (or a Sentinel-managed one) or to a Redis Cluster. */
export type RedisLike = Redis | Cluster;

/** The Redis Cluster hash slot (0–16383) of a key: of its hash tag `{…}` when it has one. */
export function keySlot(key: string): number {
  return calculateSlot(key);
}

/**
 * Splits `items` into groups that one Lua script or MULTI may touch together. On a Redis Cluster
 * an operation's keys must share a hash slot: items are grouped by the slot of `keyOf(item)`, in
 * order of first appearance. On one Redis everything is one group, so a caller makes one round
 * trip there and the fewest possible on a cluster, with the same code.
 */
export function bySlot<T>(
  redis: RedisLike,
  items: readonly T[],
  keyOf: (item: T) => string,
): T[][] {
  if (!(redis instanceof Cluster)) return items.length === 0 ? [] : [[...items]];
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const slot = keySlot(keyOf(item));
    const group = groups.get(slot);
    if (group === undefined) groups.set(slot, [item]);
    else group.push(item);
  }
  return [...groups.values()];
}

/** Keys of one hash slot, with where each stood in the caller's list. */
export interface SlotGroup {
  slot: number;
  keys: string[];
  /** `keys[i]` was `positions[i]` in the list given to `groupBySlot`. */
  positions: number[];
}

/**
 * Groups `keys` by their hash slot, whatever the connection, in order of first appearance. A
 * multi-key command (`MGET`, `DEL`, `EXISTS`, `HMGET` of many hashes…) sent once per group never
 * spans slots, which a cluster refuses with `CROSSSLOT`.
 */
export function groupBySlot(keys: readonly string[]): SlotGroup[] {
  const groups = new Map<number, SlotGroup>();
  keys.forEach((key, position) => {
    const slot = keySlot(key);
    const group = groups.get(slot);
    if (group === undefined) groups.set(slot, { slot, keys: [key], positions: [position] });
    else {
      group.keys.push(key);
      group.positions.push(position);
    }
  });
  return [...groups.values()];
}

/**
 * Runs a multi-key command once per group of keys that may go together — every key at once on
 * one Redis, once per hash slot on a cluster — and returns one reply per key in the caller's
 * order. All groups are sent before any reply is awaited, so on the wire they are pipelined (per
 * master on a cluster). `command` gets a group's keys and answers one value per key, in order.
 */
export async function perKeyBySlot<V>(
  redis: RedisLike,
  keys: readonly string[],
  command: (keys: string[]) => Promise<V[]>,
): Promise<V[]> {
  if (keys.length === 0) return [];
  if (!(redis instanceof Cluster)) {
    const values = await command([...keys]);
    checkLength(values.length, keys.length);
    return values;
  }
  const groups = groupBySlot(keys);
  const replies = await Promise.all(groups.map((group) => command(group.keys)));
  const out = new Array<V>(keys.length);
  groups.forEach((group, g) => {
    const values = replies[g] ?? [];
    checkLength(values.length, group.keys.length);
    group.positions.forEach((position, i) => (out[position] = values[i] as V));
  });
  return out;
}

/** `MGET` of keys of any slots: one `MGET` per slot on a cluster; values in `keys`' order. */
export function mgetBySlot(redis: RedisLike, keys: readonly string[]): Promise<(string | null)[]> {
  // Arrays, never spread into the call: a fleet's keys outnumber what a call's arguments may hold.
  return perKeyBySlot(redis, keys, (group) => redis.mget(group));
}

/** `DEL` of keys of any slots (one `DEL` per slot on a cluster); the number of keys deleted. */
export async function delBySlot(redis: RedisLike, keys: readonly string[]): Promise<number> {
  if (keys.length === 0) return 0;
  const groups = redis instanceof Cluster ? groupBySlot(keys).map((g) => g.keys) : [[...keys]];
  const counts = await Promise.all(groups.map((group) => redis.del(group)));
  return counts.reduce((sum, n) => sum + n, 0);
}

function checkLength(got: number, wanted: number): void {
  if (got !== wanted)
    throw new Error(`a per-slot command answered ${got} values for ${wanted} keys`);
}

/**
 * The connection that carries the commands of `key`'s slot: the client itself on one Redis; on a
 * cluster, the client's connection to the master serving that slot (undefined while its slot map
 * names none). A keyless command about a write sent through `redis` goes there: `WAIT` counts the
 * replicas that acknowledged the writes of the connection it is sent on, and `INFO replication`
 * of a random node says nothing about the master that took the write.
 */
export function connectionForKey(redis: RedisLike, key: string): Redis | undefined {
  if (!(redis instanceof Cluster)) return redis;
  const address = redis.slots[keySlot(key)]?.[0];
  if (address === undefined) return undefined;
  return redis
    .nodes('master')
    .find((node) => `${node.options.host ?? ''}:${node.options.port ?? ''}` === address);
}

/**
 * Splits `items` into groups that one pipeline may carry: on a cluster, by the master that serves
 * the slot of `keyOf(item)` in the client's slot map (a slot the map does not know is a group of
 * its own), so a read of N nodes is one pipeline per master rather than per slot — on 3 masters, 3
 * instead of up to N. ioredis sends a pipeline to one master and refuses one whose keys the map
 * puts on two. Not for scripts or MULTI, whose keys must share a slot (`bySlot`). On one Redis
 * everything is one group.
 */
export function byMaster<T>(
  redis: RedisLike,
  items: readonly T[],
  keyOf: (item: T) => string,
): T[][] {
  if (!(redis instanceof Cluster)) return items.length === 0 ? [] : [[...items]];
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const slot = keySlot(keyOf(item));
    const owner = redis.slots[slot]?.[0] ?? `slot ${slot}`;
    const group = groups.get(owner);
    if (group === undefined) groups.set(owner, [item]);
    else group.push(item);
  }
  return [...groups.values()];
}
