import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import { MemoryTransport, SentinelGroup, waitFor } from '@ginkgo-live/testing';
import { loadRedisConfig, RedisConnections } from './index.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('RedisConnections through Redis Sentinel (real master, replica and three sentinels)', () => {
  it('follows a failover by itself: the master killed, the replica promoted, the same clients carry on', async ({
    annotate,
  }) => {
    const group = await SentinelGroup.start();
    cleanups.push(() => group.cleanup());
    for (const sentinel of group.sentinels) {
      // Debian's redis-sentinel, not redis-server in sentinel mode.
      const info = await group.ask(sentinel, 'INFO', 'server');
      expect(info).toMatch(/^redis_mode:sentinel\r?$/m);
      expect(info).toMatch(/^executable:\S*redis-sentinel\r?$/m);
    }
    const logs = new MemoryTransport();
    const conns = new RedisConnections({
      config: unwrapConfig(
        loadRedisConfig({
          ...group.env,
          REDIS_COMMAND_TIMEOUT_MS: '500',
          REDIS_RECONNECT_MAX_DELAY_MS: '200',
        }),
      ),
      app: 'sentinel-test',
      instanceId: 'i',
      logger: createLogger({ app: 't', level: 'debug', transports: [logs] }),
    });
    cleanups.push(() => conns.close(300));
    expect(await conns.waitUntilReady(5_000)).toBe(true);
    const main = conns.main;
    const blocking = conns.connection('worker', 'blocking');
    await main.set('written-before', 'yes');
    await blocking.rpush('jobs', 'a');
    expect((await group.currentMaster()).port).toBe(group.master.port);
    await waitFor(async () => (await group.ask(group.replica, 'GET', 'written-before')) === 'yes', {
      description: 'the write replicated',
    });

    await group.master.kill();
    const killedAt = Date.now();
    await waitFor(async () => (await group.currentMaster()).port === group.replica.port, {
      timeoutMs: 20_000,
      intervalMs: 100,
      description: 'the sentinels to promote the replica',
    });
    const promotedMs = Date.now() - killedAt;
    // The same request client writes to the new master once it has found it.
    await waitFor(
      async () => {
        try {
          await main.set('written-after', 'yes');
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 15_000, intervalMs: 100, description: 'a write through the same client' },
    );
    const writableMs = Date.now() - killedAt;
    // The blocking (BullMQ) connection waited through it and goes on too.
    await blocking.rpush('jobs', 'b');
    expect(await group.ask(group.replica, 'GET', 'written-after')).toBe('yes');
    expect(await group.ask(group.replica, 'GET', 'written-before')).toBe('yes');
    expect(await group.ask(group.replica, 'LLEN', 'jobs')).toBe('2');
    expect(main.status).toBe('ready');
    await annotate(
      `master SIGKILLed: replica promoted after ${promotedMs} ms (down-after 1 s), same client writing after ${writableMs} ms`,
    );
  }, 60_000);
});
