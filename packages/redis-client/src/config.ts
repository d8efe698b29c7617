import { z } from 'zod';
import {
  envBool,
  envDurationMs,
  envEnum,
  envInt,
  envString,
  parseEnv,
  readSecretFile,
  type ConfigResult,
  type Env,
} from '@ginkgo-live/runtime';
import {
  describeTls,
  NO_TLS_FILES,
  readPemFile,
  type RedisTlsFiles,
  type RedisTlsMode,
} from './tls.ts';

export type { RedisTlsMode } from './tls.ts';

/** The FR-038 configuration shared by every app. Every field comes from one variable. */
export interface RedisConfig {
  /** `REDIS_HOST`, default `localhost` (compose sets `redis`). Resolved again on every connect. */
  host: string;
  /** `REDIS_PORT`, default 6379. */
  port: number;
  /** `REDIS_USERNAME` (ACL user), default none. */
  username: string | undefined;
  /**
   * `REDIS_PASSWORD`, or the content of `REDIS_PASSWORD_FILE` (a Docker secret: each container
   * sees only its own user's password), default none. Never logged.
   */
  password: string | undefined;
  /** `REDIS_DB`, default 0. */
  db: number;
  /** `REDIS_TLS`: off | on | insecure (also true/1, false/0), default off; `rediss://` implies on. */
  tls: RedisTlsMode;
  /**
   * `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE`, `REDIS_TLS_KEY_FILE`, `REDIS_TLS_SERVERNAME`: read
   * at load, so a missing file is a configuration error, not a reconnect loop. Used by every TLS
   * connection, to Redis and to the sentinels.
   */
  tlsFiles: RedisTlsFiles;
  /** Where host and credentials came from: `REDIS_URL` or the separate variables. */
  source: 'url' | 'variables';
  /** `REDIS_CONNECT_TIMEOUT_MS` (redis-py `socket_connect_timeout`), default 5000 ms. */
  connectTimeoutMs: number;
  /** `REDIS_COMMAND_TIMEOUT_MS` (redis-py `socket_timeout`), default 2000 ms. */
  commandTimeoutMs: number;
  /**
   * `REDIS_RETRY_ON_TIMEOUT` (redis-py `retry_on_timeout`), default true. A connection on which a
   * command timed out is dropped and dialled again, so the caller's retry runs on a fresh socket;
   * connect timeouts are retried by the reconnect backoff.
   */
  retryOnTimeout: boolean;
  /** `REDIS_RECONNECT_BASE_DELAY_MS`: first reconnect delay before jitter, default 100 ms. */
  reconnectBaseDelayMs: number;
  /** `REDIS_RECONNECT_MAX_DELAY_MS`: cap of the reconnect delay, default 5000 ms. */
  reconnectMaxDelayMs: number;
  /** `REDIS_KEEPALIVE_MS`: idle time before TCP keep-alive probes, default 10000 ms; 0 turns it off. */
  keepAliveMs: number;
  /** `REDIS_PING_TIMEOUT_MS`: deadline of a health ping, default 1000 ms. */
  pingTimeoutMs: number;
  /** `REDIS_KEY_PREFIX`: global prefix of every key and queue, default none. */
  keyPrefix: string;
  /**
   * Redis Sentinel, when `REDIS_SENTINELS` lists sentinels (`host:port,host:port`): every
   * connection asks them for the current master of `REDIS_SENTINEL_MASTER` (default `mymaster`) and
   * follows a failover by itself; `host`/`port` are then unused. `REDIS_SENTINEL_USERNAME` and
   * `REDIS_SENTINEL_PASSWORD` authenticate to the sentinels (the password is never logged);
   * `REDIS_SENTINEL_TLS` (default: as `REDIS_TLS`) says how to reach them. Undefined without
   * sentinels.
   */
  sentinel:
    | {
        sentinels: { host: string; port: number }[];
        masterName: string;
        username: string | undefined;
        password: string | undefined;
        tls: RedisTlsMode;
      }
    | undefined;
  /**
   * Redis Cluster, when `REDIS_CLUSTER_NODES` lists seed nodes (`host:port,host:port`; any few
   * masters or replicas — the client learns the rest from `CLUSTER SLOTS`): every connection is a
   * cluster client that sends each command to the master of its key's slot and follows a failover
   * by itself. Username, password and TLS are those of one Redis (`REDIS_USERNAME`,
   * `REDIS_PASSWORD`/`_FILE`, `REDIS_TLS*`), used on every node; `host`/`port`/`db` are then unused.
   * Undefined without it.
   */
  cluster: { nodes: { host: string; port: number }[] } | undefined;
}

/** Defaults of FR-038 (docs/architecture.md, "Defaults"). */
export const REDIS_DEFAULTS = {
  host: 'localhost',
  port: 6379,
  db: 0,
  connectTimeoutMs: 5_000,
  commandTimeoutMs: 2_000,
  retryOnTimeout: true,
  reconnectBaseDelayMs: 100,
  reconnectMaxDelayMs: 5_000,
  keepAliveMs: 10_000,
  pingTimeoutMs: 1_000,
} as const;

const TLS_WORDS = ['off', 'on', 'insecure', 'true', 'false', '1', '0'] as const;

function tlsMode(word: (typeof TLS_WORDS)[number]): RedisTlsMode {
  if (word === 'true' || word === '1') return 'on';
  if (word === 'false' || word === '0') return 'off';
  return word;
}

interface UrlParts {
  host: string;
  port: number;
  username: string | undefined;
  password: string | undefined;
  db: number | undefined;
  tls: boolean;
}

/** Parses `redis://` / `rediss://` URLs. The URL may hold a password, so errors never echo it. */
function parseRedisUrl(raw: string): UrlParts | string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be a URL like redis://[user:password@]host[:port][/db] (value not shown: it may hold a password)';
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    return `must use the redis:// or rediss:// scheme, got ${url.protocol}//`;
  }
  if (url.hostname === '') return 'must name a host';
  const port = url.port === '' ? REDIS_DEFAULTS.port : Number(url.port);
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d+$/.test(path))
    return `database in the path must be a number, got "${path}"`;
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port,
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    db: path === '' ? undefined : Number(path),
    tls: url.protocol === 'rediss:',
  };
}

const redisEnvSchema = z
  .object({
    REDIS_URL: envString(),
    REDIS_HOST: envString(),
    REDIS_PORT: envInt({ default: REDIS_DEFAULTS.port, min: 1, max: 65_535 }),
    REDIS_USERNAME: envString(),
    REDIS_PASSWORD: envString(),
    REDIS_PASSWORD_FILE: envString(),
    REDIS_DB: envInt({ default: REDIS_DEFAULTS.db, min: 0, max: 15 }),
    REDIS_TLS: envEnum(TLS_WORDS, 'off'),
    REDIS_CONNECT_TIMEOUT_MS: envDurationMs(REDIS_DEFAULTS.connectTimeoutMs, 1),
    REDIS_COMMAND_TIMEOUT_MS: envDurationMs(REDIS_DEFAULTS.commandTimeoutMs, 1),
    REDIS_RETRY_ON_TIMEOUT: envBool(REDIS_DEFAULTS.retryOnTimeout),
    REDIS_RECONNECT_BASE_DELAY_MS: envDurationMs(REDIS_DEFAULTS.reconnectBaseDelayMs, 1),
    REDIS_RECONNECT_MAX_DELAY_MS: envDurationMs(REDIS_DEFAULTS.reconnectMaxDelayMs, 1),
    REDIS_KEEPALIVE_MS: envDurationMs(REDIS_DEFAULTS.keepAliveMs),
    REDIS_PING_TIMEOUT_MS: envDurationMs(REDIS_DEFAULTS.pingTimeoutMs, 1),
    REDIS_KEY_PREFIX: envString(),
    REDIS_SENTINELS: envString(),
    REDIS_CLUSTER_NODES: envString(),
    REDIS_SENTINEL_MASTER: envString(),
    REDIS_SENTINEL_USERNAME: envString(),
    REDIS_SENTINEL_PASSWORD: envString(),
    REDIS_SENTINEL_TLS: envString(),
    REDIS_TLS_CA_FILE: envString(),
    REDIS_TLS_CERT_FILE: envString(),
    REDIS_TLS_KEY_FILE: envString(),
    REDIS_TLS_SERVERNAME: envString(),
  })
  .transform((env, ctx): RedisConfig => {
    if (env.REDIS_KEY_PREFIX !== undefined && /[{}]/.test(env.REDIS_KEY_PREFIX)) {
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_KEY_PREFIX'],
        message:
          'must not contain { or }: keys carry their own Redis Cluster hash tags, and a tag in the prefix would put every key in one slot',
      });
    }
    let cluster: RedisConfig['cluster'];
    if (env.REDIS_CLUSTER_NODES !== undefined) {
      const nodes = parseAddresses(env.REDIS_CLUSTER_NODES, 'cluster node');
      if (typeof nodes === 'string') {
        ctx.addIssue({ code: 'custom', path: ['REDIS_CLUSTER_NODES'], message: nodes });
        return z.NEVER;
      }
      const clash = CLUSTER_EXCLUDES.find((variable) => env[variable] !== undefined);
      if (clash !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['REDIS_CLUSTER_NODES'],
          message: CLUSTER_CLASH[clash],
        });
        return z.NEVER;
      }
      if (env.REDIS_DB !== 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['REDIS_DB'],
          message: 'must be 0 with REDIS_CLUSTER_NODES: a Redis Cluster has database 0 only',
        });
        return z.NEVER;
      }
      cluster = { nodes };
    }
    let sentinel: RedisConfig['sentinel'];
    if (env.REDIS_SENTINELS !== undefined) {
      const sentinels = parseAddresses(env.REDIS_SENTINELS, 'sentinel');
      if (typeof sentinels === 'string') {
        ctx.addIssue({ code: 'custom', path: ['REDIS_SENTINELS'], message: sentinels });
        return z.NEVER;
      }
      if (env.REDIS_URL !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['REDIS_SENTINELS'],
          message: 'cannot be combined with REDIS_URL: sentinels name the master themselves',
        });
        return z.NEVER;
      }
      const masterName = env.REDIS_SENTINEL_MASTER ?? 'mymaster';
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(masterName)) {
        ctx.addIssue({
          code: 'custom',
          path: ['REDIS_SENTINEL_MASTER'],
          message: `must be 1-64 characters of [A-Za-z0-9_.-], got "${masterName}"`,
        });
        return z.NEVER;
      }
      let sentinelTls = tlsMode(env.REDIS_TLS);
      if (env.REDIS_SENTINEL_TLS !== undefined) {
        const word = TLS_WORDS.find((w) => w === env.REDIS_SENTINEL_TLS?.toLowerCase());
        if (word === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['REDIS_SENTINEL_TLS'],
            message: `must be one of ${TLS_WORDS.join(', ')}, got "${env.REDIS_SENTINEL_TLS}"`,
          });
          return z.NEVER;
        }
        sentinelTls = tlsMode(word);
      }
      sentinel = {
        sentinels,
        masterName,
        username: env.REDIS_SENTINEL_USERNAME,
        password: env.REDIS_SENTINEL_PASSWORD,
        tls: sentinelTls,
      };
    } else {
      for (const variable of SENTINEL_ONLY) {
        if (env[variable] === undefined) continue;
        ctx.addIssue({
          code: 'custom',
          path: [variable],
          message: 'is set but REDIS_SENTINELS is not: list the sentinels as host:port,host:port',
        });
        return z.NEVER;
      }
    }
    let url: UrlParts | undefined;
    if (env.REDIS_URL !== undefined) {
      const parsed = parseRedisUrl(env.REDIS_URL);
      if (typeof parsed === 'string') {
        ctx.addIssue({ code: 'custom', path: ['REDIS_URL'], message: parsed });
        return z.NEVER;
      }
      url = parsed;
    }
    if (env.REDIS_RECONNECT_BASE_DELAY_MS > env.REDIS_RECONNECT_MAX_DELAY_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_RECONNECT_BASE_DELAY_MS'],
        message: `must not exceed REDIS_RECONNECT_MAX_DELAY_MS (${env.REDIS_RECONNECT_MAX_DELAY_MS})`,
      });
      return z.NEVER;
    }
    let password = url?.password ?? env.REDIS_PASSWORD;
    if (env.REDIS_PASSWORD_FILE !== undefined) {
      const read = readPasswordFile(env.REDIS_PASSWORD_FILE, password !== undefined);
      if (read.problem !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['REDIS_PASSWORD_FILE'], message: read.problem });
        return z.NEVER;
      }
      password = read.password;
    }
    const explicitTls = tlsMode(env.REDIS_TLS);
    // rediss:// turns TLS on; REDIS_TLS=insecure may still relax verification.
    const tls = url?.tls === true && explicitTls === 'off' ? 'on' : explicitTls;
    const tlsFiles = readTlsFiles(env, [tls, ...(sentinel === undefined ? [] : [sentinel.tls])]);
    if ('variable' in tlsFiles) {
      ctx.addIssue({ code: 'custom', path: [tlsFiles.variable], message: tlsFiles.message });
      return z.NEVER;
    }
    return {
      host: url?.host ?? env.REDIS_HOST ?? REDIS_DEFAULTS.host,
      port: url?.port ?? env.REDIS_PORT,
      username: url?.username ?? env.REDIS_USERNAME,
      password,
      db: url?.db ?? env.REDIS_DB,
      tls,
      tlsFiles,
      source: url === undefined ? 'variables' : 'url',
      connectTimeoutMs: env.REDIS_CONNECT_TIMEOUT_MS,
      commandTimeoutMs: env.REDIS_COMMAND_TIMEOUT_MS,
      retryOnTimeout: env.REDIS_RETRY_ON_TIMEOUT,
      reconnectBaseDelayMs: env.REDIS_RECONNECT_BASE_DELAY_MS,
      reconnectMaxDelayMs: env.REDIS_RECONNECT_MAX_DELAY_MS,
      keepAliveMs: env.REDIS_KEEPALIVE_MS,
      pingTimeoutMs: env.REDIS_PING_TIMEOUT_MS,
      keyPrefix: env.REDIS_KEY_PREFIX ?? '',
      sentinel,
      cluster,
    };
  });

/** The password in a file (one line; a trailing newline is not part of it). */
function readPasswordFile(
  file: string,
  alsoGiven: boolean,
): { password: string; problem?: undefined } | { problem: string } {
  if (alsoGiven) {
    return {
      problem: 'is set, and so is a password (REDIS_PASSWORD or in REDIS_URL): set one of them',
    };
  }
  const read = readSecretFile(file);
  return 'problem' in read ? read : { password: read.value };
}

/** Settings that mean something only with `REDIS_SENTINELS`. */
const SENTINEL_ONLY = [
  'REDIS_SENTINEL_MASTER',
  'REDIS_SENTINEL_USERNAME',
  'REDIS_SENTINEL_PASSWORD',
  'REDIS_SENTINEL_TLS',
] as const;

type TlsEnv = Record<
  'REDIS_TLS_CA_FILE' | 'REDIS_TLS_CERT_FILE' | 'REDIS_TLS_KEY_FILE' | 'REDIS_TLS_SERVERNAME',
  string | undefined
>;

/**
 * The certificate settings, checked against the TLS modes in use (Redis's, and the sentinels'):
 * a combination that cannot work is one issue naming the setting, never a silent ignore.
 */
function readTlsFiles(
  env: TlsEnv,
  modes: RedisTlsMode[],
): RedisTlsFiles | { variable: string; message: string } {
  const set = (
    [
      'REDIS_TLS_CA_FILE',
      'REDIS_TLS_CERT_FILE',
      'REDIS_TLS_KEY_FILE',
      'REDIS_TLS_SERVERNAME',
    ] as const
  ).filter((v) => env[v] !== undefined);
  if (set.length === 0) return NO_TLS_FILES;
  const first = set[0] ?? 'REDIS_TLS_CA_FILE';
  if (modes.every((m) => m === 'off')) {
    return {
      variable: first,
      message: 'is set but TLS is off: set REDIS_TLS=on (or rediss:// in REDIS_URL) to use it',
    };
  }
  const verifies = modes.some((m) => m === 'on');
  for (const variable of ['REDIS_TLS_CA_FILE', 'REDIS_TLS_SERVERNAME'] as const) {
    if (env[variable] !== undefined && !verifies) {
      return {
        variable,
        message:
          'is set but REDIS_TLS=insecure verifies no certificate, so it would be ignored: set REDIS_TLS=on',
      };
    }
  }
  if ((env.REDIS_TLS_CERT_FILE === undefined) !== (env.REDIS_TLS_KEY_FILE === undefined)) {
    const [has, lacks] =
      env.REDIS_TLS_CERT_FILE === undefined
        ? ['REDIS_TLS_KEY_FILE', 'REDIS_TLS_CERT_FILE']
        : ['REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE'];
    return {
      variable: has,
      message: `is set but ${lacks} is not: a client certificate needs both`,
    };
  }
  const out: RedisTlsFiles = { ...NO_TLS_FILES, servername: env.REDIS_TLS_SERVERNAME };
  const files = [
    ['REDIS_TLS_CA_FILE', 'ca', 'the CA certificate(s) that signed the Redis certificate'],
    ['REDIS_TLS_CERT_FILE', 'cert', 'the client certificate'],
    ['REDIS_TLS_KEY_FILE', 'key', "the client certificate's private key"],
  ] as const;
  for (const [variable, field, kind] of files) {
    const file = env[variable];
    if (file === undefined) continue;
    const read = readPemFile(file, kind);
    if (typeof read === 'string') return { variable, message: read };
    out[field] = read;
  }
  return out;
}

/** Settings that cannot go with `REDIS_CLUSTER_NODES`, and why. */
const CLUSTER_CLASH = {
  REDIS_SENTINELS:
    'cannot be combined with REDIS_SENTINELS: a Redis Cluster fails over by itself; set one of them',
  REDIS_URL:
    'cannot be combined with REDIS_URL: the cluster nodes are the addresses; give credentials in REDIS_USERNAME/REDIS_PASSWORD and TLS in REDIS_TLS',
  REDIS_HOST:
    'cannot be combined with REDIS_HOST: the cluster nodes are the addresses; unset REDIS_HOST',
} as const;
const CLUSTER_EXCLUDES = Object.keys(CLUSTER_CLASH) as (keyof typeof CLUSTER_CLASH)[];

/** `host:port,host:port` → the addresses (of sentinels, of cluster nodes), or what is wrong. */
function parseAddresses(raw: string, what: string): { host: string; port: number }[] | string {
  const parts = raw
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (parts.length === 0) return `must list at least one ${what} as host:port`;
  const out: { host: string; port: number }[] = [];
  for (const part of parts) {
    const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(part);
    const port = Number(match?.[2]);
    if (match === null || port < 1 || port > 65_535)
      return `must be host:port pairs separated by commas, got "${part}"`;
    out.push({ host: (match[1] ?? '').replace(/^\[(.*)\]$/, '$1'), port });
  }
  return out;
}

/**
 * Reads the Redis configuration from the environment. Pure: importing or calling it connects to
 * nothing. `REDIS_URL`, when set, wins over `REDIS_HOST`/`PORT`/`USERNAME`/`PASSWORD`/`DB`.
 */
export function loadRedisConfig(env: Env): ConfigResult<RedisConfig> {
  return parseEnv(redisEnvSchema, env);
}

/** True when the environment names a Redis to use (rather than leaving the choice to a launcher). */
export function isRedisConfigured(env: Env): boolean {
  return [
    env['REDIS_URL'],
    env['REDIS_HOST'],
    env['REDIS_SENTINELS'],
    env['REDIS_CLUSTER_NODES'],
  ].some((v) => v !== undefined && v.trim() !== '');
}

/** The config as it may be logged: the password is replaced by whether one is set. */
export function describeRedisConfig(config: RedisConfig): Record<string, unknown> {
  const { password, sentinel, cluster, tls, tlsFiles, ...rest } = config;
  return {
    ...rest,
    // What is really in force, not the raw setting: `on, verify: ca /etc/redis/ca.pem`.
    tls: describeTls(tls, tlsFiles),
    password: password === undefined ? 'none' : '[redacted]',
    ...(sentinel === undefined
      ? {}
      : {
          sentinel: {
            sentinels: sentinel.sentinels.map((s) => `${s.host}:${s.port}`),
            masterName: sentinel.masterName,
            username: sentinel.username ?? 'none',
            password: sentinel.password === undefined ? 'none' : '[redacted]',
            tls: describeTls(sentinel.tls, tlsFiles),
          },
        }),
    ...(cluster === undefined
      ? {}
      : { cluster: { nodes: cluster.nodes.map((n) => `${n.host}:${n.port}`) } }),
  };
}
