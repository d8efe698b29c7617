import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStateKeys, encodePayload, type StateKeys } from '@ginkgo-live/state-keys';
import { RedisServer } from '@ginkgo-live/testing';
import { FleetReader } from './fleet-reader.ts';
import { LivenessIndex } from './liveness-index.ts';

let server: RedisServer;
let redis: Redis;
let keys: StateKeys;
const ids = Array.from({ length: 12 }, (_, i) => `n${String(i).padStart(2, '0')}`);
const MINUTE = 60_000;

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.port, server.host);
  keys = createStateKeys('li:');
});
afterEach(async () => {
  redis.disconnect();
  await server.cleanup();
});

/**
 * A beat of `nodeId` as far as liveness goes: its heartbeat (TTL `ttlMs`; none when null) and its
 * registry score, both stamped by a clock `skewMs` off this host's.
 */
async function beat(nodeId: string, ttlMs: number | null = MINUTE, skewMs = 0): Promise<void> {
  const sent = Date.now() + skewMs;
  const payload = encodePayload('heartbeat', {
    _v: 1,
    node_id: nodeId,
    sent_at: new Date(sent).toISOString(),
    seq: 1,
  });
  if (ttlMs === null) await redis.set(keys.heartbeat(nodeId), payload);
  else await redis.set(keys.heartbeat(nodeId), payload, 'PX', ttlMs);
  await redis.zadd(keys.nodeRegistry(), sent, nodeId);
}

/** The liveness rule read key by key: what the index must answer. */
async function byPttl(of: readonly string[]): Promise<Map<string, boolean>> {
  const out = new Map<string, boolean>();
  for (const id of of) out.set(id, (await redis.pttl(keys.heartbeat(id))) >= 0);
  return out;
}

/** The commands Redis saw while `run` ran, by name. */
async function commandsOf(run: () => Promise<unknown>): Promise<string[]> {
  const monitor = await redis.monitor();
  const seen: string[] = [];
  monitor.on('monitor', (_t: string, args: string[]) => seen.push(String(args[0]).toLowerCase()));
  await run();
  await new Promise((resolve) => setTimeout(resolve, 50));
  monitor.disconnect();
  return seen;
}

describe('the liveness index of /api/nodes', () => {
  it('reads a PTTL per node once, then checks them in bulk: no PTTL while nothing changed', async () => {
    for (const id of ids) await beat(id);
    const reader = new FleetReader(redis, keys);
    const first = await commandsOf(() => reader.nodeIndex());
    expect(first.filter((c) => c === 'pttl')).toHaveLength(ids.length);
    let index: { nodeId: string; online: boolean }[] = [];
    const again = await commandsOf(async () => (index = await reader.nodeIndex()));
    expect(again.filter((c) => c === 'pttl')).toEqual([]);
    expect(again.filter((c) => c === 'exists')).toHaveLength(1);
    expect(index).toEqual(ids.map((nodeId) => ({ nodeId, online: true })));
  });

  it('answers what a PTTL of every key says, right after nodes die, expire, come back or lose their TTL', async () => {
    // Chunks of 4: changes inside one chunk, and a death and a return in the same one.
    const index = new LivenessIndex(redis, keys, { chunk: 4 });
    for (const id of ids.slice(0, 8)) await beat(id);
    await beat('n08', 300);
    await redis.zadd(keys.nodeRegistry(), Date.now(), 'n09'); // registered, no heartbeat
    await beat('n10', null); // a heartbeat without a TTL is no sign of life
    const expectExact = async (when: string) =>
      expect(await index.online(ids), when).toEqual(await byPttl(ids));

    await expectExact('first read');
    expect((await index.online(ids)).get('n08')).toBe(true);
    await redis.del(keys.heartbeat('n01'));
    await expectExact('a heartbeat deleted (a clean stop)');
    // n02 dies and n01 comes back: of n00–n03 as many keys exist as before, so one count over
    // them would not see it; the index counts the keys it expects and those it does not apart.
    await redis.del(keys.heartbeat('n02'));
    await beat('n01');
    await expectExact('one died and one came back in the same chunk');
    expect((await index.online(ids)).get('n02')).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 400));
    await expectExact('a node that stopped beating, past its TTL');
    expect((await index.online(ids)).get('n08')).toBe(false);
    await beat('n09');
    await beat('n10');
    await expectExact('a registered node beats; a key without TTL gets one');
    expect((await index.online(ids)).get('n09')).toBe(true);
  });

  it('judges by the key alone: nodes whose clocks are minutes off are online while their key lives, lost when it expires', async () => {
    const index = new LivenessIndex(redis, keys);
    await beat('ahead', 500, 10 * MINUTE);
    await beat('behind', 500, -10 * MINUTE);
    await beat('steady', MINUTE);
    const all = ['ahead', 'behind', 'steady'];
    expect(await index.online(all)).toEqual(
      new Map([
        ['ahead', true],
        ['behind', true],
        ['steady', true],
      ]),
    );
    // They stop beating: within their TTL (500 ms) both are lost; the one still beating is not.
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(await index.online(all)).toEqual(
      new Map([
        ['ahead', false],
        ['behind', false],
        ['steady', true],
      ]),
    );
  });

  it('reads every key that exists with PTTL again within recheckMs: a TTL removed by hand is seen', async () => {
    let now = 0;
    const index = new LivenessIndex(redis, keys, {
      recheckMs: 1_000,
      recheckBatch: 1,
      now: () => now,
    });
    await beat('a');
    await beat('b');
    expect([...(await index.online(['a', 'b'])).values()]).toEqual([true, true]);
    await redis.persist(keys.heartbeat('a'));
    await redis.persist(keys.heartbeat('b'));
    // EXISTS cannot tell: both keys are still there.
    expect([...(await index.online(['a', 'b'])).values()]).toEqual([true, true]);
    now = 1_000;
    // One re-read per call at most (recheckBatch): a, then b.
    expect([...(await index.online(['a', 'b'])).values()]).toEqual([false, true]);
    expect([...(await index.online(['a', 'b'])).values()]).toEqual([false, false]);
  });
});
