import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStateKeys, type PlanMeta, type StateKeys } from '@ginkgo-live/state-keys';
import { RedisServer } from '@ginkgo-live/testing';
import { PlanWriteRefused, SchedulerStore, type PlanWrite } from './scheduler-store.ts';

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
    const a = new SchedulerStore(redis, keys, 'a');
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

  it('refuses the write of a scheduler that no longer leads, changing nothing', async () => {
    const a = new SchedulerStore(redis, keys, 'a');
    const b = new SchedulerStore(redis, keys, 'b');
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
    const a = new SchedulerStore(redis, keys, 'a');
    await a.lead(10_000);
    await a.writePlan(write(0, 'a'));
    await expect(a.writePlan(write(0, 'a', 'old'))).rejects.toThrow(PlanWriteRefused);
    await expect(a.writePlan(write(0, 'a', 'old'))).rejects.toThrow(/STALE_VERSION 1/);
    expect(JSON.parse((await redis.get(keys.planMeta())) ?? '{}')).toMatchObject({ version: 1 });
  });
});
