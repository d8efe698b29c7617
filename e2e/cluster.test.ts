import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PortfolioQueueReader, PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { keySlot } from '@ginkgo-live/redis-client';
import {
  createStateKeys,
  decodePayload,
  type Assignment,
  type NodeRecord,
  type PortfolioBook,
} from '@ginkgo-live/state-keys';
import { fleetNodeInfo, fleetPortfolioState, RedisCluster } from '@ginkgo-live/testing';
// The apps' own Redis adapters, driven against a cluster as the apps would drive them.
import { NodeStore } from '../apps/execution-node/src/node-store.ts';
import {
  PlanWriteRefused,
  RedisSchedulerStore,
  type PlanWrite,
} from '../apps/livecore-scheduler/src/scheduler-store.ts';

/**
 * Redis Cluster readiness, on a real cluster of three masters: the heartbeat, the plan write and
 * the bounded add each run their scripts and transactions against it, with the keys of a node, of
 * each portfolio and of the scheduler in the hash slots their tags choose, spread over the masters.
 */
let cluster: RedisCluster;
let redis: Cluster;
const keys = createStateKeys('cl:');
const PORTFOLIOS = Array.from({ length: 12 }, (_, i) => `cp-${i}`);

beforeAll(async () => {
  cluster = await RedisCluster.start();
  redis = cluster.client();
}, 60_000);
afterAll(async () => {
  redis.disconnect();
  await cluster.cleanup();
});

const book = (id: string, now: string): PortfolioBook => ({
  _v: 1,
  portfolio_id: id,
  node_id: 'cn-9',
  cash: 1_000,
  positions: {},
  last_prices: {},
  strategy_state: {},
  processed_count: 3,
  failed_count: 0,
  updated_at: now,
});

/** Which master holds each key (by SCAN on every master). */
async function placement(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const [i, master] of cluster.masters.entries())
    for (const key of await cluster.keysOn(master)) out.set(key, i);
  return out;
}

describe('the stack’s Redis operations on a real 3-master Redis Cluster', () => {
  it('is a cluster: three masters share the 16,384 slots', async () => {
    for (const master of cluster.masters) {
      const info = await cluster.ask(master, 'CLUSTER', 'INFO');
      expect(info).toMatch(/cluster_state:ok/);
      expect(info).toMatch(/cluster_known_nodes:3/);
      expect(info).toMatch(/cluster_size:3/);
      expect(info).toMatch(/cluster_slots_assigned:16384/);
    }
  });

  it('runs the heartbeat: node keys, registry, leases and states each in their slot', async () => {
    const ids = PORTFOLIOS.slice(0, 5);
    const node = new NodeStore({
      redis,
      keys,
      nodeId: 'cn-1',
      heartbeatTtlMs: 15_000,
      nodeInfoTtlMs: 45_000,
      portfolioStateTtlMs: 45_000,
    });
    const now = new Date().toISOString();
    const beat = (store: NodeStore, nodeId: string) =>
      store.beat(
        JSON.stringify({ _v: 1, node_id: nodeId, sent_at: now, seq: 1 }),
        fleetNodeInfo(nodeId, ids, now),
        ids.map((id) => ({
          portfolioId: id,
          state: fleetPortfolioState(id, nodeId, now),
          lease: {
            token: `${nodeId}/test/1`,
            loadedToken: '',
            loadedVersion: 0,
            mayReassert: true,
            releasing: false,
          },
        })),
      );
    // No lease and no book yet (as after Redis came back empty, with the process never frozen):
    // each is taken, and every beat asks for the book to be written until it exists.
    const first = await beat(node, 'cn-1');
    expect(first.lost).toEqual([]);
    expect(first.resync.map((l) => l.portfolioId).sort()).toEqual([...ids].sort());
    expect((await beat(node, 'cn-1')).resync).toHaveLength(ids.length);

    expect(await redis.pttl(keys.heartbeat('cn-1'))).toBeGreaterThan(14_000);
    const info = decodePayload('nodeInfo', 'i', (await redis.get(keys.nodeInfo('cn-1'))) ?? '');
    expect(info.ok && info.value.portfolio_ids).toEqual(ids);
    expect(await redis.zscore(keys.nodeRegistry(), 'cn-1')).not.toBeNull();
    for (const id of ids) {
      expect(await redis.get(keys.portfolioLease(id))).toBe('cn-1/test/1');
      const state = decodePayload(
        'portfolioState',
        's',
        (await redis.get(keys.portfolioState(id))) ?? '',
      );
      expect(state.ok && state.value.node_id).toBe('cn-1');
    }
    // The beat's keys really are on more than one master: one script per slot, as designed.
    const where = await placement();
    const masters = new Set(
      [
        keys.heartbeat('cn-1'),
        keys.nodeRegistry(),
        ...ids.map((id) => keys.portfolioLease(id)),
      ].map((key) => where.get(key)),
    );
    expect(masters.size).toBeGreaterThan(1);

    // A second node beating for the same portfolios finds every lease held: all reported lost,
    // nothing of theirs written.
    const intruder = new NodeStore({
      redis,
      keys,
      nodeId: 'cn-2',
      heartbeatTtlMs: 15_000,
      nodeInfoTtlMs: 45_000,
      portfolioStateTtlMs: 45_000,
    });
    expect((await beat(intruder, 'cn-2')).lost.map((l) => l.portfolioId).sort()).toEqual(
      [...ids].sort(),
    );
    for (const id of ids) expect(await redis.get(keys.portfolioLease(id))).toBe('cn-1/test/1');

    // Flush, per portfolio slot.
    expect(
      await node.flush(
        ids.map((id) => ({
          portfolioId: id,
          state: fleetPortfolioState(id, 'cn-1', now),
          token: 'cn-1/test/1',
        })),
      ),
    ).toEqual([]);
    await node.forgetNode();
    expect(await redis.exists(keys.heartbeat('cn-1'), keys.nodeInfo('cn-1'))).toBe(0);
    expect(await redis.zscore(keys.nodeRegistry(), 'cn-1')).toBeNull();
  });

  it('runs the plan write: fenced by leader and version, node assignments in the same script', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'sa');
    const b = new RedisSchedulerStore(redis, keys, 'sb');
    expect(await a.lead(10_000)).toBe(true);
    expect(await b.lead(10_000)).toBe(false);
    const now = new Date().toISOString();
    const nodes = ['cn-a', 'cn-b', 'cn-c'];
    const assignments: Assignment[] = PORTFOLIOS.map((id, i) => ({
      _v: 1,
      portfolio_id: id,
      status: 'assigned',
      node_id: nodes[i % 3] ?? null,
      reason: null,
      plan_version: 1,
      since: now,
    }));
    const records: NodeRecord[] = nodes.map((id) => ({
      _v: 1,
      node_id: id,
      status: 'alive',
      capacity: 5,
      assigned_count: 4,
      last_seen: now,
    }));
    const plan = (version: number): PlanWrite => ({
      expectedVersion: version,
      meta: { _v: 1, version: version + 1, updated_at: now, leader: 'sa' },
      nodes: records,
      assignments,
      nodeAssignments: new Map(
        nodes.map((n) => [
          n,
          assignments.filter((x) => x.node_id === n).map((x) => x.portfolio_id),
        ]),
      ),
      results: [],
      consumedRequests: 0,
    });
    expect(await a.writePlan(plan(0))).toBe(1);
    expect(await redis.hlen(keys.portfolioAssignments())).toBe(PORTFOLIOS.length);
    expect(await redis.hlen(keys.executionNodes())).toBe(3);
    const forB = decodePayload(
      'nodeAssignment',
      'a',
      (await redis.get(keys.nodeAssignment('cn-b'))) ?? '',
    );
    expect(forB.ok && forB.value.portfolio_ids).toEqual(['cp-1', 'cp-4', 'cp-7', 'cp-10']);
    await expect(a.writePlan(plan(0))).rejects.toThrow(PlanWriteRefused);
    await expect(b.writePlan(plan(1))).rejects.toThrow(/NOT_LEADER/);
    expect(await a.writePlan(plan(1))).toBe(2);
  });

  it('runs the bounded add: each portfolio’s queue whole in its slot, queues spread over the masters', async () => {
    const queues = new PortfolioQueues({ connection: redis, keys, capacity: 3 });
    try {
      const tick = (n: number) => ({
        symbol: 'BTCUSDT',
        price: 100 + n,
        volume: 1,
        event_time: new Date().toISOString(),
      });
      for (const id of PORTFOLIOS) {
        for (let n = 0; n < 3; n++) expect((await queues.add(id, tick(n))).ok).toBe(true);
        expect(await queues.add(id, tick(9))).toMatchObject({
          ok: false,
          reason: 'full',
          depth: 3,
        });
      }
      expect(Number(await redis.hget(keys.queueRefusals(), 'cp-0'))).toBe(1);
      // The depths of queues on every master in one call (the node samples its queues so).
      const depths = await queues.readDepths([...PORTFOLIOS].reverse());
      expect([...depths.keys()]).toEqual([...PORTFOLIOS].reverse());
      for (const depth of depths.values()) expect(depth).toMatchObject({ depth: 3, capacity: 3 });
      const where = await placement();
      const queueMasters = new Map<string, Set<number>>();
      for (const [key, master] of where) {
        const id = /portfolio-\{([^}]+)\}/.exec(key)?.[1];
        if (id === undefined) continue;
        queueMasters.set(id, (queueMasters.get(id) ?? new Set()).add(master));
      }
      expect(queueMasters.size).toBe(PORTFOLIOS.length);
      // One master per queue (its keys share the tag) …
      for (const masters of queueMasters.values()) expect(masters.size).toBe(1);
      // … and the queues on every master.
      expect(new Set([...queueMasters.values()].flatMap((m) => [...m])).size).toBe(3);

      // The consumer's side in each slot: lease, peek, and the commit that writes the book and
      // removes the jobs (job hashes are reached by the script in the portfolio's slot).
      const store = new NodeStore({
        redis,
        keys,
        nodeId: 'cn-9',
        heartbeatTtlMs: 15_000,
        nodeInfoTtlMs: 45_000,
        portfolioStateTtlMs: 45_000,
      });
      const now = new Date().toISOString();
      // (The first five are still leased to cn-1 by the heartbeat test.)
      for (const id of PORTFOLIOS.slice(5)) {
        const token = `cn-9/test/${id}`;
        expect(await store.acquireLease(id, token)).toEqual({
          ok: true,
          loaded: null,
          book: null,
          reclaimedJobs: 0,
        });
        const reader = new PortfolioQueueReader(redis, redis, keys, id);
        const events = await reader.peek(10);
        expect(events.map((e) => e.jobId)).toEqual(
          [1, 2, 3].map((s) => `${queues.producerId}-${s}`),
        );
        const lease = {
          token,
          loadedToken: '',
          loadedVersion: 0,
          mayReassert: true,
          releasing: false,
        };
        const commit = {
          portfolioId: id,
          lease,
          version: 1,
          book: { ...book(id, now), fence: { token, version: 1 } },
          state: fleetPortfolioState(id, 'cn-9', now),
          applied: events.map((e) => e.jobId),
          failed: [],
          release: true,
        };
        expect(await store.commit(commit)).toEqual({ kind: 'ok', missing: 0 });
        expect(await reader.peek(10)).toEqual([]);
        expect(await redis.hget(keys.portfolioFence(id), 'version')).toBe('1');
        expect(await redis.exists(keys.portfolioLease(id))).toBe(0);
      }
    } finally {
      await queues.close();
    }
  });
});

describe('the key contract’s hash slots (state-keys)', () => {
  const keys = createStateKeys('prod:');
  const slots = (...built: string[]): number[] => [...new Set(built.map(keySlot))];
  const queue = (name: string): string[] =>
    ['wait', 'active', 'meta', 'id', 'events', 'completed', 'failed', 'prioritized'].map(
      (suffix) => `${keys.queuePrefix()}:${name}:${suffix}`,
    );

  it('keeps in one slot the keys that one script or MULTI touches together', () => {
    // A node's beat (its own part) and its forgetting.
    expect(slots(keys.heartbeat('n1'), keys.nodeInfo('n1'))).toHaveLength(1);
    // A portfolio's lease, state and book (beat, flush, release) and every key of its BullMQ queue.
    expect(
      slots(
        keys.portfolioLease('p1'),
        keys.portfolioState('p1'),
        keys.portfolioBook('p1'),
        ...queue(keys.portfolioQueue('p1')),
      ),
    ).toHaveLength(1);
    // The plan write, the leader lock, and the scheduler's read of the world.
    expect(
      slots(
        keys.schedulerLeader(),
        keys.planMeta(),
        keys.executionNodes(),
        keys.portfolioAssignments(),
        keys.controlRequests(),
        keys.controlResults(),
        keys.nodeAssignment('n1'),
        keys.nodeAssignment('n2'),
        keys.nodeRegistry(),
        keys.portfolioCatalog(),
      ),
    ).toHaveLength(1);
    // Raise and resolve of one subject's notifications; the notifications queue.
    const subject = { nodeId: 'n1', portfolioId: 'p1' };
    expect(
      slots(
        keys.notificationActive('queue', subject),
        keys.notificationCooldown('queue_full', subject, 'warning'),
        keys.notificationCooldown('queue_critical', subject, 'critical'),
      ),
    ).toHaveLength(1);
    expect(slots(...queue(keys.notificationsQueue()))).toHaveLength(1);
  });

  it('spreads nodes, portfolios and their queues over the slots', () => {
    const ids = Array.from({ length: 1_000 }, (_, i) => `p-${i}`);
    expect(slots(...ids.map((id) => keys.portfolioState(id))).length).toBeGreaterThan(950);
    expect(
      slots(...ids.map((id) => `bull:${keys.portfolioQueue(id)}:wait`)).length,
    ).toBeGreaterThan(950);
    expect(slots(...ids.map((id) => keys.heartbeat(id))).length).toBeGreaterThan(950);
  });
});
