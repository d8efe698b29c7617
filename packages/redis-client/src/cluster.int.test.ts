import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import { MemoryTransport, RedisCluster, waitFor } from '@ginkgo-live/testing';
import { connectionForKey, loadRedisConfig, mgetBySlot, RedisConnections } from './index.ts';

/**
 * `REDIS_CLUSTER_NODES` on a real cluster of 3 masters with a replica each: what the apps get
 * from `RedisConnections` reaches every shard, and follows a master's SIGKILL by itself.
 */
let cluster: RedisCluster;
let conns: RedisConnections;
const logs = new MemoryTransport();

beforeAll(async () => {
  cluster = await RedisCluster.start({ replicas: 1 });
  const logger = createLogger({ app: 'test-app', level: 'debug', transports: [logs] });
  const config = unwrapConfig(
    loadRedisConfig({
      ...cluster.env,
      REDIS_COMMAND_TIMEOUT_MS: '500',
      REDIS_RECONNECT_MAX_DELAY_MS: '200',
    }),
  );
  conns = new RedisConnections({ config, app: 'test-app', instanceId: 'node-1', logger });
}, 60_000);
afterAll(async () => {
  await conns.close(500);
  await cluster.cleanup();
});

const KEYS = Array.from({ length: 30 }, (_, i) => `portfolio:{p-${i}}:state`);

describe('RedisConnections with REDIS_CLUSTER_NODES', () => {
  it('gives cluster clients that reach every shard, named in CLIENT LIST on each master', async () => {
    expect(conns.isCluster).toBe(true);
    expect(await conns.waitUntilReady(10_000)).toBe(true);
    const main = conns.main;
    expect(main).toBeInstanceOf(Cluster);
    for (const [i, key] of KEYS.entries()) await main.set(key, String(i));
    expect(await mgetBySlot(main, KEYS)).toEqual(KEYS.map((_, i) => String(i)));
    const holders = new Set<number>();
    for (const key of KEYS) holders.add((await cluster.masterOf(key)).port);
    expect(holders.size).toBe(3);
    for (const master of cluster.masters) {
      const list = await master.command('CLIENT', 'LIST');
      expect(list).toContain('name=ginkgo:test-app:node-1:main');
    }
    expect(await conns.ping()).toMatchObject({ ok: true });
    expect(logs.entries.find((e) => e.message === 'Redis connection ready')).toMatchObject({
      settings: { cluster: 'on', commandTimeoutMs: 500, offlineQueue: false },
    });
  });

  it('duplicates a blocking connection with a client name of its own, as the node does', async () => {
    const blocking = conns.connection('workers', 'blocking');
    const own = blocking.duplicate({ connectionName: 'ginkgo:test-app:node-1:queue:p-1' });
    try {
      expect(own).toBeInstanceOf(Cluster);
      const waiting = own.bzpopmin('bull:portfolio-{p-1}:marker', 5);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await conns.main.zadd('bull:portfolio-{p-1}:marker', 0, 'm');
      expect(await waiting).toEqual(['bull:portfolio-{p-1}:marker', 'm', '0']);
      const master = await cluster.masterOf('bull:portfolio-{p-1}:marker');
      expect(await master.command('CLIENT', 'LIST')).toContain(
        'name=ginkgo:test-app:node-1:queue:p-1',
      );
    } finally {
      own.disconnect();
    }
  });

  it('finds the connection of a key’s master, where WAIT counts the replicas of a write', async () => {
    const key = 'portfolio:{scheduler}:halt';
    await conns.main.set(key, 'halted');
    const master = connectionForKey(conns.main, key);
    expect(master?.options.port).toBe((await cluster.masterOf(key)).port);
    expect(await master?.info('replication')).toMatch(/connected_slaves:1/);
    expect(await master?.wait(1, 2_000)).toBe(1);
  });

  it('delivers sharded pub/sub from the master of the channel’s slot', async () => {
    const subscriber = conns.connection('push', 'request');
    await waitFor(() => subscriber.status === 'ready', { description: 'the push connection' });
    const heard: string[] = [];
    subscriber.on('smessage', (channel: string, message: string) =>
      heard.push(`${channel} ${message}`),
    );
    await subscriber.ssubscribe('orders:{scheduler}:n1');
    await conns.main.spublish('orders:{scheduler}:n1', 'v1');
    await waitFor(() => heard.length === 1, { description: 'the message' });
    expect(heard).toEqual(['orders:{scheduler}:n1 v1']);
  });

  it('follows a master’s SIGKILL: health names the lost master, then the promoted replica serves its slots', async () => {
    // The shard of the push channel, to show the subscription follows its master too.
    const key = 'portfolio:{scheduler}:x';
    const master = await cluster.masterOf(key);
    const replica = await cluster.replicaOf(master);
    await cluster.kill(master);
    const ping = await conns.ping();
    expect(ping).toMatchObject({ ok: false });
    expect(ping.ok ? '' : ping.reason).toContain(`master ${master.host}:${master.port}`);
    await cluster.waitForPromotion(replica);
    // No restart, no new client: the same connection writes to the promoted replica.
    await waitFor(
      async () => {
        try {
          await conns.main.set(key, 'after');
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 10_000, description: 'a write to the killed master’s slot succeeding' },
    );
    expect(await replica.command('GET', key)).toBe('after');
    await waitFor(async () => (await conns.ping()).ok, {
      timeoutMs: 10_000,
      description: 'health ok again',
    });
    expect(await mgetBySlot(conns.main, KEYS)).toHaveLength(KEYS.length);
    expect(
      logs.entries.filter((e) => e.level === 'warn' && e.message === 'Redis cluster node error'),
    ).toContainEqual(expect.objectContaining({ address: `${master.host}:${master.port}` }));
    // The push subscriber of the previous test is subscribed again by itself, on whichever master
    // serves its slot now.
    const subscriber = conns.connection('push', 'request');
    const heard: string[] = [];
    subscriber.on('smessage', (_: string, message: string) => heard.push(message));
    await waitFor(
      async () => {
        await conns.main.spublish('orders:{scheduler}:n1', 'again');
        return heard.includes('again');
      },
      { timeoutMs: 10_000, intervalMs: 250, description: 'a message after the failover' },
    );
    expect(conns.statuses().every((s) => s.state === 'ready')).toBe(true);
  }, 40_000);
});
