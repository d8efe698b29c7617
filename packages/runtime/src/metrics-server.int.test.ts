import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { MetricsRegistry } from './metrics-registry.ts';
import { loadMetricsServerConfig, MetricsServer } from './metrics-server.ts';
import { unwrapConfig } from './env.ts';

const servers: MetricsServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop();
});

const TOKEN = 'scrape-0123456789abcdef';

async function start(token: string | undefined, allowedHosts?: string[]): Promise<string> {
  const registry = new MetricsRegistry({ prefix: 'ms_test_' });
  registry.gauge({ name: 'ms_test_cash', help: 'Cash of a portfolio', value: () => 1_234 });
  const server = new MetricsServer({
    host: '127.0.0.1',
    port: 0,
    token,
    ...(allowedHosts === undefined ? {} : { allowedHosts }),
    registry,
    health: () => ({ healthy: true, body: { status: 'running', redis: 'redis-7:6379 WRONGPASS' } }),
    onError: () => undefined,
  });
  servers.push(server);
  return `http://127.0.0.1:${await server.start()}`;
}

describe('metrics server settings', () => {
  it('binds loopback by default; METRICS_HOST, METRICS_PORT and METRICS_TOKEN are read once, here', () => {
    expect(unwrapConfig(loadMetricsServerConfig({}, 9_464))).toEqual({
      host: '127.0.0.1',
      port: 9_464,
      token: undefined,
      allowedHosts: ['localhost', '127.0.0.1', '::1'],
    });
    expect(
      unwrapConfig(
        loadMetricsServerConfig(
          { METRICS_HOST: '0.0.0.0', METRICS_PORT: '0', METRICS_TOKEN: TOKEN },
          9_464,
        ),
      ),
    ).toEqual({
      host: '0.0.0.0',
      port: 0,
      token: TOKEN,
      allowedHosts: ['localhost', '127.0.0.1', '::1'],
    });
    expect(
      unwrapConfig(loadMetricsServerConfig({ METRICS_HOST: '10.0.0.7' }, 1)).allowedHosts,
    ).toEqual(['localhost', '127.0.0.1', '::1', '10.0.0.7']);
    expect(
      unwrapConfig(loadMetricsServerConfig({ METRICS_ALLOWED_HOSTS: 'Execution-Node, [::1]' }, 1))
        .allowedHosts,
    ).toEqual(['execution-node', '::1']);
    expect(
      unwrapConfig(loadMetricsServerConfig({ METRICS_ALLOWED_HOSTS: 'localhost,::1,node' }, 1))
        .allowedHosts,
    ).toEqual(['localhost', '::1', 'node']);
    expect(loadMetricsServerConfig({ METRICS_ALLOWED_HOSTS: 'node:9464' }, 1)).toEqual({
      ok: false,
      issues: [
        {
          variable: 'METRICS_ALLOWED_HOSTS',
          message:
            'must be comma-separated host names without port, like execution-node,prometheus.internal',
        },
      ],
    });
    expect(loadMetricsServerConfig({ METRICS_TOKEN: 'short' }, 1)).toEqual({
      ok: false,
      issues: [
        {
          variable: 'METRICS_TOKEN',
          message: 'must be at least 16 characters (value not shown: it is a secret)',
        },
      ],
    });
  });
});

/** A GET with any Host header (fetch will not send one of its own choosing). */
function get(base: string, path: string, host: string): Promise<{ status: number; body: string }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, headers: { host, connection: 'close' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('MetricsServer and the Host header (DNS rebinding)', () => {
  it('serves /metrics to loopback names on any port; another Host gets 403 and /health says only healthy', async () => {
    const base = await start(undefined);
    const { port } = new URL(base);
    const rebound = await get(base, '/metrics', `evil.example:${port}`);
    expect(rebound.status).toBe(403);
    expect(rebound.body).not.toContain('ms_test_cash');
    expect(JSON.parse(rebound.body)).toEqual({
      error: true,
      code: 'FORBIDDEN',
      message:
        'This server does not answer to Host evil.example; an operator adds it to METRICS_ALLOWED_HOSTS',
    });
    const health = await get(base, '/health', `evil.example:${port}`);
    expect(health).toEqual({ status: 200, body: JSON.stringify({ status: 'healthy' }) });
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'LOCALHOST']) {
      const answer = await get(base, '/metrics', host);
      expect(answer.status, host).toBe(200);
      expect(answer.body).toContain('\nms_test_cash 1234\n');
    }
    // Compose's health checks: http://127.0.0.1:<port>/health, the full body.
    expect(JSON.parse((await get(base, '/health', `127.0.0.1:${port}`)).body)).toEqual({
      status: 'running',
      redis: 'redis-7:6379 WRONGPASS',
    });
  });

  it('METRICS_ALLOWED_HOSTS replaces the list: a scraper that dials the service by name', async () => {
    const base = await start(undefined, ['execution-node']);
    expect((await get(base, '/metrics', 'execution-node:9464')).status).toBe(200);
    expect((await get(base, '/metrics', 'localhost')).status).toBe(403);
  });
});

describe('MetricsServer with METRICS_TOKEN', () => {
  it('serves /metrics only with the bearer token; /health stays open but says only healthy or not', async () => {
    const base = await start(TOKEN);
    const none = await fetch(`${base}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    const noneText = await none.text();
    expect(noneText).not.toContain('ms_test_cash');
    expect(JSON.parse(noneText)).toEqual({
      error: true,
      code: 'UNAUTHORIZED',
      message: 'Missing or invalid bearer token (METRICS_TOKEN)',
    });
    const wrong = await fetch(`${base}/metrics`, {
      headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}x` },
    });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(right.status).toBe(200);
    expect(await right.text()).toContain('\nms_test_cash 1234\n');

    const open = await fetch(`${base}/health`);
    expect(open.status).toBe(200);
    expect(await open.json()).toEqual({ status: 'healthy' });
    const full = await fetch(`${base}/health`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await full.json()).toEqual({ status: 'running', redis: 'redis-7:6379 WRONGPASS' });
  });

  it('without a token, /metrics and /health answer as before (loopback is the guard)', async () => {
    const base = await start(undefined);
    expect(await (await fetch(`${base}/metrics`)).text()).toContain('\nms_test_cash 1234\n');
    expect(await (await fetch(`${base}/health`)).json()).toEqual({
      status: 'running',
      redis: 'redis-7:6379 WRONGPASS',
    });
  });

  it('a failing /metrics says so without its reason (which goes to onError)', async () => {
    const registry = new MetricsRegistry({ prefix: 'ms_fail_' });
    registry.gauge({
      name: 'ms_fail_x',
      help: 'Fails',
      value: () => {
        throw new Error('ECONNREFUSED 10.0.0.7:6379');
      },
    });
    const errors: Error[] = [];
    const server = new MetricsServer({
      host: '127.0.0.1',
      port: 0,
      registry,
      health: () => ({ healthy: true, body: {} }),
      onError: (err) => errors.push(err),
    });
    servers.push(server);
    const answer = await fetch(`http://127.0.0.1:${await server.start()}/metrics`);
    expect(answer.status).toBe(500);
    expect(await answer.text()).toBe('metrics failed (see the log)');
    expect(errors.map((e) => e.message).join()).toContain('ECONNREFUSED 10.0.0.7:6379');
  });
});
