import { Redis, type Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCluster, RedisServer } from '@ginkgo-live/testing';
import { delBySlot, groupBySlot, mgetBySlot } from './slots.ts';

let cluster: RedisCluster;
let server: RedisServer;
let onCluster: Cluster;
let onOne: Redis;

beforeAll(async () => {
  [cluster, server] = await Promise.all([RedisCluster.start(), RedisServer.start()]);
  onCluster = cluster.client();
  onOne = new Redis({ host: server.host, port: server.port });
}, 60_000);
afterAll(async () => {
  onCluster.disconnect();
  onOne.disconnect();
  await Promise.all([cluster.cleanup(), server.cleanup()]);
});

const KEYS = Array.from({ length: 40 }, (_, i) => `portfolio:{p-${i % 13}}:state:${i}`);

describe.each([
  ['a 3-master cluster', () => onCluster],
  ['one Redis', () => onOne],
])('per-slot reads on %s', (_, client) => {
  it('mgetBySlot answers every key’s value in the caller’s order, absent keys as null', async () => {
    const redis = client();
    for (const [i, key] of KEYS.entries()) if (i % 3 !== 0) await redis.set(key, `v${i}`);
    const wanted = [...KEYS].reverse();
    expect(await mgetBySlot(redis, wanted)).toEqual(
      wanted.map((key) => {
        const i = KEYS.indexOf(key);
        return i % 3 === 0 ? null : `v${i}`;
      }),
    );
    expect(await mgetBySlot(redis, [])).toEqual([]);
  });

  it('delBySlot deletes keys of many slots and counts them', async () => {
    const redis = client();
    expect(await delBySlot(redis, KEYS)).toBe(KEYS.filter((_, i) => i % 3 !== 0).length);
    expect(await mgetBySlot(redis, KEYS)).toEqual(KEYS.map(() => null));
  });
});

describe('why the helpers exist', () => {
  it('a cluster refuses one MGET across the slots (CROSSSLOT)', async () => {
    expect(groupBySlot(KEYS).length).toBe(13);
    await expect(onCluster.mget(...KEYS)).rejects.toThrow(/CROSSSLOT/);
  });
});
