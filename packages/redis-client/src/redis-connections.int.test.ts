import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig, type Env } from '@ginkgo-live/runtime';
import { MemoryTransport, RedisServer, waitFor } from '@ginkgo-live/testing';
import { loadRedisConfig, RedisConnections } from './index.ts';

const servers: RedisServer[] = [];
const connections: RedisConnections[] = [];
const inspectors: Redis[] = [];

afterEach(async () => {
  await Promise.all(connections.splice(0).map((c) => c.close(500)));
  for (const client of inspectors.splice(0)) client.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.cleanup()));
});

async function startServer(options: Parameters<typeof RedisServer.start>[0] = {}) {
  const server = await RedisServer.start(options);
  servers.push(server);
  return server;
}

/** A plain client, outside the code under test, to look at the server. */
function inspector(server: RedisServer): Redis {
  const client = new Redis({ host: server.host, port: server.port, lazyConnect: false });
  client.on('error', () => {
    // The inspector may see the server killed on purpose; the test asserts on the subject.
  });
  inspectors.push(client);
  return client;
}

function connect(server: RedisServer, env: Env = {}) {
  const logs = new MemoryTransport();
  const logger = createLogger({ app: 'test-app', level: 'debug', transports: [logs] });
  const config = unwrapConfig(loadRedisConfig({ ...server.env, ...env }));
  const conns = new RedisConnections({ config, app: 'test-app', instanceId: 'node-1', logger });
  connections.push(conns);
  return { conns, logs };
}

describe('RedisConnections on a real redis-server', () => {
  it('carries the FR-038 defaults on the created client', async () => {
    const server = await startServer();
    const { conns } = connect(server);
    const main = conns.main;
    const blocking = conns.connection('worker', 'blocking');
    expect(main.options).toMatchObject({
      connectTimeout: 5_000,
      commandTimeout: 2_000,
      socketTimeout: 2_000,
      keepAlive: 10_000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      connectionName: 'ginkgo:test-app:node-1:main',
    });
    expect(blocking.options).toMatchObject({
      connectTimeout: 5_000,
      commandTimeout: undefined,
      socketTimeout: undefined,
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
      connectionName: 'ginkgo:test-app:node-1:worker',
    });
    const retry = main.options.retryStrategy;
    expect(retry).toBeTypeOf('function');
    const delays = [1, 2, 5, 10, 50, 1_000, 100_000].map((attempt) => retry?.(attempt));
    for (const delay of delays) {
      expect(delay).toBeTypeOf('number'); // never null: the client never gives up
      expect(delay).toBeLessThanOrEqual(5_000);
    }
    expect(delays.at(-1)).toBeGreaterThanOrEqual(2_500); // capped at 5 s with equal jitter
  });

  it('carries the FR-038 settings from the environment', async () => {
    const server = await startServer();
    const { conns } = connect(server, {
      REDIS_CONNECT_TIMEOUT_MS: '1500',
      REDIS_COMMAND_TIMEOUT_MS: '700',
      REDIS_RETRY_ON_TIMEOUT: 'false',
      REDIS_KEEPALIVE_MS: '3000',
      REDIS_RECONNECT_MAX_DELAY_MS: '800',
    });
    expect(conns.main.options).toMatchObject({
      connectTimeout: 1_500,
      commandTimeout: 700,
      socketTimeout: undefined,
      keepAlive: 3_000,
    });
    expect(conns.main.options.retryStrategy?.(1_000)).toBeLessThanOrEqual(800);
  });

  it('names every connection in CLIENT LIST and reuses one connection per purpose', async () => {
    const server = await startServer();
    const { conns } = connect(server);
    expect(conns.main).toBe(conns.main);
    const events = conns.connection('events', 'blocking');
    expect(conns.connection('events', 'blocking')).toBe(events);
    expect(() => conns.connection('events', 'request')).toThrow(/profile blocking/);
    await conns.waitUntilReady(5_000);
    await waitFor(() => events.status === 'ready');
    const list = await inspector(server).client('LIST');
    const names = String(list)
      .split('\n')
      .map((line) => /name=(\S*)/.exec(line)?.[1])
      .filter((name) => name !== undefined && name.startsWith('ginkgo:'));
    expect(names.sort()).toEqual(['ginkgo:test-app:node-1:events', 'ginkgo:test-app:node-1:main']);
    expect(conns.size).toBe(2);
  });

  it('reconnects by itself after Redis is killed and restarted on the same port', async () => {
    const server = await startServer();
    const { conns } = connect(server);
    const main = conns.main;
    const blocking = conns.connection('worker', 'blocking');
    expect(await conns.waitUntilReady(5_000)).toBe(true);
    await main.set('before', '1');

    await server.kill();
    await waitFor(() => main.status !== 'ready', { description: 'the client to notice' });
    // A fail-fast command while Redis is down fails at once instead of waiting.
    const downStarted = performance.now();
    await expect(main.get('before')).rejects.toThrow();
    expect(performance.now() - downStarted).toBeLessThan(500);
    // A blocking-profile command waits through the outage and completes after it.
    const held = blocking.set('during', 'held');

    await server.restart({ keepData: false });
    await waitFor(() => main.status === 'ready', { timeoutMs: 10_000, description: 'reconnect' });
    await expect(main.set('after', '2')).resolves.toBe('OK');
    await expect(main.get('after')).resolves.toBe('2');
    await expect(main.get('before')).resolves.toBeNull(); // the server came back empty
    await expect(held).resolves.toBe('OK');
    await expect(main.get('during')).resolves.toBe('held');
  });

  it('fails a command on a frozen Redis within the command timeout, then heals after thaw', async () => {
    const server = await startServer();
    const { conns } = connect(server);
    const main = conns.main;
    await conns.waitUntilReady(5_000);
    await main.set('k', 'v');

    server.freeze();
    const started = performance.now();
    const error = await main.get('k').then(
      () => undefined,
      (err: unknown) => err,
    );
    const elapsedMs = performance.now() - started;
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/timed out|timeout/i);
    expect(elapsedMs).toBeGreaterThanOrEqual(1_900);
    expect(elapsedMs).toBeLessThan(2_000 + 400);

    server.thaw();
    await waitFor(async () => (await main.get('k')) === 'v', {
      timeoutMs: 10_000,
      description: 'commands to succeed after thaw',
    });
  });

  it('keeps the new connection after a reconnect when a command was in flight on the old one', async () => {
    const server = await startServer();
    const { conns, logs } = connect(server, {
      REDIS_COMMAND_TIMEOUT_MS: '1000',
      REDIS_RECONNECT_MAX_DELAY_MS: '100',
    });
    const main = conns.main;
    await conns.waitUntilReady(5_000);
    server.freeze();
    const inFlight = main.get('k').catch((err: unknown) => err);
    await server.kill(); // the socket dies with the GET unanswered
    await inFlight;
    await server.restart();
    await waitFor(() => main.status === 'ready', { timeoutMs: 5_000 });
    const lostBefore = logs.withMessage('Redis connection lost').length;
    // Past the moment the old command's socket timer would have fired.
    const until = Date.now() + 1_500;
    while (Date.now() < until) {
      await expect(main.ping()).resolves.toBe('PONG');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(logs.withMessage('Redis connection lost')).toHaveLength(lostBefore);
  });

  it('answers a health ping within its own deadline while Redis is frozen', async () => {
    const server = await startServer();
    const { conns } = connect(server, { REDIS_PING_TIMEOUT_MS: '300' });
    await conns.waitUntilReady(5_000);
    expect(await conns.ping()).toMatchObject({ ok: true });

    server.freeze();
    const started = performance.now();
    const result = await conns.ping();
    expect(result).toMatchObject({ ok: false, reason: 'no reply within 300 ms' });
    expect(performance.now() - started).toBeLessThan(300 + 200);
    server.thaw();
  });

  it('logs each connection state transition once, not once per retry', async () => {
    const server = await startServer();
    const { conns, logs } = connect(server, { REDIS_RECONNECT_MAX_DELAY_MS: '100' });
    const main = conns.main;
    await conns.waitUntilReady(5_000);

    await server.kill();
    await waitFor(() => (conns.statuses()[0]?.attempt ?? 0) >= 5, {
      description: 'five reconnect attempts',
    });
    expect(logs.withMessage('Redis connection lost')).toHaveLength(1);
    expect(logs.withMessage('Redis reconnecting')).toHaveLength(1);
    expect(logs.withMessage('Redis reconnecting')[0]).toMatchObject({ attempt: 1 });
    expect(logs.withMessage('Redis reconnect attempt').length).toBeGreaterThanOrEqual(4);
    expect(logs.withMessage('Redis connection error')).toHaveLength(1);

    await server.restart();
    await waitFor(() => main.status === 'ready', { timeoutMs: 10_000 });
    const ready = logs.withMessage('Redis connection ready');
    expect(ready).toHaveLength(2); // the first connect and the recovery
    expect(ready[0]?.['settings']).toMatchObject({
      connectTimeoutMs: 5_000,
      commandTimeoutMs: 2_000,
      socketTimeoutMs: 2_000,
      maxRetriesPerRequest: 1,
    });
    expect(ready[1]).toMatchObject({ level: 'info', connection: 'ginkgo:test-app:node-1:main' });
    expect(ready[1]?.['attempts']).toBeGreaterThanOrEqual(5);
    expect(ready[1]?.['downtimeMs']).toBeGreaterThan(0);
    expect(conns.statuses()[0]).toMatchObject({ state: 'ready', attempt: 0, readyCount: 2 });
  });

  it('reconnects and resends a write that met READONLY once the server is primary again', async () => {
    const primary = await startServer();
    const subject = await startServer();
    const { conns } = connect(subject);
    const writer = conns.connection('writer', 'blocking');
    await waitFor(() => writer.status === 'ready');
    const admin = inspector(subject);
    // The subject becomes a replica, as after a failover that demoted it.
    await admin.replicaof(primary.host, String(primary.port));
    await waitFor(async () => (await admin.role())[0] === 'slave');
    await expect(inspector(subject).set('probe', '1')).rejects.toThrow(/READONLY/);

    const write = writer.set('x', '1');
    await waitFor(() => (conns.statuses()[0]?.readyCount ?? 0) >= 2, {
      description: 'a reconnect caused by READONLY',
    });
    await admin.replicaof('NO', 'ONE');
    await expect(write).resolves.toBe('OK');
    await expect(admin.get('x')).resolves.toBe('1');
  });
});

describe('LuaScript', () => {
  it('runs by SHA, loading the script on first use and again after Redis forgot it', async () => {
    const { LuaScript } = await import('./index.ts');
    const server = await startServer();
    const { conns } = connect(server);
    await conns.waitUntilReady(5_000);
    const script = new LuaScript("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    expect(await script.run(conns.main, ['n'], [2])).toBe(2);
    expect(await script.run(conns.main, ['n'], [3])).toBe(5);
    await inspector(server).script('FLUSH');
    expect(await script.run(conns.main, ['n'], [1])).toBe(6);
  });

  it('takes more keys and arguments than a JavaScript call can spread (a 10,000-node plan write)', async () => {
    const { LuaScript } = await import('./index.ts');
    const server = await startServer();
    const { conns } = connect(server);
    await conns.waitUntilReady(5_000);
    const script = new LuaScript('return { #KEYS, #ARGV, KEYS[#KEYS], ARGV[#ARGV] }');
    const keys = Array.from({ length: 150_000 }, (_, i) => `k${i}`);
    const args = Array.from({ length: 250_000 }, (_, i) => i);
    expect(await script.run(conns.main, keys, args)).toEqual([
      150_000,
      250_000,
      'k149999',
      '249999',
    ]);
    await inspector(server).script('FLUSH');
    expect(await script.run(conns.main, keys, args)).toEqual([
      150_000,
      250_000,
      'k149999',
      '249999',
    ]);
  });
});
