import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { freePort } from './free-port.ts';
import { killGroup, track } from './process-registry.ts';
import type { TlsAuthClients, TlsCertificates } from './tls-certificates.ts';

export interface RedisServerOptions {
  /** Address to bind. Default `127.0.0.1`; other loopback addresses (127.0.0.2 …) work too. */
  host?: string;
  /** Port; default a free one. */
  port?: number;
  /** Keep data on disk (append-only file, fsync always) so a restart or even a kill keeps it. */
  persistence?: boolean;
  /** Data directory; default a fresh temporary one, removed by `cleanup()`. */
  dir?: string;
  /** Extra `redis-server` arguments. */
  args?: string[];
  /** How long to wait for "Ready to accept connections", in ms. Default 10000. */
  startTimeoutMs?: number;
  /** The binary. Default `redis-server` from PATH (`redis-sentinel` for a sentinel). */
  binary?: string;
  /**
   * Run as a Sentinel (Debian's `redis-sentinel <conf>`) watching this master: quorum 2, the master
   * judged down after `downAfterMs` (default 1000) without an answer, failover timeout 3 s.
   */
  sentinelOf?: {
    masterName: string;
    host: string;
    port: number;
    downAfterMs?: number;
    /** The ACL user a sentinel logs in to the master and replicas with (`sentinel auth-user`). */
    auth?: { username: string; password: string };
  };
  /**
   * TLS only (`--port 0 --tls-port N`), with these certificates; replicas and sentinels dial over
   * TLS too. `authClients` (default `no`) is `tls-auth-clients`.
   */
  tls?: { certs: TlsCertificates; authClients?: TlsAuthClients };
  /** The user the harness's own commands log in as (an ACL-enabled server). */
  auth?: { username: string; password: string };
  /** A configuration file, given first as redis-server wants it (not for a sentinel). */
  configFile?: string;
  /** The content of an ACL file, written into the data directory and loaded (`--aclfile`). */
  aclFile?: string;
}

/** Why the harness could not start Redis, with what redis-server printed. */
export class RedisServerStartError extends Error {
  override readonly name = 'RedisServerStartError';
}

// A sentinel announces its id instead.
const READY = /Ready to accept connections|Sentinel ID is/;
const PORT_TAKEN = /Address already in use/;

/**
 * A real `redis-server` process on a free port in a temporary directory, which a test can stop
 * (SIGTERM), kill (SIGKILL), freeze and thaw (SIGSTOP/SIGCONT) and restart on the same port, empty
 * or with its data.
 */
export class RedisServer {
  private child: ChildProcess | undefined;
  private output: string[] = [];
  private isOwnDir: boolean;

  private constructor(
    readonly host: string,
    private currentPort: number,
    readonly dir: string,
    private readonly options: RedisServerOptions,
  ) {
    this.isOwnDir = options.dir === undefined;
  }

  /** Starts a server and resolves once it accepts connections. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const host = options.host ?? '127.0.0.1';
    const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'ginkgo-redis-'));
    // A port found free may be taken before redis binds it; try a few.
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort(host));
      const server = new RedisServer(host, port, dir, options);
      try {
        await server.launch();
        return server;
      } catch (err) {
        const portTaken = err instanceof RedisServerStartError && PORT_TAKEN.test(err.message);
        if (!portTaken || options.port !== undefined || attempt >= 5) {
          if (server.isOwnDir) rmSync(dir, { recursive: true, force: true });
          throw err;
        }
      }
    }
  }

  get port(): number {
    return this.currentPort;
  }

  /** `redis://host:port`. */
  get url(): string {
    return `redis://${this.host}:${this.port}`;
  }

  /** The environment that points an app at this server (with TLS: on, trusting its CA). */
  get env(): { REDIS_HOST: string; REDIS_PORT: string } & Partial<
    Record<'REDIS_TLS' | 'REDIS_TLS_CA_FILE', string>
  > {
    const tls = this.options.tls;
    return {
      REDIS_HOST: this.host,
      REDIS_PORT: String(this.port),
      ...(tls === undefined ? {} : { REDIS_TLS: 'on', REDIS_TLS_CA_FILE: tls.certs.caFile }),
    };
  }

  /** ioredis options for the harness's own clients: address, TLS and the harness's user. */
  clientOptions(): RedisOptions {
    const { tls, auth } = this.options;
    return {
      host: this.host,
      port: this.port,
      ...(tls === undefined ? {} : { tls: tls.certs.clientTls }),
      ...(auth === undefined ? {} : { username: auth.username, password: auth.password }),
    };
  }

  /** The server's pid while it runs. */
  get pid(): number | undefined {
    return this.isRunning ? this.child?.pid : undefined;
  }

  get isRunning(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  /** What the server printed, for failure messages. */
  get log(): string {
    return this.output.join('');
  }

  /** One command to this server on a short-lived connection; the reply as text. */
  async command(...command: string[]): Promise<string> {
    const client = new Redis({ ...this.clientOptions(), lazyConnect: true });
    client.on('error', () => {
      // A server being killed on purpose; the caller sees the rejection.
    });
    try {
      await client.connect();
      const [name, ...args] = command;
      return String(await client.call(name ?? 'PING', ...args));
    } finally {
      client.disconnect();
    }
  }

  /** Graceful shutdown (SIGTERM); resolves when the process has exited. */
  async stop(): Promise<void> {
    await this.signalAndWait('SIGTERM');
  }

  /** Abrupt death (SIGKILL), as a crash or OOM kill; resolves when the process has exited. */
  async kill(): Promise<void> {
    await this.signalAndWait('SIGKILL');
  }

  /** Freezes the process (SIGSTOP): connections stay open, nothing answers. */
  freeze(): void {
    this.requireRunning().kill('SIGSTOP');
  }

  /** Thaws a frozen process (SIGCONT). */
  thaw(): void {
    this.requireRunning().kill('SIGCONT');
  }

  /**
   * Starts the server again on the same port. With `keepData` (default true) it reloads what it
   * persisted (only with `persistence`); without, it starts empty. Stops it first if it runs.
   */
  async restart(options: { keepData?: boolean } = {}): Promise<void> {
    if (this.isRunning) await this.stop();
    if (options.keepData === false) {
      for (const entry of readdirSync(this.dir)) {
        rmSync(path.join(this.dir, entry), { recursive: true, force: true });
      }
    }
    await this.launch();
  }

  /** Kills the server if it runs and removes its temporary directory. Idempotent. */
  async cleanup(): Promise<void> {
    if (this.isRunning) {
      // A frozen process ignores SIGTERM until thawed; SIGKILL works in every state.
      await this.kill();
    }
    if (this.isOwnDir) rmSync(this.dir, { recursive: true, force: true });
  }

  private args(): string[] {
    const tls = this.options.tls;
    const common = [
      ...(tls === undefined
        ? ['--port', String(this.port)]
        : tls.certs.serverArgs(this.port, tls.authClients ?? 'no')),
      '--bind',
      this.host,
      '--dir',
      this.dir,
      '--daemonize',
      'no',
      '--protected-mode',
      'no',
      '--logfile',
      '',
      ...(this.options.aclFile === undefined ? [] : ['--aclfile', this.writeAclFile()]),
    ];
    const sentinel = this.options.sentinelOf;
    if (sentinel !== undefined) {
      // Sentinel rewrites its configuration file: written once, kept across restarts.
      const conf = path.join(this.dir, `sentinel-${this.port}.conf`);
      if (!existsSync(conf)) {
        writeFileSync(
          conf,
          [
            `sentinel monitor ${sentinel.masterName} ${sentinel.host} ${sentinel.port} 2`,
            `sentinel down-after-milliseconds ${sentinel.masterName} ${sentinel.downAfterMs ?? 1_000}`,
            `sentinel failover-timeout ${sentinel.masterName} 3000`,
            `sentinel parallel-syncs ${sentinel.masterName} 1`,
            ...(sentinel.auth === undefined
              ? []
              : [
                  `sentinel auth-user ${sentinel.masterName} ${sentinel.auth.username}`,
                  `sentinel auth-pass ${sentinel.masterName} ${sentinel.auth.password}`,
                ]),
            '',
          ].join('\n'),
        );
      }
      return [conf, ...common, ...(this.options.args ?? [])];
    }
    return [
      ...(this.options.configFile === undefined ? [] : [this.options.configFile]),
      ...common,
      '--save',
      '',
      '--appendonly',
      this.options.persistence === true ? 'yes' : 'no',
      '--appendfsync',
      'always',
      ...(this.options.args ?? []),
    ];
  }

  private writeAclFile(): string {
    const file = path.join(this.dir, 'users.acl');
    if (!existsSync(file)) writeFileSync(file, this.options.aclFile ?? '');
    return file;
  }

  /** Redis's ACL LOG: the commands and keys it refused, newest first. */
  async aclLog(): Promise<{ reason: string; object: string; username: string; context: string }[]> {
    const client = new Redis({ ...this.clientOptions(), lazyConnect: true });
    client.on('error', () => {
      // Reported by the rejection below.
    });
    try {
      await client.connect();
      const entries = (await client.call('ACL', 'LOG', '100')) as unknown[][];
      return entries.map((entry) => {
        const fields: Record<string, string> = {};
        for (let i = 0; i + 1 < entry.length; i += 2)
          fields[String(entry[i])] = String(entry[i + 1]);
        return {
          reason: fields['reason'] ?? '',
          object: fields['object'] ?? '',
          username: fields['username'] ?? '',
          context: fields['context'] ?? '',
        };
      });
    } finally {
      client.disconnect();
    }
  }

  private get binary(): string {
    return (
      this.options.binary ??
      (this.options.sentinelOf === undefined ? 'redis-server' : 'redis-sentinel')
    );
  }

  private launch(): Promise<void> {
    const child = spawn(this.binary, this.args(), {
      cwd: this.dir,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(child);
    this.child = child;
    this.output = [];
    const timeoutMs = this.options.startTimeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err === undefined) resolve();
        else {
          killGroup(child, 'SIGKILL');
          reject(err);
        }
      };
      const onData = (chunk: Buffer): void => {
        this.output.push(chunk.toString());
        if (READY.test(chunk.toString())) settle();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('error', (err) =>
        settle(new RedisServerStartError(`Cannot run ${this.binary}: ${err.message}`)),
      );
      child.once('exit', (code, signal) =>
        settle(
          new RedisServerStartError(
            `redis-server exited during start (code ${code}, signal ${signal}): ${this.log}`,
          ),
        ),
      );
      const timer = setTimeout(
        () =>
          settle(
            new RedisServerStartError(`redis-server not ready after ${timeoutMs} ms: ${this.log}`),
          ),
        timeoutMs,
      );
    });
  }

  private requireRunning(): ChildProcess {
    if (this.child === undefined || !this.isRunning) throw new Error('redis-server is not running');
    return this.child;
  }

  private async signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.isRunning) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    if (signal === 'SIGTERM') child.kill('SIGCONT'); // a frozen server must wake to shut down
    await exited;
  }
}
