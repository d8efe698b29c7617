import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { appEntry, ManagedProcess, RedisServer, seedFleet } from '@ginkgo-live/testing';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Calls per command, from `INFO commandstats`. */
async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    out.set(m[1] ?? '', Number(m[2]));
  return out;
}

/** The commands a fleet read sends (registry, records, plan, catalog, heartbeats, infos, states). */
const FLEET_READS = ['zrange', 'hgetall', 'hkeys', 'hmget', 'zmscore', 'mget', 'pttl', 'lrange'];

async function fleetReads(redis: Redis): Promise<number> {
  const calls = await commandCalls(redis);
  return FLEET_READS.reduce((sum, name) => sum + (calls.get(name) ?? 0), 0);
}

/** Reads `/api/overview/stream` until `frames` frames arrived (the whole overview, then deltas), then closes it. */
async function readFrames(port: number, frames: number): Promise<number> {
  const controller = new AbortController();
  const response = await fetch(`http://127.0.0.1:${port}/api/overview/stream`, {
    signal: controller.signal,
  });
  let text = '';
  let seen = 0;
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      seen = text.match(/^event: overview(?:-delta)?\n/gm)?.length ?? 0;
      if (seen >= frames) return seen;
    }
  } finally {
    controller.abort();
  }
  return seen;
}

describe('the operations feed on demand', () => {
  it('with no page open the gateway reads nothing of the fleet; a stream reads it; once closed, nothing again', async () => {
    const server = await RedisServer.start();
    cleanups.push(() => server.cleanup());
    const redis = new Redis(server.port, server.host);
    cleanups.push(() => redis.disconnect());
    await seedFleet({ redis, keys: createStateKeys('od:') }, 40, 3, { withReports: true });

    const app = ManagedProcess.start(
      appEntry('api-gateway', 'api-gateway', {
        ...server.env,
        LOG_FORMAT: 'json',
        GATEWAY_PORT: '0',
        REDIS_KEY_PREFIX: 'od:',
        GATEWAY_OVERVIEW_INTERVAL_MS: '200',
      }),
    );
    cleanups.push(() => app.stop('SIGKILL'));
    const port = (
      JSON.parse(await app.waitForLine('Gateway listening', 20_000)) as { port: number }
    ).port;

    // Before this change the gateway sampled the whole fleet every 5 s from its start.
    const idle0 = await fleetReads(redis);
    await sleep(7_000);
    expect((await fleetReads(redis)) - idle0).toBe(0);

    const watched0 = await fleetReads(redis);
    expect(await readFrames(port, 3)).toBeGreaterThanOrEqual(3);
    expect((await fleetReads(redis)) - watched0).toBeGreaterThan(0);

    // The loop finds nobody watching at its next run and stops.
    await sleep(1_000);
    const closed0 = await fleetReads(redis);
    await sleep(5_000);
    expect((await fleetReads(redis)) - closed0).toBe(0);
  }, 60_000);
});
