import { Cluster, type Redis } from 'ioredis';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from '@ginkgo-live/runtime';

/** Where a connection stands, as told by its events. */
export type ConnectionState =
  'connecting' | 'connected' | 'ready' | 'disconnected' | 'reconnecting' | 'closed';

/** A snapshot of one connection, for health answers and metrics. */
export interface ConnectionStatus {
  /** The connection's client name. */
  name: string;
  state: ConnectionState;
  /** Reconnect attempts since the connection was last ready. */
  attempt: number;
  /** Times the connection has become ready (1 after the first connect). */
  readyCount: number;
  /** Last connection error since the connection was last ready. */
  lastError: string | undefined;
  /** When the state last changed (epoch ms). */
  sinceMs: number;
}

export interface ConnectionMonitorOptions {
  name: string;
  logger: Logger;
  /** Clock, injectable for tests. Default `Date.now`. */
  now?: () => number;
}

/** What one ioredis TLS option object puts in force. */
function tlsInForce(tls: ConnectionOptions | undefined): string {
  if (tls === undefined) return 'off';
  if (tls.rejectUnauthorized === false) return 'insecure (certificate not verified)';
  const parts = ['on', `verify: ${tls.ca === undefined ? 'system CAs' : 'REDIS_TLS_CA_FILE'}`];
  if (tls.cert !== undefined) parts.push('client cert');
  return parts.join(', ');
}

/** The FR-038 settings a client carries, as ioredis holds them (not as they were configured). */
export function clientSettings(client: Redis | Cluster): Record<string, unknown> {
  if (client instanceof Cluster) {
    const c = client.options;
    const node = c.redisOptions ?? {};
    return {
      cluster: 'on',
      tls: tlsInForce(node.tls),
      connectTimeoutMs: node.connectTimeout,
      commandTimeoutMs: node.commandTimeout ?? null,
      socketTimeoutMs: node.socketTimeout ?? null,
      maxRetriesPerRequest: node.maxRetriesPerRequest,
      offlineQueue: c.enableOfflineQueue,
      keepAliveMs: node.keepAlive,
      reconnectDelaysMs: [1, 2, 3, 10].map(
        (attempt) => (c.clusterRetryStrategy?.(attempt) as number | null | undefined) ?? null,
      ),
    };
  }
  const o = client.options;
  // With Sentinel, ioredis uses \`tls\` for the master only when enableTLSForSentinelMode is set.
  const sentinel = (o.sentinels?.length ?? 0) > 0;
  return {
    tls: tlsInForce(sentinel && o.enableTLSForSentinelMode !== true ? undefined : o.tls),
    ...(sentinel ? { sentinelTls: tlsInForce(o.sentinelTLS) } : {}),
    connectTimeoutMs: o.connectTimeout,
    commandTimeoutMs: o.commandTimeout ?? null,
    // retry on timeout: a socket silent for this long while a reply is due is dialled again.
    socketTimeoutMs: o.socketTimeout ?? null,
    maxRetriesPerRequest: o.maxRetriesPerRequest,
    offlineQueue: o.enableOfflineQueue,
    keepAliveMs: o.keepAlive,
    // The backoff's first reconnect delays (capped jitter: each at most the cap).
    reconnectDelaysMs: [1, 2, 3, 10].map((attempt) => o.retryStrategy?.(attempt) ?? null),
  };
}

/** How often one cluster node's loss or errors are warned about; the rest go to debug. */
const NODE_WARNING_EVERY_MS = 60_000;

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
]);

/**
 * What to change when a connection error is a TLS or login problem, which no reconnect will heal;
 * undefined for the rest (a Redis down, a network cut).
 */
export function explainRedisError(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (UNTRUSTED.has(code)) {
    return "TLS: Redis's certificate is not signed by a CA this client trusts: set REDIS_TLS_CA_FILE to the CA that signed it";
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return "TLS: Redis's certificate does not name the host dialled: dial a name it has, or set REDIS_TLS_SERVERNAME to one";
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `TLS: Redis's certificate is outside its validity period (${code})`;
  }
  if (/^WRONGPASS/.test(err.message)) {
    return 'Redis refused the login: check REDIS_USERNAME and REDIS_PASSWORD (REDIS_SENTINEL_USERNAME/PASSWORD for the sentinels)';
  }
  if (/^NOPERM/.test(err.message)) {
    return "Redis's ACL forbids this user a command or key it needs: see the ACL table in packages/redis-client/README.md";
  }
  return undefined;
}

/**
 * Follows a connection's events and logs each state transition once: connected, reconnecting
 * (first attempt, with its delay), ready, closed. Retries inside one outage go to debug, so a Redis
 * that stays down for an hour writes a handful of lines, not thousands. It is also the connection's
 * `'error'` listener, without which an EventEmitter error would crash the process.
 */
export class ConnectionMonitor {
  private state: ConnectionState = 'connecting';
  private attempt = 0;
  private readyCount = 0;
  private lastError: string | undefined;
  private sinceMs: number;
  private outageStartMs: number | undefined;
  private isClosing = false;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly detachers: (() => void)[] = [];

  constructor(
    private readonly client: Redis | Cluster,
    private readonly options: ConnectionMonitorOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.sinceMs = this.now();
    this.log = options.logger.child({ component: 'redis', connection: options.name });
    this.on(client, 'connect', () => this.onConnect());
    this.on(client, 'ready', () => this.onReady());
    this.on(client, 'close', () => this.onClose());
    this.on(client, 'reconnecting', (delayMs: unknown) => this.onReconnecting(Number(delayMs)));
    this.on(client, 'error', (err: unknown) => this.onError(err));
    this.on(client, 'end', () => this.onEnd());
    if (client instanceof Cluster) {
      // A cluster stays ready while one shard fails over: its nodes' errors are the news.
      this.on(client, '-node', (node: unknown) => this.onNode('dropped', node));
      this.on(client, '+node', (node: unknown) => this.onNode('added', node));
      this.on(client, 'node error', (err: unknown, address: unknown) =>
        this.onNodeError(err, String(address)),
      );
    }
  }

  /** The connection's current status. */
  status(): ConnectionStatus {
    return {
      name: this.options.name,
      state: this.state,
      attempt: this.attempt,
      readyCount: this.readyCount,
      lastError: this.lastError,
      sinceMs: this.sinceMs,
    };
  }

  /** Says the coming close is ours (QUIT on shutdown): not an outage, no warning. */
  expectClose(): void {
    this.isClosing = true;
  }

  /** Removes every listener this monitor added. */
  detach(): void {
    for (const detach of this.detachers.splice(0)) detach();
  }

  private on(client: Redis | Cluster, event: string, listener: (...args: unknown[]) => void): void {
    client.on(event, listener);
    this.detachers.push(() => client.off(event, listener));
  }

  private moveTo(state: ConnectionState): boolean {
    if (this.state === state) return false;
    this.state = state;
    this.sinceMs = this.now();
    return true;
  }

  private onConnect(): void {
    if (!this.moveTo('connected')) return;
    // During an outage a server may accept TCP and still fail the ready check (frozen, loading):
    // those connects are retries, not news.
    if (this.attempt === 0) this.log.info('Redis connected');
    else this.log.debug('Redis connected during reconnect', { attempt: this.attempt });
  }

  private onReady(): void {
    const downtimeMs =
      this.outageStartMs === undefined ? undefined : this.now() - this.outageStartMs;
    if (this.moveTo('ready')) {
      this.readyCount += 1;
      this.log.info('Redis connection ready', {
        attempts: this.attempt,
        ...(downtimeMs === undefined ? {} : { downtimeMs }),
        // The first time, what the connection really carries (FR-038), read back from the client.
        ...(this.readyCount === 1 ? { settings: clientSettings(this.client) } : {}),
      });
    }
    this.attempt = 0;
    this.lastError = undefined;
    this.outageStartMs = undefined;
  }

  private onClose(): void {
    const wasReady = this.state === 'ready';
    this.moveTo('disconnected');
    if (wasReady && !this.isClosing) {
      this.outageStartMs = this.now();
      this.log.warn('Redis connection lost');
    }
  }

  private onReconnecting(delayMs: number): void {
    this.attempt += 1;
    this.outageStartMs ??= this.now();
    this.moveTo('reconnecting');
    if (this.attempt === 1) {
      this.log.warn('Redis reconnecting', { attempt: this.attempt, delayMs });
    } else {
      this.log.debug('Redis reconnect attempt', { attempt: this.attempt, delayMs });
    }
  }

  private onError(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (message === this.lastError) {
      this.log.debug('Redis connection error repeated', { err });
      return;
    }
    this.lastError = message;
    const hint = explainRedisError(err);
    this.log.warn('Redis connection error', { err, ...(hint === undefined ? {} : { hint }) });
  }

  /** When each node address was last warned about (lost or failing), epoch ms. */
  private readonly nodeWarnedAt = new Map<string, number>();

  /**
   * A node that died is dialled again from every slot map fetched before its replica took over,
   * and fails each time, for as long as the failover takes: one warning per address and minute,
   * the rest at debug.
   */
  private warnNode(address: string, message: string, meta: Record<string, unknown>): void {
    const last = this.nodeWarnedAt.get(address);
    if (last !== undefined && this.now() - last < NODE_WARNING_EVERY_MS) {
      this.log.debug(message, { address, ...meta });
      return;
    }
    this.nodeWarnedAt.set(address, this.now());
    this.log.warn(message, { address, ...meta });
  }

  /**
   * A node dropped or added to the client's pool: news at debug only. With sharded subscribers
   * ioredis drops and re-adds every shard's subscriber when the slot map changes, so a drop is not
   * a lost node; a node that is really gone shows as its errors.
   */
  private onNode(change: 'dropped' | 'added', node: unknown): void {
    const options = (node as { options?: { host?: string; port?: number } }).options;
    const address = `${options?.host ?? '?'}:${options?.port ?? '?'}`;
    this.log.debug(`Redis cluster node ${change}`, { address });
  }

  private onNodeError(err: unknown, address: string): void {
    if (this.isClosing) return;
    this.warnNode(address, 'Redis cluster node error', { err });
  }

  private onEnd(): void {
    if (this.moveTo('closed')) this.log.info('Redis connection closed');
  }
}
