/**
 * The local stack behind `npm start`: a private redis-server (unless REDIS_URL / REDIS_HOST names
 * one), then the apps. Ctrl-C or SIGTERM stops everything and leaves no process behind.
 *
 * Today the stack is Redis alone: the execution node, scheduler and gateway join it as their issues
 * land. It still proves the path end to end: config validated (exit 2 naming a bad variable),
 * Redis started or reached, a health ping through the shared redis-client, clean shutdown.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import {
  CONFIG_EXIT_CODE,
  combineConfig,
  createLogger,
  envString,
  formatConfigIssues,
  loadLoggingConfig,
  parseEnv,
  type Env,
} from '@ginkgo-live/runtime';
import {
  describeRedisConfig,
  isRedisConfigured,
  loadRedisConfig,
  RedisConnections,
} from '@ginkgo-live/redis-client';
import { RedisServer, REPO_ROOT } from '@ginkgo-live/testing';

const stackEnvSchema = z.object({
  /** Where the embedded Redis keeps its data. Default `.stack` at the repository root. */
  GINKGO_STACK_DIR: envString(),
});

function loadConfig(env: Env) {
  return combineConfig({
    stack: parseEnv(stackEnvSchema, env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.length > 0) {
    process.stderr.write(`stack: unknown argument ${args[0] ?? ''} (none are taken yet)\n`);
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
  const running: { embedded?: RedisServer; connections?: RedisConnections; stopping: boolean } = {
    stopping: false,
  };
  const stop = (signal: NodeJS.Signals): void => {
    if (running.stopping) {
      logger.warn('Second signal: exiting at once', { signal });
      process.exit(130);
    }
    running.stopping = true;
    logger.info('Stopping the stack', { signal });
    void (async () => {
      await running.connections?.close();
      await running.embedded?.stop();
      logger.info('Stack stopped');
      process.exit(0);
    })();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  let redisConfig = redis;
  if (isRedisConfigured(process.env)) {
    logger.info('Using the configured Redis', { redis: describeRedisConfig(redis) });
  } else {
    const dir = path.resolve(REPO_ROOT, stack.GINKGO_STACK_DIR ?? '.stack', 'redis');
    mkdirSync(dir, { recursive: true });
    const embedded = await RedisServer.start({ dir, persistence: true });
    running.embedded = embedded;
    redisConfig = { ...redis, host: embedded.host, port: embedded.port };
    logger.info('Embedded Redis started', { url: embedded.url, dataDir: dir, pid: embedded.pid });
  }
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

  const url = `redis://${redisConfig.host}:${redisConfig.port}`;
  process.stdout.write(
    `\nginkgo-live stack is up.\n` +
      `  Redis ready at ${url} (${running.embedded === undefined ? 'external' : 'embedded'})\n` +
      `  Apps: none yet — execution-node, livecore-scheduler and api-gateway join as they land.\n` +
      `  Ctrl-C stops everything.\n\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(
    `stack: failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
