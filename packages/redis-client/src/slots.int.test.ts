import { Redis, type Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCluster, RedisServer } from '@ginkgo-live/testing';
import { byMaster, delBySlot, groupBySlot, mgetBySlot } from './slots.ts';

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

it('mgetBySlot and delBySlot take more keys than a JavaScript call can spread (a fleet of 50,000 portfolios and more)', async () => {
  const many = Array.from({ length: 200_000 }, (_, i) => `s:${i}`);
  await onOne.set('s:199999', 'last');
  const values = await mgetBySlot(onOne, many);
  expect(values.length).toBe(200_000);
  expect(values[199_999]).toBe('last');
  expect(values.filter((v) => v !== null).length).toBe(1);
  expect(await delBySlot(onOne, many)).toBe(1);
});

describe('byMaster', () => {
  it('groups keys by the master of their slot: one pipeline each, on a cluster of three', async () => {
    const groups = byMaster(onCluster, KEYS, (key) => key);
    expect(groups.length).toBe(3);
    expect(groups.flat().sort()).toEqual([...KEYS].sort());
    for (const group of groups) {
      const pipeline = onCluster.pipeline();
      for (const key of group) pipeline.set(key, 'x');
      expect((await pipeline.exec())?.every(([err]) => err === null)).toBe(true);
    }
    expect(byMaster(onOne, KEYS, (key) => key)).toEqual([KEYS]);
  });

  it('is needed: one pipeline over every master is refused', async () => {
    const pipeline = onCluster.pipeline();
    for (const key of KEYS) pipeline.get(key);
    await expect(pipeline.exec()).rejects.toThrow(/same slots allocation group/);
  });
});

describe('why the helpers exist', () => {
  it('a cluster refuses one MGET across the slots (CROSSSLOT)', async () => {
    expect(groupBySlot(KEYS).length).toBe(13);
    await expect(onCluster.mget(...KEYS)).rejects.toThrow(/CROSSSLOT/);
  });
});
