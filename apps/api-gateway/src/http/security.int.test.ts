import { randomBytes } from 'node:crypto';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { createStateKeys, type StateKeys } from '@ginkgo-live/state-keys';
import { MemoryTransport, RedisServer } from '@ginkgo-live/testing';
import type { ApiKey, SecurityConfig } from '../config.ts';
import { ControlQueue } from '../control-queue.ts';
import { createFleetRegistry } from '../fleet-metrics.ts';
import { FleetReader } from '../fleet-reader.ts';
import { createAccess } from './access.ts';
import { createApp } from './app.ts';
import { WEIGHTS } from './limits.ts';

let server: RedisServer;
let redis: Redis;
let keys: StateKeys;
let conns: RedisConnections;
let gateway: Server | undefined;
let port: number;

const KEYS: ApiKey[] = [
  { name: 'prom', scope: 'metrics', secret: 'metrics-secret-0123456789' },
  { name: 'grafana', scope: 'read', secret: 'read-secret-0123456789' },
  { name: 'desk', scope: 'operate', secret: 'operate-secret-0123456789' },
  { name: 'ops', scope: 'admin', secret: 'admin-secret-0123456789' },
  { name: 'admin2', scope: 'admin', secret: 'admin2-secret-0123456789' },
];
const secretOf = (name: string): string => KEYS.find((k) => k.name === name)?.secret ?? '';

const BASE: SecurityConfig = {
  apiKeys: KEYS,
  publicReads: false,
  corsOrigins: [],
  rateLimitPerMinute: 100_000,
  addressRateLimitPerMinute: 100_000,
};

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.port, server.host);
  keys = createStateKeys('sec:');
  conns = new RedisConnections({
    config: unwrapConfig(
      loadRedisConfig({ ...server.env, REDIS_COMMAND_TIMEOUT_MS: '500', REDIS_KEY_PREFIX: 'sec:' }),
    ),
    app: 'sec-test',
    instanceId: 'i',
    logger: createLogger({ app: 'sec-test', transports: [new MemoryTransport()] }),
  });
  await conns.waitUntilReady(5_000);
});

afterEach(async () => {
  const current = gateway;
  gateway = undefined;
  current?.closeAllConnections();
  await new Promise((resolve) => current?.close(resolve));
  await conns.close(300);
  redis.disconnect();
  await server.cleanup();
});

async function listen(app: express.Express): Promise<void> {
  const previous = gateway;
  if (previous !== undefined) {
    previous.closeAllConnections();
    await new Promise((resolve) => previous.close(resolve));
  }
  const listening = app.listen(0, '127.0.0.1');
  gateway = listening;
  await new Promise((resolve) => listening.once('listening', resolve));
  port = (listening.address() as AddressInfo).port;
}

/** The gateway's real app (every router, the guard) over the test's Redis. */
async function startGateway(security: SecurityConfig = BASE): Promise<void> {
  const reader = new FleetReader(conns.main, keys);
  await listen(
    createApp({
      reader,
      control: new ControlQueue(conns.main, keys),
      security,
      ping: () => conns.ping(),
      registry: createFleetRegistry(reader),
      logger: createLogger({ app: 'sec-test', transports: [new MemoryTransport()] }),
    }),
  );
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** A request with any headers (fetch will not set Host, Origin or Sec-Fetch-Site as a browser does). */
function send(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path, headers: { connection: 'close', ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          let parsed: Record<string, unknown>;
          try {
            parsed = JSON.parse(text) as Record<string, unknown>;
          } catch {
            parsed = { text };
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const key = (name: string) => ({ 'x-api-key': secretOf(name) });
const JSON_TYPE = { 'content-type': 'application/json' };
const queued = async (): Promise<string[]> => redis.lrange(keys.controlRequests(), 0, -1);

describe('scoped keys', () => {
  it('a read key gets 403 naming the scope on drain; an operate key drains, named as requested_by', async () => {
    await startGateway();
    const refused = await send('POST', '/api/nodes/n1/drain', { ...key('grafana'), ...JSON_TYPE });
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({
      error: true,
      code: 'FORBIDDEN',
      message: 'This key (grafana) lacks the operate scope',
      details: { required_scope: 'operate', key: 'grafana' },
    });
    expect(await queued()).toEqual([]);

    const drained = await send('POST', '/api/nodes/n1/drain', { ...key('desk'), ...JSON_TYPE });
    expect(drained.status).toBe(202);
    const [request] = (await queued()).map((r) => JSON.parse(r) as Record<string, unknown>);
    expect(request).toMatchObject({ action: 'drain', node_id: 'n1', requested_by: 'desk' });
    expect(JSON.stringify(request)).not.toContain(secretOf('desk'));

    // admin only: the catalog
    const spec = JSON.stringify({ portfolio_id: 'p9', symbols: ['X'], starting_cash: 1 });
    const add = await send('POST', '/api/portfolios', { ...key('desk'), ...JSON_TYPE }, spec);
    expect(add.status).toBe(403);
    expect(add.body).toMatchObject({ details: { required_scope: 'admin', key: 'desk' } });
  });

  it('a metrics key scrapes /metrics only; read and above scrape too; a wrong or missing key is a bare 401', async () => {
    await startGateway();
    expect((await send('GET', '/metrics', key('prom'))).status).toBe(200);
    expect((await send('GET', '/metrics', key('grafana'))).status).toBe(200);
    expect((await send('GET', '/metrics', key('ops'))).status).toBe(200);
    const nodes = await send('GET', '/api/nodes', key('prom'));
    expect(nodes.status).toBe(403);
    expect(nodes.body['message']).toBe('This key (prom) lacks the read scope');
    expect((await send('GET', '/api/nodes', key('grafana'))).status).toBe(200);
    expect(
      (await send('GET', '/api/nodes', { authorization: `Bearer ${secretOf('grafana')}` })).status,
    ).toBe(200);

    const attempts: Record<string, string>[] = [{}, { 'x-api-key': 'not-a-key-0123456789' }];
    for (const headers of attempts) {
      const denied = await send('GET', '/api/nodes', headers);
      expect(denied.status).toBe(401);
      expect(denied.body).toMatchObject({
        code: 'UNAUTHORIZED',
        message: 'Missing or invalid API key',
      });
      for (const k of KEYS) expect(JSON.stringify(denied.body)).not.toContain(k.name);
    }
  });

  it('without keys: anonymous with every scope for this machine only', async () => {
    // trust proxy lets the test present another client address, as a reverse proxy on this machine would.
    await startGateway({ ...BASE, apiKeys: [], trustProxy: ['loopback'] });
    expect((await send('GET', '/api/nodes')).status).toBe(200);
    const drained = await send('POST', '/api/nodes/n1/drain', JSON_TYPE);
    expect(drained.status).toBe(202);
    expect(JSON.parse((await queued())[0] ?? '{}')).toMatchObject({ requested_by: 'anonymous' });
    const remote = await send('GET', '/api/nodes', { 'x-forwarded-for': '203.0.113.9' });
    expect(remote.status).toBe(403);
    expect(remote.body['message']).toBe(
      'This gateway has no API keys and serves only its own machine',
    );
    // GATEWAY_AUTH=off is the operator saying so.
    await startGateway({ ...BASE, apiKeys: [], trustProxy: ['loopback'], auth: 'off' });
    expect((await send('GET', '/api/nodes', { 'x-forwarded-for': '203.0.113.9' })).status).toBe(
      200,
    );
  });
});

describe('a keyless gateway behind a reverse proxy on its machine', () => {
  it('refuses a forwarded request (X-Forwarded-For, Forwarded, X-Real-IP) unless trust proxy or GATEWAY_AUTH=off says who the client is', async () => {
    await startGateway({ ...BASE, apiKeys: [] });
    for (const [header, value] of [
      ['x-forwarded-for', '203.0.113.9'],
      ['forwarded', 'for=203.0.113.9'],
      ['x-real-ip', '203.0.113.9'],
    ] as const) {
      const answer = await send('POST', '/api/nodes/n1/drain', { ...JSON_TYPE, [header]: value });
      expect(answer.status, header).toBe(403);
      expect(answer.body).toMatchObject({
        code: 'FORBIDDEN',
        message: `This gateway has no API keys and serves only its own machine, but this request came through a proxy (${header}); set GATEWAY_API_KEYS, or GATEWAY_TRUST_PROXY so that the client's own address is checked`,
        details: { header },
      });
      expect((await send('GET', '/', { [header]: value })).status, header).toBe(403);
    }
    expect(await queued()).toEqual([]);
    // Not forwarded: this machine's own tools. Health stays open to probes.
    expect((await send('GET', '/api/nodes')).status).toBe(200);
    expect((await send('GET', '/api/health', { 'x-forwarded-for': '203.0.113.9' })).status).toBe(
      200,
    );
    // GATEWAY_AUTH=off: anyone, forwarded or not, as the operator said.
    await startGateway({ ...BASE, apiKeys: [], auth: 'off' });
    expect((await send('GET', '/api/nodes', { 'x-forwarded-for': '203.0.113.9' })).status).toBe(
      200,
    );
  });
});

describe('cross-site requests and DNS rebinding', () => {
  it("the issue's attack: a form-encoded POST from http://evil.example to drain is refused and nothing is queued", async () => {
    for (const security of [{ ...BASE, apiKeys: [] }, BASE]) {
      await startGateway(security);
      const headers = {
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'http://evil.example',
        ...(security.apiKeys.length > 0 ? key('desk') : {}),
      };
      const answer = await send('POST', '/api/nodes/n1/drain', headers, 'a=b');
      expect(answer.status).toBe(403);
      expect(answer.body).toMatchObject({ code: 'FORBIDDEN', details: { reason: 'csrf' } });
      expect(await queued()).toEqual([]);
    }
  });

  it('a state change needs a JSON body or X-Ginkgo-Request, and a same-origin or allow-listed Origin', async () => {
    await startGateway({ ...BASE, corsOrigins: ['https://ops.example.com'] });
    const drain = (headers: Record<string, string>) =>
      send('POST', '/api/nodes/n1/drain', { ...key('desk'), ...headers });

    const bare = await drain({});
    expect(bare.status).toBe(403);
    expect(bare.body['message']).toBe(
      'A POST needs Content-Type: application/json or an X-Ginkgo-Request header (what a form on another site cannot send)',
    );
    const textPlain = await drain({ 'content-type': 'text/plain' });
    expect(textPlain.status).toBe(403);
    // JSON from another origin (a browser would have asked first; a script might not).
    const foreign = await drain({ ...JSON_TYPE, origin: 'http://evil.example' });
    expect(foreign.status).toBe(403);
    expect(foreign.body['message']).toBe(
      'Origin http://evil.example may not change anything here; an operator adds it to GATEWAY_CORS_ORIGINS',
    );
    const crossSite = await drain({ 'x-ginkgo-request': '1', 'sec-fetch-site': 'cross-site' });
    expect(crossSite.status).toBe(403);
    expect(await queued()).toEqual([]);

    expect((await drain({ 'x-ginkgo-request': '1' })).status).toBe(202);
    expect((await drain({ ...JSON_TYPE, origin: `http://127.0.0.1:${port}` })).status).toBe(202);
    expect(
      (
        await drain({
          ...JSON_TYPE,
          origin: 'https://ops.example.com',
          'sec-fetch-site': 'cross-site',
        })
      ).status,
    ).toBe(202);
    const del = await send('DELETE', '/api/portfolios/p1', {
      ...key('ops'),
      'x-ginkgo-request': '1',
    });
    expect(del.status).toBe(202);
    expect(await queued()).toHaveLength(4);
    // Reads are not state changes: a cross-site GET passes the check (the browser hides its answer).
    expect(
      (await send('GET', '/api/nodes', { ...key('grafana'), origin: 'http://evil.example' }))
        .status,
    ).toBe(200);
  });

  it('refuses a Host it does not answer to (rebinding); loopback names pass on any port; /api/health is open', async () => {
    await startGateway();
    const rebound = await send('GET', '/api/nodes', {
      ...key('grafana'),
      host: `evil.example:${port}`,
    });
    expect(rebound.status).toBe(403);
    expect(rebound.body).toMatchObject({
      code: 'FORBIDDEN',
      message:
        'This gateway does not answer to Host evil.example; an operator adds it to GATEWAY_ALLOWED_HOSTS',
    });
    const drain = await send('POST', '/api/nodes/n1/drain', {
      ...key('desk'),
      ...JSON_TYPE,
      host: 'evil.example',
      origin: 'http://evil.example',
    });
    expect(drain.status).toBe(403);
    expect(await queued()).toEqual([]);
    for (const host of [`localhost:${port}`, '127.0.0.1:1', `[::1]:${port}`, 'LOCALHOST'])
      expect((await send('GET', '/api/nodes', { ...key('grafana'), host })).status, host).toBe(200);
    expect((await send('GET', '/api/health', { host: 'pod-10-0-0-7' })).status).toBe(200);

    // Trusting a proxy, the forwarded host must be allowed, and so must the raw Host: a rebound
    // page is same-origin to the gateway, so it may set X-Forwarded-Host to an allowed name.
    await startGateway({ ...BASE, trustProxy: ['loopback'] });
    const forged = await send('GET', '/api/nodes', {
      ...key('grafana'),
      host: `evil.example:${port}`,
      'x-forwarded-host': 'localhost',
    });
    expect(forged.status).toBe(403);
    expect(forged.body).toMatchObject({ details: { host: 'evil.example' } });
    const forwardedEvil = await send('GET', '/api/nodes', {
      ...key('grafana'),
      host: `127.0.0.1:${port}`,
      'x-forwarded-host': 'evil.example',
    });
    expect(forwardedEvil.status).toBe(403);
    expect(forwardedEvil.body).toMatchObject({ details: { host: 'evil.example' } });
    expect(
      (
        await send('GET', '/api/nodes', {
          ...key('grafana'),
          host: `[::1]:${port}`,
          'x-forwarded-host': 'localhost',
        })
      ).status,
    ).toBe(200);

    await startGateway({ ...BASE, allowedHosts: ['ops.example.com'] });
    expect(
      (await send('GET', '/api/nodes', { ...key('grafana'), host: 'ops.example.com' })).status,
    ).toBe(200);
    expect((await send('GET', '/api/nodes', { ...key('grafana'), host: 'localhost' })).status).toBe(
      403,
    );
  });
});

describe('limits that cannot be dodged', () => {
  it("a keyless gateway does not limit this machine's clients (its tools poll it); GATEWAY_AUTH=off does", async () => {
    const tight = { ...BASE, apiKeys: [], addressRateLimitPerMinute: 50, rateLimitPerMinute: 50 };
    await startGateway(tight);
    const polls: number[] = [];
    for (let i = 0; i < 20; i++) polls.push((await send('GET', '/api/nodes')).status);
    expect(polls).toEqual(Array<number>(20).fill(200));
    await startGateway({ ...tight, auth: 'off' });
    polls.length = 0;
    for (let i = 0; i < 6; i++) polls.push((await send('GET', '/api/nodes')).status);
    expect(polls).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it('500 requests with a fresh random key each, from one address: 429 once the address has spent its allowance', async () => {
    const allowance = 300;
    await startGateway({ ...BASE, addressRateLimitPerMinute: allowance });
    const statuses: number[] = [];
    for (let i = 0; i < 500; i++) {
      const answer = await send('GET', '/api/nodes/n1', {
        'x-api-key': randomBytes(16).toString('hex'),
      });
      statuses.push(answer.status);
    }
    // Each costs its weight (1) plus the failed key (10): the 28th finds 11 × 27 = 297 spent, its
    // weight fits (298) and its key fails (308); the 29th is over before any key is looked at.
    const perFailure = WEIGHTS.item + WEIGHTS.failedKey;
    const allowed = Math.floor((allowance - WEIGHTS.item) / perFailure) + 1;
    expect(allowed).toBe(28);
    expect(statuses.slice(0, allowed)).toEqual(Array<number>(allowed).fill(401));
    expect(statuses.slice(allowed)).toEqual(Array<number>(500 - allowed).fill(429));
    const last = await send('GET', '/api/nodes/n1');
    expect(last.status).toBe(429);
    expect(last.body).toMatchObject({ code: 'RATE_LIMITED' });
    expect(Number(last.headers['retry-after'])).toBeGreaterThan(0);
    expect(last.headers['x-ratelimit-remaining']).toBe('0');
    // A valid key spends its own allowance, not the address's.
    expect((await send('GET', '/api/nodes', key('grafana'))).status).toBe(200);
  });

  it("a stranger sharing the operator's address cannot block the kill switch: a valid key is charged to itself only", async () => {
    await startGateway({ ...BASE, addressRateLimitPerMinute: 600 });
    const guesses: number[] = [];
    for (let i = 0; i < 60; i++)
      guesses.push(
        (await send('GET', '/api/nodes/n1', { 'x-api-key': `wrong-${i}-0123456789abcdef` })).status,
      );
    // 11 a guess (its weight and the failed key): 54 spend 594, the 55th is over.
    expect(guesses.filter((s) => s === 401)).toHaveLength(55);
    expect(guesses.filter((s) => s === 429)).toHaveLength(5);
    expect((await send('GET', '/api/nodes/n1')).status).toBe(429);

    const drained = await send('POST', '/api/nodes/n1/drain', { ...key('desk'), ...JSON_TYPE });
    expect(drained.status).toBe(202);
    expect(drained.headers['x-ratelimit-limit']).toBe(String(BASE.rateLimitPerMinute));
    expect(await queued()).toHaveLength(1);
  });

  it("the address limiter's map stays bounded: random keys add nothing, random addresses share an overflow window", async () => {
    const access = createAccess(
      { ...BASE, addressRateLimitPerMinute: 50, trustProxy: ['loopback'] },
      { maxAddresses: 100 },
    );
    const app = express();
    app.set('trust proxy', ['loopback']);
    app.use(access.guard);
    app.get('/api/nodes/:id', access.require('read'), (_req, res) => {
      res.json({ ok: true });
    });
    await listen(app);
    for (let i = 0; i < 200; i++)
      await send('GET', '/api/nodes/n1', { 'x-api-key': randomBytes(16).toString('hex') });
    expect(access.limiterSizes()).toEqual({ addresses: 1, keys: 0 });

    const statuses: number[] = [];
    for (let i = 0; i < 500; i++) {
      const address = `198.51.${Math.floor(i / 250)}.${i % 250}`;
      statuses.push((await send('GET', '/api/nodes/n1', { 'x-forwarded-for': address })).status);
    }
    expect(access.limiterSizes()).toEqual({ addresses: 100, keys: 0 });
    // 99 addresses got windows of their own; the 401 others share one of 50.
    expect(statuses.filter((s) => s === 401)).toHaveLength(99 + 50);
    expect(statuses.filter((s) => s === 429)).toHaveLength(500 - 99 - 50);
    // A valid key is counted against the key, whatever address it comes from.
    expect((await send('GET', '/api/nodes/n1', key('grafana'))).status).toBe(200);
    expect(access.limiterSizes()).toEqual({ addresses: 100, keys: 1 });
  });

  it('whole-fleet reads weigh more than one item; the key limit counts after authentication', async () => {
    await startGateway({ ...BASE, rateLimitPerMinute: 25 });
    const fleet = await send('GET', '/api/metrics', key('grafana'));
    expect(fleet.status).toBe(200);
    expect(fleet.headers['x-ratelimit-remaining']).toBe(String(25 - WEIGHTS.fleet));
    expect(
      (await send('GET', '/api/nodes?status=online', key('grafana'))).headers[
        'x-ratelimit-remaining'
      ],
    ).toBe(String(25 - 2 * WEIGHTS.fleet));
    const item = await send('GET', '/api/nodes/n1', key('grafana'));
    expect(item.headers['x-ratelimit-remaining']).toBe(
      String(25 - 2 * WEIGHTS.fleet - WEIGHTS.item),
    );
    expect((await send('GET', '/api/metrics', key('grafana'))).status).toBe(429);
    // Routing ignores case; so does the weighing.
    expect((await send('GET', '/API/METRICS', key('ops'))).headers['x-ratelimit-remaining']).toBe(
      String(25 - WEIGHTS.fleet),
    );
    expect((await send('GET', '/Api/Nodes/', key('ops'))).headers['x-ratelimit-remaining']).toBe(
      String(25 - 2 * WEIGHTS.fleet),
    );
    // Another key has its own allowance; the address (100,000) is far from spent.
    expect((await send('GET', '/api/metrics', key('admin2'))).status).toBe(200);
  });

  it('a key refused for its scope spends its allowance, and leaves one forbidden audit entry a minute per action', async () => {
    const start = new Date('2026-12-02T03:00:00Z');
    vi.useFakeTimers({ toFake: ['Date'], now: start });
    try {
      await startGateway({ ...BASE, rateLimitPerMinute: 5 });
      const drain = () =>
        send('POST', '/api/nodes/n1/drain', { ...key('prom'), ...JSON_TYPE }).then((a) => a.status);
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push(await drain());
      expect(statuses).toEqual([403, 403, 403, 403, 403, 429, 429, 429]);
      const undrain = await send('POST', '/api/nodes/n1/undrain', { ...key('prom'), ...JSON_TYPE });
      expect(undrain.status).toBe(429);

      const audit = async () =>
        (await redis.xrange(keys.auditLog(), '-', '+')).map(
          ([, fields]) => JSON.parse(fields[1] ?? '{}') as Record<string, unknown>,
        );
      expect(await audit()).toMatchObject([
        {
          actor: 'prom',
          action: 'drain',
          outcome: 'forbidden',
          reason: 'This key (prom) lacks the operate scope',
        },
      ]);

      vi.setSystemTime(start.getTime() + 61_000);
      expect(await drain()).toBe(403);
      expect(
        await send('POST', '/api/nodes/n1/undrain', { ...key('prom'), ...JSON_TYPE }),
      ).toMatchObject({ status: 403 });
      const entries = await audit();
      expect(entries.map((e) => [e['action'], e['reason']])).toEqual([
        ['drain', 'This key (prom) lacks the operate scope'],
        [
          'drain',
          'This key (prom) lacks the operate scope (and 4 more refusals of prom for drain since the last entry, not recorded one by one)',
        ],
        ['undrain', 'This key (prom) lacks the operate scope'],
      ]);
    } finally {
      vi.useRealTimers();
    }
  });
});
