import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import {
  appEntry,
  isProcessRunning,
  ManagedProcess,
  RedisServer,
  tsEntry,
  waitFor,
} from '@ginkgo-live/testing';

const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}, 60_000);

function startStack(
  env: Record<string, string | undefined>,
  args: string[] = ['--nodes', '0'],
  dir = stackDir(),
): ManagedProcess {
  const entry = tsEntry('stack', 'scripts/stack.ts', {
    GINKGO_STACK_DIR: dir,
    LOG_FORMAT: 'json',
    REDIS_HOST: undefined,
    REDIS_URL: undefined,
    REDIS_PORT: undefined,
    ...env,
  });
  const stack = ManagedProcess.start({ ...entry, args: [...(entry.args ?? []), ...args] });
  // Its apps and Redis run in process groups of their own: a SIGKILL of the stack would leave them
  // behind, so a test that fails midway stops it as Ctrl-C does (SIGKILL only after 20 s).
  cleanups.push(() => stack.stop('SIGINT', 20_000));
  return stack;
}

function stackDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-stack-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A real listener holding `port` (0: a free one) until the test ends; resolves with its port. */
async function holdPort(port = 0): Promise<number> {
  const holder = net.createServer();
  await new Promise<void>((resolve, reject) => {
    holder.once('error', reject);
    holder.listen(port, resolve);
  });
  cleanups.push(() => new Promise((resolve) => holder.close(resolve)));
  return (holder.address() as net.AddressInfo).port;
}

/** The lines the stack itself wrote on stderr (`stack: ...`), not its apps' or its log's. */
function stackLines(stack: ManagedProcess): string[] {
  return stack.lines.filter((line) => line.startsWith('stack: '));
}

// Starting a stack takes 5 to 20 s (tsx loads each app; slower on a loaded machine) and the first
// placement waits the scheduler's settle window (10 s): the tests that wait for trading get 90 s.
describe('the local stack (npm start)', () => {
  it('refuses a bad variable before connecting: exit 2, naming it', async () => {
    const stack = startStack({ REDIS_PORT: 'abc', REDIS_COMMAND_TIMEOUT_MS: '-1' });
    const exit = await stack.waitForExit(20_000);
    expect(exit.code).toBe(2);
    expect(stack.output).toContain('REDIS_PORT: must be an integer, got "abc"');
    expect(stack.output).toContain('REDIS_COMMAND_TIMEOUT_MS: must be at least 1, got -1');
    expect(stack.output).not.toContain('Embedded Redis started');
  });

  it('starts an embedded Redis, answers on it, and leaves nothing behind on Ctrl-C', async () => {
    const stack = startStack({});
    const line = await stack.waitForLine(
      /Redis ready at redis:\/\/127\.0\.0\.1:\d+ \(embedded\)/,
      20_000,
    );
    const port = Number(/:(\d+) /.exec(line)?.[1]);
    const started = stack.lines.find((l) => l.includes('Embedded Redis started'));
    const redisPid = (JSON.parse(started ?? '{}') as { pid?: number }).pid;
    expect(redisPid).toBeTypeOf('number');

    const client = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      retryStrategy: () => null,
    });
    client.on('error', () => {
      // Expected once the stack has stopped Redis; the assertions below check that.
    });
    await client.connect();
    await expect(client.ping()).resolves.toBe('PONG');
    const names = String(await client.client('LIST'));
    expect(names).toMatch(/name=ginkgo:stack:\d+:main/);
    client.disconnect();

    const exit = await stack.stop('SIGINT', 15_000);
    expect(exit.code).toBe(0);
    expect(stack.output).toContain('Stack stopped');
    await waitFor(() => !isProcessRunning(redisPid ?? -1), { description: 'redis-server to exit' });
  });

  it('starts the scheduler, nodes, notification worker and feed; portfolios trade; Ctrl-C drains', async () => {
    const stack = startStack({ LOG_FORMAT: 'json', GATEWAY_PORT: '0' }, ['--nodes', '2']);
    await stack.waitForLine('ginkgo-live stack is up.', 45_000);
    await stack.waitForLine(/^\[node-1\] .*Execution node running/, 20_000);
    await stack.waitForLine(/^\[node-2\] .*Execution node running/, 20_000);
    await stack.waitForLine(/^\[market-feed\] .*Market feed running/, 20_000);
    await stack.waitForLine(/^\[notification-worker\] .*Notification worker running/, 20_000);
    await stack.waitForLine(/^\[scheduler\] .*Recovered: plan loaded and first tick done/, 20_000);
    // The sample catalog's 8 portfolios spread over the 2 nodes (capacity 5 each) and consume ticks:
    // on this fresh Redis they have no book, so they start after the fresh-start window (a lease
    // TTL and two beats: 25 s with the stack's default timings) from the nodes' first try.
    await stack.waitForLine(/^\[node-1\] .*Portfolio loaded/, 45_000);
    await stack.waitForLine(/^\[node-2\] .*Portfolio loaded/, 20_000);
    // The gateway answers with both nodes online.
    const listening = await stack.waitForLine(/^\[api-gateway\] .*Gateway listening/, 20_000);
    const port = (JSON.parse(listening.replace(/^\[api-gateway\] /, '')) as { port: number }).port;
    await waitFor(
      async () => {
        const body = (await (await fetch(`http://127.0.0.1:${port}/api/nodes`)).json()) as {
          online_count: number;
        };
        return body.online_count === 2;
      },
      { timeoutMs: 10_000, description: 'the gateway to show both nodes online' },
    );
    const exit = await stack.stop('SIGINT', 30_000);
    expect(exit.code).toBe(0);
    expect(stack.output).toContain('start after a fresh-start window');
    for (const node of ['node-1', 'node-2']) {
      const stopped = stack.lines.find(
        (line) => line.startsWith(`[${node}] `) && line.includes('Execution node stopped'),
      );
      expect(stopped).toContain('"clean":true');
    }
  }, 150_000);

  it('runs the number of nodes and portfolios asked for, drawn from the catalog', async () => {
    const stack = startStack({ GATEWAY_PORT: '0' }, ['--nodes', '3', '--portfolios', '12']);
    await stack.waitForLine('12 portfolios drawn from config/sample-catalog.json', 45_000);
    const listening = await stack.waitForLine(/^\[api-gateway\] .*Gateway listening/, 20_000);
    const port = (JSON.parse(listening.replace(/^\[api-gateway\] /, '')) as { port: number }).port;
    const portfolios = async () =>
      (
        (await (await fetch(`http://127.0.0.1:${port}/api/portfolios`)).json()) as {
          portfolios?: { portfolio_id: string; status: string; node_id: string | null }[];
        }
      ).portfolios ?? [];
    await waitFor(
      async () => {
        const all = await portfolios();
        return all.length === 12 && all.every((p) => p.status === 'running');
      },
      { timeoutMs: 75_000, description: '12 portfolios running' },
    );
    const all = await portfolios();
    expect(new Set(all.map((p) => p.portfolio_id)).size).toBe(12);
    expect(all.map((p) => p.portfolio_id)).toContain('btc-fast-2');
    expect(new Set(all.map((p) => p.node_id))).toEqual(new Set(['node-1', 'node-2', 'node-3']));
    expect((await stack.stop('SIGINT', 30_000)).code).toBe(0);
  }, 150_000);

  it("on an earlier run's data, says the catalog in Redis is kept instead of claiming the file's", async () => {
    const dir = stackDir();
    const first = startStack({ GATEWAY_PORT: '0' }, ['--nodes', '0'], dir);
    await first.waitForLine(/^\[scheduler\] .*Plan written/, 45_000);
    expect((await first.stop('SIGINT', 30_000)).code).toBe(0);
    expect(first.lines.some((l) => l.includes('earlier run'))).toBe(false);

    const second = startStack({ GATEWAY_PORT: '0' }, ['--nodes', '0', '--portfolios', '3'], dir);
    await second.waitForLine(
      "The catalog in Redis is an earlier run's (8 portfolios, the file has 3)",
      45_000,
    );
    await second.waitForLine(`stop and delete ${dir} to start over`, 5_000);
    expect((await second.stop('SIGINT', 30_000)).code).toBe(0);
  }, 120_000);

  it('refuses an unknown argument with exit 2', async () => {
    const stack = startStack({}, ['--frobnicate']);
    expect((await stack.waitForExit(20_000)).code).toBe(2);
    expect(stack.output).toContain('unknown argument --frobnicate');
  });

  it('uses the Redis that REDIS_HOST names instead of starting one', async () => {
    const server = await RedisServer.start();
    cleanups.push(() => server.cleanup());
    const stack = startStack({ REDIS_HOST: server.host, REDIS_PORT: String(server.port) });
    await stack.waitForLine(`Redis ready at ${server.url} (configured)`, 20_000);
    expect(stack.output).not.toContain('Embedded Redis started');
    const exit = await stack.stop('SIGTERM', 15_000);
    expect(exit, stack.output).toEqual({ code: 0, signal: null });
    expect(server.isRunning).toBe(true); // not ours to stop
  });

  it('GATEWAY_PORT set to a port in use: one line naming it, exit 2, nothing started', async () => {
    const port = await holdPort();
    const stack = startStack({ GATEWAY_PORT: String(port) });
    expect((await stack.waitForExit(20_000)).code).toBe(2);
    expect(stackLines(stack)).toEqual([
      `stack: GATEWAY_PORT=${port} is in use; set GATEWAY_PORT to a free port (0 picks one)`,
    ]);
    expect(stack.output).not.toContain('stack is up');
    expect(stack.output).not.toContain('Embedded Redis started');
    expect(stack.output).not.toMatch(/\n\s+at /);
  });

  it('GATEWAY_PORT unset and 8000 taken: the gateway gets the next free port, printed', async () => {
    // Held here, or already held by something else: either way 8000 is taken.
    await holdPort(8_000).catch(() => undefined);
    const stack = startStack({ GATEWAY_PORT: undefined });
    await stack.waitForLine('ginkgo-live stack is up.', 45_000);
    const moved = await stack.waitForLine(/port 8000 is taken: the gateway listens on \d+/);
    const port = Number(/listens on (\d+)/.exec(moved)?.[1]);
    expect(port).toBeGreaterThan(8_000);
    expect(stack.output).toContain(`Operations page: http://localhost:${port}/`);
    const health = await fetch(`http://127.0.0.1:${port}/api/health`);
    expect(health.status).toBe(200);
    expect((await stack.stop('SIGINT', 30_000)).code).toBe(0);
  }, 90_000);

  it('an app that dies while starting: the stack stops everything with its line, never says it is up', async () => {
    // 192.0.2.1 (RFC 5737) is never an address of this machine: the gateway cannot listen.
    // (GATEWAY_AUTH=off: without it a keyless gateway refuses any non-loopback host earlier.)
    const stack = startStack({ GATEWAY_PORT: '0', GATEWAY_HOST: '192.0.2.1', GATEWAY_AUTH: 'off' });
    const exit = await stack.waitForExit(30_000);
    expect(exit.code).toBe(2);
    expect(stackLines(stack)).toEqual([
      'stack: api-gateway: GATEWAY_HOST=192.0.2.1 is not an address of this machine; set GATEWAY_HOST to one (0.0.0.0: every interface)',
    ]);
    expect(stack.output).not.toContain('stack is up');
    expect(stack.output).toContain('Stack stopped');
    const started = stack.lines.find((l) => l.includes('Embedded Redis started'));
    const redisPid = (JSON.parse(started ?? '{}') as { pid?: number }).pid;
    expect(redisPid).toBeTypeOf('number');
    expect(isProcessRunning(redisPid ?? -1)).toBe(false);
  });

  it('redis-server not on PATH: one line saying what to install or set, exit 2', async () => {
    const emptyBin = mkdtempSync(path.join(tmpdir(), 'ginkgo-empty-path-'));
    cleanups.push(() => rmSync(emptyBin, { recursive: true, force: true }));
    const stack = startStack({ PATH: emptyBin });
    expect((await stack.waitForExit(20_000)).code).toBe(2);
    expect(stackLines(stack)).toEqual([
      'stack: redis-server is not installed (not found on PATH); install it (apt-get install redis-server) or set REDIS_URL to a running Redis',
    ]);
    expect(stack.output).not.toContain('stack is up');
  });

  it('a data folder it cannot write: one line naming GINKGO_STACK_DIR, exit 2', async () => {
    // A read-only folder stops every user but root; sysfs's top folder stops root too.
    let dir = '/sys';
    if (process.getuid?.() !== 0) {
      dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-readonly-'));
      chmodSync(dir, 0o555);
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    }
    const stack = startStack({ GINKGO_STACK_DIR: dir });
    expect((await stack.waitForExit(20_000)).code).toBe(2);
    expect(stackLines(stack)).toHaveLength(1);
    expect(stackLines(stack)[0]).toMatch(
      new RegExp(
        `^stack: GINKGO_STACK_DIR: cannot write in ${dir}/redis \\((EACCES|EPERM)\\); set GINKGO_STACK_DIR to a folder this user can write$`,
      ),
    );
    expect(stack.output).not.toContain('stack is up');
  });
});

describe('an app on a port in use', () => {
  it.each([
    ['api-gateway', 'GATEWAY_PORT'],
    ['execution-node', 'METRICS_PORT'],
    ['notification-worker', 'METRICS_PORT'],
  ])('%s: one line naming %s, exit 2, no stack trace', async (app, setting) => {
    const port = await holdPort();
    const child = ManagedProcess.start(
      appEntry(app, app, {
        LOG_FORMAT: 'json',
        [setting]: String(port),
        // Nothing listens there: the app fails on its port before it needs Redis.
        REDIS_HOST: '127.0.0.1',
        REDIS_PORT: '1',
        REDIS_URL: undefined,
      }),
    );
    cleanups.push(() => child.stop('SIGKILL'));
    expect((await child.waitForExit(20_000)).code).toBe(2);
    expect(child.lines.filter((l) => !l.startsWith('{'))).toEqual([
      `${app}: ${setting}=${port} is in use; set ${setting} to a free port (0 picks one)`,
    ]);
  });
});
