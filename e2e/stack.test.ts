import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import {
  isProcessRunning,
  ManagedProcess,
  RedisServer,
  tsEntry,
  waitFor,
} from '@ginkgo-live/testing';

const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function startStack(
  env: Record<string, string>,
  args: string[] = ['--nodes', '0'],
): ManagedProcess {
  const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-stack-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const entry = tsEntry('stack', 'scripts/stack.ts', {
    GINKGO_STACK_DIR: dir,
    LOG_FORMAT: 'json',
    REDIS_HOST: undefined,
    REDIS_URL: undefined,
    REDIS_PORT: undefined,
    ...env,
  });
  const stack = ManagedProcess.start({ ...entry, args: [...(entry.args ?? []), ...args] });
  cleanups.push(() => stack.stop('SIGKILL'));
  return stack;
}

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
    await stack.waitForLine('ginkgo-live stack is up.', 20_000);
    await stack.waitForLine(/^\[node-1\] .*Execution node running/, 20_000);
    await stack.waitForLine(/^\[node-2\] .*Execution node running/, 20_000);
    await stack.waitForLine(/^\[market-feed\] .*Market feed running/, 20_000);
    await stack.waitForLine(/^\[notification-worker\] .*Notification worker running/, 20_000);
    await stack.waitForLine(/^\[scheduler\] .*Recovered: plan loaded and first tick done/, 20_000);
    // The sample catalog's 8 portfolios spread over the 2 nodes (capacity 5 each) and consume ticks.
    await stack.waitForLine(/^\[node-1\] .*Portfolio loaded/, 20_000);
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
    for (const node of ['node-1', 'node-2']) {
      const stopped = stack.lines.find(
        (line) => line.startsWith(`[${node}] `) && line.includes('Execution node stopped'),
      );
      expect(stopped).toContain('"clean":true');
    }
  });

  it('runs the number of nodes and portfolios asked for, drawn from the catalog', async () => {
    const stack = startStack({ GATEWAY_PORT: '0' }, ['--nodes', '3', '--portfolios', '12']);
    await stack.waitForLine('12 portfolios drawn from config/sample-catalog.json', 20_000);
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
      { timeoutMs: 30_000, description: '12 portfolios running' },
    );
    const all = await portfolios();
    expect(new Set(all.map((p) => p.portfolio_id)).size).toBe(12);
    expect(all.map((p) => p.portfolio_id)).toContain('btc-fast-2');
    expect(new Set(all.map((p) => p.node_id))).toEqual(new Set(['node-1', 'node-2', 'node-3']));
    expect((await stack.stop('SIGINT', 30_000)).code).toBe(0);
  });

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
});
