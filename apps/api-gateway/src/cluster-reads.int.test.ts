import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStateKeys, encodePayload } from '@ginkgo-live/state-keys';
import { fleetNodeInfo, fleetPortfolioState, RedisCluster } from '@ginkgo-live/testing';
import { FleetReader } from './fleet-reader.ts';
import { FleetView } from './fleet-view.ts';
import { portfolioItem } from './overview.ts';

let cluster: RedisCluster;
let client: ReturnType<RedisCluster['client']>;
const keys = createStateKeys('gwc:');
const NODES = 12;
const PER_NODE = 3;

beforeAll(async () => {
  cluster = await RedisCluster.start();
  client = cluster.client();
  const now = new Date().toISOString();
  // One command at a time: the keys of a node and of each portfolio live in slots of their own.
  for (let n = 0; n < NODES; n++) {
    const nodeId = `node-${n}`;
    const ids = Array.from({ length: PER_NODE }, (_, i) => `p-${n}-${i}`);
    await client.set(
      keys.heartbeat(nodeId),
      encodePayload('heartbeat', { _v: 1, node_id: nodeId, sent_at: now, seq: 1 }),
      'PX',
      60_000,
    );
    await client.set(
      keys.nodeInfo(nodeId),
      encodePayload('nodeInfo', fleetNodeInfo(nodeId, ids, now)),
    );
    await client.zadd(keys.nodeRegistry(), Date.now(), nodeId);
    for (const id of ids) {
      await client.hset(
        keys.portfolioCatalog(),
        id,
        encodePayload('portfolioSpec', {
          _v: 1,
          portfolio_id: id,
          symbols: ['BTCUSDT'],
          strategy: { name: 'ma-crossover', params: {} },
          starting_cash: 1_000,
        }),
      );
      await client.hset(
        keys.portfolioAssignments(),
        id,
        encodePayload('assignment', {
          _v: 1,
          portfolio_id: id,
          status: 'assigned',
          node_id: nodeId,
          reason: null,
          plan_version: 1,
          since: now,
        }),
      );
      await client.set(
        keys.portfolioState(id),
        encodePayload('portfolioState', fleetPortfolioState(id, nodeId, now)),
      );
    }
  }
  await client.set(
    keys.planMeta(),
    encodePayload('planMeta', { _v: 1, version: 1, updated_at: now, leader: 's' }),
  );
}, 60_000);
afterAll(async () => {
  client.disconnect();
  await cluster.cleanup();
});

describe('the gateway reads on a Redis Cluster', () => {
  it('pages, the liveness index and the fleet view: no read spans hash slots (CROSSSLOT), every state read', async () => {
    // As main.ts holds it: the connection typed as a Redis, a Cluster underneath.
    const reader = new FleetReader(client as unknown as Redis, keys);
    const portfolios = await reader.portfolios();
    expect(portfolios).toHaveLength(NODES * PER_NODE);
    expect(portfolios.every((p) => p.state?.status === 'running')).toBe(true);
    const ids = await reader.portfolioIds();
    expect(await reader.portfolios(ids.slice(5, 25))).toEqual(portfolios.slice(5, 25));
    const index = await reader.nodeIndex();
    expect(index.filter((n) => n.online)).toHaveLength(NODES);

    const snapshot = await new FleetView(client as unknown as Redis, keys).refresh();
    expect(snapshot.nodes.map((n) => n.status)).toEqual(new Array(NODES).fill('online'));
    expect(snapshot.portfolios).toEqual(portfolios.map(portfolioItem));
    // Each heartbeat has a slot of its own: the index reads them one by one, and sees a death.
    await client.del(keys.heartbeat('node-3'));
    expect((await reader.nodeIndex()).filter((n) => !n.online)).toEqual([
      { nodeId: 'node-3', online: false },
    ]);
  });
});
