/**
 * The local stack behind `npm start`: a private redis-server (unless REDIS_URL / REDIS_HOST names
 * one, or `pnpm dev` already started one: see local-redis.ts), then the apps as processes — the
 * scheduler with the sample catalog, execution nodes, the notification worker, the gateway and the
 * demo market feed. Each app's lines are echoed tagged with its name. Ctrl-C or SIGTERM stops the
 * apps (nodes drain), then Redis, and leaves no process behind.
 *
 *   npm start -- --nodes 3 --catalog config/sample-catalog.json
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import {
  CONFIG_EXIT_CODE,
  combineConfig,
  createLogger,
  envInt,
  envString,
  formatConfigIssues,
  handleShutdownSignals,
  loadLoggingConfig,
  parseEnv,
  type Env,
} from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import { ManagedProcess, REPO_ROOT, tsEntry } from '@ginkgo-live/testing';
import { resolveLocalRedis, type LocalRedis } from './local-redis.ts';

const stackEnvSchema = z.object({
  /** Where the embedded Redis keeps its data. Default `.stack` at the repository root. */
  GINKGO_STACK_DIR: envString(),
  /** Port of the api-gateway. Default 8000; 0 picks a free one. */
  GATEWAY_PORT: envInt({ default: 8_000, min: 0, max: 65_535 }),
});

function loadConfig(env: Env) {
  return combineConfig({
    stack: parseEnv(stackEnvSchema, env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
  });
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  if (typeof options === 'string') {
    process.stderr.write(
      `stack: ${options}\nusage: npm start -- [--nodes N] [--portfolios N] [--catalog FILE]\n`,
    );
    process.exit(CONFIG_EXIT_CODE);
  }
  const config = loadConfig(process.env);
  if (!config.ok) {
    process.stderr.write(`stack: invalid configuration\n${formatConfigIssues(config.issues)}\n`);
    process.exit(CONFIG_EXIT_CODE);
  }
  const { stack, redis, logging } = config.value;
  const logger = createLogger({ app: 'stack', level: logging.level, format: logging.format });

  // Signals are handled from the first moment, so a Ctrl-C during startup also cleans up.
  const running: {
    redis?: LocalRedis;
    connections?: RedisConnections;
    apps: ManagedProcess[];
    stopping: boolean;
  } = { apps: [], stopping: false };
  handleShutdownSignals({
    logger,
    stop: async () => {
      running.stopping = true;
      // Apps first (nodes drain within their 25 s budget), Redis last.
      await Promise.all(running.apps.map((app) => app.stop('SIGTERM', 30_000)));
      await running.connections?.close();
      await running.redis?.release();
      logger.info('Stack stopped');
      return 0;
    },
  });

  const stackDir = path.resolve(REPO_ROOT, stack.GINKGO_STACK_DIR ?? '.stack');
  const catalogFile = catalogFor(options, stackDir);
  const local = await resolveLocalRedis({ env: process.env, config: redis, stackDir, logger });
  running.redis = local;
  const redisConfig = { ...redis, host: local.host, port: local.port };
  if (running.stopping) return;

  const connections = new RedisConnections({
    config: redisConfig,
    app: 'stack',
    instanceId: String(process.pid),
    logger,
  });
  running.connections = connections;
  await connections.waitUntilReady(redisConfig.connectTimeoutMs);
  const ping = await connections.ping();
  if (!ping.ok) {
    logger.warn('Redis does not answer yet; apps will keep retrying', { reason: ping.reason });
  }

  const appEnv = {
    // Apps write to a pipe (the stack tags their lines): readable unless JSON was asked for.
    LOG_FORMAT: logging.format === 'auto' ? 'pretty' : logging.format,
    REDIS_HOST: redisConfig.host,
    REDIS_PORT: String(redisConfig.port),
  };
  const start = (name: string, file: string, env: Record<string, string>): void => {
    if (running.stopping) return;
    running.apps.push(
      ManagedProcess.start({
        ...tsEntry(name, file, { ...appEnv, ...env }),
        onLine: (line) => process.stdout.write(`[${name}] ${line}\n`),
      }),
    );
  };
  start('scheduler', 'apps/livecore-scheduler/src/main.ts', {
    SCHEDULER_ID: 'scheduler-1',
    CATALOG_FILE: catalogFile,
    METRICS_PORT: '0',
  });
  for (let i = 1; i <= options.nodes; i++) {
    start(`node-${i}`, 'apps/execution-node/src/main.ts', {
      NODE_ID: `node-${i}`,
      METRICS_PORT: '0',
    });
  }
  start('notification-worker', 'apps/notification-worker/src/main.ts', { METRICS_PORT: '0' });
  const gatewayPort = String(stack.GATEWAY_PORT);
  start('api-gateway', 'apps/api-gateway/src/main.ts', { GATEWAY_PORT: gatewayPort });
  start('market-feed', 'apps/market-feed/src/main.ts', {});

  const url = `redis://${redisConfig.host}:${redisConfig.port}`;
  const catalogLabel =
    options.portfolios === undefined
      ? `catalog ${options.catalog}`
      : `${options.portfolios} portfolios drawn from ${options.catalog}`;
  process.stdout.write(
    `\nginkgo-live stack is up.\n` +
      `  Redis ready at ${url} (${local.source})\n` +
      `  Apps: livecore-scheduler (${catalogLabel}), ${options.nodes} execution nodes,\n` +
      `  notification worker, market feed, api-gateway.\n` +
      `  Operations page: http://localhost:${gatewayPort}/\n` +
      `  Monitoring API: http://localhost:${gatewayPort}/api/nodes (also /api/portfolios, /api/metrics,\n` +
      `  /api/schedule/plan, /api/notifications, /api/ready, /metrics)\n` +
      `  Operate: pnpm ctl drain node-1 | undrain node-1 | migrate <portfolio> <node>\n` +
      `  Ctrl-C stops everything.\n\n`,
  );
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
  mkdirSync(stackDir, { recursive: true });
  const out = path.join(stackDir, `catalog-${options.portfolios}.json`);
  writeFileSync(out, `${JSON.stringify(drawn, null, 2)}\n`);
  return out;
}

main().catch((err: unknown) => {
  process.stderr.write(
    `stack: failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
