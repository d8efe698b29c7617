import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { logEntries, type RedisServer, StackFixture, waitFor } from '@ginkgo-live/testing';
import { startFleet } from './fleet.ts';

/**
 * T071 part 2 on the whole stack: the scheduler process killed and started again, with Redis up,
 * and with Redis itself killed and restarted from its append-only file meanwhile.
 */
let fx: StackFixture;
let server: RedisServer;

beforeEach(async () => {
  fx = await StackFixture.start({ redis: { persistence: true } });
  server = fx.server;
});
afterEach(() => fx.close());

/** Everything the plan is, byte for byte: assignments, per-node lists and the plan meta. */
async function planSnapshot(nodeIds: string[]) {
  const k = fx.keys;
  const assignments = await fx.redis.hgetall(k.portfolioAssignments());
  const perNode = await Promise.all(nodeIds.map((id) => fx.redis.get(k.nodeAssignment(id))));
  const meta = await fx.redis.get(k.planMeta());
  return { assignments, perNode, meta };
}

function recoveryOf(scheduler: Parameters<typeof logEntries>[0]) {
  const [recovered] = logEntries(scheduler, 'Recovered: plan loaded and first tick done');
  return recovered;
}

describe('T071.2 scheduler state recovery on the whole stack', () => {
  it('restores the plan in under 5 s after a SIGKILL and moves nothing', async ({ annotate }) => {
    const { nodes, scheduler, plan } = await startFleet(fx, {
      portfolios: ['p1', 'p2', 'p3', 'p4', 'p5'],
    });
    const before = await planSnapshot(['a', 'b']);
    await scheduler.stop('SIGKILL');

    const again = await fx.startScheduler('s1');
    const recovered = recoveryOf(again);
    expect(recovered).toBeDefined();
    const recoveryMs = Number(recovered?.['recoveryMs']);
    await annotate(
      `process start → plan loaded ${String(recovered?.['planLoadedMs'])} ms → first tick ${recoveryMs} ms`,
    );
    expect(recoveryMs).toBeLessThan(5_000);
    // A few more ticks: still nothing placed, nothing written, every portfolio where it was.
    await waitFor(() => logEntries(again, 'Tick done').length >= 3, {
      timeoutMs: 5_000,
      description: 'three ticks by the restarted scheduler',
    });
    expect(logEntries(again, 'Portfolio placed')).toHaveLength(0);
    expect(await planSnapshot(['a', 'b'])).toEqual(before);
    for (const node of nodes) expect(logEntries(node, 'Portfolio unloaded')).toHaveLength(0);
    for (const [id, node] of Object.entries(plan)) expect((await fx.state(id))?.node_id).toBe(node);
  });

  it('restores exactly the plan before when Redis restarts from its append-only file meanwhile', async ({
    annotate,
  }) => {
    const { nodes, scheduler, plan } = await startFleet(fx, {
      portfolios: ['p1', 'p2', 'p3', 'p4', 'p5'],
    });
    const before = await planSnapshot(['a', 'b']);
    await scheduler.stop('SIGKILL');
    await server.kill();
    await server.restart({ keepData: true });

    const again = await fx.startScheduler('s1');
    const recoveryMs = Number(recoveryOf(again)?.['recoveryMs']);
    await annotate(`plan recovered from the append-only file, first tick ${recoveryMs} ms`);
    expect(recoveryMs).toBeLessThan(5_000);
    await waitFor(() => logEntries(again, 'Tick done').length >= 3, {
      timeoutMs: 5_000,
      description: 'three ticks by the restarted scheduler',
    });
    expect(await planSnapshot(['a', 'b'])).toEqual(before);
    expect(logEntries(again, 'Portfolio catalog vanished; nothing is unassigned')).toHaveLength(0);
    expect(logEntries(again, 'Portfolio placed')).toHaveLength(0);
    for (const node of nodes) {
      expect(node.exit).toBeUndefined();
      expect(logEntries(node, 'Portfolio unloaded')).toHaveLength(0);
    }
    for (const [id, node] of Object.entries(plan)) {
      await waitFor(async () => (await fx.state(id))?.node_id === node, {
        timeoutMs: 5_000,
        description: `${id} still on ${node}`,
      });
    }
  });
});
