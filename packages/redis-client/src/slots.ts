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
