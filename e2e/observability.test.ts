import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  ManagedProcess,
  RedisServer,
  REPO_ROOT,
  StackFixture,
  waitFor,
} from '@ginkgo-live/testing';

/**
 * The shipped rules and dashboard against a real Prometheus (Debian's) scraping the real stack:
 * every dashboard panel's query and every metric a rule reads returns data, every rule evaluates
 * without error, and a killed node makes the node-lost alert fire. A renamed metric breaks this.
 *
 * Prometheus here scrapes and evaluates every second, and the rules' `for:` durations are cut
 * tenfold in the copy it loads: what is tested is each expression against real series; the
 * durations themselves are tested by `promtool test rules` (e2e/prometheus-rules.test.ts).
 */
const KEY = 'metrics-secret-0123456789';
const DEPLOY = path.join(REPO_ROOT, 'deploy');

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}

let server: RedisServer;
let fx: StackFixture;
let prometheus: ManagedProcess;
let promUrl: string;
let dir: string;
let nodeB: ManagedProcess;
let nodeAInstance: string;

async function query(expr: string): Promise<{ status: string; data?: { result: unknown[] } }> {
  const response = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await response.json()) as { status: string; data?: { result: unknown[] } };
}

/** The port an app's metrics server listens on, from its start line. */
async function metricsPort(p: ManagedProcess): Promise<number> {
  const line = await p.waitForLine('Metrics listening', 30_000);
  return (JSON.parse(line) as { port: number }).port;
}

beforeAll(async () => {
  server = await RedisServer.start();
  fx = new StackFixture(server, { startTimeoutMs: 60_000 });
  for (const id of ['p1', 'p2']) {
    await fx.addToCatalog(id);
    await fx.seedBook(id);
  }
  const [scheduler, a, b, worker, feed, gateway] = await Promise.all([
    fx.startScheduler('s1'),
    fx.startNode('a'),
    fx.startNode('b'),
    fx.startNotificationWorker(),
    fx.startFeed({ FEED_RATE: '20' }),
    fx.startGateway({ GATEWAY_API_KEYS: `prom:metrics:${KEY}` }),
  ]);
  nodeB = b;
  const gatewayPort = new URL(gateway.url).port;
  const ports = {
    scheduler: await metricsPort(scheduler),
    a: await metricsPort(a),
    b: await metricsPort(b),
    worker: await metricsPort(worker),
    feed: await metricsPort(feed),
  };
  nodeAInstance = `127.0.0.1:${ports.a}`;

  dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-observability-'));
  writeFileSync(path.join(dir, 'gateway-metrics-key'), KEY);
  const rules = readFileSync(path.join(DEPLOY, 'prometheus/rules/ginkgo.yml'), 'utf8').replace(
    /for: (\d+)(s|m)/g,
    (_, n: string, unit: string) =>
      `for: ${Math.max(1, Math.round((Number(n) * (unit === 'm' ? 60 : 1)) / 10))}s`,
  );
  writeFileSync(path.join(dir, 'ginkgo.yml'), rules);
  const job = (name: string, targets: string[], extra = '') =>
    `  - job_name: ${name}\n${extra}    static_configs:\n      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]\n`;
  writeFileSync(
    path.join(dir, 'prometheus.yml'),
    [
      'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n',
      'rule_files:\n  - ginkgo.yml\n',
      'scrape_configs:\n',
      job(
        'ginkgo-gateway',
        [`127.0.0.1:${gatewayPort}`],
        '    authorization:\n      type: Bearer\n      credentials_file: gateway-metrics-key\n',
      ),
      job('ginkgo-scheduler', [`127.0.0.1:${ports.scheduler}`]),
      job('ginkgo-execution-node', [`127.0.0.1:${ports.a}`, `127.0.0.1:${ports.b}`]),
      job('ginkgo-notification-worker', [`127.0.0.1:${ports.worker}`]),
      job('ginkgo-market-feed', [`127.0.0.1:${ports.feed}`]),
    ].join(''),
  );
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prometheus = ManagedProcess.start({
    name: 'prometheus',
    command: 'prometheus',
    args: [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
  });
  await waitFor(
    async () => {
      if (prometheus.exit !== undefined) throw new Error(prometheus.output.slice(-2_000));
      const targets = (await fetch(`${promUrl}/api/v1/targets`)
        .then((r) => r.json())
        .catch(() => null)) as { data: { activeTargets: { health: string }[] } } | null;
      const active = targets?.data.activeTargets ?? [];
      return active.length === 6 && active.every((t) => t.health === 'up');
    },
    { timeoutMs: 30_000, intervalMs: 500, description: 'every target scraped and up' },
  );
}, 120_000);

afterAll(async () => {
  await prometheus.stop();
  await fx.close();
  await server.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('the shipped rules and dashboard against a real Prometheus', () => {
  it('a killed node makes GinkgoNodeLost fire', async () => {
    await nodeB.stop('SIGKILL');
    await waitFor(
      async () => {
        const alerts = (await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as {
          data: { alerts: { labels: { alertname: string }; state: string }[] };
        };
        return alerts.data.alerts.some(
          (a) => a.labels.alertname === 'GinkgoNodeLost' && a.state === 'firing',
        );
      },
      { timeoutMs: 30_000, intervalMs: 500, description: 'GinkgoNodeLost firing' },
    );
    // Judged by the gateway from Redis, not by the dead node: 1 lost, named by its heartbeat age.
    expect(await query('ginkgo_fleet_nodes{status="lost"}')).toMatchObject({
      data: { result: [{ value: [expect.any(Number) as unknown, '1'] }] },
    });
  }, 60_000);

  it('answers every dashboard panel with data', async () => {
    const dashboard = JSON.parse(
      readFileSync(path.join(DEPLOY, 'grafana/dashboards/ginkgo-fleet.json'), 'utf8'),
    ) as { panels: Panel[] };
    const exprs = dashboard.panels
      .filter((p) => p.type !== 'row')
      .flatMap((p) => (p.targets ?? []).map((t) => [p.title, t.expr] as const));
    expect(exprs.length).toBeGreaterThan(20);
    const empty: string[] = [];
    await waitFor(
      async () => {
        empty.length = 0;
        for (const [title, expr] of exprs) {
          const concrete = expr
            .replaceAll('$node', nodeAInstance)
            .replaceAll('$portfolio', 'p1')
            .replaceAll('$__rate_interval', '1m');
          const answer = await query(concrete);
          if (answer.status !== 'success') throw new Error(`${title}: ${JSON.stringify(answer)}`);
          if ((answer.data?.result.length ?? 0) === 0) empty.push(`${title}: ${concrete}`);
        }
        return empty.length === 0;
      },
      { timeoutMs: 30_000, intervalMs: 1_000, description: 'every panel with data' },
    ).catch(() => undefined);
    expect(empty).toEqual([]);
  }, 60_000);

  it('evaluates every rule without error, and every metric a rule reads has data', async () => {
    const groups = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
      data: {
        groups: { rules: { name: string; query: string; health: string; lastError?: string }[] }[];
      };
    };
    const rules = groups.data.groups.flatMap((g) => g.rules);
    expect(rules).toHaveLength(17);
    for (const rule of rules)
      expect([rule.name, rule.health, rule.lastError ?? '']).toEqual([rule.name, 'ok', '']);
    const names = new Set(
      rules.flatMap((r) =>
        [...r.query.matchAll(/\b(ginkgo_[a-z0-9_]+|ginkgo:[a-z0-9_:]+)/g)].map((m) => m[1] ?? ''),
      ),
    );
    for (const r of rules) if (!r.name.startsWith('Ginkgo')) names.add(r.name);
    const missing: string[] = [];
    for (const name of names) {
      const answer = await query(`count(${name})`);
      if ((answer.data?.result.length ?? 0) === 0) missing.push(name);
    }
    expect(missing).toEqual([]);
    expect(names.size).toBeGreaterThan(15);
  }, 60_000);
});
