import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import {
  createStateKeys,
  decodePayload,
  encodePayload,
  type NodeInfo,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { MemoryTransport, RedisServer, seedFleet } from '@ginkgo-live/testing';
import { ControlQueue } from './control-queue.ts';
import { FleetReader, type NodeView, type PortfolioView } from './fleet-reader.ts';
import { FleetView, type FleetSnapshot } from './fleet-view.ts';
import { createApp } from './http/app.ts';
import { portfolioItem } from './overview.ts';

let server: RedisServer;
let redis: Redis;
let keys: StateKeys;
let reader: FleetReader;
const TTL = 60_000;

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.port, server.host);
  keys = createStateKeys('fv:');
  reader = new FleetReader(redis, keys);
  await seedFleet({ redis, keys }, 20, 3, { withReports: true, ttlMs: TTL });
});
afterEach(async () => {
  redis.disconnect();
  await server.cleanup();
});

/** Views without the heartbeat age, which moves with the clock between two reads. */
const timeless = (nodes: NodeView[]) => nodes.map(({ heartbeat_age_ms: _age, ...rest }) => rest);

/** The view's fleet equals what a full read of Redis gives now. */
async function expectFullRead(snapshot: FleetSnapshot): Promise<void> {
  expect(timeless(snapshot.nodes)).toEqual(timeless(await reader.nodes()));
  expect(snapshot.portfolios).toEqual((await reader.portfolios()).map(portfolioItem));
}

/** What one node's beat writes: a new registry score, its info and its portfolios' states. */
async function beat(nodeId: string, change: (info: NodeInfo) => NodeInfo, heartbeatTtl = TTL) {
  const info = decodePayload('nodeInfo', 'i', (await redis.get(keys.nodeInfo(nodeId))) ?? '');
  if (!info.ok) throw new Error('no info');
  const score = Number(await redis.zscore(keys.nodeRegistry(), nodeId)) + 1_000;
  const pipeline = redis
    .multi()
    .set(
      keys.heartbeat(nodeId),
      encodePayload('heartbeat', {
        _v: 1,
        node_id: nodeId,
        sent_at: new Date().toISOString(),
        seq: 2,
      }),
      'PX',
      heartbeatTtl,
    )
    .set(keys.nodeInfo(nodeId), encodePayload('nodeInfo', change(info.value)), 'PX', TTL)
    .zadd(keys.nodeRegistry(), score, nodeId);
  for (const id of info.value.portfolio_ids) {
    const state = decodePayload(
      'portfolioState',
      's',
      (await redis.get(keys.portfolioState(id))) ?? '',
    );
    if (!state.ok) throw new Error('no state');
    pipeline.set(
      keys.portfolioState(id),
      encodePayload('portfolioState', {
        ...state.value,
        processed_count: state.value.processed_count + 1,
      }),
      'PX',
      TTL,
    );
  }
  await pipeline.exec();
}

/** The node and portfolio keys (heartbeat, info, state) Redis saw read while `run` ran. */
async function keysRead(run: () => Promise<unknown>): Promise<string[]> {
  const monitor = await redis.monitor();
  const commands: string[][] = [];
  monitor.on('monitor', (_t: string, args: string[]) => commands.push(args));
  await run();
  await new Promise((resolve) => setTimeout(resolve, 50));
  monitor.disconnect();
  return commands
    .filter((c) => ['get', 'mget'].includes((c[0] ?? '').toLowerCase()))
    .flatMap((c) => c.slice(1))
    .filter((key) => !key.includes('{scheduler}'))
    .sort();
}

describe('FleetView', () => {
  it('after one node beat, a refresh reads that node and its portfolios only, and equals a full read', async () => {
    const view = new FleetView(redis, keys);
    await expectFullRead(await view.refresh());
    expect(view.stats).toMatchObject({ full: true, statesRead: 60 });
    expect(view.stats.nodesRead).toHaveLength(20);

    // Nothing changed: nothing of the fleet is read.
    expect(await keysRead(() => view.refresh())).toEqual([]);
    expect(view.stats).toMatchObject({ full: false, nodesRead: [], statesRead: 0 });

    await beat('node-7', (info) => ({ ...info, uptime_seconds: 601 }));
    let snapshot: FleetSnapshot | undefined;
    const read = await keysRead(async () => (snapshot = await view.refresh()));
    expect(view.stats).toMatchObject({ full: false, nodesRead: ['node-7'], statesRead: 3 });
    expect(read).toEqual(
      [
        keys.heartbeat('node-7'),
        keys.nodeInfo('node-7'),
        ...['p-7-0', 'p-7-1', 'p-7-2'].map((id) => keys.portfolioState(id)),
      ].sort(),
    );
    if (snapshot === undefined) throw new Error('no snapshot');
    expect(snapshot.nodes.find((n) => n.node_id === 'node-7')?.uptime_seconds).toBe(601);
    await expectFullRead(snapshot);
  });

  it('sees a heartbeat expire without a new beat: that node is read again and shown lost', async () => {
    const view = new FleetView(redis, keys);
    await view.refresh();
    await beat('node-3', (info) => info, 300);
    await view.refresh();
    expect(view.stats.nodesRead).toEqual(['node-3']);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const snapshot = await view.refresh();
    expect(view.stats.nodesRead).toEqual(['node-3']);
    expect(snapshot.nodes.find((n) => n.node_id === 'node-3')?.status).toBe('lost');
    await expectFullRead(snapshot);
  });

  it('Redis restarted empty, or a replica behind: a registry or plan that went backwards leaves no stale row', async () => {
    const view = new FleetView(redis, keys);
    await view.refresh();

    // A replica that lagged: one registry score lower than already read, and a state the old
    // master had written never reached it (its node's score says nothing changed there).
    const score = Number(await redis.zscore(keys.nodeRegistry(), 'node-2'));
    await redis.zadd(keys.nodeRegistry(), score - 5_000, 'node-2');
    await redis.del(keys.portfolioState('p-9-0'));
    await expectFullRead(await view.refresh());
    expect(view.stats).toMatchObject({
      full: true,
      reason: 'the registry went backwards (node-2)',
    });

    // Restarted empty, then a smaller fleet with an older plan came back.
    await redis.flushall();
    await seedFleet({ redis, keys }, 5, 2, { withReports: true, ttlMs: TTL, planVersion: 3 });
    const smaller = await view.refresh();
    expect(view.stats).toMatchObject({ full: true, reason: 'the plan version went backwards' });
    expect(smaller.nodes).toHaveLength(5);
    expect(smaller.portfolios).toHaveLength(10);
    await expectFullRead(smaller);

    // Restarted empty and nothing came back yet.
    await redis.flushall();
    const empty = await view.refresh();
    expect(view.stats.full).toBe(true);
    expect(empty.nodes).toEqual([]);
    expect(empty.portfolios).toEqual([]);
  });
});

describe('/api/nodes with a status', () => {
  let http: Server | undefined;
  afterEach(async () => {
    const current = http;
    http = undefined;
    current?.closeAllConnections();
    await new Promise((resolve) => current?.close(resolve));
  });

  it('answers exactly the rows a full read gives, right after nodes die, drain or stop by themselves', async () => {
    const app = createApp({
      reader,
      control: new ControlQueue(redis, keys),
      security: { apiKeys: [], publicReads: false, corsOrigins: [], rateLimitPerMinute: 100_000 },
      ping: () => Promise.resolve({ ok: true, latencyMs: 1 }),
      registry: new Registry(),
      logger: createLogger({ app: 'fv-test', transports: [new MemoryTransport()] }),
    });
    const listening = app.listen(0, '127.0.0.1');
    http = listening;
    await new Promise((resolve) => listening.once('listening', resolve));
    const base = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;

    const compare = async (when: string) => {
      const all = await reader.nodes();
      for (const [query, wanted] of [
        ['status=online', all.filter((n) => n.status === 'online')],
        ['status=draining', all.filter((n) => n.status === 'draining')],
        ['status=lost', all.filter((n) => n.status === 'lost')],
        ['online=true', all.filter((n) => n.is_online)],
        ['online=false', all.filter((n) => !n.is_online)],
        ['status=draining&online=true', all.filter((n) => n.status === 'draining')],
      ] as const) {
        const body = (await (await fetch(`${base}/api/nodes?${query}&limit=1000`)).json()) as {
          nodes: NodeView[];
          total_count: number;
          online_count: number;
        };
        expect(timeless(body.nodes), `${when}: ${query}`).toEqual(timeless(wanted));
        expect(body.total_count, `${when}: ${query}`).toBe(wanted.length);
        expect(body.online_count, `${when}: ${query}`).toBe(
          wanted.filter((n) => n.is_online).length,
        );
      }
    };
    const record = async (nodeId: string, status: 'alive' | 'draining') => {
      const raw = await redis.hget(keys.executionNodes(), nodeId);
      const decoded = decodePayload('nodeRecord', 'r', raw ?? '');
      if (!decoded.ok) throw new Error('no record');
      await redis.hset(
        keys.executionNodes(),
        nodeId,
        encodePayload('nodeRecord', { ...decoded.value, status }),
      );
    };

    await record('node-1', 'draining');
    await beat('node-2', (info) => ({ ...info, status: 'stopping' }));
    await redis.del(keys.heartbeat('node-3'));
    await compare('first');
    const lost = (await (await fetch(`${base}/api/nodes?status=lost`)).json()) as {
      nodes: NodeView[];
    };
    expect(lost.nodes.map((n) => n.node_id)).toEqual(['node-3']);

    // Right after: a drained node dies, a stopping node dies, one starts draining by itself,
    // an operator undrains one and drains another.
    await redis.del(keys.heartbeat('node-1'), keys.heartbeat('node-2'));
    await beat('node-4', (info) => ({ ...info, status: 'draining' }));
    await record('node-5', 'draining');
    await compare('right after');
    const draining = (await (await fetch(`${base}/api/nodes?status=draining`)).json()) as {
      nodes: NodeView[];
    };
    expect(draining.nodes.map((n) => n.node_id)).toEqual(['node-4', 'node-5']);

    await beat('node-4', (info) => ({ ...info, status: 'running' }));
    await record('node-5', 'alive');
    await compare('back');
  });
});

describe('/api/portfolios pages', () => {
  it('page the sorted ids of catalog and plan, equal to a page of a full read', async () => {
    const all: PortfolioView[] = await reader.portfolios();
    const ids = await reader.portfolioIds();
    expect(ids).toEqual(all.map((p) => p.portfolio_id));
    expect(await reader.portfolios(ids.slice(10, 20))).toEqual(all.slice(10, 20));
    // A portfolio added to the catalog shows on the next page read (the length changed).
    await redis.hset(
      keys.portfolioCatalog(),
      'a-first',
      encodePayload('portfolioSpec', {
        _v: 1,
        portfolio_id: 'a-first',
        symbols: ['BTCUSDT'],
        strategy: { name: 'ma-crossover', params: {} },
        starting_cash: 1_000,
      }),
    );
    expect((await reader.portfolioIds())[0]).toBe('a-first');
  });
});
