import { afterEach, describe, expect, it } from 'vitest';
import { aclFile } from '@ginkgo-live/redis-client';
import {
  SentinelGroup,
  StackFixture,
  TestUsers,
  TlsCertificates,
  logEntries,
  waitFor,
  type ManagedProcess,
} from '@ginkgo-live/testing';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}, 30_000);

const USERS = new TestUsers([
  'livecore-scheduler',
  'api-gateway',
  'market-feed',
  'notification-worker',
  'ginkgo-ctl',
  'execution-node.node-1',
  'execution-node.node-2',
  'admin',
  'replica',
  'sentinel',
]);
const as = (user: string) => USERS.env(user);

describe('the fleet over TLS only, through TLS Sentinels, each app under its ACL user', () => {
  it('runs, every app says TLS is on and verified against the CA, and carries on through a failover', async () => {
    const certs = TlsCertificates.make();
    cleanups.push(() => certs.cleanup());
    const prefix = StackFixture.newPrefix();
    const group = await SentinelGroup.start({
      tls: certs,
      acl: {
        file: aclFile({ nodes: ['node-1', 'node-2'], passwords: USERS.passwords, prefix }),
        admin: USERS.user('admin'),
        replica: USERS.user('replica'),
        sentinel: USERS.user('sentinel'),
      },
    });
    cleanups.push(() => group.cleanup());
    const fx = new StackFixture(group.master, { sentinel: group, prefix });
    cleanups.push(() => fx.close());
    const portfolios = ['p1', 'p2'];
    for (const id of portfolios) await fx.addToCatalog(id);

    const apps: ManagedProcess[] = await Promise.all([
      fx.startScheduler('s1', as('livecore-scheduler')),
      fx.startNode('node-1', as('execution-node.node-1')),
      fx.startFeed({ ...as('market-feed'), FEED_RATE: '20' }),
      fx.startGateway(as('api-gateway')).then((g) => g.process),
    ]);
    const processed = async (): Promise<number[]> =>
      Promise.all(portfolios.map(async (id) => (await fx.state(id))?.processed_count ?? 0));
    await waitFor(async () => (await processed()).every((n) => n > 0), {
      timeoutMs: 15_000,
      description: 'both portfolios applying events',
    });

    for (const app of apps) {
      const config = logEntries(app, 'Configuration')[0]?.['config'] as
        { redis: { tls: string; sentinel: { tls: string } } } | undefined;
      expect(config?.redis.tls, app.name).toBe(`on, verify: ca ${certs.caFile}`);
      expect(config?.redis.sentinel.tls, app.name).toBe(`on, verify: ca ${certs.caFile}`);
    }

    expect(await group.master.aclLog()).toEqual([]);

    // The master dies: the sentinels promote the replica (TLS port, same users), the apps follow.
    const before = await processed();
    await group.master.kill();
    await waitFor(async () => (await processed()).every((n, i) => n > (before[i] ?? 0) + 20), {
      timeoutMs: 25_000,
      description: 'events applied again after the failover',
    });
    expect((await group.currentMaster()).port).toBe(group.replica.port);

    expect(await group.replica.aclLog()).toEqual([]);
    for (const app of apps) expect(app.output, app.name).not.toContain('NOPERM');
  }, 60_000);
});
