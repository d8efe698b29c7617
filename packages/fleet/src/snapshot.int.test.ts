import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStateKeys, encodePayload, PayloadDecoder } from '@ginkgo-live/state-keys';
import { RedisCluster, RedisServer } from '@ginkgo-live/testing';
import { nodeStatus, readNodeIds, readNodeSnapshots } from './index.ts';

let server: RedisServer;
let redis: Redis;

beforeAll(async () => {
  server = await RedisServer.start();
  redis = new Redis({ host: server.host, port: server.port, lazyConnect: false });
});
afterAll(async () => {
  redis.disconnect();
  await server.cleanup();
});

const keysFor = (name: string) => createStateKeys(`${name}-${Date.now()}:`);
const now = new Date().toISOString();
const beat = (id: string) =>
  encodePayload('heartbeat', { _v: 1, node_id: id, sent_at: now, seq: 1 });
const info = (id: string, status: 'running' | 'stopping' = 'running') =>
  encodePayload('nodeInfo', {
    _v: 1,
    node_id: id,
    host: 'h',
    pid: 1,
    version: '0.1.0',
    status,
    started_at: now,
    uptime_seconds: 1,
    last_heartbeat: now,
    portfolio_ids: [],
    portfolio_count: 0,
    capacity: 3,
    queue_usage_max: 0,
    queue_usage: {},
    events_per_second: 0,
    cpu_percent: 0,
    memory_rss_bytes: 0,
    heap_used_bytes: 0,
    redis: { healthy: true, consecutive_failures: 0, total_failures: 0, last_success_at: now },
  });
const record = (id: string, status: 'alive' | 'draining' | 'lost') =>
  encodePayload('nodeRecord', {
    _v: 1,
    node_id: id,
    status,
    capacity: 3,
    assigned_count: 0,
    last_seen: now,
  });

describe('readNodeSnapshots against a real Redis', () => {
  it('reads beating, missing heartbeat, heartbeat without TTL, malformed info and record only, in one round trip', async () => {
    const k = keysFor('snap');
    await redis
      .multi()
      // beating, with info and a draining record
      .set(k.heartbeat('beating'), beat('beating'), 'PX', 15_000)
      .set(k.nodeInfo('beating'), info('beating'), 'PX', 45_000)
      .hset(k.executionNodes(), 'beating', record('beating', 'draining'))
      .zadd(k.nodeRegistry(), 1_700_000_000_000, 'beating')
      // heartbeat gone, info and record left behind
      .set(k.nodeInfo('gone'), info('gone'), 'PX', 45_000)
      .hset(k.executionNodes(), 'gone', record('gone', 'alive'))
      .zadd(k.nodeRegistry(), 1_600_000_000_000, 'gone')
      // a heartbeat someone wrote without a TTL
      .set(k.heartbeat('no-ttl'), beat('no-ttl'))
      // beating, its info malformed
      .set(k.heartbeat('bad-info'), beat('bad-info'), 'PX', 15_000)
      .set(k.nodeInfo('bad-info'), '{"_v":1,"node_id":"bad-info"}', 'PX', 45_000)
      // only the scheduler's record
      .hset(k.executionNodes(), 'record-only', record('record-only', 'lost'))
      .exec();

    const before = Number((await redis.info('stats')).match(/total_commands_processed:(\d+)/)?.[1]);
    const snapshots = await readNodeSnapshots(redis, k, [
      'beating',
      'gone',
      'no-ttl',
      'bad-info',
      'record-only',
      'beating',
      'not an id!',
    ]);
    const after = Number((await redis.info('stats')).match(/total_commands_processed:(\d+)/)?.[1]);
    // 5 nodes × (GET, PTTL, GET) + one HMGET + one ZMSCORE, plus the first INFO.
    expect(after - before).toBe(5 * 3 + 2 + 1);

    const by = Object.fromEntries(snapshots.map((s) => [s.nodeId, s]));
    expect(snapshots.map((s) => s.nodeId)).toEqual([
      'beating',
      'gone',
      'no-ttl',
      'bad-info',
      'record-only',
    ]);
    expect(snapshots.map((s) => [s.nodeId, nodeStatus(s), s.liveness.reason])).toEqual([
      ['beating', 'draining', 'beating'],
      ['gone', 'lost', 'no heartbeat'],
      ['no-ttl', 'lost', 'heartbeat without TTL'],
      ['bad-info', 'online', 'beating'],
      ['record-only', 'lost', 'no heartbeat'],
    ]);
    expect(by['beating']).toMatchObject({
      info: { status: 'running', capacity: 3 },
      record: { status: 'draining' },
      lastSeenMs: 1_700_000_000_000,
      problems: [],
    });
    expect(by['beating']?.heartbeat.pttlMs).toBeGreaterThan(14_000);
    expect(by['gone']).toMatchObject({
      heartbeat: { raw: null, pttlMs: -2 },
      info: { status: 'running' },
      record: { status: 'alive' },
      lastSeenMs: 1_600_000_000_000,
    });
    expect(by['no-ttl']?.heartbeat.pttlMs).toBe(-1);
    expect(by['bad-info']?.info).toBeNull();
    expect(by['bad-info']?.problems).toHaveLength(1);
    expect(by['bad-info']?.problems[0]).toMatchObject({
      key: k.nodeInfo('bad-info'),
      payload: 'nodeInfo',
    });
    expect(by['record-only']).toMatchObject({
      heartbeat: { raw: null, pttlMs: -2 },
      info: null,
      record: { status: 'lost' },
      lastSeenMs: null,
      problems: [],
    });
    expect(await readNodeIds(redis, k)).toEqual(['beating', 'gone', 'record-only']);
  });

  it('reads only the heartbeat when asked, and batches records over 500 ids', async () => {
    const k = keysFor('big');
    const ids = Array.from({ length: 1_203 }, (_, i) => `n-${String(i).padStart(4, '0')}`);
    const pipeline = redis.pipeline();
    for (const id of ids) {
      if (Number(id.slice(2)) % 2 === 0) pipeline.set(k.heartbeat(id), beat(id), 'PX', 15_000);
      pipeline.hset(k.executionNodes(), id, record(id, 'alive'));
    }
    await pipeline.exec();

    const light = await readNodeSnapshots(redis, k, ids, { info: false, record: false });
    expect(light.filter((s) => s.liveness.alive)).toHaveLength(602);
    expect(light.every((s) => s.record === null && s.info === null)).toBe(true);

    const decoder = new PayloadDecoder();
    const full = await readNodeSnapshots(redis, k, ids, { decoder });
    expect(full.map((s) => s.record?.node_id)).toEqual(ids);
    expect(full.map((s) => nodeStatus(s))).toEqual(
      ids.map((id) => (Number(id.slice(2)) % 2 === 0 ? 'online' : 'lost')),
    );
    // A second read decodes nothing again: the decoder remembers the unchanged records.
    expect(decoder.stats()).toMatchObject({ hits: 0, misses: 1_203 });
    await readNodeSnapshots(redis, k, ids, { decoder });
    expect(decoder.stats()).toMatchObject({ hits: 1_203, misses: 1_203 });
  });

  it('rejects when Redis answers an error, never a half-read fleet', async () => {
    const k = keysFor('wrongtype');
    await redis.set(k.executionNodes(), 'a string, not a hash');
    await expect(readNodeSnapshots(redis, k, ['n1'])).rejects.toThrow(/WRONGTYPE/);
  });
});

describe('readNodeSnapshots against a real 3-master Redis Cluster', () => {
  it('reads nodes spread over the slots (one pipeline per slot) with the {scheduler} records', async () => {
    const cluster = await RedisCluster.start();
    const client = cluster.client();
    try {
      const k = createStateKeys('cluster:');
      const ids = Array.from({ length: 30 }, (_, i) => `n${i}`);
      for (const id of ids) {
        if (id !== 'n7') await client.set(k.heartbeat(id), beat(id), 'PX', 15_000);
        await client.set(k.nodeInfo(id), info(id, id === 'n3' ? 'stopping' : 'running'));
      }
      await client.hset(
        k.executionNodes(),
        'n7',
        record('n7', 'alive'),
        'n9',
        record('n9', 'draining'),
      );
      await client.zadd(k.nodeRegistry(), 1_700_000_000_000, 'n1');

      const snapshots = await readNodeSnapshots(client, k, ids);
      expect(snapshots.map((s) => s.nodeId)).toEqual(ids);
      const statuses = Object.fromEntries(snapshots.map((s) => [s.nodeId, nodeStatus(s)]));
      expect(statuses).toEqual(
        Object.fromEntries(
          ids.map((id) => [
            id,
            id === 'n7' ? 'lost' : id === 'n3' || id === 'n9' ? 'draining' : 'online',
          ]),
        ),
      );
      expect(snapshots.every((s) => s.info !== null && s.problems.length === 0)).toBe(true);
      expect(snapshots.find((s) => s.nodeId === 'n1')?.lastSeenMs).toBe(1_700_000_000_000);
      expect(snapshots.filter((s) => s.record !== null).map((s) => s.nodeId)).toEqual(['n7', 'n9']);
    } finally {
      client.disconnect();
      await cluster.cleanup();
    }
  }, 60_000);
});
