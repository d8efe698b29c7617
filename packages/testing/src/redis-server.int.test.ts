import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisServer } from './redis-server.ts';

const servers: RedisServer[] = [];
const clients: Redis[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.cleanup()));
});

async function start(options: Parameters<typeof RedisServer.start>[0] = {}) {
  const server = await RedisServer.start(options);
  servers.push(server);
  return server;
}

/** A fresh client that gives up at once, to probe the server's state. */
async function probe(server: RedisServer): Promise<Redis> {
  const client = new Redis({
    host: server.host,
    port: server.port,
    lazyConnect: true,
    retryStrategy: () => null,
    commandTimeout: 500,
  });
  client.on('error', () => {
    // Probes are expected to fail against a stopped server; the assertions check the outcome.
  });
  clients.push(client);
  await client.connect();
  return client;
}

describe('RedisServer harness', () => {
  it('starts on a free port in its own directory, never assuming 6379', async () => {
    const a = await start();
    const b = await start();
    expect(a.port).not.toBe(b.port);
    expect(a.port).not.toBe(6379);
    expect(a.dir).not.toBe(b.dir);
    expect(await (await probe(a)).ping()).toBe('PONG');
    expect(a.env).toEqual({ REDIS_HOST: '127.0.0.1', REDIS_PORT: String(a.port) });
  });

  it('restarts empty without persistence, and with its data when persistence is on', async () => {
    const plain = await start();
    await (await probe(plain)).set('k', 'v');
    await plain.restart();
    expect(await (await probe(plain)).get('k')).toBeNull();

    const durable = await start({ persistence: true });
    await (await probe(durable)).set('k', 'v');
    await durable.kill(); // even a kill keeps it: append-only file with fsync always
    expect(durable.isRunning).toBe(false);
    await durable.restart();
    expect(await (await probe(durable)).get('k')).toBe('v');
    await durable.restart({ keepData: false });
    expect(await (await probe(durable)).get('k')).toBeNull();
  });

  it('stops gracefully, and connections are refused afterwards', async () => {
    const server = await start();
    const pid = server.pid;
    await server.stop();
    expect(server.isRunning).toBe(false);
    expect(() => process.kill(pid ?? -1, 0)).toThrow();
    await expect(probe(server)).rejects.toThrow(/ECONNREFUSED|Connection is closed/);
  });

  it('freezes (nothing answers, the socket stays open) and thaws', async () => {
    const server = await start();
    const client = await probe(server);
    server.freeze();
    await expect(client.ping()).rejects.toThrow(/timed out/);
    expect(client.status).toBe('ready');
    server.thaw();
    await expect(client.ping()).resolves.toBe('PONG');
  });

  it('stops a frozen server too', async () => {
    const server = await start();
    server.freeze();
    await server.stop();
    expect(server.isRunning).toBe(false);
  });

  it('reports why a start failed, with what redis-server printed', async () => {
    const server = await start();
    await expect(RedisServer.start({ port: server.port })).rejects.toThrow(
      /Address already in use/,
    );
  });
});
