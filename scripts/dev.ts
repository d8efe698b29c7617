/**
 * `pnpm dev`: every app in watch mode (`turbo run dev`, each app restarting when its code or a
 * package it imports changes) against the same Redis as `npm start` — the one the environment
 * names, the stack's embedded one while `npm start` runs, or else an embedded one started here
 * (same data folder). One scheduler (with the sample catalog), one execution node, the
 * notification worker, the gateway and the market feed. Ctrl-C stops them all, then the Redis this
 * command started.
 */
import path from 'node:path';
import { z } from 'zod';
import {
  combineConfig,
  envInt,
  envString,
  loadLoggingConfig,
  parseEnv,
  runApp,
  type Env,
} from '@ginkgo-live/runtime';
import { describeRedisConfig, loadRedisConfig } from '@ginkgo-live/redis-client';
import { ManagedProcess, REPO_ROOT } from '@ginkgo-live/testing';
import { resolveLocalRedis, type LocalRedis } from './local-redis.ts';
import { isPortFree } from './ports.ts';

const devEnvSchema = z.object({
  /** Where the embedded Redis keeps its data (shared with `npm start`). Default `.stack`. */
  GINKGO_STACK_DIR: envString(),
  /** Port of the dev gateway. Default 8000, or 8001 while something (the stack) holds 8000. */
  GATEWAY_PORT: envInt({ default: 8_000, min: 0, max: 65_535 }),
  NODE_ID: envString(),
  CATALOG_FILE: envString(),
});

function loadConfig(env: Env) {
  return combineConfig({
    dev: parseEnv(devEnvSchema, env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
  });
}

await runApp({
  app: 'dev',
  loadConfig,
  metricsPrefix: 'ginkgo_dev_',
  describeConfig: (config) => ({ ...config, redis: describeRedisConfig(config.redis) }),
  // turbo passes the signal on to every app and waits for them (nodes drain).
  hardExitAfterMs: () => 45_000,
  create: ({ config, logger }) => {
    const { dev, redis, logging } = config;
    const running: { redis?: LocalRedis; turbo?: ManagedProcess; stopping: boolean } = {
      stopping: false,
    };
    // Read anew after every await: a signal may have started the stop meanwhile.
    const stopping = (): boolean => running.stopping;
    return {
      stop: async () => {
        running.stopping = true;
        await running.turbo?.stop('SIGINT', 30_000);
        await running.redis?.release();
        logger.info('Dev stopped');
      },
      start: async () => {
        const local = await resolveLocalRedis({
          env: process.env,
          config: redis,
          stackDir: path.resolve(REPO_ROOT, dev.GINKGO_STACK_DIR ?? '.stack'),
          logger,
        });
        running.redis = local;
        if (stopping()) return;

        const portChosen = (process.env['GATEWAY_PORT'] ?? '').trim() !== '';
        const gatewayPort =
          portChosen || (await isPortFree(dev.GATEWAY_PORT))
            ? dev.GATEWAY_PORT
            : dev.GATEWAY_PORT + 1;
        const env: Record<string, string> = {
          REDIS_HOST: local.host,
          REDIS_PORT: String(local.port),
          LOG_FORMAT: logging.format === 'auto' ? 'pretty' : logging.format,
          NODE_ID: dev.NODE_ID ?? 'dev-node',
          SCHEDULER_ID: 'dev-scheduler',
          CATALOG_FILE: path.resolve(REPO_ROOT, dev.CATALOG_FILE ?? 'config/sample-catalog.json'),
          GATEWAY_PORT: String(gatewayPort),
          TURBO_TELEMETRY_DISABLED: '1',
          TURBO_NO_UPDATE_NOTIFIER: '1',
        };
        const turbo = ManagedProcess.start({
          name: 'turbo dev',
          command: path.join(REPO_ROOT, 'node_modules', '.bin', 'turbo'),
          args: ['run', 'dev', '--ui=stream'],
          env,
          onLine: (line) => process.stdout.write(`${line}\n`),
        });
        running.turbo = turbo;
        process.stdout.write(
          `\nginkgo-live dev: apps in watch mode on redis://${local.host}:${local.port} (${local.source}).\n` +
            `  Operations page: http://localhost:${gatewayPort}/   API: http://localhost:${gatewayPort}/api/nodes\n` +
            `  Ctrl-C stops everything.\n\n`,
        );
        void turbo.exited.then(async (exit) => {
          if (stopping()) return;
          logger.error('turbo dev ended on its own', { ...exit });
          await local.release();
          process.exit(exit.code ?? 1);
        });
      },
    };
  },
});
