import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections, type PingResult } from '@ginkgo-live/redis-client';
import { AuditLog } from '@ginkgo-live/fleet';
import {
  createStateKeys,
  encodePayload,
  type AuditEntry,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { MemoryTransport, parsePrometheus, RedisServer, waitFor } from '@ginkgo-live/testing';
import { createFleetRegistry } from '../fleet-metrics.ts';
import type { SecurityConfig } from '../config.ts';
import { ControlQueue } from '../control-queue.ts';
import { FleetReader } from '../fleet-reader.ts';
import { createAccess, principalOf, type Access } from './access.ts';
import { createApp } from './app.ts';

let server: RedisServer;
let redis: Redis;
let keys: StateKeys;
let conns: RedisConnections;
let http: Server | undefined;
let base: string;

const now = () => new Date().toISOString();

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.port, server.host);
  redis.on('error', () => {
    // This seeding client sees the server killed on purpose; the gateway is what is tested.
  });
  keys = createStateKeys('gw:');
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
    logger: createLogger({ app: 'gw-test', transports: [new MemoryTransport()] }),
  });
  await conns.waitUntilReady(5_000);
  await startGateway();
});

const OPEN: SecurityConfig = {
  apiKeys: [],
  publicReads: false,
  corsOrigins: [],
  rateLimitPerMinute: 10_000,
};

/** The gateway's log of the current run. */
let logs: MemoryTransport;
/** The principal's name each passed access check stored (`principalOf`), in order. */
let principals: string[];

/**
 * The app's own access checks, recording the name of each principal they let through: the audit
 * tests expect that name, whatever the access implementation calls a client.
 */
function recording(security: SecurityConfig): Access {
  const access = createAccess(security);
  return {
    require(scope) {
      const check = access.require(scope);
      return (req, res, next) => {
        check(req, res, (err?: unknown) => {
          if (err === undefined) principals.push(principalOf(res).name);
          next(err as Error | undefined);
        });
      };
    },
  };
}

/** (Re)starts the gateway app on port 0 with a security config. */
async function startGateway(
  security: SecurityConfig = OPEN,
  ping: () => Promise<PingResult> = () => conns.ping(),
): Promise<void> {
  const previous = http;
  if (previous?.listening === true) {
    previous.closeAllConnections();
    await new Promise((resolve) => previous.close(resolve));
  }
  logs = new MemoryTransport();
  principals = [];
  const logger = createLogger({ app: 'gw-test', transports: [logs] });
  const reader = new FleetReader(conns.main, keys);
  const app = createApp({
    reader,
    control: new ControlQueue(conns.main, keys),
    security,
    access: recording(security),
    ping,
    registry: createFleetRegistry(reader),
    logger,
  });
  const listening = app.listen(0, '127.0.0.1');
  http = listening;
  await new Promise((resolve) => listening.once('listening', resolve));
  base = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
}
afterEach(async () => {
  const current = http;
  http = undefined;
  current?.closeAllConnections();
  await new Promise((resolve) => current?.close(resolve));
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
      status: 'online',
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
    // One status vocabulary: online, draining, lost (a node's own `running` is in its info only).
    expect((await get('/api/nodes?status=online')).body).toMatchObject({
      total_count: 1,
      nodes: [{ node_id: 'n1' }],
    });
    expect((await get('/api/nodes?status=running')).body).toMatchObject({
      code: 'INVALID_PARAMETER',
      details: { parameter: 'status' },
    });
    expect((await get('/api/nodes?online=maybe')).body).toMatchObject({
      code: 'INVALID_PARAMETER',
      details: { parameter: 'online' },
    });
  });

  it('reads only the page: infos and states of the nodes and portfolios it shows', async () => {
    for (let i = 0; i < 12; i++) {
      await seedNode(`n${String(i).padStart(2, '0')}`, i % 3 !== 0, [`p${i}`]);
      await seedPortfolio(`p${String(i).padStart(2, '0')}`, `n${String(i).padStart(2, '0')}`);
    }
    await redis.set(keys.nodeInfo('n04'), '{"_v":1}'); // malformed: flagged on its page only
    // Every command the gateway sends for one request, as Redis saw it.
    const seen = async (path: string) => {
      const monitor = await redis.monitor();
      const commands: string[][] = [];
      monitor.on('monitor', (_t: string, args: string[]) => commands.push(args));
      const body = (await get(path)).body;
      await new Promise((resolve) => setTimeout(resolve, 50));
      monitor.disconnect();
      const read = (suffix: string) =>
        commands.flatMap((c) => c.slice(1)).filter((arg) => arg.endsWith(suffix));
      return { body, infos: read(':info'), states: read(':state') };
    };
    const nodes = await seen('/api/nodes?limit=3&offset=3');
    expect(nodes.body).toMatchObject({ total_count: 12, online_count: 8, offset: 3 });
    expect((nodes.body['nodes'] as { node_id: string }[]).map((n) => n.node_id)).toEqual([
      'n03',
      'n04',
      'n05',
    ]);
    expect((nodes.body['nodes'] as { error?: string }[])[1]?.error).toContain('{n04}:info');
    expect([...new Set(nodes.infos)].sort()).toEqual(
      ['n03', 'n04', 'n05'].map((id) => keys.nodeInfo(id)),
    );
    const offline = await seen('/api/nodes?online=false&limit=2');
    expect(offline.body).toMatchObject({ total_count: 4, online_count: 0 });
    expect((offline.body['nodes'] as { node_id: string }[]).map((n) => n.node_id)).toEqual([
      'n00',
      'n03',
    ]);
    // Lost comes from the index (a PTTL per heartbeat): only the page's nodes are read in full.
    const lost = await seen('/api/nodes?status=lost');
    expect(lost.body).toMatchObject({ total_count: 4 });
    expect([...new Set(lost.infos)].sort()).toEqual(
      ['n00', 'n03', 'n06', 'n09'].map((id) => keys.nodeInfo(id)),
    );

    const portfolios = await seen('/api/portfolios?limit=2&offset=10');
    expect(portfolios.body).toMatchObject({ total_count: 12 });
    expect(
      (portfolios.body['portfolios'] as { portfolio_id: string }[]).map((p) => p.portfolio_id),
    ).toEqual(['p10', 'p11']);
    expect(portfolios.states.sort()).toEqual([
      keys.portfolioState('p10'),
      keys.portfolioState('p11'),
    ]);
    const onNode = await seen('/api/portfolios?node_id=n07');
    expect(onNode.body).toMatchObject({ total_count: 1, portfolios: [{ portfolio_id: 'p07' }] });
    expect(onNode.states).toEqual([keys.portfolioState('p07')]);
    const one = await seen('/api/portfolios/p05');
    expect(one.body).toMatchObject({ portfolio_id: 'p05', node_id: 'n05', status: 'running' });
    expect(one.states).toEqual([keys.portfolioState('p05')]);
    // Ids that could not be keys are refused, naming the parameter.
    for (const path of [
      '/api/portfolios/a:b',
      '/api/nodes/%7Bn1%7D',
      `/api/nodes/${'n'.repeat(65)}`,
    ])
      expect(await get(path), path).toMatchObject({
        status: 400,
        body: { code: 'INVALID_PARAMETER', details: { parameter: 'id' } },
      });
    expect(await get('/api/portfolios?node_id=a:b')).toMatchObject({
      status: 400,
      body: { details: { parameter: 'node_id' } },
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
      error: expect.stringContaining('gw:portfolio:{p2}:state') as unknown,
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
    expect(samples.get('ginkgo_fleet_nodes{status="online"}')).toBe(1);
    // Every status is a series, 0 when empty: "no lost node" is an answer, not a missing series.
    expect(samples.get('ginkgo_fleet_nodes{status="lost"}')).toBe(0);
    expect(samples.get('ginkgo_fleet_portfolios{status="orphaned"}')).toBe(0);
    expect(
      samples.get('ginkgo_fleet_node_heartbeat_age_seconds{node_id="n1"}'),
    ).toBeGreaterThanOrEqual(0);
    expect(samples.get('ginkgo_fleet_portfolio_queue_depth{portfolio_id="p1",node_id="n1"}')).toBe(
      40,
    );
    expect(text).toContain('# TYPE ginkgo_fleet_portfolio_events_processed_total counter');
    expect(samples.has('ginkgo_fleet_portfolio_events_processed_total{portfolio_id="p1"}')).toBe(
      true,
    );
    await server.kill();
    await waitFor(() => conns.main.status !== 'ready');
    const down = parsePrometheus(await (await fetch(`${base}/metrics`)).text());
    expect(down.get('ginkgo_gateway_redis_up')).toBe(0);
    expect(down.has('ginkgo_fleet_nodes{status="online"}')).toBe(false);
  });

  it('queues control requests for the scheduler and reads their outcome back', async () => {
    const post = (path: string, body?: unknown) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const drain = await post('/api/nodes/n1/drain');
    expect(drain.status).toBe(202);
    const { request_id: id } = (await drain.json()) as { request_id: string };
    const queued = await redis.lrange(keys.controlRequests(), 0, -1);
    expect(queued.map((r) => JSON.parse(r) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ id, action: 'drain', node_id: 'n1' }),
    ]);
    expect((await get(`/api/control/${id}`)).status).toBe(202);
    // The scheduler answers (as its plan write does): result recorded, request consumed.
    await redis.hset(
      keys.controlResults(),
      id,
      encodePayload('controlResult', {
        _v: 1,
        id,
        ok: false,
        reason: 'unknown node n1',
        plan_version: null,
        processed_at: now(),
      }),
    );
    await redis.ltrim(keys.controlRequests(), 1, -1);
    expect(await get(`/api/control/${id}`)).toMatchObject({
      status: 200,
      body: { request_id: id, status: 'refused', reason: 'unknown node n1' },
    });
    expect((await get(`/api/control/${randomUUID()}`)).status).toBe(404);

    const migrate = await post('/api/schedule/migrate', { portfolio_id: 'p1', target_node: 'n2' });
    expect(migrate.status).toBe(202);
    const bad = await post('/api/schedule/migrate', { target_node: 'n2' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      code: 'INVALID_PARAMETER',
      details: { parameter: 'portfolio_id' },
    });
    const notJson = await fetch(`${base}/api/schedule/migrate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{nope',
    });
    expect(notJson.status).toBe(400);
    const huge = await post('/api/portfolios', { portfolio_id: 'p9', name: 'x'.repeat(20_000) });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    const remove = await fetch(`${base}/api/portfolios/p1`, {
      method: 'DELETE',
      headers: { 'content-type': 'application/json' },
    });
    expect(remove.status).toBe(202);
  });

  it('requires an API key when keys are configured, and says nothing about which keys exist', async () => {
    const key = 'k-0123456789abcdef';
    const apiKeys = [{ name: 'ops', scope: 'admin' as const, secret: key }];
    await startGateway({ ...OPEN, apiKeys });
    const denied = await fetch(`${base}/api/nodes`);
    expect(denied.status).toBe(401);
    const body = (await denied.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      error: true,
      code: 'UNAUTHORIZED',
      message: 'Missing or invalid API key',
    });
    expect(JSON.stringify(body)).not.toContain(key);
    expect(
      (await fetch(`${base}/api/nodes`, { headers: { 'x-api-key': 'wrong-key-0123456789' } }))
        .status,
    ).toBe(401);
    expect((await fetch(`${base}/api/nodes`, { headers: { 'x-api-key': key } })).status).toBe(200);
    expect(
      (await fetch(`${base}/api/nodes`, { headers: { authorization: `Bearer ${key}` } })).status,
    ).toBe(200);
    expect((await fetch(`${base}/api/health`)).status).toBe(200);

    await startGateway({ ...OPEN, apiKeys, publicReads: true });
    expect((await fetch(`${base}/api/nodes`)).status).toBe(200);
    const drain = (headers: Record<string, string>) =>
      fetch(`${base}/api/nodes/n1/drain`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
      });
    expect((await drain({})).status).toBe(401);
    expect((await drain({ 'x-api-key': key })).status).toBe(202);
  });

  it('limits the rate per client with X-RateLimit headers and 429', async () => {
    // GATEWAY_AUTH=off: a keyless gateway on loopback does not limit this machine's clients.
    await startGateway({ ...OPEN, auth: 'off', rateLimitPerMinute: 3 });
    const answers = [];
    // One item each (a whole-fleet read weighs more: limits.ts).
    for (let i = 0; i < 4; i++) answers.push(await fetch(`${base}/api/schedule/plan`));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429]);
    expect(answers[0]?.headers.get('x-ratelimit-limit')).toBe('3');
    expect(answers[1]?.headers.get('x-ratelimit-remaining')).toBe('1');
    expect(answers[3]?.headers.get('x-ratelimit-reset')).toMatch(/^\d+$/);
    expect(await answers[3]?.json()).toMatchObject({ error: true, code: 'RATE_LIMITED' });
  });

  it('answers CORS preflights from allowed origins only, and sends security headers', async () => {
    await startGateway({ ...OPEN, corsOrigins: ['https://ops.example.com'] });
    const preflight = (origin: string) =>
      fetch(`${base}/api/nodes`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'GET' },
      });
    const allowed = await preflight('https://ops.example.com');
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://ops.example.com');
    expect(allowed.headers.get('access-control-allow-headers')).toContain('X-API-Key');
    const refused = await preflight('https://evil.example.net');
    expect(refused.status).toBe(403);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    const plain = await fetch(`${base}/api/health`);
    expect(plain.headers.get('x-content-type-options')).toBe('nosniff');
    expect(plain.headers.get('x-powered-by')).toBeNull();
    expect(plain.headers.get('content-security-policy')).toContain("default-src 'self'");
  });
});

/** Reads server-sent events from `path` until `until` returns true for the messages so far. */
async function readEvents(
  path: string,
  until: (messages: Record<string, unknown>[]) => boolean,
  timeoutMs = 10_000,
): Promise<Record<string, unknown>[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const response = await fetch(`${base}${path}`, { signal: controller.signal });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/event-stream');
  const messages: Record<string, unknown>[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trim())
          .join('\n');
        if (data !== '') messages.push(JSON.parse(data) as Record<string, unknown>);
      }
      if (until(messages)) break;
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return messages;
}

describe('the operations page and its feed', () => {
  it('serves the page and its assets from the gateway, with no outside origin in them', async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/ui/app.js">');
    for (const asset of ['/ui/app.js', '/ui/app.css']) {
      const response = await fetch(`${base}${asset}`);
      expect(response.status, asset).toBe(200);
      const text = await response.text();
      // Works offline: nothing loaded from a CDN or any other origin.
      expect(text, asset).not.toMatch(/(?:src|href)=["']?(?:https?:)?\/\//);
      expect(text, asset).not.toMatch(/@import|url\(\s*["']?https?:/);
    }
    expect(html).not.toMatch(/https?:\/\//);
    expect((await fetch(`${base}/ui/missing.js`)).status).toBe(404);
  });

  it('shapes the overview as JSON, and answers 503 rather than stale numbers while Redis is down', async () => {
    await seedNode('a', true, ['p1']);
    await seedNode('b', false);
    await seedPortfolio('p1', 'a');
    const { status, body } = await get('/api/overview');
    expect(status).toBe(200);
    expect(body['summary']).toMatchObject({
      nodes_online: 1,
      nodes_total: 2,
      portfolios_running: 1,
      queue_depth_total: 40,
    });
    expect(body).toMatchObject({ stale: false, redis: { status: 'up' } });
    expect((body['nodes'] as { node_id: string; status: string }[])[0]).toMatchObject({
      node_id: 'b',
      status: 'lost',
    });
    await server.kill();
    const down = await get('/api/overview');
    expect(down.status).toBe(503);
    expect(down.body['code']).toBe('REDIS_UNAVAILABLE');
  });

  it('streams updates; while Redis is down each says so and keeps the last data flagged stale; then live again', async () => {
    await seedNode('a', true, ['p1']);
    await seedPortfolio('p1', 'a');
    const live = await readEvents('/api/overview/stream', (m) => m.length >= 2);
    expect(live[0]).toMatchObject({ stale: false, redis: { status: 'up' } });
    expect(Date.parse(String(live[1]?.['generated_at']))).toBeGreaterThan(
      Date.parse(String(live[0]?.['generated_at'])),
    );
    const asOf = live[1]?.['data_as_of'];

    await server.kill();
    const down = await readEvents('/api/overview/stream', (m) =>
      m.some((x) => x['stale'] === true),
    );
    const stale = down.find((m) => m['stale'] === true);
    expect(stale).toMatchObject({
      // What failed, never the client library's text (every stream reader gets it).
      redis: { status: 'down', reason: 'Redis is unavailable' },
      summary: { nodes_online: 1, portfolios_running: 1 },
    });
    expect(Date.parse(String(stale?.['data_as_of']))).toBeGreaterThanOrEqual(
      Date.parse(String(asOf)),
    );
    expect(Date.parse((stale?.['redis'] as { down_since: string }).down_since)).toBeGreaterThan(0);

    await server.restart({ keepData: false });
    await seedNode('a', true, ['p1']);
    const back = await readEvents(
      '/api/overview/stream',
      (m) => m.some((x) => x['stale'] === false),
      15_000,
    );
    expect(back.find((m) => m['stale'] === false)).toMatchObject({ redis: { status: 'up' } });
    const history = back.at(-1)?.['history'] as { queue_depth_total: number }[];
    expect(history.length).toBeGreaterThanOrEqual(1);
  });
});

/** A request with a JSON body (or none) and the answer's status and JSON. */
async function send(
  method: 'POST' | 'DELETE' | 'GET',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: method === 'GET' ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text) as Record<string, unknown>, text };
}

/** The audit trail as Redis holds it, newest first. */
async function trail(): Promise<AuditEntry[]> {
  const records = await new AuditLog(redis, keys).list({ limit: 1_000 });
  return records.map((r) => {
    if (!('entry' in r)) throw new Error(`unreadable audit entry ${r.id}`);
    return r.entry;
  });
}

const SPEC = { portfolio_id: 'p7', symbols: ['BTC'], strategy: { name: 'ma', params: {} } };

describe('control: validation, audit and the pending lookup', () => {
  it('each 400 names its field; nothing is queued; each refused control request is audited invalid', async () => {
    const cases: [method: 'POST' | 'GET', path: string, body: unknown, parameter: string][] = [
      ['POST', '/api/portfolios', SPEC, 'starting_cash'],
      ['POST', '/api/portfolios', { ...SPEC, starting_cash: -5 }, 'starting_cash'],
      ['POST', '/api/portfolios', { ...SPEC, starting_cash: 1, strategy: {} }, 'strategy.name'],
      [
        'POST',
        '/api/portfolios',
        { ...SPEC, portfolio_id: 'a:b', starting_cash: 1 },
        'portfolio_id',
      ],
      ['POST', '/api/portfolios', [1, 2], 'body'],
      ['POST', '/api/schedule/migrate', { portfolio_id: 'p1' }, 'target_node'],
      ['POST', '/api/schedule/migrate', { portfolio_id: 'p 1', target_node: 'n2' }, 'portfolio_id'],
      ['POST', '/api/schedule/migrate', '{nope', 'body'],
      ['POST', '/api/nodes/a:b/drain', undefined, 'id'],
      ['GET', '/api/control/no-such-request', undefined, 'id'],
      ['GET', '/api/audit?before=yesterday', undefined, 'before'],
      ['GET', '/api/audit?limit=0', undefined, 'limit'],
    ];
    for (const [method, path, body, parameter] of cases) {
      const answer = await send(method, path, body);
      expect(answer, `${method} ${path} ${JSON.stringify(body)}`).toMatchObject({
        status: 400,
        body: { code: 'INVALID_PARAMETER', details: { parameter } },
      });
      expect(answer.body['message']).toContain(parameter === 'body' ? 'body' : parameter);
    }
    expect(await redis.llen(keys.controlRequests())).toBe(0);
    // The eight control requests (not the reads), newest first, each in its client's name.
    const entries = await trail();
    expect(entries.map((e) => [e.action, e.outcome])).toEqual([
      ['drain', 'invalid'],
      ['migrate', 'invalid'],
      ['migrate', 'invalid'],
      ['migrate', 'invalid'],
      ['catalog_add', 'invalid'],
      ['catalog_add', 'invalid'],
      ['catalog_add', 'invalid'],
      ['catalog_add', 'invalid'],
      ['catalog_add', 'invalid'],
    ]);
    expect(principals.length).toBeGreaterThanOrEqual(entries.length);
    for (const e of entries) expect(e.actor).toBe(principals[0]);
    expect(entries[0]).toMatchObject({
      via: 'api-gateway',
      target: { node_id: 'a:b', portfolio_id: null, target_node_id: null },
      request_id: null,
      address: expect.stringContaining('127.0.0.1') as unknown,
    });
    expect(entries[0]?.reason).toContain('id');
    expect(entries.at(-1)).toMatchObject({ target: { portfolio_id: 'p7' } });
    expect(entries.at(-1)?.reason).toContain('starting_cash');
  });

  it('a queued request leaves a queued entry naming the principal as actor and requested_by; GET /api/audit pages it newest first', async () => {
    const drain = await send('POST', '/api/nodes/n1/drain');
    expect(drain.status).toBe(202);
    const add = await send('POST', '/api/portfolios', { ...SPEC, starting_cash: 1_000 });
    expect(add.status).toBe(202);
    const migrate = await send('POST', '/api/schedule/migrate', {
      portfolio_id: 'p7',
      target_node: 'n2',
    });
    expect(migrate.status).toBe(202);
    const name = principals.at(-1);
    expect(principals).toEqual([name, name, name]);
    const queued = (await redis.lrange(keys.controlRequests(), 0, -1)).map(
      (raw) => JSON.parse(raw) as Record<string, unknown>,
    );
    expect(queued.map((r) => [r['id'], r['requested_by']])).toEqual([
      [drain.body['request_id'], name],
      [add.body['request_id'], name],
      [migrate.body['request_id'], name],
    ]);
    expect(queued[1]?.['spec']).toEqual({ ...SPEC, starting_cash: 1_000 });
    expect(await trail()).toMatchObject([
      {
        actor: name,
        action: 'migrate',
        outcome: 'queued',
        request_id: migrate.body['request_id'],
        target: { node_id: null, portfolio_id: 'p7', target_node_id: 'n2' },
      },
      { actor: name, action: 'catalog_add', request_id: add.body['request_id'] },
      {
        actor: name,
        via: 'api-gateway',
        action: 'drain',
        outcome: 'queued',
        reason: null,
        request_id: drain.body['request_id'],
        target: { node_id: 'n1', portfolio_id: null, target_node_id: null },
      },
    ]);

    const first = await send('GET', '/api/audit?limit=2');
    expect(first.status).toBe(200);
    const rows = first.body['entries'] as { id: string; request_id: string }[];
    expect(rows.map((r) => r.request_id)).toEqual([
      migrate.body['request_id'],
      add.body['request_id'],
    ]);
    expect(first.body['next_before']).toBe(rows[1]?.id);
    const second = await send('GET', `/api/audit?limit=2&before=${rows[1]?.id}`);
    expect(second.body).toMatchObject({
      entries: [{ request_id: drain.body['request_id'], action: 'drain', actor: name }],
      next_before: null,
    });
    // An unreadable entry is shown as such, with the rest of the page.
    const bad = await redis.xadd(keys.auditLog(), '*', 'entry', '{"_v":1,"actor":""}');
    const withBad = await send('GET', '/api/audit?limit=2');
    expect(withBad.body['entries']).toMatchObject([
      { id: bad, error: expect.stringContaining('actor') as unknown },
      { request_id: migrate.body['request_id'] },
    ]);
  });

  it('a key without the scope gets 403 and a forbidden entry in its name; a wrong key is not audited; the audit is admin only', async () => {
    const secret = (name: string) => ({ 'x-api-key': `${name}-secret-0123456789abcdef` });
    await startGateway({
      ...OPEN,
      apiKeys: (['viewer', 'operator', 'auditor'] as const).map((name, i) => ({
        name,
        scope: (['read', 'operate', 'admin'] as const)[i] ?? 'read',
        secret: `${name}-secret-0123456789abcdef`,
      })),
    });
    expect((await send('POST', '/api/nodes/n1/drain', undefined, secret('viewer'))).status).toBe(
      403,
    );
    const add = await send(
      'POST',
      '/api/portfolios',
      { ...SPEC, starting_cash: 1 },
      secret('operator'),
    );
    expect(add.status).toBe(403);
    expect(
      (
        await send('POST', '/api/nodes/n1/drain', undefined, {
          'x-api-key': 'no-such-key-0123456789',
        })
      ).status,
    ).toBe(401);
    expect((await send('GET', '/api/audit', undefined, secret('operator'))).status).toBe(403);
    expect(await redis.llen(keys.controlRequests())).toBe(0);
    expect(await trail()).toMatchObject([
      {
        actor: 'operator',
        action: 'catalog_add',
        outcome: 'forbidden',
        target: { portfolio_id: null },
        reason: expect.stringContaining('admin') as unknown,
      },
      {
        actor: 'viewer',
        action: 'drain',
        outcome: 'forbidden',
        target: { node_id: 'n1' },
        reason: expect.stringContaining('operate') as unknown,
      },
    ]);
    const page = await send('GET', '/api/audit', undefined, secret('auditor'));
    expect(page.status).toBe(200);
    expect((page.body['entries'] as unknown[]).length).toBe(2);
  });

  it('an audit entry that cannot be written queues nothing and answers 503 without the client text', async () => {
    // The stream's key holds a string: XADD fails (WRONGTYPE), as it would under an ACL refusal.
    await redis.set(keys.auditLog(), 'not a stream');
    const refused = await send('POST', '/api/nodes/n1/drain');
    expect(refused).toMatchObject({
      status: 503,
      body: { code: 'REDIS_UNAVAILABLE', message: 'Redis is unavailable', details: {} },
    });
    expect(refused.text).not.toContain('WRONGTYPE');
    expect(await redis.llen(keys.controlRequests())).toBe(0);
    expect(logs.withMessage('Request failed: Redis unavailable')[0]?.['reason']).toContain(
      'WRONGTYPE',
    );
    await redis.del(keys.auditLog());
    await server.kill();
    await waitFor(() => conns.main.status !== 'ready');
    expect((await send('POST', '/api/nodes/n1/drain')).status).toBe(503);
  });

  it('/api/ready says down without the client error text, and logs the reason once', async () => {
    const reason = 'WRONGPASS invalid username-password pair (10.1.2.3:6379)';
    await startGateway(OPEN, () => Promise.resolve({ ok: false, latencyMs: 3, reason }));
    for (let i = 0; i < 2; i++) {
      const answer = await send('GET', '/api/ready');
      expect(answer.status).toBe(503);
      expect(answer.body).toEqual({
        status: 'not_ready',
        components: { redis: { status: 'down' } },
        timestamp: expect.any(String) as unknown,
      });
      expect(answer.text).not.toContain('WRONGPASS');
    }
    expect(logs.withMessage('Readiness: Redis is down')).toMatchObject([{ reason }]);

    // And with the real server killed.
    await startGateway();
    await server.kill();
    await waitFor(() => conns.main.status !== 'ready');
    const down = await send('GET', '/api/ready');
    expect(down.body).toEqual({
      status: 'not_ready',
      components: { redis: { status: 'down' } },
      timestamp: expect.any(String) as unknown,
    });
    expect(logs.withMessage('Readiness: Redis is down')).toHaveLength(1);
  });

  it('finds a pending request by its decoded id, deep in a long queue, and not by a mention in another', async () => {
    // 1,200 requests already waiting (a scheduler down for a while).
    const waiting = redis.pipeline();
    for (let i = 0; i < 1_200; i++)
      waiting.rpush(
        keys.controlRequests(),
        encodePayload('controlRequest', {
          _v: 1,
          id: randomUUID(),
          action: 'undrain',
          node_id: `n${i}`,
          requested_by: 'someone',
          requested_at: now(),
        }),
      );
    await waiting.exec();
    const first = await send('POST', '/api/nodes/n1/drain');
    const id = String(first.body['request_id']);
    // The scheduler took 100 from the head: the request is 1,101st, found from the tail.
    await redis.ltrim(keys.controlRequests(), 100, -1);
    expect(await send('GET', `/api/control/${id}`)).toMatchObject({
      status: 202,
      body: { request_id: id, status: 'pending' },
    });
    // A request that merely mentions an id (in a spec) does not make that id pending.
    const mentioned = randomUUID();
    await redis.rpush(
      keys.controlRequests(),
      encodePayload('controlRequest', {
        _v: 1,
        id: randomUUID(),
        action: 'catalog_add',
        spec: { id: mentioned },
        requested_by: 'someone',
        requested_at: now(),
      }),
    );
    expect(await redis.lrange(keys.controlRequests(), -1, -1)).toEqual([
      expect.stringContaining(`"id":"${mentioned}"`),
    ]);
    expect((await send('GET', `/api/control/${mentioned}`)).status).toBe(404);
  });
});
