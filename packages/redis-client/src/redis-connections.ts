import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from '@ginkgo-live/runtime';
import type { RedisConfig } from './config.ts';
import { ConnectionMonitor, type ConnectionStatus } from './connection-monitor.ts';
import { pingRedis, type PingResult } from './health.ts';
import { buildClusterOptions, buildRedisOptions, type ConnectionProfile } from './options.ts';
import { clearSocketTimerOnClose } from './stale-socket-timer.ts';

export interface RedisConnectionsOptions {
  config: RedisConfig;
  /** App name, the second part of every client name (`ginkgo:<app>:<instance>:<purpose>`). */
  app: string;
  /** Instance of the app (node id, host-pid), the third part of every client name. */
  instanceId: string;
  logger: Logger;
}

interface Entry {
  client: Redis | Cluster;
  monitor: ConnectionMonitor;
  profile: ConnectionProfile;
}

/**
 * A cluster client whose `duplicate` also takes a single Redis's options (`duplicate({
 * connectionName })`), as the apps call it on their connections: those options go to every node.
 * Called as ioredis' `Cluster.duplicate(startupNodes?, options?)` (BullMQ does), it is that.
 */
class ClusterConnection extends Cluster {
  constructor(
    private readonly seeds: ClusterNode[],
    private readonly clusterOptions: ClusterOptions,
  ) {
    super(seeds, clusterOptions);
  }

  override duplicate(
    first?: ClusterNode[] | RedisOptions,
    second: ClusterOptions = {},
  ): ClusterConnection {
    if (first === undefined || Array.isArray(first)) {
      const nodes = first === undefined || first.length === 0 ? this.seeds : first;
      return new ClusterConnection(nodes, { ...this.clusterOptions, ...second });
    }
    return new ClusterConnection(this.seeds, {
      ...this.clusterOptions,
      redisOptions: { ...this.clusterOptions.redisOptions, ...first },
    });
  }
}

/** Purpose of the shared request connection. */
const SHARED = 'main';

/** Characters Redis refuses in a client name (spaces and newlines) become `-`. */
function clientNamePart(part: string): string {
  return part.replace(/[^\x21-\x7e]/g, '-');
}

/**
 * Every Redis connection of one process. A connection is created once per purpose, on first use,
 * and reused for the life of the process; each carries a client name so `CLIENT LIST` shows which
 * app, instance and purpose holds it, and each has a monitor that logs its state transitions.
 */
export class RedisConnections {
  private readonly entries = new Map<string, Entry>();
  private closing: Promise<void> | undefined;

  constructor(private readonly options: RedisConnectionsOptions) {}

  /** True when the connections are Redis Cluster clients (`REDIS_CLUSTER_NODES`). */
  get isCluster(): boolean {
    return this.options.config.cluster !== undefined;
  }

  /**
   * The process's shared fail-fast connection (`request` profile), for reads and writes. With
   * `REDIS_CLUSTER_NODES` it is an ioredis `Cluster` (typed as `Redis`, as the apps hold it): every
   * keyed command goes to its slot's master; a multi-key command must keep to one slot
   * (`mgetBySlot`, `groupBySlot`), and a keyless one (`INFO`, `WAIT`) reaches one node only.
   */
  get main(): Redis {
    return this.connection(SHARED, 'request');
  }

  /**
   * The connection for `purpose` with `profile`, created on the first call and returned again on
   * every later one. A BullMQ worker takes a `blocking` one; BullMQ duplicates it for its blocking
   * reads, so plan on two sockets per worker.
   */
  connection(purpose: string, profile: ConnectionProfile): Redis {
    return this.connectionLike(purpose, profile) as Redis;
  }

  /** `connection` typed as what it is: a `Cluster` with `REDIS_CLUSTER_NODES`, else a `Redis`. */
  connectionLike(purpose: string, profile: ConnectionProfile): Redis | Cluster {
    if (this.closing !== undefined) throw new Error('RedisConnections is closed');
    const existing = this.entries.get(purpose);
    if (existing !== undefined) {
      if (existing.profile !== profile) {
        throw new Error(`Connection "${purpose}" exists with profile ${existing.profile}`);
      }
      return existing.client;
    }
    const name = ['ginkgo', this.options.app, this.options.instanceId, purpose]
      .map(clientNamePart)
      .join(':');
    const { config } = this.options;
    let client: Redis | Cluster;
    if (config.cluster === undefined) {
      client = new Redis(buildRedisOptions(config, { profile, connectionName: name }));
      clearSocketTimerOnClose(client);
    } else {
      client = new ClusterConnection(
        config.cluster.nodes,
        buildClusterOptions(config, { profile, connectionName: name }),
      );
    }
    const monitor = new ConnectionMonitor(client, { name, logger: this.options.logger });
    this.entries.set(purpose, { client, monitor, profile });
    return client;
  }

  /** How many connections this process holds. */
  get size(): number {
    return this.entries.size;
  }

  /** The status of every connection. */
  statuses(): ConnectionStatus[] {
    return [...this.entries.values()].map((entry) => entry.monitor.status());
  }

  /** A health ping on the shared connection, with the configured ping timeout. */
  ping(): Promise<PingResult> {
    return pingRedis(this.connectionLike(SHARED, 'request'), this.options.config.pingTimeoutMs);
  }

  /**
   * Waits until the shared connection is ready, or `timeoutMs` passes. Resolves to whether it is
   * ready; never rejects, so a process can start while Redis is down and heal later.
   */
  async waitUntilReady(timeoutMs: number): Promise<boolean> {
    const client = this.connectionLike(SHARED, 'request');
    if (client.status === 'ready') return true;
    return new Promise<boolean>((resolve) => {
      const onReady = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        client.off('ready', onReady);
        resolve(false);
      }, timeoutMs);
      client.once('ready', onReady);
    });
  }

  /**
   * Closes every connection: QUIT (pending replies arrive first), then a hard disconnect of any
   * connection that has not closed within `timeoutMs`. Idempotent.
   */
  close(timeoutMs = 2_000): Promise<void> {
    this.closing ??= Promise.all(
      [...this.entries.values()].map((entry) => closeOne(entry, timeoutMs)),
    ).then(() => undefined);
    return this.closing;
  }
}

async function closeOne(entry: Entry, timeoutMs: number): Promise<void> {
  const { client } = entry;
  entry.monitor.expectClose();
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      client.disconnect();
      resolve();
    }, timeoutMs);
  });
  const quit = client.quit().then(
    () => undefined,
    // QUIT fails when the connection dropped meanwhile; disconnecting is all that is left.
    () => client.disconnect(),
  );
  try {
    await Promise.race([quit, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
