import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodePayload } from '@ginkgo-live/state-keys';
import {
  FAST,
  ManagedProcess,
  RedisServer,
  REPO_ROOT,
  StackFixture,
  waitFor,
} from '@ginkgo-live/testing';

const NAME = 'redis.stack.test';
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * T071.3, the Docker DNS case without Docker: an execution node reaches Redis by a host name (as
 * `REDIS_HOST=redis` in compose). Redis dies; while it is down the name moves to another address,
 * where a second Redis starts on the same data. The node finds it by itself and carries on.
 */
describe('a real node follows the Redis host name to a new address', () => {
  it('reconnects to the Redis behind the moved name, with the data it left', async () => {
    const first = await RedisServer.start({ host: '127.0.0.2', persistence: true });
    cleanups.push(() => first.cleanup());
    const fx = new StackFixture(first);
    cleanups.push(() => fx.close());
    await fx.addToCatalog('p1');
    await fx.assign('n1', ['p1']);

    const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-hosts-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const hosts = path.join(dir, 'hosts');
    writeFileSync(hosts, `127.0.0.1 localhost\n127.0.0.2 ${NAME}\n`);
    const asRoot = process.getuid?.() === 0;
    const node = ManagedProcess.start({
      name: 'node n1',
      command: 'unshare',
      args: [
        '--mount',
        '--propagation',
        'private',
        ...(asRoot ? [] : ['--map-root-user']),
        'sh',
        '-c',
        'mount --bind "$HOSTS_FILE" /etc/hosts && exec "$NODE" --import tsx apps/execution-node/src/main.ts',
      ],
      cwd: REPO_ROOT,
      env: {
        ...FAST,
        HOSTS_FILE: hosts,
        NODE: process.execPath,
        REDIS_HOST: NAME,
        REDIS_PORT: String(first.port),
        REDIS_KEY_PREFIX: fx.keys.prefix,
        NODE_ID: 'n1',
      },
    });
    cleanups.push(() => node.stop('SIGKILL'));
    await node.waitForLine('Execution node running', 20_000);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running', { timeoutMs: 5_000 });

    // The last beat the first Redis saw; the second starts from its data, so only a higher seq proves
    // that the node reached it.
    const heartbeatKey = fx.keys.heartbeat('n1');
    const before = decodePayload(
      'heartbeat',
      heartbeatKey,
      (await fx.redis.get(heartbeatKey)) ?? '',
    );
    const lastSeq = before.ok ? before.value.seq : Number.POSITIVE_INFINITY;
    await first.kill();
    writeFileSync(hosts, `127.0.0.1 localhost\n127.0.0.3 ${NAME}\n`);
    const second = await RedisServer.start({
      host: '127.0.0.3',
      port: first.port,
      dir: first.dir,
      persistence: true,
    });
    cleanups.push(() => second.cleanup());
    const watcher = new StackFixture(second);
    cleanups.push(() => watcher.close());
    await waitFor(
      async () => {
        const raw = await watcher.redis.get(heartbeatKey);
        const beat = raw === null ? null : decodePayload('heartbeat', heartbeatKey, raw);
        return beat?.ok === true && beat.value.seq >= lastSeq + 2;
      },
      { timeoutMs: 10_000, description: 'the node beating on the second Redis' },
    );
    // The data came along: the catalog and the portfolio's book are there, and it still runs.
    expect(await watcher.redis.hexists(fx.keys.portfolioCatalog(), 'p1')).toBe(1);
    await waitFor(async () => {
      const raw = await watcher.redis.get(fx.keys.portfolioState('p1'));
      return raw !== null && (JSON.parse(raw) as { status: string }).status === 'running';
    });
    expect(node.exit).toBeUndefined();
  });
});
