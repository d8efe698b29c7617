import { Redis } from 'ioredis';
import { RedisServer } from './redis-server.ts';
import type { TlsCertificates } from './tls-certificates.ts';
import { waitFor } from './wait-for.ts';

/**
 * A Redis Sentinel setup of real processes: a master, a replica and three sentinels (quorum 2)
 * on free ports, each in its own directory. Kill the master and the sentinels promote the replica.
 */
export class SentinelGroup {
  private constructor(
    readonly masterName: string,
    readonly master: RedisServer,
    readonly replica: RedisServer,
    readonly sentinels: RedisServer[],
    readonly tls: TlsCertificates | undefined,
  ) {}

  /**
   * With `tls`, every server and sentinel listens on TLS only and they talk to each other over TLS
   * (`tls-replication yes`), with clients' certificates not asked for. With `acl`, both servers
   * load that ACL file; the harness logs in as `acl.admin`, the replica (and the master, once
   * demoted) syncs as `acl.replica` and the sentinels log in as `acl.sentinel`.
   */
  static async start(
    options: {
      masterName?: string;
      downAfterMs?: number;
      tls?: TlsCertificates;
      acl?: {
        file: string;
        admin: { username: string; password: string };
        replica: { username: string; password: string };
        sentinel: { username: string; password: string };
      };
    } = {},
  ) {
    const masterName = options.masterName ?? 'ginkgo';
    const acl = options.acl;
    const shared = {
      persistence: true,
      ...(options.tls === undefined ? {} : { tls: { certs: options.tls } }),
      ...(acl === undefined ? {} : { aclFile: acl.file, auth: acl.admin }),
    };
    const replication =
      acl === undefined
        ? []
        : ['--masteruser', acl.replica.username, '--masterauth', acl.replica.password];
    const tls = options.tls === undefined ? {} : { tls: { certs: options.tls } };
    const master = await RedisServer.start({ ...shared, args: replication });
    const replica = await RedisServer.start({
      ...shared,
      args: [...replication, '--replicaof', master.host, String(master.port)],
    });
    const sentinels: RedisServer[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        sentinels.push(
          await RedisServer.start({
            ...tls,
            sentinelOf: {
              masterName,
              host: master.host,
              port: master.port,
              ...(options.downAfterMs === undefined ? {} : { downAfterMs: options.downAfterMs }),
              ...(acl === undefined ? {} : { auth: acl.sentinel }),
            },
          }),
        );
      }
      const group = new SentinelGroup(masterName, master, replica, sentinels, options.tls);
      // Ready when the replica is in sync and every sentinel knows the replica and the others.
      await waitFor(
        async () => /master_link_status:up/.test(await group.ask(replica, 'INFO', 'replication')),
        { timeoutMs: 15_000, description: 'the replica in sync' },
      );
      await waitFor(
        async () => {
          for (const s of sentinels) {
            const info = await group.ask(s, 'INFO', 'sentinel');
            if (!/slaves=1,sentinels=3/.test(info)) return false;
          }
          return true;
        },
        { timeoutMs: 20_000, description: 'three sentinels that see the replica and each other' },
      );
      return group;
    } catch (err) {
      for (const server of [master, replica, ...sentinels]) await server.cleanup();
      throw err;
    }
  }

  /** The env that points the apps at this group through the sentinels (with TLS: on, its CA). */
  get env(): { REDIS_SENTINELS: string; REDIS_SENTINEL_MASTER: string } & Partial<
    Record<'REDIS_TLS' | 'REDIS_TLS_CA_FILE', string>
  > {
    return {
      REDIS_SENTINELS: this.sentinels.map((s) => `${s.host}:${s.port}`).join(','),
      REDIS_SENTINEL_MASTER: this.masterName,
      ...(this.tls === undefined ? {} : { REDIS_TLS: 'on', REDIS_TLS_CA_FILE: this.tls.caFile }),
    };
  }

  /** The address the sentinels give for the master now. */
  async currentMaster(): Promise<{ host: string; port: number }> {
    const sentinel = this.sentinels[0];
    if (sentinel === undefined) throw new Error('no sentinel');
    const client = new Redis({ ...sentinel.clientOptions(), lazyConnect: true });
    try {
      await client.connect();
      const reply = (await client.call('SENTINEL', 'get-master-addr-by-name', this.masterName)) as
        [string, string] | null;
      if (reply === null) throw new Error(`the sentinels know no master ${this.masterName}`);
      return { host: reply[0], port: Number(reply[1]) };
    } finally {
      client.disconnect();
    }
  }

  /** One command to one of the group's servers. */
  ask(server: RedisServer, ...command: string[]): Promise<string> {
    return server.command(...command);
  }

  async cleanup(): Promise<void> {
    for (const server of [...this.sentinels, this.replica, this.master]) await server.cleanup();
  }
}
