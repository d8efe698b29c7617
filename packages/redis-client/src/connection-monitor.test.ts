import { EventEmitter } from 'node:events';
import { Cluster, type Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import { MemoryTransport } from '@ginkgo-live/testing';
import { ConnectionMonitor, explainRedisError } from './connection-monitor.ts';

function setup() {
  const client = Object.assign(new EventEmitter(), {
    options: {
      connectTimeout: 5_000,
      commandTimeout: 2_000,
      socketTimeout: 2_000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      keepAlive: 10_000,
      retryStrategy: (attempt: number) => Math.min(attempt * 100, 250),
    },
  });
  const logs = new MemoryTransport();
  const logger = createLogger({ app: 't', level: 'debug', transports: [logs] });
  let now = 1_000;
  const monitor = new ConnectionMonitor(client as unknown as Redis, {
    name: 'conn',
    logger,
    now: () => now,
  });
  const advance = (ms: number): void => {
    now += ms;
  };
  return { client, logs, monitor, advance };
}

const infoAndUp = (logs: MemoryTransport) =>
  logs.entries.filter((e) => e.level !== 'debug').map((e) => e.message);

describe('ConnectionMonitor', () => {
  it('logs connect and ready once each', () => {
    const { client, logs, monitor } = setup();
    client.emit('connect');
    client.emit('ready');
    expect(infoAndUp(logs)).toEqual(['Redis connected', 'Redis connection ready']);
    expect(monitor.status()).toMatchObject({ state: 'ready', readyCount: 1, attempt: 0 });
  });

  it('logs the settings the client carries with its first ready, not with later ones', () => {
    const { client, logs } = setup();
    client.emit('connect');
    client.emit('ready');
    client.emit('close');
    client.emit('reconnecting', 100);
    client.emit('connect');
    client.emit('ready');
    const [first, second] = logs.withMessage('Redis connection ready');
    expect(first?.['settings']).toEqual({
      tls: 'off',
      connectTimeoutMs: 5_000,
      commandTimeoutMs: 2_000,
      socketTimeoutMs: 2_000,
      maxRetriesPerRequest: 1,
      offlineQueue: false,
      keepAliveMs: 10_000,
      reconnectDelaysMs: [100, 200, 250, 250],
    });
    expect(second).toBeDefined();
    expect(second).not.toHaveProperty('settings');
  });

  it('logs an outage once however many retries it takes, then the recovery with its length', () => {
    const { client, logs, monitor, advance } = setup();
    client.emit('connect');
    client.emit('ready');
    client.emit('close');
    for (let i = 0; i < 20; i++) {
      client.emit(
        'error',
        Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      );
      client.emit('close');
      client.emit('reconnecting', 100 * (i + 1));
      advance(100);
    }
    expect(monitor.status()).toMatchObject({
      state: 'reconnecting',
      attempt: 20,
      lastError: 'connect ECONNREFUSED',
    });
    client.emit('connect');
    client.emit('ready');
    expect(infoAndUp(logs)).toEqual([
      'Redis connected',
      'Redis connection ready',
      'Redis connection lost',
      'Redis connection error',
      'Redis reconnecting',
      'Redis connection ready',
    ]);
    expect(logs.withMessage('Redis reconnecting')[0]).toMatchObject({ attempt: 1, delayMs: 100 });
    expect(logs.withMessage('Redis connection ready')[1]).toMatchObject({
      attempts: 20,
      downtimeMs: 2_000,
    });
    expect(logs.withMessage('Redis reconnect attempt')).toHaveLength(19);
    expect(monitor.status()).toMatchObject({
      state: 'ready',
      attempt: 0,
      readyCount: 2,
      lastError: undefined,
    });
  });

  it('keeps the connects of a server that accepts TCP but fails the ready check at debug', () => {
    const { client, logs } = setup();
    client.emit('connect');
    client.emit('ready');
    client.emit('close');
    for (let i = 0; i < 5; i++) {
      client.emit('reconnecting', 100);
      client.emit('connect');
      client.emit('error', new Error('Ready check failed: Command timed out'));
      client.emit('close');
    }
    expect(infoAndUp(logs)).toEqual([
      'Redis connected',
      'Redis connection ready',
      'Redis connection lost',
      'Redis reconnecting',
      'Redis connection error',
    ]);
    expect(logs.withMessage('Redis connected during reconnect')).toHaveLength(5);
  });

  it('logs a new kind of error during an outage', () => {
    const { client, logs } = setup();
    client.emit('error', new Error('connect ECONNREFUSED'));
    client.emit('error', new Error('connect ECONNREFUSED'));
    client.emit('error', new Error('connect ETIMEDOUT'));
    expect(logs.withMessage('Redis connection error')).toHaveLength(2);
  });

  it('logs the close after quit (no outage warning), and detaches its listeners', () => {
    const { client, logs, monitor } = setup();
    client.emit('ready');
    monitor.expectClose();
    client.emit('close');
    client.emit('end');
    expect(logs.withMessage('Redis connection lost')).toHaveLength(0);
    expect(logs.withMessage('Redis connection closed')).toHaveLength(1);
    expect(monitor.status().state).toBe('closed');
    monitor.detach();
    expect(client.listenerCount('error')).toBe(0);
    expect(client.listenerCount('ready')).toBe(0);
  });
});

describe('explainRedisError', () => {
  it('says what to change for a login or ACL refusal, and nothing for an outage', () => {
    expect(explainRedisError(new Error('WRONGPASS invalid username-password pair'))).toBe(
      'Redis refused the login: check REDIS_USERNAME and REDIS_PASSWORD (REDIS_SENTINEL_USERNAME/PASSWORD for the sentinels)',
    );
    expect(
      explainRedisError(new Error("NOPERM this user has no permissions to run the 'info' command")),
    ).toMatch(/^Redis's ACL forbids this user/);
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), {
      code: 'ECONNREFUSED',
    });
    expect(explainRedisError(refused)).toBeUndefined();
    expect(explainRedisError('not an error')).toBeUndefined();
  });
});

describe('ConnectionMonitor on a cluster client', () => {
  it('warns once a minute per failing node, the repeats of a failover at debug; pool changes at debug', () => {
    // A real ioredis Cluster that never connects: the monitor only listens to its events.
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    const logs = new MemoryTransport();
    const logger = createLogger({ app: 't', level: 'debug', transports: [logs] });
    let now = 1_000;
    new ConnectionMonitor(cluster, { name: 'conn', logger, now: () => now });
    const node = (port: number) => ({ options: { host: '10.0.0.1', port } });
    for (let i = 0; i < 5; i++) {
      cluster.emit('-node', node(7000));
      cluster.emit('node error', new Error('connect ECONNREFUSED'), '10.0.0.1:7000');
      cluster.emit('+node', node(7000));
    }
    cluster.emit('-node', node(7001));
    cluster.emit('node error', new Error('Connection is closed.'), '10.0.0.1:7001');
    const warnings = () =>
      logs.entries.filter((e) => e.level === 'warn').map((e) => [e.message, e['address']]);
    expect(warnings()).toEqual([
      ['Redis cluster node error', '10.0.0.1:7000'],
      ['Redis cluster node error', '10.0.0.1:7001'],
    ]);
    expect(logs.entries.filter((e) => e.message === 'Redis cluster node dropped')).toHaveLength(6);
    now += 60_000;
    cluster.emit('node error', new Error('connect ECONNREFUSED'), '10.0.0.1:7000');
    expect(warnings()).toHaveLength(3);
    cluster.disconnect();
  });
});
