import { type ManagedProcess, type StackFixture, waitFor } from '@ginkgo-live/testing';

/** The whole stack the live suites run: what they start and the plan it settled on. */
export interface Fleet {
  nodes: [ManagedProcess, ManagedProcess];
  scheduler: ManagedProcess;
  gateway: { process: ManagedProcess; url: string };
  /** portfolio → node, once every portfolio runs where the plan says. */
  plan: Record<string, string>;
}

/**
 * Starts the stack as processes on the fixture's Redis — nodes `a` and `b`, scheduler `s1`, the
 * gateway — with `portfolios` in the catalog, and waits until each runs where the plan puts it.
 */
export async function startFleet(
  fx: StackFixture,
  options: { portfolios?: string[]; env?: Record<string, string> } = {},
): Promise<Fleet> {
  const portfolios = options.portfolios ?? ['p1', 'p2', 'p3'];
  const env = options.env ?? {};
  for (const id of portfolios) await fx.addToCatalog(id);
  const nodes = await Promise.all([fx.startNode('a', env), fx.startNode('b', env)]);
  const scheduler = await fx.startScheduler('s1', env);
  const gateway = await fx.startGateway(env);
  await waitFor(async () => Object.keys(await fx.plan()).length === portfolios.length, {
    timeoutMs: 10_000,
    description: 'every portfolio planned',
  });
  const plan = await fx.plan();
  for (const [id, node] of Object.entries(plan)) {
    await waitFor(
      async () => {
        const state = await fx.state(id);
        return state?.node_id === node && state.status === 'running';
      },
      { timeoutMs: 10_000, description: `${id} running on ${node}` },
    );
  }
  return { nodes, scheduler, gateway, plan };
}

/** Milliseconds between two JSON log entries (their winston timestamps). */
export function msBetween(a: Record<string, unknown>, b: Record<string, unknown>): number {
  return Date.parse(String(b['timestamp'])) - Date.parse(String(a['timestamp']));
}
