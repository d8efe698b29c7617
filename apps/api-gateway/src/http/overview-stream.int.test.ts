import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { createStateKeys, encodePayload, type StateKeys } from '@ginkgo-live/state-keys';
import {
  fleetNodeInfo,
  fleetPortfolioState,
  MemoryTransport,
  RedisServer,
  seedFleet,
  waitFor,
} from '@ginkgo-live/testing';
import { OverviewState } from '../../public/overview-state.js';
import { ControlQueue } from '../control-queue.ts';
import { FleetReader } from '../fleet-reader.ts';
import { createFleetRegistry } from '../fleet-metrics.ts';
import { OverviewFeed } from '../overview-feed.ts';
import { createAccess } from './access.ts';
import { createApp } from './app.ts';

/**
 * The operations page's stream against the real gateway app on a real Redis: a client applying
 * the deltas with the page's own code (`public/overview-state.js`) holds exactly the rows a fresh
 * whole overview gives, through nodes joining, dying and draining and portfolios moving.
 */
let server: RedisServer;
let redis: Redis;
let keys: StateKeys;
let conns: RedisConnections;
let http: Server;
let feed: OverviewFeed;
let base: string;
let planVersion = 7;

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.port, server.host);
  keys = createStateKeys('os:');
  conns = new RedisConnections({
    config: unwrapConfig(loadRedisConfig({ ...server.env, REDIS_KEY_PREFIX: 'os:' })),
    app: 'os-test',
    instanceId: 'i',
    logger: createLogger({ app: 'os-test', transports: [new MemoryTransport()] }),
  });
  await conns.waitUntilReady(5_000);
  const logger = createLogger({ app: 'os-test', transports: [new MemoryTransport()] });
  const reader = new FleetReader(conns.main, keys);
  const security = { apiKeys: [], publicReads: false, corsOrigins: [], rateLimitPerMinute: 1e6 };
  feed = new OverviewFeed({ source: reader.view, logger, intervalMs: 100 });
  const app = createApp({
    reader,
    control: new ControlQueue(conns.main, keys),
    security,
    access: createAccess(security),
    ping: () => conns.ping(),
    registry: createFleetRegistry(reader),
    logger,
    overview: feed,
  });
  http = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => http.once('listening', resolve));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  planVersion = 7;
});
afterEach(async () => {
  feed.stop();
  http.closeAllConnections();
  await new Promise((resolve) => http.close(resolve));
  await conns.close(300);
  redis.disconnect();
  await server.cleanup();
});

type Overview = NonNullable<ReturnType<OverviewState['overview']>>;

/**
 * A stream client as the page is one: it applies every frame, keeps the overview as of each
 * update, and connects again for a whole one when a delta does not apply (or when `drop` says to
 * lose a frame on the way, as a missed update would be lost).
 */
function follow(drop: (event: string, n: number) => boolean = () => false) {
  const client = {
    events: [] as { event: string; seq: number; base: number | null; bytes: number }[],
    bySeq: new Map<number, Overview>(),
    connections: 0,
    closed: false,
    controller: new AbortController(),
  };
  const run = async (): Promise<void> => {
    while (!client.closed) {
      client.connections += 1;
      client.controller = new AbortController();
      const state = new OverviewState();
      const response = await fetch(`${base}/api/overview/stream`, {
        signal: client.controller.signal,
      });
      const decoder = new TextDecoder();
      let buffer = '';
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let cut;
          while ((cut = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event === undefined || data === undefined) continue;
            const frame = JSON.parse(data) as { seq: number; base?: number | null };
            client.events.push({
              event,
              seq: frame.seq,
              base: frame.base ?? null,
              bytes: data.length,
            });
            if (drop(event, client.events.length)) continue;
            if (!state.apply(event, frame)) throw new Error('resync');
            const overview = state.overview();
            if (overview !== undefined) client.bySeq.set(overview.seq, overview);
          }
        }
      } catch {
        // Aborted by the test, or a delta that did not apply: connect again for a whole one.
      }
      client.controller.abort();
    }
  };
  const done = run();
  return {
    client,
    close: async () => {
      client.closed = true;
      client.controller.abort();
      await done;
    },
  };
}

/** The overview without the node rows' heartbeat ages (they grow with the clock between reads). */
function comparable(overview: Overview | undefined) {
  if (overview === undefined) return undefined;
  const { nodes, ...rest } = overview;
  return {
    ...rest,
    nodes: nodes.map(({ heartbeat_age_ms: _age, ...row }) => row),
  };
}

/** A whole overview as a newly connected page gets it: the first frame of a new stream. */
async function wholeOverview(): Promise<Overview> {
  const fresh = follow();
  await waitFor(() => fresh.client.bySeq.size > 0, { timeoutMs: 10_000 });
  await fresh.close();
  expect(fresh.client.events[0]?.event).toBe('overview');
  const [overview] = [...fresh.client.bySeq.values()];
  return overview as Overview;
}

const now = () => new Date().toISOString();

/** Writes the plan meta anew, as the scheduler's plan write does with records and assignments. */
async function planWrite(): Promise<void> {
  planVersion += 1;
  await redis.set(
    keys.planMeta(),
    encodePayload('planMeta', { _v: 1, version: planVersion, updated_at: now(), leader: 's1' }),
  );
}

async function nodeBeats(id: string, portfolioIds: string[], ttlMs = 60_000): Promise<void> {
  await redis
    .multi()
    .set(
      keys.heartbeat(id),
      encodePayload('heartbeat', { _v: 1, node_id: id, sent_at: now(), seq: 2 }),
      'PX',
      ttlMs,
    )
    .set(keys.nodeInfo(id), encodePayload('nodeInfo', fleetNodeInfo(id, portfolioIds, now())))
    .zadd(keys.nodeRegistry(), Date.now(), id)
    .exec();
}

async function record(id: string, status: 'alive' | 'draining'): Promise<void> {
  await redis.hset(
    keys.executionNodes(),
    id,
    encodePayload('nodeRecord', {
      _v: 1,
      node_id: id,
      status,
      capacity: 5,
      assigned_count: 2,
      last_seen: now(),
    }),
  );
}

async function move(portfolioId: string, nodeId: string): Promise<void> {
  await redis.hset(
    keys.portfolioAssignments(),
    portfolioId,
    encodePayload('assignment', {
      _v: 1,
      portfolio_id: portfolioId,
      status: 'assigned',
      node_id: nodeId,
      reason: null,
      plan_version: planVersion + 1,
      since: now(),
    }),
  );
  await redis.set(
    keys.portfolioState(portfolioId),
    encodePayload('portfolioState', {
      ...fleetPortfolioState(portfolioId, nodeId, now()),
      queue_depth: 700,
      queue_usage: 0.7,
    }),
  );
}

describe('the overview stream: the whole overview, then deltas', () => {
  it('a client applying the deltas ends with exactly the rows of a whole overview, after nodes join, die, drain and portfolios move', async () => {
    await seedFleet({ redis, keys }, 4, 2, { withReports: true, ttlMs: 60_000 });
    // node-0 beats with a short TTL and then stops: it dies.
    await nodeBeats('node-0', ['p-0-0', 'p-0-1'], 1_500);
    const page = follow();
    await waitFor(() => page.client.bySeq.size >= 3, { timeoutMs: 10_000 });

    // A node joins (beats, gets its record with the plan write) and takes a portfolio over.
    await nodeBeats('node-9', ['p-1-0']);
    await record('node-9', 'alive');
    await move('p-1-0', 'node-9');
    // An operator drains node-2 (the scheduler's record, with its plan write).
    await record('node-2', 'draining');
    // A portfolio leaves the catalog and the plan; another joins the catalog, not yet planned.
    await redis.hdel(keys.portfolioCatalog(), 'p-3-1');
    await redis.hdel(keys.portfolioAssignments(), 'p-3-1');
    await redis.hset(
      keys.portfolioCatalog(),
      'p-new',
      encodePayload('portfolioSpec', {
        _v: 1,
        portfolio_id: 'p-new',
        symbols: ['ETHUSDT'],
        strategy: { name: 'ma-crossover', params: {} },
        starting_cash: 500,
      }),
    );
    await planWrite();
    // node-0's heartbeat expires: lost, its portfolios no longer counted on it.
    await waitFor(
      () =>
        [...page.client.bySeq.values()].some(
          (o) =>
            o.nodes.some((n) => n['node_id'] === 'node-0' && n['status'] === 'lost') &&
            o.nodes.some((n) => n['node_id'] === 'node-2' && n['status'] === 'draining') &&
            o.nodes.some((n) => n['node_id'] === 'node-9'),
        ),
      { timeoutMs: 10_000 },
    );

    const whole = await wholeOverview();
    await waitFor(() => page.client.bySeq.has(whole.seq), { timeoutMs: 10_000 });
    await page.close();
    const applied = page.client.bySeq.get(whole.seq);
    expect(comparable(applied)).toEqual(comparable(whole));
    // What changed is there, so the comparison compared something.
    expect(whole.nodes.map((n) => [n['node_id'], n['status']])).toEqual([
      ['node-0', 'lost'],
      ['node-1', 'online'],
      ['node-2', 'draining'],
      ['node-3', 'online'],
      ['node-9', 'online'],
    ]);
    expect(whole.portfolios.map((p) => p['portfolio_id'])).toEqual([
      'p-1-0',
      'p-0-0',
      'p-0-1',
      'p-1-1',
      'p-2-0',
      'p-2-1',
      'p-3-0',
      'p-new',
    ]);
    expect(whole.portfolios[0]).toMatchObject({ node_id: 'node-9', queue_level: 'warning' });

    // One whole overview, then only deltas, each on the update before it; an update that changed
    // no row carries none.
    const events = page.client.events;
    expect(page.client.connections).toBe(1);
    expect(events[0]?.event).toBe('overview');
    expect(events.slice(1).every((e) => e.event === 'overview-delta')).toBe(true);
    for (const [i, e] of events.entries()) if (i > 0) expect(e.base).toBe(events[i - 1]?.seq);
    expect(Math.min(...events.slice(1).map((e) => e.bytes))).toBeLessThan(
      (events[0]?.bytes ?? 0) / 2,
    );
  }, 60_000);

  it('a client that misses an update connects again, gets the whole overview and ends with the same rows', async () => {
    await seedFleet({ redis, keys }, 3, 2, { withReports: true, ttlMs: 60_000 });
    // The fourth frame (a delta) is lost on the way.
    const page = follow((event, n) => event === 'overview-delta' && n === 4);
    await waitFor(() => page.client.connections >= 2 && page.client.bySeq.size >= 4, {
      timeoutMs: 10_000,
    });
    await move('p-0-0', 'node-2');
    await planWrite();
    await waitFor(
      () =>
        [...page.client.bySeq.values()].some((o) =>
          o.portfolios.some((p) => p['portfolio_id'] === 'p-0-0' && p['node_id'] === 'node-2'),
        ),
      { timeoutMs: 10_000 },
    );
    const whole = await wholeOverview();
    await waitFor(() => page.client.bySeq.has(whole.seq), { timeoutMs: 10_000 });
    await page.close();
    expect(comparable(page.client.bySeq.get(whole.seq))).toEqual(comparable(whole));
    // The delta after the lost one did not apply: the client connected again and got a whole one.
    const events = page.client.events;
    expect(events[4]).toMatchObject({ event: 'overview-delta', base: events[3]?.seq });
    expect(events[5]?.event).toBe('overview');
    expect(page.client.connections).toBe(2);
  }, 60_000);
});
