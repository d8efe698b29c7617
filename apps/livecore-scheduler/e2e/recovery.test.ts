import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodePayload } from '@ginkgo-live/state-keys';
import { logEntries, RedisServer, StackFixture, waitFor } from '@ginkgo-live/testing';

let server: RedisServer;
let fx: StackFixture;

beforeEach(async () => {
  server = await RedisServer.start();
  fx = new StackFixture(server);
});
afterEach(async () => {
  await fx.close();
  await server.cleanup();
});

/** Seeds a running fleet's state: nodes beating, catalog, plan, meta — as a leader left it. */
async function seedFleet(nodes: number, perNode: number): Promise<Record<string, string>> {
  const k = fx.keys;
  const now = new Date().toISOString();
  const plan: Record<string, string> = {};
  const pipeline = fx.redis.pipeline();
  for (let n = 0; n < nodes; n++) {
    const nodeId = `node-${n}`;
    const ids = Array.from({ length: perNode }, (_, i) => `p-${n}-${i}`);
    pipeline.set(
      k.heartbeat(nodeId),
      encodePayload('heartbeat', { _v: 1, node_id: nodeId, sent_at: now, seq: 1 }),
      'PX',
      120_000,
    );
    pipeline.zadd(k.nodeRegistry(), Date.now(), nodeId);
    pipeline.hset(
      k.executionNodes(),
      nodeId,
      encodePayload('nodeRecord', {
        _v: 1,
        node_id: nodeId,
        status: 'alive',
        capacity: perNode,
        assigned_count: perNode,
        last_seen: now,
      }),
    );
    pipeline.set(
      k.nodeAssignment(nodeId),
      encodePayload('nodeAssignment', {
        _v: 1,
        node_id: nodeId,
        portfolio_ids: ids,
        plan_version: 7,
        updated_at: now,
      }),
    );
    for (const id of ids) {
      plan[id] = nodeId;
      pipeline.hset(
        k.portfolioCatalog(),
        id,
        encodePayload('portfolioSpec', {
          _v: 1,
          portfolio_id: id,
          symbols: ['BTC'],
          strategy: { name: 'ma-crossover', params: {} },
          starting_cash: 1_000,
        }),
      );
      pipeline.hset(
        k.portfolioAssignments(),
        id,
        encodePayload('assignment', {
          _v: 1,
          portfolio_id: id,
          status: 'assigned',
          node_id: nodeId,
          reason: null,
          plan_version: 7,
          since: now,
        }),
      );
    }
  }
  pipeline.set(
    k.planMeta(),
    encodePayload('planMeta', { _v: 1, version: 7, updated_at: now, leader: 'old-scheduler' }),
  );
  await pipeline.exec();
  return plan;
}

describe('scheduler restart recovery (T071 part 2)', () => {
  it('recovers a 1,000-node, 5,000-portfolio plan in under 5 s and moves nothing', async ({
    annotate,
  }) => {
    const before = await seedFleet(1_000, 5);
    const scheduler = await fx.startScheduler('s-new', {
      SCHEDULER_TICK_MS: '5000',
      SCHEDULER_LEADER_TTL_MS: '10000',
    });
    const [recovered] = logEntries(scheduler, 'Recovered: plan loaded and first tick done');
    expect(recovered).toBeDefined();
    expect(Number(recovered?.['recoveryMs'])).toBeLessThan(5_000);
    await annotate(
      `process start → plan loaded ${String(recovered?.['planLoadedMs'])} ms → first tick done ${String(recovered?.['recoveryMs'])} ms`,
    );
    expect(recovered?.['planVersion']).toBe(7);
    expect(await fx.plan()).toEqual(before);
    expect(logEntries(scheduler, 'Portfolio placed')).toHaveLength(0);
    // Nothing changed, so nothing was written: the plan version is the old leader's.
    expect(JSON.parse((await fx.redis.get(fx.keys.planMeta())) ?? '{}')).toMatchObject({
      version: 7,
    });
  }, 60_000);

  it('keeps every portfolio where it runs when Redis comes back empty, rebuilding from the catalog file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-catalog-'));
    const file = path.join(dir, 'catalog.json');
    const specs = ['p1', 'p2', 'p3', 'p4'].map((id) => ({
      portfolio_id: id,
      symbols: ['BTC'],
      strategy: { name: 'ma-crossover', params: {} },
      starting_cash: 1_000,
    }));
    writeFileSync(file, JSON.stringify(specs));
    try {
      const nodes = await Promise.all([fx.startNode('a'), fx.startNode('b')]);
      const scheduler = await fx.startScheduler('s1', { CATALOG_FILE: file });
      await waitFor(async () => Object.keys(await fx.plan()).length === 4, { timeoutMs: 5_000 });
      const before = await fx.plan();
      for (const [id, node] of Object.entries(before)) {
        await waitFor(
          async () =>
            (await fx.state(id))?.node_id === node && (await fx.state(id))?.status === 'running',
          { timeoutMs: 5_000 },
        );
      }

      await server.restart({ keepData: false });
      await waitFor(async () => Object.keys(await fx.plan()).length === 4, {
        timeoutMs: 15_000,
        description: 'the plan rebuilt',
      });
      expect(await fx.plan()).toEqual(before);
      const vanished = logEntries(scheduler, 'Portfolio catalog vanished; nothing is unassigned');
      expect(vanished.length).toBeGreaterThanOrEqual(1);
      expect(vanished[0]).toMatchObject({ level: 'error', reloadFrom: 'catalog file' });
      expect(
        logEntries(scheduler, 'Portfolio placed').filter((e) => e['from'] !== null),
      ).toHaveLength(0);
      for (const node of nodes) expect(logEntries(node, 'Portfolio unloaded')).toHaveLength(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
