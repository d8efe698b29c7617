import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { freePort } from './free-port.ts';
import { RedisServer } from './redis-server.ts';
import { waitFor } from './wait-for.ts';

const run = promisify(execFile);

/**
 * A Redis Cluster of real processes: `masters` (default 3) `redis-server --cluster-enabled yes`
 * on free ports (and free cluster-bus ports), joined by `redis-cli --cluster create` with no
 * replicas, so the 16,384 hash slots are split between them.
 */
export class RedisCluster {
  private constructor(readonly masters: RedisServer[]) {}

  static async start(options: { masters?: number } = {}): Promise<RedisCluster> {
    const masters: RedisServer[] = [];
    try {
      for (let i = 0; i < (options.masters ?? 3); i++) {
        masters.push(
          await RedisServer.start({
            args: [
              '--cluster-enabled',
              'yes',
              '--cluster-config-file',
              'nodes.conf',
              '--cluster-node-timeout',
              '2000',
              '--cluster-port',
              String(await freePort()),
            ],
          }),
        );
      }
      await run(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...masters.map((m) => `${m.host}:${m.port}`),
          '--cluster-replicas',
          '0',
          '--cluster-yes',
        ],
        { timeout: 30_000 },
      );
      const cluster = new RedisCluster(masters);
      await waitFor(
        async () => {
          for (const m of masters) {
            const info = await cluster.ask(m, 'CLUSTER', 'INFO');
            if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info))
              return false;
          }
          return true;
        },
        { timeoutMs: 20_000, description: 'every master agreeing the cluster is ok' },
      );
      return cluster;
    } catch (err) {
      for (const m of masters) await m.cleanup();
      throw err;
    }
  }

  /** A cluster client (ioredis `Cluster`) that starts from every master's address. */
  client(): Cluster {
    return new Cluster(
      this.masters.map((m) => ({ host: m.host, port: m.port })),
      { redisOptions: { maxRetriesPerRequest: null } },
    );
  }

  /** One command to one master. */
  ask(server: RedisServer, ...command: string[]): Promise<string> {
    return server.command(...command);
  }

  /** Every key stored on one master (SCAN; a test's few keys). */
  async keysOn(server: RedisServer): Promise<string[]> {
    const client = new Redis({ host: server.host, port: server.port, lazyConnect: true });
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
    for (const m of this.masters) await m.cleanup();
  }
}
