import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { freePort } from './free-port.ts';
import { RedisServer } from './redis-server.ts';
import { waitFor } from './wait-for.ts';

const run = promisify(execFile);

export interface RedisClusterOptions {
  /** Masters sharing the 16,384 slots. Default 3. */
  masters?: number;
  /** Replicas of each master (`--cluster-replicas`). Default 0. */
  replicas?: number;
  /**
   * `cluster-node-timeout` in ms (default 2000): how long a master may not answer before the
   * others judge it failed and its replica takes over.
   */
  nodeTimeoutMs?: number;
  /**
   * An ACL-enabled cluster: every node loads `file`, the harness logs in as `admin` (cluster
   * create, its checks and its client), and replicas sync as `replica` (`masteruser`/`masterauth`).
   */
  acl?: {
    file: string;
    admin: { username: string; password: string };
    replica: { username: string; password: string };
  };
}

/** One line of `CLUSTER NODES`. */
interface NodeLine {
  id: string;
  port: number;
  flags: string[];
  masterId: string | undefined;
  slots: string[];
}

/**
 * A Redis Cluster of real processes: `masters` (default 3) `redis-server --cluster-enabled yes`
 * on free ports (and free cluster-bus ports), each with `replicas` replicas (default 0), joined by
 * `redis-cli --cluster create`, so the 16,384 hash slots are split between the masters. A test
 * can kill or freeze a master like any `RedisServer` and wait until its replica is promoted.
 */
export class RedisCluster {
  private constructor(
    /** Every process, masters first (in `masters` and `replicas` order as created). */
    readonly nodes: RedisServer[],
    /** The servers that were masters when the cluster was created (roles change on failover). */
    readonly masters: RedisServer[],
    /** The servers that were replicas when the cluster was created. */
    readonly replicas: RedisServer[],
    private readonly admin: { username: string; password: string } | undefined,
  ) {}

  static async start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    const masterCount = options.masters ?? 3;
    const replicasEach = options.replicas ?? 0;
    const nodes: RedisServer[] = [];
    const acl = options.acl;
    try {
      for (let i = 0; i < masterCount * (1 + replicasEach); i++) {
        nodes.push(
          await RedisServer.start({
            ...(acl === undefined ? {} : { aclFile: acl.file, auth: acl.admin }),
            args: [
              ...(acl === undefined
                ? []
                : ['--masteruser', acl.replica.username, '--masterauth', acl.replica.password]),
              '--cluster-enabled',
              'yes',
              '--cluster-config-file',
              'nodes.conf',
              '--cluster-node-timeout',
              String(options.nodeTimeoutMs ?? 2_000),
              '--cluster-port',
              String(await freePort()),
            ],
          }),
        );
      }
      // redis-cli makes the first `masters` addresses the masters and gives each replicas from the
      // rest (on one host it warns that replicas share their master's host, and goes on).
      await run(
        'redis-cli',
        [
          ...(acl === undefined
            ? []
            : ['--user', acl.admin.username, '--pass', acl.admin.password, '--no-auth-warning']),
          '--cluster',
          'create',
          ...nodes.map((m) => `${m.host}:${m.port}`),
          '--cluster-replicas',
          String(replicasEach),
          '--cluster-yes',
        ],
        { timeout: 30_000 },
      );
      const cluster = new RedisCluster(
        nodes,
        nodes.slice(0, masterCount),
        nodes.slice(masterCount),
        acl?.admin,
      );
      // `--cluster create` returns once the slots are assigned; the replicas are announced by
      // gossip afterwards. Every node must know every replica, in sync, before a test kills.
      await waitFor(
        async () => {
          for (const node of nodes) {
            const lines = await cluster.nodeLines(node);
            const replicaLines = lines.filter((l) => l.masterId !== undefined);
            if (replicaLines.length !== masterCount * replicasEach) return false;
          }
          return true;
        },
        { timeoutMs: 20_000, description: 'every node knowing every replica' },
      );
      await cluster.waitUntilHealthy(20_000);
      return cluster;
    } catch (err) {
      for (const m of nodes) await m.cleanup();
      throw err;
    }
  }

  /** The env that points an app at this cluster: every node as a seed. */
  get env(): { REDIS_CLUSTER_NODES: string } {
    return { REDIS_CLUSTER_NODES: this.nodes.map((n) => `${n.host}:${n.port}`).join(',') };
  }

  /**
   * A cluster client (ioredis `Cluster`) that starts from every node's address. Commands wait
   * through a failover (offline queue, unlimited resends), as a harness's checks want.
   */
  client(): Cluster {
    const client = new Cluster(
      this.nodes.map((m) => ({ host: m.host, port: m.port })),
      {
        redisOptions: { maxRetriesPerRequest: null, ...this.admin },
        // SSUBSCRIBE to the master of the channel's slot, as the apps' connections do.
        shardedSubscribers: true,
        retryDelayOnFailover: 200,
        maxRedirections: 64,
        slotsRefreshInterval: 1_000,
      },
    );
    client.on('error', () => {
      // A master killed on purpose; commands are retried and the caller sees what fails.
    });
    client.on('node error', () => {
      // As above, for one node.
    });
    return client;
  }

  /** One command to one node. */
  ask(server: RedisServer, ...command: string[]): Promise<string> {
    return server.command(...command);
  }

  /** Which running node serves `key`'s slot as master now (by `CLUSTER NODES` of a live node). */
  async masterOf(key: string): Promise<RedisServer> {
    const slot = Number(await this.askAny('CLUSTER', 'KEYSLOT', key));
    for (const line of await this.nodeLines()) {
      if (!line.flags.includes('master') || line.flags.includes('fail')) continue;
      if (line.slots.some((range) => inRange(range, slot))) return this.byPort(line.port);
    }
    throw new Error(`no master serves slot ${slot} (of ${key})`);
  }

  /** The replica of `master` (its first, by `CLUSTER NODES`). */
  async replicaOf(master: RedisServer): Promise<RedisServer> {
    const lines = await this.nodeLines();
    const id = lines.find((l) => l.port === master.port)?.id;
    const replica = lines.find((l) => id !== undefined && l.masterId === id);
    if (replica === undefined) throw new Error(`master :${master.port} has no replica`);
    return this.byPort(replica.port);
  }

  /** The nodes that are masters now, by `CLUSTER NODES` of a live node (failed ones left out). */
  async currentMasters(): Promise<RedisServer[]> {
    return (await this.nodeLines())
      .filter((l) => l.flags.includes('master') && !l.flags.includes('fail'))
      .filter((l) => l.slots.length > 0)
      .map((l) => this.byPort(l.port));
  }

  /** SIGKILL of one node, as a crash. */
  kill(server: RedisServer): Promise<void> {
    return server.kill();
  }

  /** SIGSTOP of one node: its connections stay open and nothing answers. */
  freeze(server: RedisServer): void {
    server.freeze();
  }

  /**
   * Waits until `replica` is a master, holds slots, and every running node says the cluster is
   * ok: the failover of its old master is done. Resolves to how long it took.
   */
  async waitForPromotion(replica: RedisServer, timeoutMs = 20_000): Promise<number> {
    const started = Date.now();
    await waitFor(
      async () => {
        const role = await replica.command('ROLE').catch(() => '');
        if (!role.startsWith('master')) return false;
        const me = (await this.nodeLines(replica)).find((l) => l.flags.includes('myself'));
        return me !== undefined && me.slots.length > 0;
      },
      { timeoutMs, description: `the replica :${replica.port} promoted to master` },
    );
    await this.waitUntilHealthy(timeoutMs);
    return Date.now() - started;
  }

  /**
   * Waits until every running node says `cluster_state:ok` with all slots served, and every
   * running master's replicas are in sync.
   */
  async waitUntilHealthy(timeoutMs = 20_000): Promise<void> {
    await waitFor(
      async () => {
        for (const node of this.running()) {
          const info = await node.command('CLUSTER', 'INFO').catch(() => '');
          if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
        }
        for (const line of await this.nodeLines()) {
          if (line.masterId === undefined || line.flags.includes('fail')) continue;
          const replica = this.byPort(line.port);
          if (!replica.isRunning) continue;
          const info = await replica.command('INFO', 'replication').catch(() => '');
          if (!/master_link_status:up/.test(info)) return false;
        }
        return true;
      },
      { timeoutMs, description: 'every node agreeing the cluster is ok, replicas in sync' },
    );
  }

  /** `INFO <section>` of every running node that is a master now, by its port. */
  async infoOfMasters(section: string): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    for (const master of await this.currentMasters())
      out.set(master.port, await master.command('INFO', section));
    return out;
  }

  /** Every key stored on one node (SCAN; a test's few keys). */
  async keysOn(server: RedisServer): Promise<string[]> {
    const client = new Redis({
      host: server.host,
      port: server.port,
      lazyConnect: true,
      ...this.admin,
    });
    try {
      await client.connect();
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await client.scan(cursor, 'COUNT', 1_000);
        keys.push(...batch);
        cursor = next;
      } while (cursor !== '0');
      return keys;
    } finally {
      client.disconnect();
    }
  }

  async cleanup(): Promise<void> {
    for (const node of this.nodes) await node.cleanup();
  }

  private running(): RedisServer[] {
    return this.nodes.filter((n) => n.isRunning);
  }

  private byPort(port: number): RedisServer {
    const node = this.nodes.find((n) => n.port === port);
    if (node === undefined) throw new Error(`no node of this cluster listens on ${port}`);
    return node;
  }

  private async askAny(...command: string[]): Promise<string> {
    let last: unknown;
    for (const node of this.running()) {
      try {
        return await node.command(...command);
      } catch (err) {
        // A frozen or dying node: ask the next.
        last = err;
      }
    }
    throw last instanceof Error ? last : new Error('no running node answered');
  }

  private async nodeLines(from?: RedisServer): Promise<NodeLine[]> {
    const text =
      from === undefined
        ? await this.askAny('CLUSTER', 'NODES')
        : await from.command('CLUSTER', 'NODES');
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const [id = '', address = '', flags = '', master = '-', , , , , ...slots] = line
          .trim()
          .split(' ');
        return {
          id,
          port: Number(/:(\d+)@/.exec(address)?.[1]),
          flags: flags.split(','),
          masterId: master === '-' ? undefined : master,
          slots: slots.filter((s) => !s.startsWith('[')),
        };
      });
  }
}

function inRange(range: string, slot: number): boolean {
  const [from, to = from] = range.split('-').map(Number);
  return from !== undefined && to !== undefined && slot >= from && slot <= to;
}
