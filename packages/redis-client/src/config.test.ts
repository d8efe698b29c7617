import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  describeRedisConfig,
  isRedisConfigured,
  loadRedisConfig,
  REDIS_DEFAULTS,
} from './config.ts';

function issuesOf(env: Record<string, string>) {
  const result = loadRedisConfig(env);
  return result.ok ? [] : result.issues;
}

describe('loadRedisConfig', () => {
  it('gives the FR-038 defaults from an empty environment', () => {
    expect(loadRedisConfig({})).toEqual({
      ok: true,
      value: {
        host: 'localhost',
        port: 6379,
        username: undefined,
        password: undefined,
        db: 0,
        tls: 'off',
        tlsFiles: { ca: undefined, cert: undefined, key: undefined, servername: undefined },
        source: 'variables',
        connectTimeoutMs: 5_000,
        commandTimeoutMs: 2_000,
        retryOnTimeout: true,
        reconnectBaseDelayMs: 100,
        reconnectMaxDelayMs: 5_000,
        keepAliveMs: 10_000,
        pingTimeoutMs: 1_000,
        keyPrefix: '',
      },
    });
  });

  it('reads every variable', () => {
    const result = loadRedisConfig({
      REDIS_HOST: 'redis',
      REDIS_PORT: '6380',
      REDIS_USERNAME: 'app',
      REDIS_PASSWORD: 's3cret',
      REDIS_DB: '3',
      REDIS_TLS: 'insecure',
      REDIS_CONNECT_TIMEOUT_MS: '1000',
      REDIS_COMMAND_TIMEOUT_MS: '500',
      REDIS_RETRY_ON_TIMEOUT: '0',
      REDIS_RECONNECT_BASE_DELAY_MS: '50',
      REDIS_RECONNECT_MAX_DELAY_MS: '2000',
      REDIS_KEEPALIVE_MS: '0',
      REDIS_PING_TIMEOUT_MS: '250',
      REDIS_KEY_PREFIX: 'test:',
    });
    expect(result).toEqual({
      ok: true,
      value: {
        host: 'redis',
        port: 6380,
        username: 'app',
        password: 's3cret',
        db: 3,
        tls: 'insecure',
        tlsFiles: { ca: undefined, cert: undefined, key: undefined, servername: undefined },
        source: 'variables',
        connectTimeoutMs: 1_000,
        commandTimeoutMs: 500,
        retryOnTimeout: false,
        reconnectBaseDelayMs: 50,
        reconnectMaxDelayMs: 2_000,
        keepAliveMs: 0,
        pingTimeoutMs: 250,
        keyPrefix: 'test:',
      },
    });
  });

  it('names the variable of a bad port, TLS mode or timeout', () => {
    expect(issuesOf({ REDIS_PORT: 'abc' })).toEqual([
      { variable: 'REDIS_PORT', message: 'must be an integer, got "abc"' },
    ]);
    expect(issuesOf({ REDIS_TLS: 'maybe' })).toEqual([
      {
        variable: 'REDIS_TLS',
        message: 'must be one of off, on, insecure, true, false, 1, 0, got "maybe"',
      },
    ]);
    expect(issuesOf({ REDIS_COMMAND_TIMEOUT_MS: '-1' })).toEqual([
      { variable: 'REDIS_COMMAND_TIMEOUT_MS', message: 'must be at least 1, got -1' },
    ]);
    expect(issuesOf({ REDIS_CONNECT_TIMEOUT_MS: '0' }).map((i) => i.variable)).toEqual([
      'REDIS_CONNECT_TIMEOUT_MS',
    ]);
    expect(issuesOf({ REDIS_DB: '16' }).map((i) => i.variable)).toEqual(['REDIS_DB']);
    expect(issuesOf({ REDIS_RETRY_ON_TIMEOUT: 'sometimes' }).map((i) => i.variable)).toEqual([
      'REDIS_RETRY_ON_TIMEOUT',
    ]);
  });

  it('reports all bad variables together', () => {
    expect(
      issuesOf({ REDIS_PORT: '0', REDIS_KEEPALIVE_MS: '-3', REDIS_PING_TIMEOUT_MS: 'soon' }).map(
        (i) => i.variable,
      ),
    ).toEqual(['REDIS_PORT', 'REDIS_KEEPALIVE_MS', 'REDIS_PING_TIMEOUT_MS']);
  });

  it('refuses a key prefix with braces (a hash tag for every key)', () => {
    expect(issuesOf({ REDIS_KEY_PREFIX: '{ginkgo}:' })).toEqual([
      {
        variable: 'REDIS_KEY_PREFIX',
        message: expect.stringMatching(/^must not contain \{ or \}/) as unknown,
      },
    ]);
    expect(issuesOf({ REDIS_KEY_PREFIX: 'staging:' })).toEqual([]);
  });

  it('refuses a base reconnect delay above the cap', () => {
    expect(
      issuesOf({ REDIS_RECONNECT_BASE_DELAY_MS: '6000', REDIS_RECONNECT_MAX_DELAY_MS: '5000' }),
    ).toEqual([
      {
        variable: 'REDIS_RECONNECT_BASE_DELAY_MS',
        message: 'must not exceed REDIS_RECONNECT_MAX_DELAY_MS (5000)',
      },
    ]);
  });

  it('takes host, port, credentials, db and TLS from REDIS_URL, which wins', () => {
    const result = loadRedisConfig({
      REDIS_URL: 'rediss://app:p%40ss@cache.internal:6390/2',
      REDIS_HOST: 'ignored',
      REDIS_PORT: '1',
    });
    expect(result).toMatchObject({
      ok: true,
      value: {
        host: 'cache.internal',
        port: 6390,
        username: 'app',
        password: 'p@ss',
        db: 2,
        tls: 'on',
        source: 'url',
      },
    });
    expect(loadRedisConfig({ REDIS_URL: 'redis://[::1]' })).toMatchObject({
      value: { host: '::1', port: 6379, db: 0, tls: 'off' },
    });
    expect(loadRedisConfig({ REDIS_URL: 'rediss://h', REDIS_TLS: 'insecure' })).toMatchObject({
      value: { tls: 'insecure' },
    });
  });

  it('refuses a bad REDIS_URL without echoing it (it may hold a password)', () => {
    const issues = issuesOf({ REDIS_URL: 'not a url with hunter2' });
    expect(issues).toHaveLength(1);
    expect(issues[0]?.variable).toBe('REDIS_URL');
    expect(issues[0]?.message).not.toContain('hunter2');
    expect(issuesOf({ REDIS_URL: 'http://redis:6379' })).toEqual([
      { variable: 'REDIS_URL', message: 'must use the redis:// or rediss:// scheme, got http://' },
    ]);
    expect(issuesOf({ REDIS_URL: 'redis://h/abc' })[0]?.message).toMatch(/database/);
  });
});

describe('isRedisConfigured and describeRedisConfig', () => {
  it('says whether the environment names a Redis', () => {
    expect(isRedisConfigured({})).toBe(false);
    expect(isRedisConfigured({ REDIS_HOST: ' ' })).toBe(false);
    expect(isRedisConfigured({ REDIS_HOST: 'redis' })).toBe(true);
    expect(isRedisConfigured({ REDIS_URL: 'redis://x' })).toBe(true);
  });

  it('never shows the password', () => {
    const result = loadRedisConfig({ REDIS_PASSWORD: 'hunter2' });
    if (!result.ok) throw new Error('config should parse');
    const described = describeRedisConfig(result.value);
    expect(JSON.stringify(described)).not.toContain('hunter2');
    expect(described['password']).toBe('[redacted]');
    expect(describeRedisConfig({ ...result.value, password: undefined })['password']).toBe('none');
    expect(described['connectTimeoutMs']).toBe(REDIS_DEFAULTS.connectTimeoutMs);
  });
});

describe('Redis Sentinel settings', () => {
  it('reads the sentinels, the master name and the sentinel password', () => {
    const result = loadRedisConfig({
      REDIS_SENTINELS: 'sentinel-1:26379, 10.0.0.2:26380,[::1]:26381',
      REDIS_SENTINEL_MASTER: 'trading',
      REDIS_SENTINEL_PASSWORD: 's3cret',
    });
    expect(result.ok && result.value.sentinel).toEqual({
      sentinels: [
        { host: 'sentinel-1', port: 26_379 },
        { host: '10.0.0.2', port: 26_380 },
        { host: '::1', port: 26_381 },
      ],
      masterName: 'trading',
      username: undefined,
      password: 's3cret',
      tls: 'off',
    });
    expect(isRedisConfigured({ REDIS_SENTINELS: 'a:1' })).toBe(true);
    const described = JSON.stringify(describeRedisConfig(result.ok ? result.value : ({} as never)));
    expect(described).not.toContain('s3cret');
    expect(described).toContain('sentinel-1:26379');
  });

  it('defaults the master name to mymaster, and has no sentinel without REDIS_SENTINELS', () => {
    const result = loadRedisConfig({ REDIS_SENTINELS: 'a:26379' });
    expect(result.ok && result.value.sentinel?.masterName).toBe('mymaster');
    const plain = loadRedisConfig({});
    expect(plain.ok && plain.value.sentinel).toBeUndefined();
  });

  it.each([
    [
      { REDIS_SENTINELS: 'a:26379,b' },
      'REDIS_SENTINELS',
      'must be host:port pairs separated by commas, got "b"',
    ],
    [
      { REDIS_SENTINELS: 'a:99999' },
      'REDIS_SENTINELS',
      'must be host:port pairs separated by commas, got "a:99999"',
    ],
    [
      { REDIS_SENTINELS: 'a:1', REDIS_URL: 'redis://x' },
      'REDIS_SENTINELS',
      'cannot be combined with REDIS_URL: sentinels name the master themselves',
    ],
    [
      { REDIS_SENTINEL_MASTER: 'm' },
      'REDIS_SENTINEL_MASTER',
      'is set but REDIS_SENTINELS is not: list the sentinels as host:port,host:port',
    ],
    [
      { REDIS_SENTINEL_PASSWORD: 'p' },
      'REDIS_SENTINEL_PASSWORD',
      'is set but REDIS_SENTINELS is not: list the sentinels as host:port,host:port',
    ],
    [
      { REDIS_SENTINEL_TLS: 'on' },
      'REDIS_SENTINEL_TLS',
      'is set but REDIS_SENTINELS is not: list the sentinels as host:port,host:port',
    ],
    [
      { REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_TLS: 'yes' },
      'REDIS_SENTINEL_TLS',
      'must be one of off, on, insecure, true, false, 1, 0, got "yes"',
    ],
    [
      { REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_MASTER: 'bad name' },
      'REDIS_SENTINEL_MASTER',
      'must be 1-64 characters of [A-Za-z0-9_.-], got "bad name"',
    ],
  ])('names the variable when the sentinel settings are wrong: %o', (env, variable, message) => {
    expect(issuesOf(env)).toEqual([{ variable, message }]);
  });
});

describe('Redis Cluster settings', () => {
  it('reads the seed nodes, with the credentials and TLS of one Redis', () => {
    const result = loadRedisConfig({
      REDIS_CLUSTER_NODES: 'redis-1:7000, 10.0.0.2:7001,[::1]:7002',
      REDIS_USERNAME: 'node',
      REDIS_PASSWORD: 's3cret',
      REDIS_TLS: 'insecure',
    });
    expect(result.ok && result.value.cluster).toEqual({
      nodes: [
        { host: 'redis-1', port: 7_000 },
        { host: '10.0.0.2', port: 7_001 },
        { host: '::1', port: 7_002 },
      ],
    });
    expect(result.ok && [result.value.username, result.value.password, result.value.tls]).toEqual([
      'node',
      's3cret',
      'insecure',
    ]);
    expect(isRedisConfigured({ REDIS_CLUSTER_NODES: 'a:1' })).toBe(true);
    const described = JSON.stringify(describeRedisConfig(result.ok ? result.value : ({} as never)));
    expect(described).not.toContain('s3cret');
    expect(described).toContain('"nodes":["redis-1:7000","10.0.0.2:7001","::1:7002"]');
    const plain = loadRedisConfig({});
    expect(plain.ok && plain.value.cluster).toBeUndefined();
  });

  it.each([
    [
      { REDIS_CLUSTER_NODES: 'a:7000,b' },
      'REDIS_CLUSTER_NODES',
      'must be host:port pairs separated by commas, got "b"',
    ],
    [
      { REDIS_CLUSTER_NODES: ' , ' },
      'REDIS_CLUSTER_NODES',
      'must list at least one cluster node as host:port',
    ],
    [
      { REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINELS: 'a:26379' },
      'REDIS_CLUSTER_NODES',
      'cannot be combined with REDIS_SENTINELS: a Redis Cluster fails over by itself; set one of them',
    ],
    [
      { REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://u:p@x' },
      'REDIS_CLUSTER_NODES',
      'cannot be combined with REDIS_URL: the cluster nodes are the addresses; give credentials in REDIS_USERNAME/REDIS_PASSWORD and TLS in REDIS_TLS',
    ],
    [
      { REDIS_CLUSTER_NODES: 'a:7000', REDIS_HOST: 'redis' },
      'REDIS_CLUSTER_NODES',
      'cannot be combined with REDIS_HOST: the cluster nodes are the addresses; unset REDIS_HOST',
    ],
    [
      { REDIS_CLUSTER_NODES: 'a:7000', REDIS_DB: '2' },
      'REDIS_DB',
      'must be 0 with REDIS_CLUSTER_NODES: a Redis Cluster has database 0 only',
    ],
  ])('names the variable when the cluster settings are wrong: %o', (env, variable, message) => {
    expect(issuesOf(env)).toEqual([{ variable, message }]);
  });
});

describe('TLS settings', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-tls-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const pem = (name: string): string => {
    const file = path.join(dir, name);
    writeFileSync(file, `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n`);
    return file;
  };
  const ca = pem('ca.pem');
  const cert = pem('client.pem');
  const key = pem('client.key');

  it('reads the CA, client certificate and key files at load, and logs only their paths', () => {
    const result = loadRedisConfig({
      REDIS_TLS: 'on',
      REDIS_TLS_CA_FILE: ca,
      REDIS_TLS_CERT_FILE: cert,
      REDIS_TLS_KEY_FILE: key,
    });
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    expect(result.value.tlsFiles.ca).toEqual({
      file: ca,
      pem: '-----BEGIN CERTIFICATE-----\nca.pem\n-----END CERTIFICATE-----\n',
    });
    expect(result.value.tlsFiles.key?.file).toBe(key);
    const described = describeRedisConfig(result.value);
    expect(described['tls']).toBe(`on, verify: ca ${ca}, client cert ${cert}`);
    expect(JSON.stringify(described)).not.toContain('BEGIN');
  });

  it('says what is in force for Redis and for the sentinels', () => {
    const describe = (env: Record<string, string>) => {
      const result = loadRedisConfig(env);
      if (!result.ok) throw new Error(JSON.stringify(result.issues));
      return describeRedisConfig(result.value);
    };
    expect(describe({})['tls']).toBe('off');
    expect(describe({ REDIS_TLS: 'on' })['tls']).toBe('on, verify: system CAs');
    expect(describe({ REDIS_TLS: 'insecure' })['tls']).toBe('insecure (certificate not verified)');
    expect(describe({ REDIS_TLS: 'on', REDIS_TLS_SERVERNAME: 'redis.internal' })['tls']).toBe(
      'on, verify: system CAs, name redis.internal',
    );
    const withSentinels = describe({
      REDIS_SENTINELS: 's:26379',
      REDIS_SENTINEL_USERNAME: 'sentinel-user',
      REDIS_TLS: 'on',
      REDIS_TLS_CA_FILE: ca,
    });
    expect(withSentinels['tls']).toBe(`on, verify: ca ${ca}`);
    expect(withSentinels['sentinel']).toMatchObject({
      username: 'sentinel-user',
      tls: `on, verify: ca ${ca}`,
    });
    // The sentinels follow REDIS_TLS unless REDIS_SENTINEL_TLS says otherwise.
    const plainSentinels = describe({
      REDIS_SENTINELS: 's:26379',
      REDIS_SENTINEL_TLS: 'off',
      REDIS_TLS: 'on',
    });
    expect(plainSentinels['sentinel']).toMatchObject({ tls: 'off' });
    expect(plainSentinels['tls']).toBe('on, verify: system CAs');
  });

  it.each([
    [
      { REDIS_TLS_CA_FILE: ca },
      'REDIS_TLS_CA_FILE',
      'is set but TLS is off: set REDIS_TLS=on (or rediss:// in REDIS_URL) to use it',
    ],
    [
      { REDIS_TLS: 'insecure', REDIS_TLS_CA_FILE: ca },
      'REDIS_TLS_CA_FILE',
      'is set but REDIS_TLS=insecure verifies no certificate, so it would be ignored: set REDIS_TLS=on',
    ],
    [
      { REDIS_TLS: 'on', REDIS_TLS_CERT_FILE: cert },
      'REDIS_TLS_CERT_FILE',
      'is set but REDIS_TLS_KEY_FILE is not: a client certificate needs both',
    ],
    [
      { REDIS_TLS: 'on', REDIS_TLS_KEY_FILE: key },
      'REDIS_TLS_KEY_FILE',
      'is set but REDIS_TLS_CERT_FILE is not: a client certificate needs both',
    ],
    [
      { REDIS_TLS: 'on', REDIS_TLS_CA_FILE: path.join(dir, 'missing.pem') },
      'REDIS_TLS_CA_FILE',
      `cannot read ${path.join(dir, 'missing.pem')} (ENOENT): name a readable PEM file with the CA certificate(s) that signed the Redis certificate`,
    ],
    [
      { REDIS_TLS: 'on', REDIS_TLS_CA_FILE: dir },
      'REDIS_TLS_CA_FILE',
      `cannot read ${dir} (EISDIR): name a readable PEM file with the CA certificate(s) that signed the Redis certificate`,
    ],
  ])('refuses a combination that cannot work: %o', (env, variable, message) => {
    expect(issuesOf(env)).toEqual([{ variable, message }]);
  });

  it('refuses a file that is not PEM', () => {
    const notPem = path.join(dir, 'ca.der');
    writeFileSync(notPem, Buffer.from([0x30, 0x82, 0x01]));
    expect(issuesOf({ REDIS_TLS: 'on', REDIS_TLS_CA_FILE: notPem })).toEqual([
      {
        variable: 'REDIS_TLS_CA_FILE',
        message: `${notPem} is not a PEM file (no -----BEGIN line): it must hold the CA certificate(s) that signed the Redis certificate`,
      },
    ]);
  });

  it('accepts a CA file when only the sentinels use TLS', () => {
    expect(
      issuesOf({ REDIS_SENTINELS: 's:1', REDIS_SENTINEL_TLS: 'on', REDIS_TLS_CA_FILE: ca }),
    ).toEqual([]);
  });
});

describe('REDIS_PASSWORD_FILE', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-password-file-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string): string => {
    const out = path.join(dir, name);
    writeFileSync(out, content);
    return out;
  };

  it('reads the password from the file, without its trailing newline, and never shows it', () => {
    const result = loadRedisConfig({
      REDIS_USERNAME: 'api-gateway',
      REDIS_PASSWORD_FILE: file('gateway', 's3cret-from-file\n'),
    });
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    expect(result.value.password).toBe('s3cret-from-file');
    expect(JSON.stringify(describeRedisConfig(result.value))).not.toContain('s3cret');
  });

  it.each([
    [
      { REDIS_PASSWORD: 'p' },
      'is set, and so is a password (REDIS_PASSWORD or in REDIS_URL): set one of them',
    ],
    [
      { REDIS_URL: 'redis://u:p@h' },
      'is set, and so is a password (REDIS_PASSWORD or in REDIS_URL): set one of them',
    ],
  ])('refuses a second password: %o', (env, message) => {
    expect(issuesOf({ ...env, REDIS_PASSWORD_FILE: file('x', 'p') })).toEqual([
      { variable: 'REDIS_PASSWORD_FILE', message },
    ]);
  });

  it('refuses a missing file and an empty or multi-line one', () => {
    const missing = path.join(dir, 'missing');
    expect(issuesOf({ REDIS_PASSWORD_FILE: missing })).toEqual([
      {
        variable: 'REDIS_PASSWORD_FILE',
        message: `cannot read ${missing} (ENOENT): name a readable file holding the password`,
      },
    ]);
    const empty = file('empty', '\n');
    expect(issuesOf({ REDIS_PASSWORD_FILE: empty })).toEqual([
      { variable: 'REDIS_PASSWORD_FILE', message: `${empty} must hold the password on one line` },
    ]);
    const two = file('two', 'a\nb\n');
    expect(issuesOf({ REDIS_PASSWORD_FILE: two })).toEqual([
      { variable: 'REDIS_PASSWORD_FILE', message: `${two} must hold the password on one line` },
    ]);
  });
});
