import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { ManagedProcess, RedisServer, REPO_ROOT } from '@ginkgo-live/testing';

const NAME = 'redis.ginkgo.test';
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serverAt(host: string, whoami: string, port?: number): Promise<RedisServer> {
  const server = await RedisServer.start({ host, ...(port === undefined ? {} : { port }) });
  cleanups.push(() => server.cleanup());
  const client = new Redis({ host, port: server.port });
  await client.set('whoami', whoami);
  client.disconnect();
  return server;
}

function hostsFile(address: string): string {
  return `127.0.0.1 localhost\n${address} ${NAME}\n`;
}

/**
 * FR-038 in compose: apps reach Redis as `REDIS_HOST=redis`, and when the Redis container comes
 * back on a new address the name must be resolved again. Here the name lives in a hosts file
 * bind-mounted over /etc/hosts inside a private mount namespace of the probe process; two real
 * servers listen on two loopback addresses, and the name moves from the first to the second.
 */
describe('host name re-resolution', () => {
  it('reconnects to the new address after the name moves and the old server dies', async () => {
    const first = await serverAt('127.0.0.2', 'first');
    await serverAt('127.0.0.3', 'second', first.port);

    const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-hosts-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const hosts = path.join(dir, 'hosts');
    writeFileSync(hosts, hostsFile('127.0.0.2'));

    const probe = path.join(REPO_ROOT, 'packages/redis-client/e2e/fixtures/whoami-probe.ts');
    const asRoot = process.getuid?.() === 0;
    const child = ManagedProcess.start({
      name: 'whoami-probe',
      command: 'unshare',
      args: [
        '--mount',
        '--propagation',
        'private',
        ...(asRoot ? [] : ['--map-root-user']),
        'sh',
        '-c',
        'mount --bind "$HOSTS_FILE" /etc/hosts && exec "$NODE" --import tsx "$PROBE"',
      ],
      env: {
        HOSTS_FILE: hosts,
        NODE: process.execPath,
        PROBE: probe,
        REDIS_HOST: NAME,
        REDIS_PORT: String(first.port),
        REDIS_RECONNECT_MAX_DELAY_MS: '200',
      },
    });
    cleanups.push(async () => {
      await child.stop();
    });

    await child.waitForLine('server=first', 15_000);
    // The name moves (written in place: the bind mount follows the file, not its path).
    writeFileSync(hosts, hostsFile('127.0.0.3'));
    await first.kill();
    await child.waitForLine('server=second', 15_000);
    expect(child.exit).toBeUndefined(); // the probe never exited on the way
  });
});
