import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig, type Env } from '@ginkgo-live/runtime';
import {
  MemoryTransport,
  RedisServer,
  SentinelGroup,
  TlsCertificates,
  waitFor,
} from '@ginkgo-live/testing';
import { describeRedisConfig, loadRedisConfig, RedisConnections } from './index.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let certs: TlsCertificates;
let otherCa: TlsCertificates;
beforeAll(() => {
  certs = TlsCertificates.make('ginkgo-test-ca');
  otherCa = TlsCertificates.make('some-other-ca');
});
afterAll(() => {
  certs.cleanup();
  otherCa.cleanup();
});

/** The app's way in: the config read from the environment, RedisConnections, a captured log. */
function connect(env: Env) {
  const logs = new MemoryTransport();
  const config = unwrapConfig(
    loadRedisConfig({
      REDIS_RECONNECT_MAX_DELAY_MS: '200',
      REDIS_COMMAND_TIMEOUT_MS: '500',
      ...env,
    }),
  );
  const conns = new RedisConnections({
    config,
    app: 'tls-test',
    instanceId: 'i',
    logger: createLogger({ app: 'tls-test', level: 'debug', transports: [logs] }),
  });
  cleanups.push(() => conns.close(300));
  return { conns, logs, described: describeRedisConfig(config) };
}

async function tlsServer(authClients: 'no' | 'optional' | 'yes' = 'no'): Promise<RedisServer> {
  const server = await RedisServer.start({ tls: { certs, authClients } });
  cleanups.push(() => server.cleanup());
  return server;
}

describe('TLS to a TLS-only redis-server (certificates made by openssl)', () => {
  it('an app connection reaches it directly, verifying the certificate against REDIS_TLS_CA_FILE', async () => {
    const server = await tlsServer();
    expect(server.env).toEqual({
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(server.port),
      REDIS_TLS: 'on',
      REDIS_TLS_CA_FILE: certs.caFile,
    });
    const { conns, logs, described } = connect(server.env);
    expect(described['tls']).toBe(`on, verify: ca ${certs.caFile}`);
    expect(await conns.waitUntilReady(5_000)).toBe(true);
    await conns.main.set('tls-key', 'written over TLS');
    expect(await server.command('GET', 'tls-key')).toBe('written over TLS');
    // The ready line reads back what the client carries.
    expect(logs.withMessage('Redis connection ready')[0]?.['settings']).toMatchObject({
      tls: 'on, verify: REDIS_TLS_CA_FILE',
    });
  });

  it('with tls-auth-clients yes, presents the client certificate of REDIS_TLS_CERT_FILE/KEY_FILE', async () => {
    const server = await tlsServer('yes');
    const withCert = connect({
      ...server.env,
      REDIS_TLS_CERT_FILE: certs.clientCertFile,
      REDIS_TLS_KEY_FILE: certs.clientKeyFile,
    });
    expect(withCert.described['tls']).toBe(
      `on, verify: ca ${certs.caFile}, client cert ${certs.clientCertFile}`,
    );
    expect(await withCert.conns.waitUntilReady(5_000)).toBe(true);
    expect((await withCert.conns.ping()).ok).toBe(true);

    const without = connect(server.env);
    expect(await without.conns.waitUntilReady(1_500)).toBe(false);
  });

  it('a name the certificate does not carry is refused (REDIS_TLS_SERVERNAME), and the log says so', async () => {
    const server = await tlsServer();
    const wrong = connect({ ...server.env, REDIS_TLS_SERVERNAME: 'redis.example' });
    expect(await wrong.conns.waitUntilReady(1_500)).toBe(false);
    expect(wrong.logs.withMessage('Redis connection error')[0]?.['hint']).toBe(
      "TLS: Redis's certificate does not name the host dialled: dial a name it has, or set REDIS_TLS_SERVERNAME to one",
    );
    const right = connect({ ...server.env, REDIS_TLS_SERVERNAME: 'localhost' });
    expect(await right.conns.waitUntilReady(5_000)).toBe(true);
  });

  it('a plain connection to the TLS port fails', async () => {
    const server = await tlsServer();
    const { conns } = connect({ REDIS_HOST: server.host, REDIS_PORT: String(server.port) });
    expect(await conns.waitUntilReady(1_500)).toBe(false);
    const ping = await conns.ping();
    expect(ping.ok).toBe(false);
  });

  it('a certificate from another CA is refused, and the log says what to set', async () => {
    const server = await tlsServer();
    const { conns, logs } = connect({ ...server.env, REDIS_TLS_CA_FILE: otherCa.caFile });
    expect(await conns.waitUntilReady(1_500)).toBe(false);
    const error = logs.withMessage('Redis connection error')[0];
    expect(error?.['hint']).toBe(
      "TLS: Redis's certificate is not signed by a CA this client trusts: set REDIS_TLS_CA_FILE to the CA that signed it",
    );
    expect(error?.['err']).toMatchObject({ code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  });
});

describe('TLS through TLS-only Sentinels (master, replica and three sentinels on tls-port only)', () => {
  it('reaches the master through the sentinels over TLS, and follows a failover', async () => {
    const group = await SentinelGroup.start({ tls: certs });
    cleanups.push(() => group.cleanup());
    const { conns, logs, described } = connect({ ...group.env });
    expect(described['tls']).toBe(`on, verify: ca ${certs.caFile}`);
    expect(described['sentinel']).toMatchObject({ tls: `on, verify: ca ${certs.caFile}` });
    expect(await conns.waitUntilReady(5_000)).toBe(true);
    expect(logs.withMessage('Redis connection ready')[0]?.['settings']).toMatchObject({
      tls: 'on, verify: REDIS_TLS_CA_FILE',
      sentinelTls: 'on, verify: REDIS_TLS_CA_FILE',
    });
    await conns.main.set('through-sentinel', 'one');
    expect(await group.master.command('GET', 'through-sentinel')).toBe('one');

    // The replica, promoted, is found at its TLS port through the same TLS sentinels.
    await group.master.kill();
    await waitFor(
      async () => {
        try {
          await conns.main.set('after-failover', 'two');
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 20_000, description: 'a write on the promoted replica' },
    );
    expect(await group.replica.command('GET', 'after-failover')).toBe('two');
  }, 40_000);

  it('without TLS toward the sentinels, the TLS-only sentinels are never reached', async () => {
    const group = await SentinelGroup.start({ tls: certs });
    cleanups.push(() => group.cleanup());
    const { conns, described } = connect({ ...group.env, REDIS_SENTINEL_TLS: 'off' });
    expect(described['sentinel']).toMatchObject({ tls: 'off' });
    expect(await conns.waitUntilReady(1_500)).toBe(false);
  }, 30_000);
});
