import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStateKeys, type PlanMeta, type StateKeys } from '@ginkgo-live/state-keys';
import { RedisServer, waitFor } from '@ginkgo-live/testing';
import { RedisSchedulerStore, type PlanWrite } from './scheduler-store.ts';

let server: RedisServer;
let redis: Redis;
let sub: Redis;
let keys: StateKeys;
let got: string[];

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.port, server.host);
  sub = redis.duplicate();
  keys = createStateKeys('push:');
  got = [];
  sub.on('smessage', (channel: string, message: string) => got.push(`${channel} ${message}`));
  await sub.ssubscribe(
    keys.nodeOrdersChannel('n1'),
    keys.nodeOrdersChannel('n2'),
    keys.nodeOrdersChannel('n3'),
  );
});
afterEach(async () => {
  sub.disconnect();
  redis.disconnect();
  await server.cleanup();
});

/** A plan write at `version` that writes the assignments of `nodes` (each with one portfolio). */
function write(version: number, leader: string, nodes: string[]): PlanWrite {
  const now = new Date().toISOString();
  const meta: PlanMeta = { _v: 1, version: version + 1, updated_at: now, leader };
  return {
    expectedVersion: version,
    meta,
    nodes: [],
    assignments: [],
    nodeAssignments: new Map(nodes.map((n) => [n, [`p-${n}`]])),
    results: [],
    consumedRequests: 0,
  };
}

/** Every message up to now: one sent after the others arrives last. */
async function messages(): Promise<string[]> {
  const end = keys.nodeOrdersChannel('n3');
  await redis.spublish(end, 'end');
  await waitFor(() => got.at(-1) === `${end} end`);
  return got.slice(0, -1);
}

describe('the plan write pushes to the nodes it changes', () => {
  it('each node whose assignment it writes gets the new plan version, the others nothing', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    expect(await a.lead(10_000)).toBe(true);
    expect(await a.writePlan(write(0, 'a', ['n1', 'n2']))).toBe(1);
    expect(await a.writePlan(write(1, 'a', ['n2']))).toBe(2);
    expect(await messages()).toEqual([
      `${keys.nodeOrdersChannel('n1')} 1`,
      `${keys.nodeOrdersChannel('n2')} 1`,
      `${keys.nodeOrdersChannel('n2')} 2`,
    ]);
  });

  it('a refused write sends nothing: the message goes out only with the write', async () => {
    const a = new RedisSchedulerStore(redis, keys, 'a');
    const b = new RedisSchedulerStore(redis, keys, 'b');
    expect(await a.lead(10_000)).toBe(true);
    await expect(b.writePlan(write(0, 'b', ['n1']))).rejects.toThrow(/NOT_LEADER/);
    await expect(a.writePlan(write(5, 'a', ['n1']))).rejects.toThrow(/STALE_VERSION/);
    // A Redis fault half way (the audit key of the wrong type) stops the script before any write.
    await redis.set(keys.auditLog(), 'not a stream');
    await expect(a.writePlan(write(0, 'a', ['n1']))).rejects.toThrow(/WRONGTYPE/);
    expect(await messages()).toEqual([]);
  });

  it('a Redis that refuses the push (an ACL without the channels) still takes the write', async () => {
    await redis.acl('SETUSER', 'scheduler', 'on', '>pw', '~*', 'resetchannels', '+@all');
    const user = new Redis({
      host: server.host,
      port: server.port,
      username: 'scheduler',
      password: 'pw',
    });
    try {
      const a = new RedisSchedulerStore(user, keys, 'a');
      expect(await a.lead(10_000)).toBe(true);
      expect(await a.writePlan(write(0, 'a', ['n1']))).toBe(1);
      expect(JSON.parse((await redis.get(keys.nodeAssignment('n1'))) ?? '{}')).toMatchObject({
        portfolio_ids: ['p-n1'],
      });
      expect(await messages()).toEqual([]);
    } finally {
      user.disconnect();
    }
  });
});
