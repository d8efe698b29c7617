import { mkdtempSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { freePort, ManagedProcess, REPO_ROOT, tsEntry, waitFor } from '@ginkgo-live/testing';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}, 90_000);

const UNSET = { REDIS_HOST: undefined, REDIS_URL: undefined, REDIS_PORT: undefined };

function start(
  name: string,
  file: string,
  env: Record<string, string | undefined>,
  args: string[] = [],
) {
  const entry = tsEntry(name, file, { LOG_FORMAT: 'json', ...UNSET, ...env });
  const child = ManagedProcess.start({ ...entry, args: [...(entry.args ?? []), ...args] });
  // Its apps (turbo's, the stack's) and Redis run in process groups of their own: a SIGKILL would
  // leave them behind, so a test that fails midway stops it as Ctrl-C does.
  cleanups.push(() => child.stop('SIGINT', 30_000));
  return child;
}

describe('pnpm dev (turbo dev in watch mode)', () => {
  it('passes every setting the apps read through turbo to the dev apps', () => {
    const turbo = JSON.parse(readFileSync(path.join(REPO_ROOT, 'turbo.json'), 'utf8')) as {
      tasks: { dev: { passThroughEnv: string[] } };
    };
    const patterns = turbo.tasks.dev.passThroughEnv.map(
      (p) => new RegExp(`^${p.replace(/\*/g, '.*')}$`),
    );
    const example = readFileSync(path.join(REPO_ROOT, 'docker/.env.example'), 'utf8');
    const settings = [...example.matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1] ?? '');
    expect(settings.length).toBeGreaterThan(50);
    expect(settings.filter((v) => !patterns.some((p) => p.test(v)))).toEqual([]);
  });

  it("runs the apps against the stack's Redis, restarts an app when its code changes, and stops cleanly", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-dev-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const stack = start('stack', 'scripts/stack.ts', { GINKGO_STACK_DIR: dir, GATEWAY_PORT: '0' }, [
      '--nodes',
      '0',
    ]);
    const ready = await stack.waitForLine(
      /Redis ready at redis:\/\/[\d.]+:\d+ \(embedded\)/,
      20_000,
    );
    const port = Number(/:(\d+) /.exec(ready)?.[1]);

    const gatewayPort = await freePort();
    const dev = start('dev', 'scripts/dev.ts', {
      GINKGO_STACK_DIR: dir,
      GATEWAY_PORT: String(gatewayPort),
      NODE_ID: 'dev-1',
      METRICS_PORT: '0',
    });
    await dev.waitForLine(`on redis://127.0.0.1:${port} (shared)`, 20_000);

    const redis = new Redis({ port, maxRetriesPerRequest: null });
    cleanups.push(() => redis.disconnect());
    const keys = createStateKeys('');
    await waitFor(async () => (await redis.exists(keys.heartbeat('dev-1'))) === 1, {
      timeoutMs: 30_000,
      description: "the dev node's heartbeat in the stack's Redis",
    });
    const nodes = async () => {
      const response = await fetch(`http://127.0.0.1:${gatewayPort}/api/nodes`);
      const body = (await response.json()) as { nodes?: { node_id: string; is_online: boolean }[] };
      if (body.nodes === undefined) throw new Error(`${response.status} ${JSON.stringify(body)}`);
      return body.nodes;
    };
    await waitFor(async () => (await nodes()).some((n) => n.node_id === 'dev-1' && n.is_online), {
      timeoutMs: 20_000,
      description: 'the dev gateway lists the dev node online',
    });
    // The stack's scheduler leads; the dev scheduler stands by on the same plan.
    await dev.waitForLine('Standing by: another scheduler leads', 20_000);

    // Watch mode: touching the node's entry restarts that app; it drains, then runs again.
    const runs = () => dev.lines.filter((l) => l.includes('Execution node running')).length;
    expect(runs()).toBe(1);
    const entry = path.join(REPO_ROOT, 'apps/execution-node/src/main.ts');
    const now = new Date();
    utimesSync(entry, now, now);
    await waitFor(() => runs() === 2, { timeoutMs: 30_000, description: 'the node restarted' });
    expect(dev.output).not.toContain('held by a live node');
    await waitFor(async () => (await redis.exists(keys.heartbeat('dev-1'))) === 1, {
      timeoutMs: 10_000,
    });

    // Ctrl-C: every dev app stops (the node drains: heartbeat gone); the stack's Redis stays up.
    dev.signal('SIGINT');
    const exit = await dev.waitForExit(40_000);
    expect(exit.code).toBe(0);
    expect(await redis.exists(keys.heartbeat('dev-1'))).toBe(0);
    const names = String(await redis.client('LIST'))
      .split('\n')
      .map((line) => /name=(\S*)/.exec(line)?.[1] ?? '');
    expect(names.filter((n) => n.includes('dev-1') || n.includes('dev-scheduler'))).toEqual([]);
    expect(await redis.ping()).toBe('PONG');
    stack.signal('SIGINT');
    expect((await stack.waitForExit(40_000)).code).toBe(0);
  }, 150_000);
});
