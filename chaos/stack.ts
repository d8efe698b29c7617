/**
 * The stack under test, as real processes on a real Redis: redis-server with its append-only file
 * (appendfsync everysec), two livecore-schedulers, the execution nodes, the api-gateway and the
 * notification worker (delivering to the campaign's webhook), with the harness's short timings.
 * Every process is watched: one that exits without the nemesis asking is recorded.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RedisServer, StackFixture, waitFor, type ManagedProcess } from '@ginkgo-live/testing';
import type { ExitRecord } from './model.ts';

export interface StackOptions {
  nodes: number;
  schedulers: number;
  /** The catalog file the schedulers load (and reload when Redis comes back empty). */
  catalogFile: string;
  /** Where every app delivers its notifications. */
  webhookUrl: string;
  /** Run the apps' production bundles (`dist/main.js`) instead of their sources. */
  bundled: boolean;
  /** ms since the campaign started (negative before). */
  clock: () => number;
  log: (message: string) => void;
}

/** Settings the campaign gives every app on top of the harness's FAST timings. */
export const CHAOS_ENV: Record<string, string> = {
  // A Redis away this long is reported straight to the webhooks (outages here last 1–5 s).
  NOTIFY_REDIS_DOWN_AFTER_MS: '1000',
  // Faults come every few seconds: a cooldown of a minute would hide the second one on a node.
  NOTIFY_CRITICAL_COOLDOWN_MS: '5000',
  NOTIFY_WARNING_COOLDOWN_MS: '5000',
  NOTIFY_DELIVERY_BACKOFF_MS: '250',
  LOG_LEVEL: 'info',
};

export class ChaosStack {
  readonly nodeIds: string[];
  readonly schedulerIds: string[];
  readonly exits: ExitRecord[] = [];
  /** Every process started, in order, for the logs. */
  readonly started: ManagedProcess[] = [];
  private readonly current = new Map<string, ManagedProcess>();
  private readonly expected = new Set<ManagedProcess>();
  private closing = false;

  private constructor(
    readonly server: RedisServer,
    readonly fx: StackFixture,
    private readonly options: StackOptions,
  ) {
    this.nodeIds = Array.from({ length: options.nodes }, (_, i) => `node-${i + 1}`);
    this.schedulerIds = Array.from({ length: options.schedulers }, (_, i) => `s${i + 1}`);
  }

  /** Starts Redis and every app, and waits until each portfolio of the catalog runs. */
  static async start(options: StackOptions, portfolios: readonly string[]): Promise<ChaosStack> {
    const server = await RedisServer.start({
      persistence: true,
      args: ['--appendfsync', 'everysec'],
    });
    const fsync = await server.command('CONFIG', 'GET', 'appendfsync');
    const stack = new ChaosStack(
      server,
      new StackFixture(server, { bundled: options.bundled }),
      options,
    );
    if (!fsync.includes('everysec')) {
      await server.cleanup();
      throw new Error(`redis-server runs with appendfsync ${fsync}, not everysec`);
    }
    try {
      options.log(
        `redis-server ${server.url} (AOF, appendfsync everysec), prefix ${stack.fx.keys.prefix}`,
      );
      await Promise.all(stack.nodeIds.map((id) => stack.startNode(id)));
      for (const id of stack.schedulerIds) await stack.startScheduler(id);
      stack.watch('gateway', (await stack.fx.startGateway(stack.env)).process);
      stack.watch('notification-worker', await stack.fx.startNotificationWorker(stack.env));
      await waitFor(
        async () => {
          const states = await Promise.all(portfolios.map((p) => stack.fx.state(p)));
          return states.every((s) => s?.status === 'running');
        },
        { timeoutMs: 90_000, intervalMs: 250, description: 'every portfolio running' },
      );
    } catch (err) {
      const detail = await stack.describe(portfolios).catch(() => '(Redis unreadable)');
      await stack.close();
      throw new Error(`the stack did not come up: ${(err as Error).message}\n${detail}`, {
        cause: err,
      });
    }
    return stack;
  }

  get env(): Record<string, string> {
    return { ...CHAOS_ENV, NOTIFY_WEBHOOK_URL: this.options.webhookUrl };
  }

  /** The running process of an app (`node-1`, `s1`, `gateway`, `notification-worker`). */
  process(key: string): ManagedProcess | undefined {
    return this.current.get(key);
  }

  async startNode(nodeId: string): Promise<ManagedProcess> {
    const node = await this.fx.startNode(nodeId, this.env, false);
    this.watch(nodeId, node);
    await node.waitForLine('Execution node running', 30_000);
    return node;
  }

  async startScheduler(id: string): Promise<ManagedProcess> {
    const scheduler = await this.fx.startScheduler(
      id,
      { ...this.env, CATALOG_FILE: this.options.catalogFile },
      false,
    );
    this.watch(id, scheduler);
    await scheduler.waitForLine('Scheduler running', 30_000);
    return scheduler;
  }

  /** Ends a process on purpose (its exit is not a finding); resolves with how it ended. */
  async end(key: string, signal: 'SIGKILL' | 'SIGTERM', timeoutMs = 30_000) {
    const p = this.current.get(key);
    if (p === undefined) throw new Error(`no running process ${key}`);
    this.expected.add(p);
    p.signal('SIGCONT'); // a frozen process cannot act on SIGTERM
    const started = Date.now();
    const exit = await p.stop(signal, timeoutMs);
    return { ...exit, tookMs: Date.now() - started };
  }

  /** The scheduler holding the leader lock, if any. */
  async leader(): Promise<string | null> {
    return this.fx.redis.get(this.fx.keys.schedulerLeader());
  }

  /** Stops everything (none of these exits is a finding) and removes Redis's data. */
  async close(): Promise<void> {
    this.closing = true;
    for (const p of this.started) {
      this.expected.add(p);
      p.signal('SIGCONT');
    }
    await this.fx.close();
    await this.server.cleanup();
  }

  /** Each portfolio's state and every process's last warnings, for a failure message. */
  async describe(portfolios: readonly string[]): Promise<string> {
    const lines: string[] = [];
    for (const p of portfolios) {
      const raw = await this.fx.redis.get(this.fx.keys.portfolioState(p));
      lines.push(`  ${p}: ${raw === null ? 'no state' : raw.slice(0, 300)}`);
    }
    for (const p of this.started) {
      const trouble = p.lines.filter((l) => /"level":"(warn|error)"|^[^{]/.test(l)).slice(-5);
      if (trouble.length > 0)
        lines.push(`  ${p.name}:`, ...trouble.map((l) => `    ${l.slice(0, 400)}`));
    }
    return lines.join('\n');
  }

  /** Writes every process's output to `<dir>/<name>.<n>.log`. */
  writeLogs(dir: string): void {
    mkdirSync(dir, { recursive: true });
    const seen = new Map<string, number>();
    for (const p of this.started) {
      const base = p.name.replace(/[^A-Za-z0-9_.-]+/g, '-');
      const n = (seen.get(base) ?? 0) + 1;
      seen.set(base, n);
      writeFileSync(path.join(dir, `${base}.${n}.log`), `${p.output}\n`);
    }
    writeFileSync(path.join(dir, 'redis-server.log'), this.server.log);
  }

  private watch(key: string, p: ManagedProcess): void {
    this.current.set(key, p);
    this.started.push(p);
    void p.exited.then((exit) => {
      if (this.closing || this.expected.has(p)) return;
      const record: ExitRecord = {
        name: p.name,
        atMs: this.options.clock(),
        code: exit.code,
        signal: exit.signal,
        tail: p.lines.slice(-20),
      };
      this.exits.push(record);
      this.options.log(
        `UNEXPECTED EXIT: ${p.name} (code ${exit.code ?? 'none'}, signal ${exit.signal ?? 'none'})`,
      );
    });
  }
}
