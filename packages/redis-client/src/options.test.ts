import { describe, expect, it } from 'vitest';
import { loadRedisConfig, type RedisConfig } from './config.ts';
import { buildRedisOptions, reconnectOnRedisError } from './options.ts';

function config(env: Record<string, string> = {}): RedisConfig {
  const result = loadRedisConfig(env);
  if (!result.ok) throw new Error('bad test config');
  return result.value;
}

describe('buildRedisOptions', () => {
  it('makes request connections fail fast: no offline queue, a command timeout, one resend', () => {
    const options = buildRedisOptions(config(), { profile: 'request', connectionName: 'n' });
    expect(options).toMatchObject({
      host: 'localhost',
      port: 6379,
      connectTimeout: 5_000,
      commandTimeout: 2_000,
      socketTimeout: 2_000,
      keepAlive: 10_000,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectionName: 'n',
    });
    expect(options.tls).toBeUndefined();
  });

  it('makes blocking connections wait through outages as BullMQ requires', () => {
    const options = buildRedisOptions(config(), { profile: 'blocking', connectionName: 'w' });
    expect(options).toMatchObject({
      commandTimeout: undefined,
      socketTimeout: undefined,
      blockingTimeoutGrace: 2_000,
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
    });
  });

  it('leaves the socket alone after a timeout when retry on timeout is off', () => {
    const options = buildRedisOptions(config({ REDIS_RETRY_ON_TIMEOUT: 'false' }), {
      profile: 'request',
      connectionName: 'n',
    });
    expect(options.socketTimeout).toBeUndefined();
    expect(options.commandTimeout).toBe(2_000);
  });

  it('verifies certificates with TLS on and not with insecure', () => {
    const on = buildRedisOptions(config({ REDIS_TLS: 'on', REDIS_HOST: 'redis.example' }), {
      profile: 'request',
      connectionName: 'n',
    });
    // Node verifies the host dialled; a servername only when REDIS_TLS_SERVERNAME names one.
    expect(on.tls).toEqual({ rejectUnauthorized: true });
    const named = buildRedisOptions(
      config({ REDIS_TLS: 'on', REDIS_HOST: '10.0.0.5', REDIS_TLS_SERVERNAME: 'redis.example' }),
      { profile: 'request', connectionName: 'n' },
    );
    expect(named.tls).toEqual({ rejectUnauthorized: true, servername: 'redis.example' });
    const insecure = buildRedisOptions(config({ REDIS_TLS: 'insecure' }), {
      profile: 'request',
      connectionName: 'n',
    });
    expect(insecure.tls).toMatchObject({ rejectUnauthorized: false });
  });

  it('with Sentinel, dials the sentinels and the master over TLS when TLS is on', () => {
    const options = buildRedisOptions(
      config({
        REDIS_SENTINELS: 's1:26379',
        REDIS_SENTINEL_USERNAME: 'watcher',
        REDIS_SENTINEL_PASSWORD: 'pw',
        REDIS_TLS: 'on',
      }),
      { profile: 'request', connectionName: 'n' },
    );
    expect(options).toMatchObject({
      enableTLSForSentinelMode: true,
      tls: { rejectUnauthorized: true },
      sentinelTLS: { rejectUnauthorized: true },
      sentinelUsername: 'watcher',
      sentinelPassword: 'pw',
    });
    const plainSentinels = buildRedisOptions(
      config({ REDIS_SENTINELS: 's1:26379', REDIS_TLS: 'on', REDIS_SENTINEL_TLS: 'off' }),
      { profile: 'request', connectionName: 'n' },
    );
    expect(plainSentinels.sentinelTLS).toBeUndefined();
    expect(plainSentinels.enableTLSForSentinelMode).toBe(true);
    const plain = buildRedisOptions(config({ REDIS_SENTINELS: 's1:26379' }), {
      profile: 'request',
      connectionName: 'n',
    });
    expect(plain.sentinelTLS).toBeUndefined();
    expect(plain.enableTLSForSentinelMode).toBe(false);
    expect(plain.tls).toBeUndefined();
  });

  it('reconnects with capped backoff and never returns null', () => {
    const options = buildRedisOptions(config({ REDIS_RECONNECT_MAX_DELAY_MS: '300' }), {
      profile: 'request',
      connectionName: 'n',
    });
    for (const attempt of [1, 10, 1_000]) {
      const delay = options.retryStrategy?.(attempt);
      expect(delay).toBeTypeOf('number');
      expect(delay).toBeLessThanOrEqual(300);
    }
  });
});

describe('reconnectOnRedisError', () => {
  it('reconnects and resends on READONLY and LOADING, not on other errors', () => {
    expect(
      reconnectOnRedisError(new Error("READONLY You can't write against a read only replica.")),
    ).toBe(2);
    expect(reconnectOnRedisError(new Error('LOADING Redis is loading the dataset in memory'))).toBe(
      2,
    );
    expect(reconnectOnRedisError(new Error('WRONGTYPE Operation against a key'))).toBe(false);
    expect(reconnectOnRedisError(new Error('ERR READONLY in text'))).toBe(false);
  });
});

describe('buildRedisOptions with Redis Sentinel', () => {
  it('asks the sentinels for the master instead of dialling a host', () => {
    const options = buildRedisOptions(
      config({
        REDIS_SENTINELS: 's1:26379,s2:26379',
        REDIS_SENTINEL_MASTER: 'trading',
        REDIS_SENTINEL_PASSWORD: 'pw',
      }),
      { profile: 'request', connectionName: 'ginkgo:t:i:main' },
    );
    expect(options).toMatchObject({
      sentinels: [
        { host: 's1', port: 26_379 },
        { host: 's2', port: 26_379 },
      ],
      name: 'trading',
      role: 'master',
      sentinelPassword: 'pw',
      // The FR-038 settings hold as with a plain host.
      commandTimeout: 2_000,
      maxRetriesPerRequest: 1,
    });
    expect(options.host).toBeUndefined();
    expect(options.port).toBeUndefined();
    const delays = [1, 5, 50].map((attempt) => options.sentinelRetryStrategy?.(attempt));
    expect(delays.every((d) => typeof d === 'number' && d > 0 && d <= 5_000)).toBe(true);
  });
});
