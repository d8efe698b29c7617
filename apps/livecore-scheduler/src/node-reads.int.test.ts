import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createStateKeys,
  encodePayload,
  placementDigest,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { aclFile } from '@ginkgo-live/redis-client';
import { fleetNodeInfo, RedisServer, StackFixture, TestUsers } from '@ginkgo-live/testing';
import { RedisSchedulerStore } from './scheduler-store.ts';

let server: RedisServer;
let redis: Redis;
let keys: StateKeys;
/** The reader's clock, driven by the test: heartbeat expiries are judged by it. */
let clock = 0;

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis({ ...server.clientOptions(), maxRetriesPerRequest: null });
  redis.on('error', () => {
    // The restart test stops Redis on purpose.
  });
  keys = createStateKeys('incr:');
  clock = 1_000_000;
});
afterEach(async () => {
  redis.disconnect();
  await server.cleanup();
});

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i}`);

/** Nodes beat as the node's BEAT script writes them: heartbeat and info with a TTL, registry score. */
async function beat(nodeIds: readonly string[], score: number, ttlMs = 60_000): Promise<void> {
  const pipeline = redis.pipeline();
  const now = new Date().toISOString();
  for (const nodeId of nodeIds) {
    pipeline.set(
      keys.heartbeat(nodeId),
      encodePayload('heartbeat', { _v: 1, node_id: nodeId, sent_at: now, seq: score }),
      'PX',
      ttlMs,
    );
    pipeline.set(
      keys.nodeInfo(nodeId),
      encodePayload('nodeInfo', {
        ...fleetNodeInfo(nodeId, [], now),
        capacity: 5,
        // A payload that changes at every beat, as a real node's does.
        uptime_seconds: score,
      }),
      'PX',
      3 * ttlMs,
    );
    pipeline.zadd(keys.nodeRegistry(), score, nodeId);
  }
  await pipeline.exec();
}

/** Calls of a command Redis has served since it started (`INFO commandstats`). */
async function calls(command: string): Promise<number> {
  const stats = await redis.info('commandstats');
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
}

/**
 * PTTL, GET and MGET calls one world read makes, counted by Redis itself (a script's commands too):
 * a PTTL and a GET per node fetched, inside the read-only script.
 */
async function commandsOf(
  read: () => Promise<unknown>,
): Promise<{ pttl: number; get: number; mget: number }> {
  const [pttl, get, mget] = [await calls('pttl'), await calls('get'), await calls('mget')];
  await read();
  return {
    pttl: (await calls('pttl')) - pttl,
    get: (await calls('get')) - get,
    mget: (await calls('mget')) - mget,
  };
}

/** A plan meta, as a leader left it: the plan and catalog are then remembered between reads. */
async function writeMeta(): Promise<void> {
  await redis.set(
    keys.planMeta(),
    encodePayload('planMeta', {
      _v: 1,
      version: 3,
      updated_at: new Date().toISOString(),
      leader: 's1',
    }),
  );
}

function store(): RedisSchedulerStore {
  return new RedisSchedulerStore(redis, keys, 's1', { now: () => clock });
}

const alive = async (s: RedisSchedulerStore): Promise<string[]> =>
  (await s.readWorld()).nodes.filter((n) => n.liveness.alive).map((n) => n.nodeId);

describe('SchedulerStore incremental node reads', () => {
  it('after a quiet interval, fetches only the nodes that beat since the last tick', async () => {
    await writeMeta();
    await beat(ids(50), 1);
    const s = store();
    // The first read fetches all 50 nodes: PTTL of each heartbeat, GET of each info (and the
    // head's GETs of plan meta and trading halt, and the full plan read's GET of the meta).
    expect(await commandsOf(() => s.readWorld())).toEqual({ pttl: 50, get: 53, mget: 0 });
    clock += 1_000;
    // Nothing beat: no node is fetched.
    expect(await commandsOf(() => s.readWorld())).toEqual({ pttl: 0, get: 2, mget: 0 });
    expect(s.nodeReads).toEqual({ read: 0, kept: 50, full: false, decoded: 0, via: 'script' });
    // Three beat, one appears: those four only.
    await beat(['n3', 'n17', 'n42', 'new-node'], 2);
    clock += 1_000;
    expect(await commandsOf(() => s.readWorld())).toEqual({ pttl: 4, get: 6, mget: 0 });
    // Their infos carry no placement digest (nodes from before it): each is decoded.
    expect(s.nodeReads).toEqual({ read: 4, kept: 47, full: false, decoded: 4, via: 'script' });
    // What was kept is what Redis holds: all 51 alive, with their placement info.
    const world = await s.readWorld();
    expect(world.nodes.filter((n) => n.liveness.alive)).toHaveLength(51);
    expect(world.nodes.find((n) => n.nodeId === 'n7')?.info).toEqual({
      capacity: 5,
      portfolio_ids: [],
    });
  });

  it('hands out the same placement info while its fields stay, a new one once they change', async () => {
    await writeMeta();
    await beat(['n1'], 1);
    const s = store();
    const first = (await s.readWorld()).nodes[0]?.info;
    // The node beat: its payload changed (uptime), its capacity and portfolios did not.
    await beat(['n1'], 2);
    clock += 1_000;
    const second = await s.readWorld();
    expect(s.nodeReads).toMatchObject({ read: 1 });
    expect(second.nodes[0]?.info).toBe(first);
    // Its capacity changed: a new object, checked again.
    await redis.set(
      keys.nodeInfo('n1'),
      encodePayload('nodeInfo', {
        ...fleetNodeInfo('n1', [], new Date().toISOString()),
        capacity: 7,
      }),
    );
    await redis.zadd(keys.nodeRegistry(), 3, 'n1');
    clock += 1_000;
    const third = (await s.readWorld()).nodes[0]?.info;
    expect(third).not.toBe(first);
    expect(third).toEqual({ capacity: 7, portfolio_ids: [] });
    // A capacity the schema refuses is a problem, not a change, even after a valid one.
    await redis.set(
      keys.nodeInfo('n1'),
      JSON.stringify({ ...fleetNodeInfo('n1', [], new Date().toISOString()), capacity: 0 }),
    );
    await redis.zadd(keys.nodeRegistry(), 4, 'n1');
    clock += 1_000;
    const fourth = await s.readWorld();
    expect(fourth.nodes[0]?.info).toBeNull();
    expect(fourth.problems.map((p) => p.problem)).toEqual([expect.stringContaining('capacity')]);
  });

  it('neither sends nor decodes an info whose placement digest is the one held', async () => {
    await writeMeta();
    const now = new Date().toISOString();
    /** n1 beats with `score`, its info carrying `digest` (by default that of its fields). */
    const put = async (
      score: number,
      capacity: number,
      digest = placementDigest(capacity, ['p1']),
    ): Promise<void> => {
      await redis.set(
        keys.nodeInfo('n1'),
        // The codec writes the digest right after `_v`, where the read looks for it.
        encodePayload('nodeInfo', {
          ...fleetNodeInfo('n1', ['p1'], now),
          placement: digest,
          capacity,
          uptime_seconds: score,
        }),
      );
      await redis.set(keys.heartbeat('n1'), 'beat', 'PX', 60_000);
      await redis.zadd(keys.nodeRegistry(), score, 'n1');
      clock += 1_000;
    };
    const s = store();
    await put(1, 5);
    const first = (await s.readWorld()).nodes[0]?.info;
    expect(first).toEqual({ capacity: 5, portfolio_ids: ['p1'] });
    expect(s.nodeReads).toEqual({ read: 1, kept: 0, full: true, decoded: 1, via: 'script' });
    // It beat (its uptime changed), its placement did not: fetched, not decoded, the same object.
    await put(2, 5);
    expect((await s.readWorld()).nodes[0]?.info).toBe(first);
    expect(s.nodeReads).toEqual({ read: 1, kept: 0, full: false, decoded: 0, via: 'script' });
    // Past the digest the info is not even parsed: a broken tail goes unnoticed by the scheduler
    // (the gateway reads infos whole and reports it).
    await redis.set(
      keys.nodeInfo('n1'),
      `{"_v":1,"placement":"${placementDigest(5, ['p1'])}",not json`,
    );
    await redis.zadd(keys.nodeRegistry(), 3, 'n1');
    clock += 1_000;
    const broken = await s.readWorld();
    expect([broken.nodes[0]?.info, broken.problems]).toEqual([first, []]);
    // A digest stands for its fields whenever it was read: a new leadership's full read (or the
    // one after a failed read) still skips the unchanged info.
    s.forget();
    expect((await s.readWorld()).nodes[0]?.info).toBe(first);
    expect(s.nodeReads).toEqual({ read: 1, kept: 0, full: true, decoded: 0, via: 'script' });
    // Its capacity changed, and with it the digest: decoded, a new object.
    await put(4, 7);
    const changed = await s.readWorld();
    expect(changed.nodes[0]?.info).toEqual({ capacity: 7, portfolio_ids: ['p1'] });
    expect(s.nodeReads).toMatchObject({ decoded: 1 });
    // A digest that is not its fields' is not trusted: the fields count, decoded at every read.
    await put(5, 9, placementDigest(3, ['p1']));
    expect((await s.readWorld()).nodes[0]?.info).toEqual({ capacity: 9, portfolio_ids: ['p1'] });
    await put(6, 9, placementDigest(3, ['p1']));
    expect((await s.readWorld()).nodes[0]?.info).toEqual({ capacity: 9, portfolio_ids: ['p1'] });
    expect(s.nodeReads).toMatchObject({ read: 1, decoded: 1 });
  });

  it('reads by pipeline, the same, when Redis refuses the read-only script', async () => {
    await redis.call('ACL', 'SETUSER', 'noscript', 'on', '>pw', '~*', '&*', '+@all', '-evalsha_ro');
    const limited = new Redis({ ...server.clientOptions(), username: 'noscript', password: 'pw' });
    try {
      // Connected first: a store forgets all it read when its connection becomes ready.
      await limited.ping();
      await writeMeta();
      await beat(ids(3), 1);
      const s = new RedisSchedulerStore(limited, keys, 's1', { now: () => clock });
      expect(await alive(s)).toEqual(ids(3));
      expect(s.nodeReads).toEqual({ read: 3, kept: 0, full: true, decoded: 3, via: 'pipeline' });
      await beat(['n1'], 2);
      clock += 1_000;
      expect(await alive(s)).toEqual(ids(3));
      expect(s.nodeReads).toEqual({ read: 1, kept: 2, full: false, decoded: 1, via: 'pipeline' });
    } finally {
      limited.disconnect();
    }
  });

  it('declares a silent node dead at the first read after its heartbeat expired', async () => {
    await beat(['quiet'], 1, 400);
    await beat(['beating'], 1, 60_000);
    const s = store();
    expect(await alive(s)).toEqual(['beating', 'quiet']);
    // Before its PTTL has run out on the reader's clock, the silent node is remembered alive.
    clock += 100;
    expect(await alive(s)).toEqual(['beating', 'quiet']);
    expect(s.nodeReads.read).toBe(0);
    // Its key expires in Redis; its registry score stays. The reader's clock passes its PTTL:
    // it is fetched again and seen lost.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await redis.exists(keys.heartbeat('quiet'))).toBe(0);
    clock += 400;
    const world = await s.readWorld();
    expect(s.nodeReads).toMatchObject({ read: 1, kept: 1, full: false });
    expect(world.nodes.find((n) => n.nodeId === 'quiet')?.liveness).toMatchObject({
      alive: false,
      reason: 'no heartbeat',
    });
  });

  it('fetches every node again when Redis came back empty, even with the same scores', async () => {
    await writeMeta();
    await beat(ids(5), 7);
    const s = store();
    expect(await alive(s)).toEqual(ids(5));
    clock += 1_000;
    await server.restart({ keepData: false });
    await redis.ping();
    // The registry comes back with the very scores last read (restored by hand, or by a node
    // whose clock stood still), but no heartbeat: only a full read can tell.
    for (const id of ids(5)) await redis.zadd(keys.nodeRegistry(), 7, id);
    expect(await alive(s)).toEqual([]);
    expect(s.nodeReads).toMatchObject({ read: 5, kept: 0, full: true });
  });

  it('fetches every node again when the plan meta is not the one last read (Redis emptied)', async () => {
    await writeMeta();
    await beat(ids(5), 7);
    const s = store();
    expect(await alive(s)).toEqual(ids(5));
    // Emptied on the same connection (no reconnection to say so): FLUSHALL, then the registry
    // back with the same scores and no heartbeat.
    await redis.flushall();
    for (const id of ids(5)) await redis.zadd(keys.nodeRegistry(), 7, id);
    clock += 1_000;
    expect(await alive(s)).toEqual([]);
    expect(s.nodeReads.full).toBe(true);
  });

  it('fetches every node again when a score went back (a rollback), and after forget()', async () => {
    await beat(ids(5), 7);
    const s = store();
    await s.readWorld();
    clock += 1_000;
    await redis.zadd(keys.nodeRegistry(), 6, 'n2');
    await s.readWorld();
    expect(s.nodeReads).toMatchObject({ read: 5, kept: 0, full: true });
    clock += 1_000;
    await s.readWorld();
    expect(s.nodeReads).toMatchObject({ read: 0, kept: 5, full: false });
    // A new leadership (the scheduler calls forget) starts from a full read.
    s.forget();
    await s.readWorld();
    expect(s.nodeReads).toMatchObject({ read: 5, kept: 0, full: true });
  });

  it('fetches every node again after a failed read', async () => {
    await beat(ids(3), 7);
    const s = store();
    await s.readWorld();
    // The registry is not a sorted set any more: the head read fails.
    await redis.rename(keys.nodeRegistry(), 'elsewhere');
    await redis.set(keys.nodeRegistry(), 'garbage');
    await expect(s.readWorld()).rejects.toThrow(/WRONGTYPE/);
    await redis.del(keys.nodeRegistry());
    await redis.rename('elsewhere', keys.nodeRegistry());
    clock += 1_000;
    await s.readWorld();
    expect(s.nodeReads).toMatchObject({ read: 3, kept: 0, full: true });
  });
});

describe('SchedulerStore node reads under the scheduler’s own ACL user', () => {
  it('reads liveness and info with read-only rights on the nodes’ keys (no NOPERM)', async () => {
    const users = new TestUsers([
      'livecore-scheduler',
      'api-gateway',
      'market-feed',
      'notification-worker',
      'ginkgo-ctl',
      'execution-node.n1',
      'admin',
    ]);
    const prefix = StackFixture.newPrefix();
    const acl = await RedisServer.start({
      aclFile: aclFile({ nodes: ['n1'], passwords: users.passwords, prefix }),
      auth: users.user('admin'),
    });
    const k = createStateKeys(prefix);
    const admin = new Redis({ host: acl.host, port: acl.port, ...users.user('admin') });
    const env = users.env('livecore-scheduler');
    const scheduler = new Redis({
      host: acl.host,
      port: acl.port,
      username: env['REDIS_USERNAME'],
      password: env['REDIS_PASSWORD'],
    });
    try {
      const now = new Date().toISOString();
      await admin.set(
        k.heartbeat('n1'),
        encodePayload('heartbeat', { _v: 1, node_id: 'n1', sent_at: now, seq: 1 }),
        'PX',
        60_000,
      );
      await admin.set(
        k.nodeInfo('n1'),
        encodePayload('nodeInfo', {
          ...fleetNodeInfo('n1', ['p1'], now),
          placement: placementDigest(5, ['p1']),
          capacity: 5,
        }),
      );
      await admin.zadd(k.nodeRegistry(), Date.now(), 'n1');
      const s = new RedisSchedulerStore(scheduler, k, 's1');
      expect(await s.lead(10_000)).toBe(true);
      const world = await s.readWorld();
      expect(world.nodes.map((n) => [n.nodeId, n.liveness.alive, n.info])).toEqual([
        ['n1', true, { capacity: 5, portfolio_ids: ['p1'] }],
      ]);
      // By the read-only script (EVALSHA_RO needs only read access to the keys it declares).
      expect(s.nodeReads).toMatchObject({ via: 'script', decoded: 1 });
      await admin.zadd(k.nodeRegistry(), Date.now() + 1, 'n1');
      await s.readWorld();
      expect(s.nodeReads).toMatchObject({ via: 'script', read: 1, decoded: 0 });
    } finally {
      scheduler.disconnect();
      admin.disconnect();
      await acl.cleanup();
    }
  });
});
