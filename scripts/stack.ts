/**
 * The local stack behind `npm start`: a private redis-server (unless REDIS_URL / REDIS_HOST names
 * one, or `pnpm dev` already started one: see local-redis.ts), then the apps as processes — the
 * scheduler with the sample catalog, execution nodes, the notification worker, the gateway and the
 * demo market feed. Each app's lines are echoed tagged with its name. Ctrl-C or SIGTERM stops the
 * apps (nodes drain), then Redis, and leaves no process behind.
 *
 *   npm start -- --nodes 3 --catalog config/sample-catalog.json
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import {
  CONFIG_EXIT_CODE,
  combineConfig,
  ensureWritableDir,
  envInt,
  envString,
  loadLoggingConfig,
  parseEnv,
  runApp,
  StartupError,
  type Env,
  type Logger,
} from '@ginkgo-live/runtime';
import { describeRedisConfig, loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { ManagedProcess, REPO_ROOT, tsEntry } from '@ginkgo-live/testing';
import { resolveLocalRedis, type LocalRedis } from './local-redis.ts';
import { firstFreePort, isPortFree, listeningPort } from './ports.ts';

const stackEnvSchema = z.object({
  /** Where the embedded Redis keeps its data. Default `.stack` at the repository root. */
  GINKGO_STACK_DIR: envString(),
  /**
   * Port of the api-gateway. Unset: 8000, or the next free port after it while 8000 is taken
   * (printed). Set: that port or a clear stop; 0 picks a free one.
   */
  GATEWAY_PORT: envInt({ default: 8_000, min: 0, max: 65_535 }),
});

function loadConfig(env: Env) {
  const parts = combineConfig({
    stack: parseEnv(stackEnvSchema, env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
  });
  if (!parts.ok) return parts;
  const portChosen = (env['GATEWAY_PORT'] ?? '').trim() !== '';
  return { ok: true as const, value: { ...parts.value, portChosen } };
}
type StackConfig = Extract<ReturnType<typeof loadConfig>, { ok: true }>['value'];

/** The stack's processes: the Redis it uses and the apps it started. */
class LocalStack {
  private redis: LocalRedis | undefined;
  private connections: RedisConnections | undefined;
  private readonly apps: ManagedProcess[] = [];
  private stopping = false;

  constructor(
    private readonly config: StackConfig,
    private readonly options: StackOptions,
    private readonly logger: Logger,
  ) {}

  /**
   * Redis, then the apps; says the stack is up only once the gateway listens and no app has
   * exited. An app that dies on the way stops everything, with that app's own line.
   */
  async start(): Promise<void> {
    try {
      await this.startAll();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Read anew after every await: a signal may have started the stop meanwhile. */
  private isStopping(): boolean {
    return this.stopping;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // Apps first (nodes drain within their 25 s budget), Redis last.
    await Promise.all(this.apps.map((app) => app.stop('SIGTERM', 30_000)));
    await this.connections?.close();
    this.connections = undefined;
    await this.redis?.release();
    this.redis = undefined;
    this.logger.info('Stack stopped');
  }

  private async startAll(): Promise<void> {
    const { stack, redis, logging } = this.config;
    const gatewayPort = await this.gatewayPort();
    const stackDir = path.resolve(REPO_ROOT, stack.GINKGO_STACK_DIR ?? '.stack');
    const catalogFile = catalogFor(this.options, stackDir);
    const local = await resolveLocalRedis({
      env: process.env,
      config: redis,
      stackDir,
      logger: this.logger,
    });
    this.redis = local;
    const redisConfig = { ...redis, host: local.host, port: local.port };
    if (this.isStopping()) return;

    this.connections = new RedisConnections({
      config: redisConfig,
      app: 'stack',
      instanceId: String(process.pid),
      logger: this.logger,
    });
    await this.connections.waitUntilReady(redisConfig.connectTimeoutMs);
    const ping = await this.connections.ping();
    if (!ping.ok) {
      this.logger.warn('Redis does not answer yet; apps will keep retrying', {
        reason: ping.reason,
      });
    }

    const appEnv = {
      // Apps write to a pipe (the stack tags their lines): readable unless JSON was asked for.
      LOG_FORMAT: logging.format === 'auto' ? 'pretty' : logging.format,
      REDIS_HOST: redisConfig.host,
      REDIS_PORT: String(redisConfig.port),
    };
    const start = (name: string, file: string, env: Record<string, string>): void => {
      if (this.isStopping()) return;
      const app = ManagedProcess.start({
        ...tsEntry(name, file, { ...appEnv, ...env }),
        onLine: (line) => process.stdout.write(`[${name}] ${line}\n`),
      });
      this.apps.push(app);
      void app.exited.then((exit) => {
        if (!this.stopping) this.logger.error('App exited', { app: name, ...exit });
      });
    };
    start('scheduler', 'apps/livecore-scheduler/src/main.ts', {
      SCHEDULER_ID: 'scheduler-1',
      CATALOG_FILE: catalogFile,
      METRICS_PORT: '0',
    });
    for (let i = 1; i <= this.options.nodes; i++) {
      start(`node-${i}`, 'apps/execution-node/src/main.ts', {
        NODE_ID: `node-${i}`,
        METRICS_PORT: '0',
      });
    }
    start('notification-worker', 'apps/notification-worker/src/main.ts', { METRICS_PORT: '0' });
    start('api-gateway', 'apps/api-gateway/src/main.ts', { GATEWAY_PORT: String(gatewayPort) });
    start('market-feed', 'apps/market-feed/src/main.ts', { METRICS_PORT: '0' });
    if (this.isStopping()) return;

    const port = await this.gatewayListening();
    if (this.isStopping()) return;
    const url = `redis://${redisConfig.host}:${redisConfig.port}`;
    const catalogLabel =
      this.options.portfolios === undefined
        ? `catalog ${this.options.catalog}`
        : `${this.options.portfolios} portfolios drawn from ${this.options.catalog}`;
    const kept = await this.catalogKept(
      catalogFile,
      redis.keyPrefix,
      local.source === 'embedded' ? `stop and delete ${stackDir}` : 'empty that Redis',
    );
    const moved =
      port !== stack.GATEWAY_PORT && stack.GATEWAY_PORT !== 0
        ? `  (port ${stack.GATEWAY_PORT} is taken: the gateway listens on ${port}; GATEWAY_PORT to choose)\n`
        : '';
    process.stdout.write(
      `\nginkgo-live stack is up.\n` +
        `  Redis ready at ${url} (${local.source})\n` +
        `  Apps: livecore-scheduler (${catalogLabel}), ${this.options.nodes} execution nodes,\n` +
        `  notification worker, market feed, api-gateway.\n` +
        kept +
        `  Portfolios Redis has no book of start after a fresh-start window (HEARTBEAT_TTL_MS +\n` +
        `  2 beats, 25 s by default): a node that holds one may be about to write it back.\n` +
        `  Operations page: http://localhost:${port}/\n${moved}` +
        `  Monitoring API: http://localhost:${port}/api/nodes (also /api/portfolios, /api/metrics,\n` +
        `  /api/schedule/plan, /api/notifications, /api/ready, /metrics)\n` +
        `  Operate: pnpm ctl drain node-1 | undrain node-1 | migrate <portfolio> <node>\n` +
        `  Ctrl-C stops everything.\n\n`,
    );
  }

  /**
   * The catalog file only seeds an empty catalog: Redis's catalog is the truth, changed through
   * control requests. On the data of an earlier run the stack says so instead of claiming the
   * file's portfolios run. Empty when they agree, or when the count cannot be read (the apps say
   * why Redis is unreachable).
   */
  private async catalogKept(file: string, prefix: string, startOver: string): Promise<string> {
    const connections = this.connections;
    if (connections === undefined) return '';
    let fileIds: string[];
    let heldIds: string[];
    try {
      const specs = JSON.parse(readFileSync(file, 'utf8')) as { portfolio_id?: unknown }[];
      fileIds = specs.map((s) => String(s.portfolio_id)).sort();
      heldIds = (await connections.main.hkeys(createStateKeys(prefix).portfolioCatalog())).sort();
    } catch {
      return '';
    }
    if (heldIds.length === 0 || heldIds.join(',') === fileIds.join(',')) return '';
    return (
      `  The catalog in Redis is an earlier run's (${heldIds.length} portfolios, the file has ` +
      `${fileIds.length}): the file only seeds an empty catalog.\n` +
      `  Change it with pnpm ctl catalog-add/catalog-remove, or ${startOver} to start over.\n`
    );
  }

  /**
   * The port the gateway gets. GATEWAY_PORT set: that one, or a stop naming it when it is taken.
   * Unset: 8000, or the next free one after it.
   */
  private async gatewayPort(): Promise<number> {
    const wanted = this.config.stack.GATEWAY_PORT;
    if (wanted === 0 || (await isPortFree(wanted))) return wanted;
    if (this.config.portChosen) {
      throw new StartupError(
        `GATEWAY_PORT=${wanted} is in use; set GATEWAY_PORT to a free port (0 picks one)`,
      );
    }
    const next = await firstFreePort(wanted + 1);
    if (next === undefined) {
      throw new StartupError(
        `GATEWAY_PORT=${wanted} and the 20 ports after it are in use; set GATEWAY_PORT to a free port`,
      );
    }
    return next;
  }

  /**
   * Resolves with the gateway's port once it listens; rejects with the line of the first app
   * that exits before (its own one-line reason, e.g. a port in use), so the stack never says it
   * is up while an app is dead.
   */
  private gatewayListening(): Promise<number> {
    const gateway = this.apps.find((app) => app.name === 'api-gateway');
    if (gateway === undefined) return Promise.reject(new Error('the gateway was not started'));
    return new Promise<number>((resolve, reject) => {
      gateway.waitForLine('Gateway listening', 24 * 3_600_000).then(
        (line) => {
          const port = listeningPort(line);
          if (port !== undefined) resolve(port);
        },
        () => undefined, // the gateway exited first: said below, with its line
      );
      for (const app of this.apps) {
        void app.exited.then((exit) => {
          if (this.isStopping()) return;
          // An app's reason for stopping is its plain `<app>: ...` line on stderr.
          const said = app.lines.filter((l) => /^[a-z][a-z-]*: /.test(l)).at(-1);
          reject(
            new StartupError(
              said ?? `${app.name} exited during start (code ${exit.code ?? exit.signal ?? '?'})`,
              exit.code !== null && exit.code !== 0 ? exit.code : 1,
            ),
          );
        });
      }
    });
  }
}

interface StackOptions {
  nodes: number;
  catalog: string;
  portfolios: number | undefined;
}

/**
 * `--nodes N` (default 3), `--catalog FILE` (default the sample), `--portfolios N` (default: the
 * catalog as it is). Returns a message for anything else.
 */
function parseArgs(args: readonly string[]): StackOptions | string {
  let nodes = 3;
  let portfolios: number | undefined;
  let catalog = 'config/sample-catalog.json';
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--nodes') {
      const value = args[++i] ?? '';
      if (!/^\d+$/.test(value) || Number(value) > 50)
        return `--nodes takes a number from 0 to 50, got "${value}"`;
      nodes = Number(value);
    } else if (arg === '--portfolios') {
      const value = args[++i] ?? '';
      if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 1_000)
        return `--portfolios takes a number from 1 to 1000, got "${value}"`;
      portfolios = Number(value);
    } else if (arg === '--catalog') {
      const value = args[++i];
      if (value === undefined || !existsSync(path.resolve(REPO_ROOT, value)))
        return `--catalog takes an existing file, got "${value ?? ''}"`;
      catalog = value;
    } else {
      return `unknown argument ${arg ?? ''}`;
    }
  }
  return { nodes, catalog, portfolios };
}

/**
 * The catalog file the scheduler gets: the given one, or — with `--portfolios N` — N portfolios
 * drawn from it in turn (`btc-fast`, …, then `btc-fast-2`, …), written under the stack folder.
 */
function catalogFor(options: StackOptions, stackDir: string): string {
  const file = path.resolve(REPO_ROOT, options.catalog);
  if (options.portfolios === undefined) return file;
  const specs = z
    .array(z.looseObject({ portfolio_id: z.string() }))
    .parse(JSON.parse(readFileSync(file, 'utf8')));
  if (specs.length === 0) throw new Error(`${options.catalog} holds no portfolio`);
  const drawn = Array.from({ length: options.portfolios }, (_, i) => {
    const spec = specs[i % specs.length] ?? specs[0];
    const round = Math.floor(i / specs.length) + 1;
    return {
      ...spec,
      portfolio_id: round === 1 ? spec?.portfolio_id : `${spec?.portfolio_id ?? ''}-${round}`,
    };
  });
  ensureWritableDir(stackDir, 'GINKGO_STACK_DIR');
  const out = path.join(stackDir, `catalog-${options.portfolios}.json`);
  writeFileSync(out, `${JSON.stringify(drawn, null, 2)}\n`);
  return out;
}

const options = parseArgs(process.argv.slice(2));
if (typeof options === 'string') {
  process.stderr.write(
    `stack: ${options}\nusage: npm start -- [--nodes N] [--portfolios N] [--catalog FILE]\n`,
  );
  process.exit(CONFIG_EXIT_CODE);
}

await runApp({
  app: 'stack',
  loadConfig,
  metricsPrefix: 'ginkgo_stack_',
  describeConfig: (config) => ({ ...config, redis: describeRedisConfig(config.redis), options }),
  // Apps stop in parallel within 30 s each (nodes drain), then Redis.
  hardExitAfterMs: () => 45_000,
  create: ({ config, logger }) => {
    const stack = new LocalStack(config, options, logger);
    return { start: () => stack.start(), stop: () => stack.stop() };
  },
});
