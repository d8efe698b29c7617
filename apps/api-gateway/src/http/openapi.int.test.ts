import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Ajv2020 } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { encodePayload } from '@ginkgo-live/state-keys';
import { MemoryTransport, RedisServer, StackFixture, waitFor } from '@ginkgo-live/testing';
import { ControlQueue } from '../control-queue.ts';
import { createFleetRegistry } from '../fleet-metrics.ts';
import { FleetReader } from '../fleet-reader.ts';
import { createApp } from './app.ts';
import type { OpenApiDocument } from './openapi.ts';

let server: RedisServer;
let fx: StackFixture;
let conns: RedisConnections;
let http: Server;
let base: string;
let OPENAPI: OpenApiDocument;
/** `method path` of every route the app serves, read from express's router stack. */
let served: string[];

beforeEach(async () => {
  server = await RedisServer.start();
  fx = new StackFixture(server);
  const logger = createLogger({ app: 'openapi-test', transports: [new MemoryTransport()] });
  conns = new RedisConnections({
    config: unwrapConfig(loadRedisConfig({ ...server.env, REDIS_KEY_PREFIX: fx.keys.prefix })),
    app: 'openapi-test',
    instanceId: 'i',
    logger,
  });
  await conns.waitUntilReady(5_000);
  const reader = new FleetReader(conns.main, fx.keys);
  const app = createApp({
    reader,
    control: new ControlQueue(conns.main, fx.keys),
    security: { apiKeys: [], publicReads: false, corsOrigins: [], rateLimitPerMinute: 10_000 },
    ping: () => conns.ping(),
    registry: createFleetRegistry(reader),
    logger,
    // As main.ts mounts them, so that the document and the served routes are the real app's.
    trading: { redis: conns.main, keys: fx.keys },
  });
  OPENAPI = app.openapi;
  served = servedRoutes(app as unknown as { router: { stack: Layer[] } });
  http = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => http.once('listening', resolve));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});
afterEach(async () => {
  http.closeAllConnections();
  await new Promise((resolve) => http.close(resolve));
  await conns.close(300);
  await fx.close();
  await server.cleanup();
});

type Method = 'get' | 'post' | 'delete';

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/**
 * Every route of the app, as `method /path/{param}`, walking express's router stack: the routers
 * are mounted at the root, so a route's path is whole. The operations page (`GET /`, and its
 * static files, which are not routes) is not part of the API.
 */
function servedRoutes(app: { router: { stack: Layer[] } }): string[] {
  const out: string[] = [];
  const walk = (stack: Layer[]): void => {
    for (const layer of stack) {
      if (layer.route !== undefined) {
        for (const [method, on] of Object.entries(layer.route.methods))
          if (on && method !== '_all')
            out.push(`${method} ${layer.route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`);
      } else if (layer.handle?.stack !== undefined) walk(layer.handle.stack);
    }
  };
  walk(app.router.stack);
  return out.filter((r) => r !== 'get /');
}
const ajv = new Ajv2020({ strict: false, allErrors: true });
formats.default(ajv);

/** The response schema the description gives for a path template, method and status. */
function schemaFor(template: string, method: Method, status: number): unknown {
  const operation = (
    OPENAPI.paths as Record<
      string,
      Partial<
        Record<
          Method,
          { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }
        >
      >
    >
  )[template]?.[method];
  const response = operation?.responses[String(status)];
  if (response === undefined)
    throw new Error(`${method.toUpperCase()} ${template} does not describe a ${status}`);
  return response.content?.['application/json']?.schema ?? response.content?.['text/plain']?.schema;
}

describe('the OpenAPI description', () => {
  it('describes every endpoint, and every real answer matches it', async () => {
    // State written by the real node and scheduler processes.
    await fx.addToCatalog('p1');
    await fx.startNode('n1');
    await fx.startScheduler('s1');
    await waitFor(async () => (await fx.state('p1'))?.status === 'running', { timeoutMs: 10_000 });
    await fx.redis.lpush(
      fx.keys.notificationHistory(),
      encodePayload('notificationRecord', {
        _v: 1,
        id: 'x',
        kind: 'queue_full',
        level: 'critical',
        status: 'firing',
        title: 't',
        message: 'm',
        details: {},
        subject: { node_id: null, portfolio_id: 'p1' },
        source: { app: 'execution-node', node_id: 'n1' },
        created_at: new Date().toISOString(),
        delivery: {
          status: 'delivered',
          sinks: { log: 'delivered' },
          attempts: 1,
          finished_at: new Date().toISOString(),
        },
      }),
    );

    const calls: [Method, string, string, number, unknown?][] = [
      ['get', '/api/health', '/api/health', 200],
      ['get', '/api/ready', '/api/ready', 200],
      ['get', '/api/nodes', '/api/nodes', 200],
      ['get', '/api/nodes', '/api/nodes?limit=oops', 400],
      ['get', '/api/nodes/{id}', '/api/nodes/n1', 200],
      ['get', '/api/nodes/{id}', '/api/nodes/ghost', 404],
      ['get', '/api/portfolios', '/api/portfolios', 200],
      ['get', '/api/portfolios/{id}', '/api/portfolios/p1', 200],
      ['get', '/api/metrics', '/api/metrics', 200],
      ['get', '/api/schedule/plan', '/api/schedule/plan', 200],
      ['get', '/api/notifications', '/api/notifications', 200],
      ['get', '/api/overview', '/api/overview', 200],
      ['get', '/api/openapi.json', '/api/openapi.json', 200],
      ['post', '/api/fleet/halt', '/api/fleet/halt', 200, { reason: 'openapi test' }],
      ['post', '/api/fleet/halt', '/api/fleet/halt', 409],
      ['get', '/api/fleet/trading', '/api/fleet/trading', 200],
      ['post', '/api/fleet/resume', '/api/fleet/resume', 200],
      ['post', '/api/portfolios/{id}/pause', '/api/portfolios/p1/pause', 200, { reason: null }],
      ['post', '/api/portfolios/{id}/pause', '/api/portfolios/ghost/pause', 404],
      ['post', '/api/portfolios/{id}/resume', '/api/portfolios/p1/resume', 200],
      [
        'post',
        '/api/silences',
        '/api/silences',
        201,
        { matchers: { node: ['n9'] }, duration: '1h', comment: 'openapi test' },
      ],
      ['post', '/api/silences', '/api/silences', 400, { matchers: {}, duration: '1h' }],
      ['get', '/api/silences', '/api/silences', 200],
      ['get', '/api/audit', '/api/audit?limit=5', 200],
      ['get', '/api/audit', '/api/audit?before=yesterday', 400],
      ['get', '/api/control/{id}', '/api/control/not-a-uuid', 400],
      ['post', '/api/nodes/{id}/drain', '/api/nodes/a:b/drain', 400],
      [
        'post',
        '/api/portfolios',
        '/api/portfolios',
        400,
        { portfolio_id: 'p3', symbols: ['ETH'], strategy: { name: 'ma-crossover', params: {} } },
      ],
      ['post', '/api/nodes/{id}/drain', '/api/nodes/n1/drain', 202],
      ['post', '/api/nodes/{id}/undrain', '/api/nodes/n1/undrain', 202],
      [
        'post',
        '/api/portfolios',
        '/api/portfolios',
        202,
        {
          portfolio_id: 'p2',
          symbols: ['ETH'],
          strategy: { name: 'ma-crossover', params: {} },
          starting_cash: 1,
        },
      ],
      ['delete', '/api/portfolios/{id}', '/api/portfolios/p2', 202],
      [
        'post',
        '/api/schedule/migrate',
        '/api/schedule/migrate',
        202,
        { portfolio_id: 'p1', target_node: 'n1' },
      ],
    ];
    const exercised = new Set<string>();
    let requestId = '';
    let silenceId = '';
    for (const [method, template, url, status, body] of calls) {
      const response = await fetch(`${base}${url}`, {
        method: method.toUpperCase(),
        ...(method === 'get'
          ? {}
          : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) }),
      });
      expect(response.status, `${method} ${url}`).toBe(status);
      const json = (await response.json()) as Record<string, unknown>;
      const validate = ajv.compile({
        ...(schemaFor(template, method, status) as object),
        components: OPENAPI.components,
      });
      expect(validate(json), `${method} ${url}: ${ajv.errorsText(validate.errors)}`).toBe(true);
      exercised.add(`${method} ${template}`);
      if (status === 202) requestId = String(json['request_id']);
      if (status === 201) silenceId = String(json['id']);
    }
    // Ending the silence made above, then again (gone: 404).
    for (const status of [200, 404]) {
      const response = await fetch(`${base}/api/silences/${silenceId}/expire`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(response.status).toBe(status);
      const validate = ajv.compile({
        ...(schemaFor('/api/silences/{id}/expire', 'post', status) as object),
        components: OPENAPI.components,
      });
      expect(validate(await response.json()), ajv.errorsText(validate.errors)).toBe(true);
    }
    exercised.add('post /api/silences/{id}/expire');
    // The control outcome, once the scheduler has answered.
    await waitFor(async () => (await fetch(`${base}/api/control/${requestId}`)).status === 200, {
      timeoutMs: 10_000,
    });
    const outcome = await (await fetch(`${base}/api/control/${requestId}`)).json();
    expect(
      ajv.compile({
        ...(schemaFor('/api/control/{id}', 'get', 200) as object),
        components: OPENAPI.components,
      })(outcome),
    ).toBe(true);
    exercised.add('get /api/control/{id}');
    // The page's stream: its first event is an Overview, the next an OverviewDelta, as described.
    const controller = new AbortController();
    const stream = await fetch(`${base}/api/overview/stream`, { signal: controller.signal });
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    let text = '';
    const decoder = new TextDecoder();
    for await (const chunk of stream.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      if (/^event: overview-delta\ndata: .*\n\n/m.test(text)) break;
    }
    controller.abort();
    const eventOf = (name: string) =>
      JSON.parse(
        new RegExp(`^event: ${name}\\ndata: (.*)$`, 'm').exec(text)?.[1] ?? 'null',
      ) as unknown;
    for (const [name, schema] of [
      ['overview', 'Overview'],
      ['overview-delta', 'OverviewDelta'],
    ] as const) {
      const validate = ajv.compile({
        $ref: `#/components/schemas/${schema}`,
        components: OPENAPI.components,
      });
      expect(validate(eventOf(name)), `${name}: ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
    exercised.add('get /api/overview/stream');
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    exercised.add('get /metrics');
    const openapi = await fetch(`${base}/api/openapi.json`);
    expect(await openapi.json()).toEqual(JSON.parse(JSON.stringify(OPENAPI)));

    const described = Object.entries(OPENAPI.paths).flatMap(([template, ops]) =>
      Object.keys(ops as object).map((m) => `${m} ${template}`),
    );
    expect([...exercised].sort()).toEqual(described.sort());
    // What the app serves is what is described: no route left out of the document.
    expect([...new Set(served)].sort()).toEqual(described.sort());
  });
});

describe('the generated description', () => {
  it('carries what the schemas say beyond types: descriptions, integer query parameters, scopes, named components', () => {
    const nodes = (OPENAPI.paths['/api/nodes'] as Record<string, Record<string, unknown>>)['get'];
    expect(nodes?.['x-scope']).toBe('read');
    expect(nodes?.['parameters']).toContainEqual({
      name: 'limit',
      in: 'query',
      required: false,
      schema: { type: 'integer', minimum: 1, maximum: 1000 },
      description: 'Page size (default 100)',
    });
    const drain = (
      OPENAPI.paths['/api/nodes/{id}/drain'] as Record<string, Record<string, unknown>>
    )['post'];
    expect(drain?.['x-scope']).toBe('operate');
    expect(drain?.['parameters']).toEqual([
      {
        name: 'id',
        in: 'path',
        required: true,
        schema: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
      },
    ]);
    expect(Object.keys(OPENAPI.components.schemas).sort()).toEqual(
      [
        'Accepted',
        'Error',
        'Node',
        'Overview',
        'OverviewDelta',
        'Portfolio',
        'Silence',
        'Trading',
      ].sort(),
    );
    expect(
      (OPENAPI.components.schemas['Node']?.['properties'] as Record<string, unknown>)['is_online'],
    ).toEqual({ type: 'boolean', description: 'Heartbeat alive: status online or draining' });
  });
});

describe('a Redis outage in the OpenAPI terms', () => {
  it('answers 503 with the described error shape', async () => {
    await server.kill();
    await waitFor(() => conns.main.status !== 'ready');
    const response = await fetch(`${base}/api/nodes`);
    expect(response.status).toBe(503);
    const validate = ajv.compile({
      ...(schemaFor('/api/nodes', 'get', 503) as object),
      components: OPENAPI.components,
    });
    expect(validate(await response.json())).toBe(true);
  });
});
