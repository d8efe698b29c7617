/**
 * The Redis of a local run, shared by `npm start` (scripts/stack.ts) and `pnpm dev`
 * (scripts/dev.ts), in this order:
 * 1. the one the environment names (REDIS_URL / REDIS_HOST), untouched;
 * 2. the embedded one another local run already started — found through `redis.json` in the stack
 *    folder, used only if its process lives and it answers PING;
 * 3. a new embedded redis-server on a free port with its data (append-only) under the stack folder,
 *    announced in `redis.json` so the other command finds it. Whoever started it stops it.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { ensureWritableDir, StartupError, type Logger } from '@ginkgo-live/runtime';
import {
  describeRedisConfig,
  isRedisConfigured,
  type RedisConfig,
} from '@ginkgo-live/redis-client';
import { isProcessRunning, RedisServer, RedisServerStartError } from '@ginkgo-live/testing';

export interface LocalRedis {
  host: string;
  port: number;
  source: 'configured' | 'shared' | 'embedded';
  /** Stops the embedded server this process started (and withdraws its announcement); else nothing. */
  release(): Promise<void>;
}

interface Announcement {
  host: string;
  port: number;
  pid: number;
}

export async function resolveLocalRedis(options: {
  env: NodeJS.ProcessEnv;
  config: RedisConfig;
  stackDir: string;
  logger: Logger;
}): Promise<LocalRedis> {
  const { env, config, stackDir, logger } = options;
  if (isRedisConfigured(env)) {
    logger.info('Using the configured Redis', { redis: describeRedisConfig(config) });
    return { host: config.host, port: config.port, source: 'configured', release: async () => {} };
  }
  const announcementFile = path.join(stackDir, 'redis.json');
  const shared = await runningAnnounced(announcementFile);
  if (shared !== undefined) {
    logger.info('Using the embedded Redis another local run started', {
      url: `redis://${shared.host}:${shared.port}`,
      pid: shared.pid,
    });
    return { ...shared, source: 'shared', release: async () => {} };
  }
  const dir = path.join(stackDir, 'redis');
  ensureWritableDir(dir, 'GINKGO_STACK_DIR');
  const embedded = await startEmbedded(dir);
  const pid = embedded.pid ?? 0;
  writeFileSync(
    announcementFile,
    `${JSON.stringify({ host: embedded.host, port: embedded.port, pid })}\n`,
  );
  logger.info('Embedded Redis started', { url: embedded.url, dataDir: dir, pid });
  return {
    host: embedded.host,
    port: embedded.port,
    source: 'embedded',
    release: async () => {
      rmSync(announcementFile, { force: true });
      await embedded.stop();
    },
  };
}

/** A redis-server with its data in `dir`; a missing binary is the operator's one line. */
async function startEmbedded(dir: string): Promise<RedisServer> {
  try {
    return await RedisServer.start({ dir, persistence: true });
  } catch (err) {
    if (err instanceof RedisServerStartError && err.message.includes('ENOENT')) {
      throw new StartupError(
        'redis-server is not installed (not found on PATH); install it (apt-get install redis-server) or set REDIS_URL to a running Redis',
      );
    }
    throw err;
  }
}

/** The announced embedded Redis, if its process runs and it answers. */
async function runningAnnounced(file: string): Promise<Announcement | undefined> {
  if (!existsSync(file)) return undefined;
  let announced: Announcement;
  try {
    announced = JSON.parse(readFileSync(file, 'utf8')) as Announcement;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(announced.pid) || !isProcessRunning(announced.pid)) return undefined;
  const client = new Redis({
    host: announced.host,
    port: announced.port,
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {
    // Not answering means not usable; the caller starts its own.
  });
  try {
    await client.connect();
    await client.ping();
    return announced;
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}
