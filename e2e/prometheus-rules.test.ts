import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisServer,
  REPO_ROOT,
  StackFixture,
  waitFor,
  type ManagedProcess,
} from '@ginkgo-live/testing';

/**
 * The shipped Prometheus configuration (deploy/prometheus) checked by Debian's promtool, and
 * every app's /metrics by `promtool check metrics`: names, types and units as Prometheus wants
 * them, and every metric a rule reads served by some app, so a renamed metric breaks the build.
 */
const DIR = path.join(REPO_ROOT, 'deploy/prometheus');

function promtool(args: string[], input?: string): { code: number | null; out: string } {
  const run = spawnSync('promtool', args, { cwd: DIR, input, encoding: 'utf8' });
  return { code: run.status, out: `${run.stdout}${run.stderr}` };
}

describe('deploy/prometheus', () => {
  it('has rules promtool accepts, and their unit tests pass', () => {
    const rules = promtool(['check', 'rules', 'rules/ginkgo.yml']);
    expect(rules.out).toMatch(/SUCCESS: 17 rules found/);
    expect(rules.code).toBe(0);
    const tests = promtool(['test', 'rules', 'tests/ginkgo.test.yml']);
    expect(tests.out).toContain('SUCCESS');
    expect(tests.code).toBe(0);
  });

  it('has a scrape configuration promtool accepts (with the gateway key file beside it)', () => {
    const copy = mkdtempSync(path.join(tmpdir(), 'ginkgo-prometheus-'));
    try {
      cpSync(DIR, copy, { recursive: true });
      writeFileSync(path.join(copy, 'gateway-metrics-key'), 'metrics-secret-0123456789\n');
      const run = spawnSync('promtool', ['check', 'config', 'prometheus.yml'], {
        cwd: copy,
        encoding: 'utf8',
      });
      expect(`${run.stdout}${run.stderr}`).toMatch(/SUCCESS: 1 rule files found/);
      expect(run.status).toBe(0);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe("every app's /metrics", () => {
  const KEY = 'metrics-secret-0123456789';
  let server: RedisServer;
  let fx: StackFixture;
  const scrapes = new Map<string, string>();

  /** The port an app's metrics server listens on, from its start line. */
  async function metricsUrl(p: ManagedProcess): Promise<string> {
    const line = await p.waitForLine('Metrics listening', 30_000);
    return `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}/metrics`;
  }

  beforeAll(async () => {
    server = await RedisServer.start();
    fx = new StackFixture(server, { startTimeoutMs: 60_000 });
    await fx.addToCatalog('p1');
    await fx.seedBook('p1');
    const [scheduler, node, worker, feed, gateway] = await Promise.all([
      fx.startScheduler('s1'),
      fx.startNode('a'),
      fx.startNotificationWorker(),
      fx.startFeed({ FEED_RATE: '20' }),
      fx.startGateway({ GATEWAY_API_KEYS: `prom:metrics:${KEY}` }),
    ]);
    await waitFor(async () => ((await fx.state('p1'))?.processed_count ?? 0) > 0, {
      timeoutMs: 30_000,
      description: 'p1 processing the feed',
    });
    const urls: [string, string][] = [
      ['scheduler', await metricsUrl(scheduler)],
      ['execution-node', await metricsUrl(node)],
      ['notification-worker', await metricsUrl(worker)],
      ['market-feed', await metricsUrl(feed)],
      ['api-gateway', `${gateway.url}/metrics`],
    ];
    for (const [app, url] of urls) {
      const response = await fetch(url, { headers: { authorization: `Bearer ${KEY}` } });
      expect(response.status, app).toBe(200);
      scrapes.set(app, await response.text());
    }
  }, 120_000);
  afterAll(async () => {
    await fx.close();
    await server.cleanup();
  });

  it('passes promtool check metrics, for every app', () => {
    expect([...scrapes.keys()].sort()).toEqual([
      'api-gateway',
      'execution-node',
      'market-feed',
      'notification-worker',
      'scheduler',
    ]);
    for (const [app, text] of scrapes) {
      const run = promtool(['check', 'metrics'], text);
      expect(run.out, app).toBe('');
      expect(run.code, app).toBe(0);
    }
  });

  it('serves every metric the rules read', () => {
    const rules = readFileSync(path.join(DIR, 'rules/ginkgo.yml'), 'utf8');
    const exprs = [...rules.matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1] ?? '');
    const read = new Set(
      exprs.flatMap((e) => [...e.matchAll(/\b(ginkgo_[a-z0-9_]+)/g)].map((m) => m[1] ?? '')),
    );
    const served = new Set(
      [...scrapes.values()].flatMap((text) =>
        [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name = '', type]) =>
          type === 'histogram' ? [name, `${name}_bucket`, `${name}_sum`, `${name}_count`] : [name],
        ),
      ),
    );
    expect([...read].filter((name) => !served.has(name))).toEqual([]);
    expect(read.size).toBeGreaterThan(10);
  });
});

// promtool itself, once, so a missing binary is one clear failure.
beforeAll(() => {
  expect(() => execFileSync('promtool', ['--version'], { stdio: 'pipe' })).not.toThrow();
});
