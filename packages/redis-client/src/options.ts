import type { ClusterOptions, RedisOptions } from 'ioredis';
import { backoffDelayMs } from './backoff.ts';
import type { RedisConfig } from './config.ts';
import { tlsOptions } from './tls.ts';

/**
 * How a connection is used.
 * - `blocking`: BullMQ workers and queue events. Blocking commands (BZPOPMIN) wait longer than any
 *   command timeout, so there is none; commands wait through an outage (`maxRetriesPerRequest:
 *   null`, offline queue on), as BullMQ requires.
 * - `request`: request/response reads and writes (HTTP handlers, heartbeats, scheduler ticks) that
 *   must fail fast while Redis is down: no offline queue (a command while disconnected fails at
 *   once), a command timeout, at most one resend after a reconnect.
 */
export type ConnectionProfile = 'blocking' | 'request';

/** Redis errors after which the connection is dropped, dialled again and the command resent. */
const RECONNECT_ERRORS = /^(READONLY|LOADING)\b/;

/**
 * `reconnectOnError` policy: a `READONLY` reply means we reached a replica (a failover moved the
 * primary), `LOADING` a Redis still reading its data; both heal by reconnecting. Returns 2
 * (reconnect and resend the failed command) for those, false otherwise.
 */
export function reconnectOnRedisError(err: Error): 2 | false {
  return RECONNECT_ERRORS.test(err.message) ? 2 : false;
}

/** Client-side deadline of a blocking command that blocks forever (timeout 0), in ms. */
const BLOCKING_SAFETY_NET_MS = 60_000;

/** Options of one connection. */
export interface ConnectionOptions {
  profile: ConnectionProfile;
  /** `CLIENT SETNAME` value, so `CLIENT LIST` shows who holds the connection. No spaces. */
  connectionName: string;
}

/** Builds the ioredis options of one connection from the FR-038 config. Pure. */
export function buildRedisOptions(config: RedisConfig, options: ConnectionOptions): RedisOptions {
  const isBlocking = options.profile === 'blocking';
  const sentinel = config.sentinel;
  const tls = tlsOptions(config.tls, config.tlsFiles);
  return {
    ...(sentinel === undefined
      ? { host: config.host, port: config.port }
      : {
          // Every (re)connect asks the sentinels for the current master. (ioredis' failoverDetector
          // is left off: with it, a client that was reconnecting when the failover was announced
          // could end for good — seen in our failover tests.)
          sentinels: sentinel.sentinels,
          name: sentinel.masterName,
          role: 'master' as const,
          sentinelUsername: sentinel.username,
          sentinelPassword: sentinel.password,
          // Without these two ioredis dials the sentinels in clear and, whatever \`tls\` says, the
          // master too: the password and the data would cross the network unencrypted.
          sentinelTLS: tlsOptions(sentinel.tls, config.tlsFiles),
          enableTLSForSentinelMode: tls !== undefined,
          sentinelRetryStrategy: (attempt: number) =>
            backoffDelayMs(attempt, {
              baseDelayMs: config.reconnectBaseDelayMs,
              maxDelayMs: config.reconnectMaxDelayMs,
            }),
        }),
    username: config.username,
    password: config.password,
    db: config.db,
    ...(tls === undefined ? {} : { tls }),
    connectionName: options.connectionName,
    connectTimeout: config.connectTimeoutMs,
    // A request fails after the command timeout. A blocking command (BZPOPMIN with its own
    // timeout T) fails when no reply came within T plus the command timeout.
    commandTimeout: isBlocking ? undefined : config.commandTimeoutMs,
    blockingTimeout: isBlocking ? BLOCKING_SAFETY_NET_MS : undefined,
    blockingTimeoutGrace: isBlocking ? config.commandTimeoutMs : undefined,
    // retry_on_timeout: a socket that received nothing for the command timeout while a reply is
    // due is destroyed and dialled again, so the next attempt runs on a fresh connection. Not on
    // blocking connections, which legitimately wait longer.
    socketTimeout: !isBlocking && config.retryOnTimeout ? config.commandTimeoutMs : undefined,
    keepAlive: config.keepAliveMs,
    noDelay: true,
    // Never returns null: the client reconnects for as long as the process lives.
    retryStrategy: (attempt: number) =>
      backoffDelayMs(attempt, {
        baseDelayMs: config.reconnectBaseDelayMs,
        maxDelayMs: config.reconnectMaxDelayMs,
      }),
    reconnectOnError: reconnectOnRedisError,
    maxRetriesPerRequest: isBlocking ? null : 1,
    enableOfflineQueue: isBlocking,
    enableReadyCheck: true,
    // Connect in the background; callers see the state through events and `ping`.
    lazyConnect: false,
  };
}

/**
 * Builds the ioredis `Cluster` options of one connection from the FR-038 config (with
 * `REDIS_CLUSTER_NODES`). Pure. Each node's connection carries the single-Redis options of the
 * profile (credentials, TLS, timeouts, client name); the cluster as a whole reconnects with the
 * same backoff. ioredis dials every node with its own offline queue and no reconnect of its own (a
 * lost node is dropped and the slot map fetched again, which is how a failover is followed), so
 * the profile's fail-fast behaviour is the cluster's: no offline queue while the cluster is not
 * ready, at most one resend.
 */
export function buildClusterOptions(
  config: RedisConfig,
  options: ConnectionOptions,
): ClusterOptions {
  // Address and database are the cluster's; ioredis connects each node when it needs it.
  const {
    host: _host,
    port: _port,
    db: _db,
    lazyConnect: _lazy,
    retryStrategy,
    ...node
  } = buildRedisOptions({ ...config, sentinel: undefined }, options);
  const isBlocking = options.profile === 'blocking';
  return {
    redisOptions: node,
    clusterRetryStrategy: (attempt: number) => retryStrategy?.(attempt) ?? null,
    enableOfflineQueue: isBlocking,
    enableReadyCheck: true,
    scaleReads: 'master',
    // A killed master's slots answer "connection closed" until a replica is promoted (about the
    // cluster's node timeout); each retry waits this long and fetches the slot map again.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 100,
    maxRedirections: 16,
    slotsRefreshTimeout: config.connectTimeoutMs,
    // The slot map is fetched again on every MOVED and lost node; this is the safety net for a
    // promotion no command has stumbled on yet.
    slotsRefreshInterval: 2_000,
    // SSUBSCRIBE goes to the master of the channel's slot (the node's push channels are in the
    // `{scheduler}` slot, published from the plan write's script there), and is made again on the
    // promoted replica after a failover. No connection is made until something subscribes.
    shardedSubscribers: true,
    lazyConnect: false,
  };
}
