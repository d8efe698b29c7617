import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { aclFile, aclUsers } from '@ginkgo-live/redis-client';
import {
  ManagedProcess,
  RedisServer,
  REPO_ROOT,
  StackFixture,
  TestUsers,
  tsEntry,
  waitFor,
  type ManagedProcess as Process,
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
]);
const as = (user: string) => USERS.env(user);

describe('the fleet on an ACL-enabled Redis, each app under its own user', () => {
  it('runs: nodes online, portfolios applying events, /api/nodes, a notification delivered, ginkgo-ctl answered — no NOPERM anywhere', async () => {
    const prefix = StackFixture.newPrefix();
    const server = await RedisServer.start({
      aclFile: aclFile({ nodes: ['node-1', 'node-2'], passwords: USERS.passwords, prefix }),
      auth: USERS.user('admin'),
    });
    cleanups.push(() => server.cleanup());
    // The default user is off: a client without a user cannot even ping.
    const anonymous = new Redis({ host: server.host, port: server.port, lazyConnect: true });
    anonymous.on('error', () => {
      // Asserted below.
    });
    await anonymous.connect().catch(() => undefined);
    await expect(anonymous.ping()).rejects.toThrow(/NOAUTH|NOPERM/);
    anonymous.disconnect();

    const fx = new StackFixture(server, { prefix });
    cleanups.push(() => fx.close());
    const portfolios = ['p1', 'p2', 'p3', 'p4'];
    for (const id of portfolios) await fx.addToCatalog(id);

    const [, , node2, gateway] = await Promise.all([
      fx.startScheduler('s1', as('livecore-scheduler')),
      fx.startNode('node-1', as('execution-node.node-1')),
      fx.startNode('node-2', as('execution-node.node-2')),
      fx.startGateway(as('api-gateway')),
      fx.startNotificationWorker(as('notification-worker')),
      fx.startFeed({ ...as('market-feed'), FEED_RATE: '20' }),
    ]);

    // Every portfolio runs and applies the feed's events.
    await waitFor(
      async () => {
        for (const id of portfolios) {
          const state = await fx.state(id);
          if (state?.status !== 'running' || state.processed_count === 0) return false;
        }
        return true;
      },
      { timeoutMs: 15_000, description: 'every portfolio running with events applied' },
    );
    await waitFor(
      async () => {
        const answer = await fetch(`${gateway.url}/api/nodes`);
        return ((await answer.json()) as { online_count?: number }).online_count === 2;
      },
      { timeoutMs: 5_000, description: '/api/nodes: both nodes online' },
    );

    // node-2 dies: the scheduler notices, a notification is delivered, node-1 takes its
    // portfolios back from their leases.
    await node2.stop('SIGKILL');
    await waitFor(
      async () =>
        (await fx.redis.lrange(fx.keys.notificationHistory(), 0, -1)).some((raw) =>
          /"kind":"node_lost".*"status":"delivered"/.test(raw),
        ),
      { timeoutMs: 10_000, description: 'node_lost delivered' },
    );
    await waitFor(
      async () => {
        for (const id of portfolios) {
          const state = await fx.state(id);
          if (state?.status !== 'running' || state.node_id !== 'node-1') return false;
        }
        return true;
      },
      { timeoutMs: 10_000, description: 'every portfolio running on node-1' },
    );

    // ginkgo-ctl, as its own user: a request the scheduler answers, a pause and a resume it writes.
    const ctl = async (...args: string[]): Promise<Process> => {
      const entry = tsEntry('ginkgo-ctl', 'apps/livecore-scheduler/src/ctl.ts', {
        ...server.env,
        ...as('ginkgo-ctl'),
        REDIS_KEY_PREFIX: prefix,
        LOG_FORMAT: 'json',
      });
      const run = ManagedProcess.start({ ...entry, args: [...(entry.args ?? []), ...args] });
      cleanups.push(() => run.stop('SIGKILL'));
      const exit = await run.waitForExit(15_000);
      expect(exit.code, `${args.join(' ')}: ${run.output}`).toBe(0);
      return run;
    };
    const [migrate, pause] = await Promise.all([
      ctl('migrate', 'p1', 'node-1'),
      ctl('pause', 'p2', 'acl test'),
    ]);
    expect(migrate.output).toContain('accepted (migrate)');
    const runs = [migrate, pause, await ctl('resume', 'p2')];

    // The gateway, as its user, queues a control request and its audit entry.
    const undrain = await fetch(`${gateway.url}/api/nodes/node-1/undrain`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(undrain.status, await undrain.text()).toBe(202);

    // Redis's own record of what it refused, then every app's log.
    expect(await server.aclLog()).toEqual([]);
    const processes: Process[] = [...fx.processes, ...runs];
    for (const process of processes) expect(process.output, process.name).not.toContain('NOPERM');
  }, 60_000);
});

describe("compose's Redis: pnpm redis-acl writes what docker/compose.yaml mounts", () => {
  const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker/compose.yaml'), 'utf8'), {
    merge: true,
  }) as {
    services: Record<
      string,
      { environment?: Record<string, string>; secrets?: { source: string }[]; command?: string[] }
    >;
    secrets: Record<string, { file: string }>;
  };

  it('every app logs in as its own user with its own secret; a replica syncs as replica; healthcheck may only PING', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-redis-acl-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const script = ManagedProcess.start({
      ...tsEntry('redis-acl', 'scripts/redis-acl.ts'),
      args: ['--import', 'tsx', 'scripts/redis-acl.ts', '--dir', dir],
    });
    expect((await script.waitForExit(20_000)).code, script.output).toBe(0);
    expect(script.output).toMatch(/^redis-acl: wrote .*users\.acl/m);
    expect(statSync(path.join(dir, 'secrets')).mode & 0o777).toBe(0o700);
    const secretOf = (user: string) =>
      readFileSync(path.join(dir, 'secrets', user), 'utf8').trimEnd();

    // A second run keeps the passwords (a running Redis and its apps go on agreeing).
    const before = secretOf('api-gateway');
    const again = ManagedProcess.start({
      ...tsEntry('redis-acl', 'scripts/redis-acl.ts'),
      args: ['--import', 'tsx', 'scripts/redis-acl.ts', '--dir', dir],
    });
    expect((await again.waitForExit(20_000)).code).toBe(0);
    expect(secretOf('api-gateway')).toBe(before);
    expect(readFileSync(path.join(dir, 'users.acl'), 'utf8')).not.toContain(before);

    // The servers run as compose runs them: replication.conf first, then --aclfile.
    for (const service of ['redis', 'redis-replica']) {
      expect(compose.services[service]?.command?.slice(0, 4)).toEqual([
        'redis-server',
        '/etc/redis/replication.conf',
        '--aclfile',
        '/etc/redis/users.acl',
      ]);
    }
    const files = {
      configFile: path.join(dir, 'replication.conf'),
      auth: { username: 'admin', password: secretOf('admin') },
    };
    const master = await RedisServer.start({
      ...files,
      args: ['--aclfile', path.join(dir, 'users.acl')],
    });
    cleanups.push(() => master.cleanup());
    const replica = await RedisServer.start({
      ...files,
      args: [
        '--aclfile',
        path.join(dir, 'users.acl'),
        '--replicaof',
        master.host,
        String(master.port),
      ],
    });
    cleanups.push(() => replica.cleanup());
    await waitFor(
      async () => /master_link_status:up/.test(await replica.command('INFO', 'replication')),
      {
        timeoutMs: 10_000,
        description: 'the replica synced as the replica user',
      },
    );

    const login = async (username: string, password: string, ...command: [string, ...string[]]) => {
      const client = new Redis({
        host: master.host,
        port: master.port,
        username,
        password,
        lazyConnect: true,
        retryStrategy: () => null,
      });
      const errors: string[] = [];
      client.on('error', (err: Error) => errors.push(err.message));
      try {
        await client.connect();
        return await client.call(...command);
      } catch (err) {
        // A refused login surfaces on the 'error' event; the rejection only says it closed.
        throw new Error([(err as Error).message, ...errors].join('; '), { cause: err });
      } finally {
        client.disconnect();
      }
    };
    const known = aclUsers({ nodes: ['*'], passwords: {} }).map((u) => u.name);
    const apps = Object.entries(compose.services).filter(
      ([, s]) => s.environment?.['REDIS_USERNAME'] !== undefined,
    );
    expect(apps.map(([name]) => name).sort()).toEqual([
      'api-gateway',
      'execution-node',
      'livecore-scheduler',
      'notification-worker',
    ]);
    for (const [name, service] of apps) {
      const user = service.environment?.['REDIS_USERNAME'] ?? '';
      expect(known, name).toContain(user);
      expect(service.environment?.['REDIS_PASSWORD_FILE']).toBe('/run/secrets/redis-password');
      const source = service.secrets?.[0]?.source ?? '';
      expect(compose.secrets[source]?.file, name).toBe(`./redis/secrets/${user}`);
      await expect(login(user, secretOf(user), 'PING'), name).resolves.toBe('PONG');
      // Another app's password does not open this user.
      await expect(login(user, secretOf('ginkgo-ctl'), 'PING')).rejects.toThrow(/WRONGPASS/);
    }
    expect(compose.secrets['redis-sentinel']?.file).toBe('./redis/secrets/sentinel');
    await expect(login('sentinel', secretOf('sentinel'), 'INFO', 'replication')).resolves.toMatch(
      /role:master/,
    );
    // A sentinel logs in as sentinel (compose's auth-user/auth-pass) and sees master and replica.
    const sentinel = await RedisServer.start({
      sentinelOf: {
        masterName: 'mymaster',
        host: master.host,
        port: master.port,
        auth: { username: 'sentinel', password: secretOf('sentinel') },
      },
    });
    cleanups.push(() => sentinel.cleanup());
    await waitFor(
      async () =>
        /master0:name=mymaster,status=ok,.*slaves=1/.test(
          await sentinel.command('INFO', 'sentinel'),
        ),
      { timeoutMs: 15_000, description: 'the sentinel to see the master and its replica' },
    );
    await expect(login('healthcheck', '-', 'PING')).resolves.toBe('PONG');
    await expect(login('healthcheck', '-', 'GET', 'x')).rejects.toThrow(/^NOPERM/);
    await expect(login('default', '', 'PING')).rejects.toThrow(/WRONGPASS/);
  }, 40_000);
});
