import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createStateKeys,
  type Assignment,
  type NodeRecord,
  type PlanMeta,
  type PortfolioSpec,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { AuditLog, TradingControls } from '@ginkgo-live/fleet';
import { RedisServer } from '@ginkgo-live/testing';
import { PlanWriteRefused, RedisSchedulerStore, type PlanWrite } from './scheduler-store.ts';

let server: RedisServer;
let redis: Redis;
let keys: StateKeys;

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.port, server.host);
  keys = createStateKeys('fence:');
});
afterEach(async () => {
  redis.disconnect();
  await server.cleanup();
});

function write(version: number, leader: string, portfolio = 'p1'): PlanWrite {
  const now = new Date().toISOString();
  const meta: PlanMeta = { _v: 1, version: version + 1, updated_at: now, leader };
  return {
    expectedVersion: version,
    meta,
    nodes: [
      { _v: 1, node_id: 'n1', status: 'alive', capacity: 5, assigned_count: 1, last_seen: now },
    ],
    assignments: [
      {
        _v: 1,
        portfolio_id: portfolio,
        status: 'assigned',
        node_id: 'n1',
        reason: null,
        plan_version: version + 1,
        since: now,
      },
    ],
    nodeAssignments: new Map([['n1', [portfolio]]]),
    results: [],
    consumedRequests: 0,
  };
}

describe('SchedulerStore plan write', () => {
  it('writes plan, node records, node assignment and version in one step', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    expect(await a.lead(10_000)).toBe(true);
    expect(await a.writePlan(write(0, 'a'))).toBe(1);
    expect(await redis.hkeys(keys.portfolioAssignments())).toEqual(['p1']);
    expect(JSON.parse((await redis.get(keys.nodeAssignment('n1'))) ?? '{}')).toMatchObject({
      portfolio_ids: ['p1'],
      plan_version: 1,
    });
    expect(JSON.parse((await redis.get(keys.planMeta())) ?? '{}')).toMatchObject({
      version: 1,
      leader: 'a',
    });
  });

  it('writes only the entries of a partial write, removes those it names, and keeps the rest', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    expect(await a.lead(10_000)).toBe(true);
    const first = write(0, 'a');
    const entry = first.assignments[0] as Assignment;
    const record = first.nodes[0] as NodeRecord;
    await a.writePlan({
      ...first,
      nodes: [record, { ...record, node_id: 'n2' }, { ...record, node_id: 'gone' }],
      assignments: ['p1', 'p2', 'p3'].map((id) => ({ ...entry, portfolio_id: id })),
    });
    const world = await a.readWorld();
    expect(world.planToken).toBeDefined();
    const second = write(1, 'a');
    await a.writePlan({
      ...second,
      nodes: [{ ...record, node_id: 'n2', status: 'draining' }],
      assignments: [{ ...entry, portfolio_id: 'p2', node_id: 'n2', plan_version: 2 }],
      partial: { removedAssignments: ['p3'] },
      prune: [{ nodeId: 'gone', lastSeenMs: null }],
    });
    const plan = await redis.hgetall(keys.portfolioAssignments());
    expect(Object.keys(plan).sort()).toEqual(['p1', 'p2']);
    expect(JSON.parse(plan['p1'] ?? '{}')).toMatchObject({ node_id: 'n1', plan_version: 1 });
    expect(JSON.parse(plan['p2'] ?? '{}')).toMatchObject({ node_id: 'n2', plan_version: 2 });
    const records = await redis.hgetall(keys.executionNodes());
    expect(Object.keys(records).sort()).toEqual(['n1', 'n2']);
    expect(JSON.parse(records['n2'] ?? '{}')).toMatchObject({ status: 'draining' });
    // The store remembers what it wrote as Redis holds it, under the same reading.
    const after = await a.readWorld();
    expect(a.fullReads).toBe(1);
    expect(after.planToken).toBe(world.planToken);
    expect([...after.assignments.keys()].sort()).toEqual(['p1', 'p2']);
    expect(after.assignments.get('p2')).toMatchObject({ node_id: 'n2', plan_version: 2 });
    expect(after.nodes.find((n) => n.nodeId === 'n2')?.record).toMatchObject({
      status: 'draining',
    });
    // Read anew, it is another reading (and the same plan).
    a.forget();
    const again = await a.readWorld();
    expect(again.planToken).not.toBe(world.planToken);
    expect(again.assignments).toEqual(after.assignments);
  });

  it('refuses the write of a scheduler that no longer leads, changing nothing', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    const b = new RedisSchedulerStore(redis, keys, 'b');
    expect(await a.lead(10_000)).toBe(true);
    expect(await b.lead(10_000)).toBe(false);
    await a.writePlan(write(0, 'a'));
    await redis.del(keys.schedulerLeader()); // a's lock expired while it was paused
    expect(await b.lead(10_000)).toBe(true);
    await expect(a.writePlan(write(1, 'a', 'stale'))).rejects.toThrow(PlanWriteRefused);
    await expect(a.writePlan(write(1, 'a', 'stale'))).rejects.toThrow(/NOT_LEADER/);
    expect(await redis.hkeys(keys.portfolioAssignments())).toEqual(['p1']);
  });

  it('refuses a write based on an old plan version (fencing)', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    await a.lead(10_000);
    await a.writePlan(write(0, 'a'));
    await expect(a.writePlan(write(0, 'a', 'old'))).rejects.toThrow(PlanWriteRefused);
    await expect(a.writePlan(write(0, 'a', 'old'))).rejects.toThrow(/STALE_VERSION 1/);
    expect(JSON.parse((await redis.get(keys.planMeta())) ?? '{}')).toMatchObject({ version: 1 });
  });
});

describe('SchedulerStore reads of records, plan and catalog', () => {
  const spec = (id: string) =>
    JSON.stringify({
      _v: 1,
      portfolio_id: id,
      symbols: ['BTCUSDT'],
      strategy: { name: 'ma-crossover', params: {} },
      starting_cash: 1_000,
    });

  it('reads them in full only when the meta or a length says they changed', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    await a.lead(10_000);
    await redis.hset(keys.portfolioCatalog(), 'p1', spec('p1'));
    const first = await a.readWorld();
    expect(a.fullReads).toBe(1);
    expect([...first.catalog.keys()]).toEqual(['p1']);
    expect(first.meta).toBeNull();

    // Our own write is remembered as read: the next tick reads no hash in full.
    await a.writePlan(write(0, 'a'));
    const afterWrite = await a.readWorld();
    expect(a.fullReads).toBe(1);
    expect(afterWrite.meta).toMatchObject({ version: 1, leader: 'a' });
    expect(afterWrite.assignments.get('p1')).toMatchObject({ node_id: 'n1', plan_version: 1 });
    expect(afterWrite.nodes.map((n) => [n.nodeId, n.record?.status])).toEqual([['n1', 'alive']]);
    await a.readWorld();
    expect(a.fullReads).toBe(1);

    // A catalog entry added behind its back changes the length: read in full.
    await redis.hset(keys.portfolioCatalog(), 'p2', spec('p2'));
    expect([...(await a.readWorld()).catalog.keys()].sort()).toEqual(['p1', 'p2']);
    expect(a.fullReads).toBe(2);

    // Another writer's plan (a new meta) is read in full.
    await redis.set(
      keys.planMeta(),
      JSON.stringify({ _v: 1, version: 2, updated_at: new Date().toISOString(), leader: 'b' }),
    );
    expect((await a.readWorld()).meta).toMatchObject({ version: 2, leader: 'b' });
    expect(a.fullReads).toBe(3);

    // Redis restarted empty: unknown plan read as what it is now (nothing), not as remembered.
    await redis.flushall();
    const empty = await a.readWorld();
    expect(a.fullReads).toBe(4);
    expect(empty.meta).toBeNull();
    expect(empty.assignments.size).toBe(0);
    expect(empty.catalog.size).toBe(0);
  });

  it('keeps reading in full while a hash holds a malformed entry, reporting it every time', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    await redis.hset(keys.portfolioCatalog(), 'p1', spec('p1'), 'bad', '{"_v":1}');
    for (let i = 1; i <= 2; i++) {
      const world = await a.readWorld();
      expect(a.fullReads).toBe(i);
      expect(world.problems.map((p) => p.key)).toEqual([`${keys.portfolioCatalog()}[bad]`]);
      expect([...world.catalog.keys()]).toEqual(['p1']);
    }
  });

  it('remembers the catalog as its own plan write changed it', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    await a.lead(10_000);
    await redis.hset(keys.portfolioCatalog(), 'p9', spec('p9'));
    await a.readWorld();
    await a.writePlan(write(0, 'a'));
    await a.readWorld();
    expect(a.fullReads).toBe(1);
    // Replaced in place (the same length) and one added: the store knows what it wrote.
    const replaced = { ...(JSON.parse(spec('p9')) as PortfolioSpec), symbols: ['ETHUSDT'] };
    const added = { ...replaced, portfolio_id: 'p10' };
    await a.writePlan({ ...write(1, 'a'), catalog: { set: [replaced, added], remove: [] } });
    const world = await a.readWorld();
    expect(a.fullReads).toBe(1);
    expect([...world.catalog.keys()].sort()).toEqual(['p10', 'p9']);
    expect(world.catalog.get('p9')?.symbols).toEqual(['ETHUSDT']);
    expect(JSON.parse((await redis.hget(keys.portfolioCatalog(), 'p9')) ?? '{}')).toMatchObject({
      symbols: ['ETHUSDT'],
    });
  });
});

describe('SchedulerStore catalog changes and control results in the fenced write', () => {
  const spec = (id: string): PortfolioSpec => ({
    _v: 1,
    portfolio_id: id,
    symbols: ['BTCUSDT'],
    strategy: { name: 'ma-crossover', params: {} },
    starting_cash: 1_000,
  });
  const request = (id: string, action: 'catalog_add' | 'catalog_remove', portfolioId: string) =>
    JSON.stringify({
      _v: 1,
      id,
      action,
      portfolio_id: portfolioId,
      ...(action === 'catalog_add' ? { spec: spec(portfolioId) } : {}),
      requested_by: 'test',
      requested_at: new Date().toISOString(),
    });
  /** What a leader decided for the request at the head of the list: add `ghost`, remove `p1`. */
  const replay = (version: number, leader: string): PlanWrite => ({
    ...write(version, leader),
    catalog: { set: [spec('ghost')], remove: ['p1'] },
    results: [
      {
        _v: 1,
        id: 'r1',
        ok: true,
        reason: null,
        plan_version: version + 1,
        processed_at: new Date().toISOString(),
      },
    ],
    consumedRequests: 1,
    audit: [
      {
        actor: 'desk-lead',
        via: 'livecore-scheduler',
        action: 'catalog_add',
        target: { node_id: null, portfolio_id: 'ghost', target_node_id: null },
        outcome: 'accepted',
        reason: null,
        request_id: 'r1',
        address: null,
      },
    ],
  });
  const audited = async () =>
    (await new AuditLog(redis, keys).list({ limit: 10 })).map((r) =>
      'entry' in r ? [r.entry.request_id, r.entry.actor, r.entry.via, r.entry.outcome] : r.error,
    );
  const catalogIds = async () => (await redis.hkeys(keys.portfolioCatalog())).sort();

  it('writes catalog changes, results and the consumed requests with the plan', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    await a.lead(10_000);
    await redis.hset(keys.portfolioCatalog(), 'p1', JSON.stringify(spec('p1')));
    await redis.rpush(keys.controlRequests(), request('r1', 'catalog_add', 'ghost'), 'later');
    expect(await a.writePlan(replay(0, 'a'))).toBe(1);
    expect(await catalogIds()).toEqual(['ghost']);
    expect(await redis.lrange(keys.controlRequests(), 0, -1)).toEqual(['later']);
    expect(JSON.parse((await redis.hget(keys.controlResults(), 'r1')) ?? '{}')).toMatchObject({
      ok: true,
      plan_version: 1,
    });
    // The outcome's audit entry rode in the same script.
    expect(await audited()).toEqual([['r1', 'desk-lead', 'livecore-scheduler', 'accepted']]);
  });

  it('writes nothing when the audit key is not a stream: no half-applied plan write', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    await a.lead(10_000);
    await redis.hset(keys.portfolioCatalog(), 'p1', JSON.stringify(spec('p1')));
    await redis.rpush(keys.controlRequests(), request('r1', 'catalog_add', 'ghost'));
    await redis.set(keys.auditLog(), 'not a stream');
    await expect(a.writePlan(replay(0, 'a'))).rejects.toThrow(/WRONGTYPE/);
    expect(await catalogIds()).toEqual(['p1']);
    expect(await redis.llen(keys.controlRequests())).toBe(1);
    expect(await redis.hlen(keys.controlResults())).toBe(0);
    expect(await redis.exists(keys.planMeta())).toBe(0);
    expect(await redis.hlen(keys.portfolioAssignments())).toBe(0);
    expect(await redis.hlen(keys.executionNodes())).toBe(0);
  });

  it('refuses a paused former leader’s catalog change whole: nothing applied, nothing consumed', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    const b = new RedisSchedulerStore(redis, keys, 'b');
    await redis.hset(keys.portfolioCatalog(), 'p1', JSON.stringify(spec('p1')));
    await redis.rpush(keys.controlRequests(), request('r1', 'catalog_add', 'ghost'));
    expect(await a.lead(10_000)).toBe(true);
    expect(await a.writePlan(write(0, 'a'))).toBe(1);
    // a decided on version 1, then froze; its lock expired and b leads.
    await redis.del(keys.schedulerLeader());
    expect(await b.lead(10_000)).toBe(true);
    await expect(a.writePlan(replay(1, 'a'))).rejects.toThrow(/NOT_LEADER/);
    expect(await b.writePlan(write(1, 'b'))).toBe(2);
    // b froze in turn; a leads again but still holds its old decision: the version refuses it.
    await redis.del(keys.schedulerLeader());
    expect(await a.lead(10_000)).toBe(true);
    await expect(a.writePlan(replay(1, 'a'))).rejects.toThrow(/STALE_VERSION 2/);
    expect(await catalogIds()).toEqual(['p1']);
    expect(await redis.llen(keys.controlRequests())).toBe(1);
    expect(await redis.hlen(keys.controlResults())).toBe(0);
    // A refused write records no outcome either: the request is answered (and audited) once.
    expect(await audited()).toEqual([]);
    expect(JSON.parse((await redis.get(keys.planMeta())) ?? '{}')).toMatchObject({
      version: 2,
      leader: 'b',
    });
  });

  it('reads the trading halt with the world', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    expect((await a.readWorld()).halt).toBeNull();
    expect((await a.readWorld()).haltLifted).toBe(false);
    const controls = new TradingControls(redis, keys);
    const desk = { name: 'desk-lead', via: 'ginkgo-ctl', address: null };
    await controls.halt(desk, 'drill');
    expect((await a.readWorld()).halt).toMatchObject({ by: 'desk-lead', reason: 'drill' });
    // Lifted, the record stays, as a lift: the one reading that resolves fleet_halted.
    await controls.unhalt(desk);
    expect(await a.readWorld()).toMatchObject({ halt: null, haltLifted: true });
    await controls.halt(desk, 'drill');
    // Unreadable, it still halts, and is reported as a malformed payload.
    await redis.set(keys.tradingHalt(), 'garbage');
    const world = await a.readWorld();
    expect(world.halt?.by).toBe('(unreadable)');
    expect(world.problems.map((p) => p.key)).toEqual([keys.tradingHalt()]);
  });
});

describe('SchedulerStore forgetting lost nodes in the fenced write', () => {
  const lostRecord = (nodeId: string) =>
    JSON.stringify({
      _v: 1,
      node_id: nodeId,
      status: 'lost',
      capacity: 5,
      assigned_count: 0,
      last_seen: new Date(1_000).toISOString(),
    });
  const seedLost = async (nodeId: string, score: number | null) => {
    if (score !== null) await redis.zadd(keys.nodeRegistry(), score, nodeId);
    await redis.hset(keys.executionNodes(), nodeId, lostRecord(nodeId));
    await redis.set(
      keys.nodeAssignment(nodeId),
      JSON.stringify({
        _v: 1,
        node_id: nodeId,
        portfolio_ids: [],
        plan_version: 1,
        updated_at: new Date(1_000).toISOString(),
      }),
    );
  };

  it('removes the registry entry, the record and the assignment key of a node it forgets', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    await a.lead(10_000);
    await seedLost('gone', 1_000);
    await seedLost('stopped', null); // stopped cleanly: no registry entry left
    const before = await a.readWorld();
    expect(before.nodes.map((n) => [n.nodeId, n.lastSeenMs])).toEqual([
      ['gone', 1_000],
      ['stopped', null],
    ]);
    await a.writePlan({
      ...write(0, 'a'),
      prune: [
        { nodeId: 'gone', lastSeenMs: 1_000 },
        { nodeId: 'stopped', lastSeenMs: null },
      ],
    });
    expect(await redis.zrange(keys.nodeRegistry(), 0, -1)).toEqual([]);
    expect(await redis.hkeys(keys.executionNodes())).toEqual(['n1']);
    expect(await redis.exists(keys.nodeAssignment('gone'), keys.nodeAssignment('stopped'))).toBe(0);
    expect((await a.readWorld()).nodes.map((n) => n.nodeId)).toEqual(['n1']);
  });

  it('refuses the whole write when a node to forget beat again since it was read', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    await a.lead(10_000);
    await seedLost('gone', 1_000);
    await seedLost('stopped', null);
    await redis.zadd(keys.nodeRegistry(), 2_000, 'gone'); // it beat after the read
    await expect(
      a.writePlan({ ...write(0, 'a'), prune: [{ nodeId: 'gone', lastSeenMs: 1_000 }] }),
    ).rejects.toThrow(/NODE_BACK gone/);
    await redis.zadd(keys.nodeRegistry(), 3_000, 'stopped'); // it started again after the read
    await expect(
      a.writePlan({ ...write(0, 'a'), prune: [{ nodeId: 'stopped', lastSeenMs: null }] }),
    ).rejects.toThrow(PlanWriteRefused);
    expect(await redis.zrange(keys.nodeRegistry(), 0, -1)).toEqual(['gone', 'stopped']);
    expect((await redis.hkeys(keys.executionNodes())).sort()).toEqual(['gone', 'stopped']);
    expect(await redis.exists(keys.nodeAssignment('gone'))).toBe(1);
    expect(await redis.get(keys.planMeta())).toBeNull();
  });
});

describe('SchedulerStore carrying keys over from before the hash tags', () => {
  it('renames each old key to its new name when that is free, and keeps it when not', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    await redis.hset('fence:portfolio_catalog', 'p1', '{"old":true}');
    await redis.hset('fence:portfolio_assignments', 'p1', '{"old":true}');
    await redis.set('fence:scheduler:plan_meta', '{"_v":1}');
    await redis.zadd('fence:execution_node_registry', 1, 'n1');
    await redis.hset(keys.executionNodes(), 'n9', 'new'); // already carried over
    await redis.hset('fence:execution_nodes', 'n1', 'old');
    const result = await a.migrateLegacyKeys();
    expect(result.moved.sort()).toEqual(
      [
        'fence:execution_node_registry',
        'fence:portfolio_assignments',
        'fence:portfolio_catalog',
        'fence:scheduler:plan_meta',
      ].sort(),
    );
    expect(result.kept).toEqual(['fence:execution_nodes']);
    expect(await redis.hget(keys.portfolioCatalog(), 'p1')).toBe('{"old":true}');
    expect(await redis.hget(keys.portfolioAssignments(), 'p1')).toBe('{"old":true}');
    expect(await redis.zscore(keys.nodeRegistry(), 'n1')).toBe('1');
    expect(await redis.exists('fence:portfolio_catalog')).toBe(0);
    // Nothing overwritten: both stay, for an operator to look at.
    expect(await redis.hgetall(keys.executionNodes())).toEqual({ n9: 'new' });
    expect(await redis.hgetall('fence:execution_nodes')).toEqual({ n1: 'old' });
    expect(await a.migrateLegacyKeys()).toEqual({ moved: [], kept: ['fence:execution_nodes'] });
  });
});
