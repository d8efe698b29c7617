import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { createStateKeys, encodePayload, type StateKeys } from '@ginkgo-live/state-keys';
import { MemoryTransport, parsePrometheus, RedisServer, waitFor } from '@ginkgo-live/testing';
import { createFleetRegistry } from '../fleet-metrics.ts';
import { FleetReader } from '../fleet-reader.ts';
import { createApp } from './app.ts';

let server: RedisServer;
let redis: Redis;
let keys: StateKeys;
let conns: RedisConnections;
let http: Server;
let base: string;

const now = () => new Date().toISOString();

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.port, server.host);
  redis.on('error', () => {
    // This seeding client sees the server killed on purpose; the gateway is what is tested.
  });
  keys = createStateKeys('gw:');
  const logger = createLogger({ app: 'gw-test', transports: [new MemoryTransport()] });
  conns = new RedisConnections({
    config: unwrapConfig(
      loadRedisConfig({
        ...server.env,
        REDIS_COMMAND_TIMEOUT_MS: '500',
        REDIS_RECONNECT_MAX_DELAY_MS: '100',
        REDIS_KEY_PREFIX: 'gw:',
      }),
    ),
    app: 'gw-test',
    instanceId: 'i',
    logger,
  });
  await conns.waitUntilReady(5_000);
  const reader = new FleetReader(conns.main, keys);
  const app = createApp({
    reader,
    ping: () => conns.ping(),
    registry: createFleetRegistry(reader),
    logger,
  });
  http = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => http.once('listening', resolve));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});
afterEach(async () => {
  http.closeAllConnections();
  await new Promise((resolve) => http.close(resolve));
  await conns.close(300);
  redis.disconnect();
  await server.cleanup();
});

async function get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${base}${path}`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function seedNode(id: string, alive: boolean, portfolioIds: string[] = []): Promise<void> {
  if (alive)
    await redis.set(
      keys.heartbeat(id),
      encodePayload('heartbeat', { _v: 1, node_id: id, sent_at: now(), seq: 1 }),
      'PX',
      15_000,
    );
  await redis.zadd(keys.nodeRegistry(), Date.now(), id);
  await redis.set(
    keys.nodeInfo(id),
    encodePayload('nodeInfo', {
      _v: 1,
      node_id: id,
      host: 'h',
      pid: 1,
      version: '0.1.0',
      status: 'running',
      started_at: now(),
      uptime_seconds: 10,
      last_heartbeat: now(),
      portfolio_ids: portfolioIds,
      portfolio_count: portfolioIds.length,
      capacity: 5,
      queue_usage_max: 0.2,
      queue_usage: {},
      events_per_second: 12,
      cpu_percent: 3,
      memory_rss_bytes: 1_000,
      heap_used_bytes: 500,
      redis: { healthy: true, consecutive_failures: 0, total_failures: 2, last_success_at: now() },
    }),
  );
}

async function seedPortfolio(id: string, nodeId: string): Promise<void> {
  await redis.hset(
    keys.portfolioCatalog(),
    id,
    encodePayload('portfolioSpec', {
      _v: 1,
      portfolio_id: id,
      symbols: ['BTC'],
      strategy: { name: 'ma-crossover', params: {} },
      starting_cash: 1_000,
    }),
  );
  await redis.hset(
    keys.portfolioAssignments(),
    id,
    encodePayload('assignment', {
      _v: 1,
      portfolio_id: id,
      status: 'assigned',
      node_id: nodeId,
      reason: null,
      plan_version: 3,
      since: now(),
    }),
  );
  await redis.set(
    keys.portfolioState(id),
    encodePayload('portfolioState', {
      _v: 1,
      portfolio_id: id,
      node_id: nodeId,
      status: 'running',
      queue_depth: 40,
      queue_capacity: 1_000,
      queue_usage: 0.04,
      processed_count: 900,
      failed_count: 1,
      refused_count: 0,
      last_event_time: now(),
      latency_ms: { p50: 1.5, p99: 9 },
      cash: 990,
      position_count: 1,
      total_value: 1_005,
      last_error: null,
      updated_at: now(),
    }),
  );
}

describe('api-gateway on real Redis', () => {
  it('lists nodes with the one liveness rule, filters and pages them, and names a bad parameter', async () => {
    await seedNode('n1', true, ['p1']);
    await seedNode('n2', false);
    const all = await get('/api/nodes');
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ total_count: 2, online_count: 1 });
    const nodes = all.body['nodes'] as Record<string, unknown>[];
    expect(nodes[0]).toMatchObject({
      node_id: 'n1',
      is_online: true,
      status: 'running',
      portfolio_count: 1,
      capacity: 5,
      queue_usage_max: 0.2,
    });
    expect(nodes[1]).toMatchObject({
      node_id: 'n2',
      is_online: false,
      status: 'lost',
      portfolio_count: 0,
    });
    expect((await get('/api/nodes?online=false')).body).toMatchObject({
      total_count: 1,
      nodes: [{ node_id: 'n2' }],
    });
    expect((await get('/api/nodes?limit=1&offset=1')).body).toMatchObject({
      total_count: 2,
      nodes: [{ node_id: 'n2' }],
    });
    const bad = await get('/api/nodes?limit=abc');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({
      error: true,
      code: 'INVALID_PARAMETER',
      details: { parameter: 'limit' },
    });
    expect(bad.body['message']).toContain('limit');
    expect(bad.body['timestamp']).toEqual(expect.any(String));
    expect((await get('/api/nodes?online=maybe')).body).toMatchObject({
      code: 'INVALID_PARAMETER',
      details: { parameter: 'online' },
    });
  });

  it('shows a node offline as soon as its heartbeat key is gone', async () => {
    await seedNode('n1', true);
    expect((await get('/api/nodes/n1')).body).toMatchObject({ is_online: true });
    await redis.del(keys.heartbeat('n1'));
    expect((await get('/api/nodes/n1')).body).toMatchObject({ is_online: false, status: 'lost' });
  });

  it('answers a node with its portfolios, and 404 for an unknown one', async () => {
    await seedNode('n1', true, ['p1']);
    await seedPortfolio('p1', 'n1');
    expect((await get('/api/nodes/n1')).body).toMatchObject({
      node_id: 'n1',
      portfolios: [{ portfolio_id: 'p1', status: 'running', queue_depth: 40 }],
    });
    const missing = await get('/api/nodes/ghost');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: true, code: 'NOT_FOUND' });
    expect((await get('/api/portfolios/ghost')).status).toBe(404);
    expect((await get('/api/nope')).body).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('keeps answering when one portfolio state is malformed, flagging that item', async () => {
    await seedNode('n1', true, ['p1', 'p2']);
    await seedPortfolio('p1', 'n1');
    await seedPortfolio('p2', 'n1');
    await redis.set(keys.portfolioState('p2'), '{"_v":1,"cash":"lots"}');
    const response = await get('/api/portfolios');
    expect(response.status).toBe(200);
    const [p1, p2] = response.body['portfolios'] as Record<string, unknown>[];
    expect(p1).toMatchObject({ portfolio_id: 'p1', status: 'running', node_id: 'n1' });
    expect(p1?.['error']).toBeUndefined();
    expect(p2).toMatchObject({
      portfolio_id: 'p2',
      state: null,
      error: expect.stringContaining('gw:portfolio:p2:state') as unknown,
    });
  });

  it('serves the plan, metrics with filters, and the notification history', async () => {
    await seedNode('n1', true, ['p1']);
    await seedPortfolio('p1', 'n1');
    await redis.hset(
      keys.portfolioAssignments(),
      'p9',
      encodePayload('assignment', {
        _v: 1,
        portfolio_id: 'p9',
        status: 'orphaned',
        node_id: null,
        reason: 'every alive node is full',
        plan_version: 3,
        since: now(),
      }),
    );
    await redis.set(
      keys.planMeta(),
      encodePayload('planMeta', { _v: 1, version: 3, updated_at: now(), leader: 's1' }),
    );
    expect((await get('/api/schedule/plan')).body).toMatchObject({
      plans: [{ node_id: 'n1', portfolio_ids: ['p1'], portfolio_count: 1 }],
      total_nodes: 1,
      total_portfolios: 2,
      orphaned: [{ portfolio_id: 'p9', reason: 'every alive node is full' }],
      version: 3,
    });
    const metrics = await get('/api/metrics?component=portfolio_p1');
    expect(metrics.body['metrics']).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          component: 'portfolio_p1',
          metric_name: 'portfolio.queue_size',
          value: 40,
        }),
      ]),
    );
    expect((await get('/api/metrics?metric_name=fleet.nodes_online')).body).toMatchObject({
      total_count: 1,
      metrics: [{ value: 1 }],
    });

    for (const [i, level] of ['warning', 'critical', 'critical'].entries()) {
      await redis.lpush(
        keys.notificationHistory(),
        encodePayload('notificationRecord', {
          _v: 1,
          id: `n${i}`,
          kind: 'queue_full',
          level: level as 'warning' | 'critical',
          status: 'firing',
          title: 't',
          message: 'm',
          details: {},
          subject: { node_id: null, portfolio_id: 'p1' },
          source: { app: 'execution-node', node_id: 'n1' },
          created_at: now(),
          delivery: {
            status: 'delivered',
            sinks: { log: 'delivered' },
            attempts: 1,
            finished_at: now(),
          },
        }),
      );
    }
    expect((await get('/api/notifications?level=critical&limit=1')).body).toMatchObject({
      total_count: 1,
      notifications: [{ id: 'n2' }],
    });
    expect((await get('/api/notifications?limit=5000')).status).toBe(400);
  });

  it('answers 503 within the command timeout while Redis is down, stays healthy, and recovers by itself', async () => {
    await seedNode('n1', true);
    await server.kill();
    await waitFor(() => conns.main.status !== 'ready');
    for (const path of [
      '/api/nodes',
      '/api/nodes/n1',
      '/api/portfolios',
      '/api/metrics',
      '/api/schedule/plan',
      '/api/notifications',
    ]) {
      const started = performance.now();
      const response = await get(path);
      expect(performance.now() - started).toBeLessThan(500 + 200);
      expect(response.status, path).toBe(503);
      expect(response.body).toMatchObject({ error: true, code: 'REDIS_UNAVAILABLE' });
    }
    expect((await get('/api/ready')).body).toMatchObject({
      status: 'not_ready',
      components: { redis: { status: 'down' } },
    });
    expect((await get('/api/ready')).status).toBe(503);
    expect((await get('/api/health')).status).toBe(200);
    await server.restart();
    await waitFor(async () => (await get('/api/nodes')).status === 200, { timeoutMs: 5_000 });
    expect((await get('/api/ready')).body).toMatchObject({
      status: 'ready',
      components: { redis: { status: 'up' } },
    });
  });

  it('serves fleet metrics as Prometheus text, and says when Redis is down', async () => {
    await seedNode('n1', true, ['p1']);
    await seedPortfolio('p1', 'n1');
    const text = await (await fetch(`${base}/metrics`)).text();
    const samples = parsePrometheus(text);
    expect(samples.get('ginkgo_gateway_redis_up')).toBe(1);
    expect(samples.get('ginkgo_fleet_nodes{status="running"}')).toBe(1);
    expect(samples.get('ginkgo_fleet_portfolio_queue_depth{portfolio_id="p1",node_id="n1"}')).toBe(
      40,
    );
    await server.kill();
    await waitFor(() => conns.main.status !== 'ready');
    const down = parsePrometheus(await (await fetch(`${base}/metrics`)).text());
    expect(down.get('ginkgo_gateway_redis_up')).toBe(0);
    expect(down.has('ginkgo_fleet_nodes{status="running"}')).toBe(false);
  });
});
