import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  logEntries,
  type RedisServer,
  seedFleet,
  StackFixture,
  waitFor,
} from '@ginkgo-live/testing';

let fx: StackFixture;
let server: RedisServer;

beforeEach(async () => {
  fx = await StackFixture.start();
  server = fx.server;
});
afterEach(() => fx.close());

describe('scheduler restart recovery (T071 part 2)', () => {
  it('recovers a 1,000-node, 5,000-portfolio plan in under 5 s and moves nothing', async ({
    annotate,
  }) => {
    const before = await seedFleet(fx, 1_000, 5);
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
