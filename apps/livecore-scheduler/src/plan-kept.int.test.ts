import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStateKeys, encodePayload, type StateKeys } from '@ginkgo-live/state-keys';
import { fleetNodeInfo, RedisServer } from '@ginkgo-live/testing';
import { decide, initialMemory, type SchedulerMemory } from './decide.ts';
import { SETTINGS, spec, T0 } from './fake-store.test-support.ts';
import { PlanWriteRefused, RedisSchedulerStore } from './scheduler-store.ts';

/**
 * The plan kept between ticks, on a real Redis: one scheduler updates its plan from the changes
 * and writes only what changed; another, on a second Redis fed the same fleet, plans from the
 * whole world at every tick. What the two Redis hold must be the same, tick after tick.
 */
interface Side {
  server: RedisServer;
  redis: Redis;
  store: RedisSchedulerStore;
  memory: SchedulerMemory;
}

const keys: StateKeys = createStateKeys('kept:');
let sides: Side[] = [];
/**
 * The node reads' clock, a second a tick: each heartbeat (1 s TTL) may have expired by the next
 * tick, so every node is read at every tick on both sides (the node reads have their own tests).
 */
let clock = 0;

beforeEach(async () => {
  sides = [];
  for (const id of ['kept', 'whole']) {
    const server = await RedisServer.start();
    const redis = new Redis(server.port, server.host);
    sides.push({
      server,
      redis,
      store: new RedisSchedulerStore(redis, keys, id, { now: () => clock }),
      memory: initialMemory(),
    });
  }
});
afterEach(async () => {
  for (const side of sides) {
    side.redis.disconnect();
    await side.server.cleanup();
  }
});

/** Plan, records and node keys as Redis holds them (records without their last beat). */
async function held(redis: Redis, nodes: readonly string[]) {
  const plan = await redis.hgetall(keys.portfolioAssignments());
  const records = Object.fromEntries(
    Object.entries(await redis.hgetall(keys.executionNodes())).map(([id, raw]) => {
      const { last_seen: _, ...rest } = JSON.parse(raw) as Record<string, unknown>;
      return [id, rest];
    }),
  );
  const nodeKeys = await Promise.all(nodes.map((n) => redis.get(keys.nodeAssignment(n))));
  return { plan, records, nodeKeys };
}

describe('the plan kept between ticks on Redis', () => {
  it('leaves Redis holding what planning from the whole world at every tick leaves', async () => {
    let seed = 5;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const nodes = Array.from({ length: 8 }, (_, i) => `n${i}`);
    const up = new Set(nodes.slice(0, 6));
    const capacity = new Map(nodes.map((n) => [n, 4]));
    const settings = {
      ...SETTINGS,
      schedulerId: 'kept',
      catalogFile: Array.from({ length: 24 }, (_, i) => spec(`p${i}`)),
    };
    let partialWrites = 0;
    let moves = 0;
    for (let t = 0; t < 75; t++) {
      const now = T0 + t * 1_000;
      clock = t * 1_000;
      for (const n of nodes) {
        const r = random();
        if (r < 0.05) up.delete(n);
        else if (r < 0.12) up.add(n);
        if (random() < 0.05) capacity.set(n, Math.floor(random() * 6));
      }
      const request =
        random() < 0.15
          ? encodePayload('controlRequest', {
              _v: 1,
              id: `r${t}`,
              action: random() < 0.5 ? 'drain' : 'undrain',
              node_id: nodes[Math.floor(random() * nodes.length)],
              requested_by: 'test',
              requested_at: new Date(now).toISOString(),
            })
          : undefined;
      for (const side of sides) {
        const { redis } = side;
        // The fleet as the nodes' beats write it: heartbeat, info (what the plan gives them), score.
        const plan = await redis.hgetall(keys.portfolioAssignments());
        const pipeline = redis.pipeline();
        for (const n of nodes) {
          if (!up.has(n)) {
            pipeline.del(keys.heartbeat(n));
            continue;
          }
          const runs = Object.values(plan)
            .map((raw) => JSON.parse(raw) as { portfolio_id: string; node_id: string | null })
            .filter((a) => a.node_id === n)
            .map((a) => a.portfolio_id);
          const info = {
            ...fleetNodeInfo(n, runs, new Date(now).toISOString()),
            capacity: capacity.get(n) ?? 4,
          };
          pipeline
            .set(
              keys.heartbeat(n),
              JSON.stringify({ _v: 1, node_id: n, sent_at: now, seq: t }),
              'PX',
              1_000,
            )
            .set(keys.nodeInfo(n), JSON.stringify(info))
            .zadd(keys.nodeRegistry(), now, n);
        }
        if (request !== undefined) pipeline.rpush(keys.controlRequests(), request);
        await pipeline.exec();

        const whole = side === sides[1];
        if (whole) {
          // From the whole world: what Redis holds, read anew, no plan kept, written whole.
          side.store.forget();
          side.memory = { ...side.memory, plan: null };
        }
        expect(await side.store.lead(60_000)).toBe(true);
        const read = await side.store.readWorld();
        // Without a token the plan is made and written whole (both hashes replaced).
        const { planToken: _, ...withoutToken } = read;
        const world = whole ? withoutToken : read;
        const d = decide(world, side.memory, now, {
          ...settings,
          schedulerId: whole ? 'whole' : 'kept',
        });
        let written = true;
        if (d.write !== null) {
          try {
            await side.store.writePlan({ ...d.write, meta: { ...d.write.meta, leader: 'same' } });
          } catch (err) {
            if (!(err instanceof PlanWriteRefused)) throw err;
            written = false;
          }
          if (whole) expect(d.write.partial).toBeUndefined();
          else if (d.write.partial !== undefined) partialWrites += 1;
          if (!whole) moves += d.reasons.some((r) => r.endsWith('moves')) ? 1 : 0;
        }
        side.memory = written ? d.memory : d.memoryUnwritten;
      }
      const [a, b] = await Promise.all(sides.map((side) => held(side.redis, nodes)));
      expect(a, `tick ${t}`).toEqual(b);
    }
    expect(partialWrites).toBeGreaterThan(10);
    expect(moves).toBeGreaterThan(5);
  });
});
