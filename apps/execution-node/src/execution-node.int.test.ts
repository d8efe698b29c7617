import { afterEach, describe, expect, it } from 'vitest';
import { createAppNotifier } from '@ginkgo-live/notification-adapter';
import { RedisConnections } from '@ginkgo-live/redis-client';
import { createLogger } from '@ginkgo-live/runtime';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { MemoryTransport, RedisServer } from '@ginkgo-live/testing';
import { loadConfig } from './config.ts';
import { ExecutionNode } from './execution-node.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('ExecutionNode start and stop', () => {
  it('a stop that arrives while the node id claim is in flight: nothing starts, no key is left', async () => {
    const server = await RedisServer.start();
    cleanups.push(() => server.cleanup());
    const loaded = loadConfig({
      NODE_ID: 'n1',
      REDIS_HOST: server.host,
      REDIS_PORT: String(server.port),
      HEARTBEAT_INTERVAL_MS: '200',
      HEARTBEAT_TTL_MS: '3000',
      STOP_TIMEOUT_MS: '2000',
      ASSIGNMENT_POLL_MS: '100',
    });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
    const config = loaded.value;
    const logs = new MemoryTransport();
    const logger = createLogger({ app: 'test', transports: [logs] });
    const connections = new RedisConnections({
      config: config.redis,
      app: 'test',
      instanceId: 'n1',
      logger,
    });
    cleanups.push(() => connections.close());
    expect(await connections.waitUntilReady(5_000)).toBe(true);
    const keys = createStateKeys(config.redis.keyPrefix);
    const notifier = createAppNotifier({
      redis: connections.main,
      keys,
      app: 'test',
      instanceId: 'n1',
      config: config.notify,
      logger,
    });
    cleanups.push(() => notifier.close());
    const node = new ExecutionNode({ config, connections, keys, logger, version: '0', notifier });

    // Redis frozen: the claim is sent and waits; the stop (SIGTERM) comes meanwhile.
    server.freeze();
    const started = node.start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stopped = node.stop();
    await new Promise((resolve) => setTimeout(resolve, 200));
    server.thaw();
    expect(await started).toEqual({ ok: true });
    expect(await stopped).toBe(true);

    // Several beat intervals later: no beat, no registry entry, no loop ran.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await connections.main.exists(keys.heartbeat('n1'), keys.nodeInfo('n1'))).toBe(0);
    expect(await connections.main.zscore(keys.nodeRegistry(), 'n1')).toBeNull();
    expect(logs.withMessage('Execution node running')).toHaveLength(0);
    expect(logs.withMessage('Stopped while starting; nothing was started')).toHaveLength(1);
    expect(node.status).not.toBe('running');
  });
});
