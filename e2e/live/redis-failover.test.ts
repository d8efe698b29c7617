import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import {
  FRESH_START_MS,
  logEntries,
  type RedisServer,
  StackFixture,
  tick,
  waitFor,
} from '@ginkgo-live/testing';
import { startFleet } from './fleet.ts';

/**
 * T071/T072 on the whole stack as processes: scheduler, two nodes and the gateway on a real Redis
 * that the test kills and restarts. Short intervals by env (heartbeat 500 ms, TTL 2 s, tick 500 ms);
 * the defaults are in docs/architecture.md.
 */
let fx: StackFixture;
let server: RedisServer;

beforeEach(async () => {
  fx = await StackFixture.start();
  server = fx.server;
});
afterEach(() => fx.close());

const nodesAnswer = async (url: string) => {
  const response = await fetch(`${url}/api/nodes`);
  return {
    status: response.status,
    body: (await response.json()) as { online_count?: number; code?: string },
  };
};

describe('T071 on the whole stack', () => {
  it('recovers from a Redis killed for three heartbeat TTLs and restarted empty: nothing exits, nothing moves', async ({
    annotate,
  }) => {
    const { nodes, scheduler, gateway, plan } = await startFleet(fx);
    // The gateway's overview connection is made at its first chart sample (every 5 s): count the
    // connections once every app has all of its own.
    await waitFor(
      async () => (await fx.connectionNames('api-gateway')).some((n) => n.endsWith(':overview')),
      { timeoutMs: 10_000, description: "the gateway's overview connection" },
    );
    const connectionsBefore = await Promise.all(
      ['execution-node:a', 'execution-node:b', 'livecore-scheduler', 'api-gateway'].map((p) =>
        fx.connectionNames(p),
      ),
    );

    await server.kill();
    const downFor = Date.now() + 3 * 2_000;
    while (Date.now() < downFor) {
      const answer = await nodesAnswer(gateway.url);
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe('REDIS_UNAVAILABLE');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    for (const p of [...nodes, scheduler, gateway.process]) expect(p.exit, p.name).toBeUndefined();
    for (const node of nodes) expect(logEntries(node, 'Heartbeat failed')).toHaveLength(1);

    await server.restart({ keepData: false });
    const back = Date.now();
    await waitFor(async () => (await nodesAnswer(gateway.url)).body.online_count === 2, {
      timeoutMs: 10_000,
      description: 'both nodes online',
    });
    await waitFor(
      async () =>
        (await Promise.all(Object.keys(plan).map((id) => fx.state(id)))).every(
          (s) => s?.status === 'running',
        ),
      { timeoutMs: 10_000, description: 'every portfolio state back' },
    );
    const recoveredMs = Date.now() - back;
    await annotate(
      `every node online and every state back ${recoveredMs} ms after Redis returned empty`,
    );
    // Redis was away past every holder's lease, so no holder may put its book back on its own
    // word (another node could have taken the portfolio meanwhile): each leaves its book as a
    // claim, and the claims are settled once Redis has timed a fresh-start window (TTL + 2 beats).
    // Then the reconnect cap (200 ms), a beat (500 ms) and a margin.
    expect(recoveredMs).toBeLessThan(FRESH_START_MS + 2_000);
    // The catalog lived only in Redis: the scheduler says so and moves nothing.
    await waitFor(
      () => logEntries(scheduler, 'Portfolio catalog vanished; nothing is unassigned').length > 0,
      { timeoutMs: 5_000 },
    );
    for (const node of nodes) expect(logEntries(node, 'Portfolio unloaded')).toHaveLength(0);
    for (const [id, node] of Object.entries(plan)) expect((await fx.state(id))?.node_id).toBe(node);

    // T072.3: the same connections as before the outage, none leaked by the reconnects.
    const connectionsAfter = await Promise.all(
      ['execution-node:a', 'execution-node:b', 'livecore-scheduler', 'api-gateway'].map((p) =>
        fx.connectionNames(p),
      ),
    );
    expect(connectionsAfter).toEqual(connectionsBefore);
  });
});

describe('a node killed under load', () => {
  it('loses no event and repeats none: every accepted event is in the books once', async ({
    annotate,
  }) => {
    const { nodes, plan } = await startFleet(fx);
    const queues = new PortfolioQueues({ connection: fx.redis, keys: fx.keys });
    const accepted = new Map<string, number>();
    const total = () => [...accepted.values()].reduce((a, b) => a + b, 0);
    const feed = { stopped: false };
    const feeding = (async () => {
      for (let i = 0; !feed.stopped; i++) {
        for (const id of Object.keys(plan)) {
          if ((await queues.add(id, tick(i))).ok) accepted.set(id, (accepted.get(id) ?? 0) + 1);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await waitFor(() => total() >= 150, { timeoutMs: 10_000 });
    const [a] = nodes;
    await a.stop('SIGKILL');
    await waitFor(() => total() >= 450, { timeoutMs: 20_000 });
    feed.stopped = true;
    await feeding;
    // Done when every book has applied what its queue accepted (the events the killed node had
    // not committed were still queued, at the head, for b).
    const applied = async (id: string) =>
      (await fx.book(id))?.applied?.producers[queues.producerId]?.count;
    await waitFor(
      async () => {
        for (const id of Object.keys(plan))
          if ((await applied(id)) !== accepted.get(id)) return false;
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 200, description: 'every accepted event in the books' },
    );
    let processed = 0;
    for (const id of Object.keys(plan)) {
      const state = await fx.state(id);
      expect(state?.node_id).toBe('b');
      const book = await fx.book(id);
      if (book === null) throw new Error(`${id}: no book`);
      expect(book.processed_count).toBe(accepted.get(id));
      processed += book.processed_count;
    }
    await annotate(`accepted ${total()}, processed (from the books) ${processed}`);
    expect(processed).toBe(total());
    await queues.close();
  }, 60_000);
});
