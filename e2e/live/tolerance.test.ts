import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import {
  logEntries,
  type ManagedProcess,
  metricsPortOf,
  parsePrometheus,
  type RedisServer,
  StackFixture,
  tick,
  waitFor,
} from '@ginkgo-live/testing';
import { msBetween, startFleet } from './fleet.ts';

/**
 * T072 on the whole stack as processes: Redis frozen (SIGSTOP, so commands time out rather than
 * being refused) and killed over and over, while nodes, scheduler, gateway and notification worker
 * run. Short intervals by env; the defaults are in docs/architecture.md.
 */
let fx: StackFixture;
let server: RedisServer;

beforeEach(async () => {
  fx = await StackFixture.start();
  server = fx.server;
});
afterEach(async () => {
  server.thaw();
  await fx.close();
});

const gatewayStatus = async (url: string) => (await fetch(`${url}/api/nodes`)).status;

/** A node's failed heartbeat attempts, split into beats (each beat starts over at attempt 1). */
function failedBeats(node: ManagedProcess): Record<string, unknown>[][] {
  const beats: Record<string, unknown>[][] = [];
  for (const entry of logEntries(node, 'Heartbeat attempt failed')) {
    if (entry['attempt'] === 1) beats.push([]);
    beats.at(-1)?.push(entry);
  }
  return beats;
}

describe('T072 on the whole stack', () => {
  it('Redis frozen for 2.5 TTLs: nodes retry within their limits and keep their events, the scheduler changes nothing, nothing exits', async ({
    annotate,
  }) => {
    // Three attempts per beat (not the default five), so the limit seen is the one configured.
    const { nodes, scheduler, gateway, plan } = await startFleet(fx, {
      env: { HEARTBEAT_RETRY_ATTEMPTS: '3' },
    });
    const schedulerMetrics = `http://127.0.0.1:${await metricsPortOf(scheduler)}/metrics`;
    const planBefore = await fx.plan();
    const metaBefore = await fx.redis.get(fx.keys.planMeta());
    const queues = new PortfolioQueues({ connection: fx.redis, keys: fx.keys });
    const perPortfolio = 40;
    for (let i = 0; i < perPortfolio; i++)
      for (const id of Object.keys(plan)) expect((await queues.add(id, tick(i))).ok).toBe(true);

    server.freeze();
    const frozenAt = Date.now();
    const ticksAtFreeze = logEntries(scheduler, 'Tick done').length;
    while (Date.now() - frozenAt < 5_000) {
      expect(await gatewayStatus(gateway.url)).toBe(503);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    for (const p of [...nodes, scheduler, gateway.process]) expect(p.exit, p.name).toBeUndefined();
    // FR-037: failed ticks are logged with a growing count and the loop goes on ticking.
    const failures = logEntries(scheduler, 'Redis operation failed; this tick changes nothing');
    expect(failures.length).toBeGreaterThanOrEqual(3);
    expect(failures.slice(0, 3).map((e) => e['consecutiveFailures'])).toEqual([1, 2, 3]);
    expect(failures.every((e) => e['level'] === 'error')).toBe(true);
    const frozenTicks = logEntries(scheduler, 'Tick done').slice(ticksAtFreeze);
    expect(frozenTicks.length).toBeGreaterThanOrEqual(3);
    expect(frozenTicks.every((e) => e['failed'] === true)).toBe(true);

    // FR-036: each failed beat tries at most 3 times, waits at least the delay it announced
    // between attempts, and the next beat starts over; nobody gives up.
    for (const node of nodes) {
      const beats = failedBeats(node);
      expect(beats.length, node.name).toBeGreaterThanOrEqual(2);
      for (const beat of beats) {
        expect(beat.map((e) => e['attempt'])).toEqual([1, 2, 3].slice(0, beat.length));
        for (let i = 1; i < beat.length; i++) {
          const announced = Number(beat[i - 1]?.['nextDelayMs']);
          expect(announced).toBeGreaterThan(0);
          expect(msBetween(beat[i - 1] ?? {}, beat[i] ?? {})).toBeGreaterThanOrEqual(announced - 2);
        }
      }
      expect(
        beats.some((beat) => beat.length === 3),
        node.name,
      ).toBe(true);
      expect(logEntries(node, 'Heartbeat failed')).toHaveLength(1);
    }
    const [sample] = failedBeats(nodes[0]);
    await annotate(
      `a failed beat: delays announced ${JSON.stringify(sample?.map((e) => e['nextDelayMs'] ?? null))} ms, ` +
        `observed gaps ${JSON.stringify(sample?.slice(1).map((e, i) => msBetween(sample[i] ?? {}, e)))} ms`,
    );

    server.thaw();
    const thawedAt = Date.now();
    for (const node of nodes) await node.waitForLine('Heartbeat recovered', 10_000);
    await waitFor(async () => (await gatewayStatus(gateway.url)) === 200, { timeoutMs: 5_000 });
    await waitFor(
      () => logEntries(scheduler, 'Redis reachable again; planning resumes').length === 1,
      { timeoutMs: 5_000 },
    );
    await annotate(`healthy again ${Date.now() - thawedAt} ms after thaw`);
    // Every event accepted before the freeze is processed exactly once, where it was.
    await waitFor(
      async () => {
        const states = await Promise.all(Object.keys(plan).map((id) => fx.state(id)));
        return states.every((s) => s?.processed_count === perPortfolio && s.queue_depth === 0);
      },
      { timeoutMs: 10_000, description: 'every event processed' },
    );
    expect(await fx.plan()).toEqual(planBefore);
    expect(await fx.redis.get(fx.keys.planMeta())).toBe(metaBefore);
    for (const node of nodes) expect(logEntries(node, 'Portfolio unloaded')).toHaveLength(0);

    // A normal tick after recovery: a new portfolio is placed and runs.
    await fx.addToCatalog('p-new');
    await waitFor(async () => (await fx.plan())['p-new'] !== undefined, { timeoutMs: 5_000 });
    const placedOn = (await fx.plan())['p-new'];
    await waitFor(async () => (await fx.state('p-new'))?.node_id === placedOn, {
      timeoutMs: 5_000,
    });
    const metrics = parsePrometheus(await (await fetch(schedulerMetrics)).text());
    // Every failure logged (more may have come after the count above, while still frozen).
    expect(metrics.get('ginkgo_scheduler_redis_failures_total')).toBe(
      logEntries(scheduler, 'Redis operation failed; this tick changes nothing').length,
    );
    expect(metrics.get('ginkgo_scheduler_redis_consecutive_failures')).toBe(0);
    expect(metrics.get('ginkgo_scheduler_ticks_total')).toBeGreaterThan(ticksAtFreeze + 3);
    await queues.close();
  }, 60_000);

  it("every app's clients carry the configured timeouts and backoff, and hold the same connections over repeated outages", async ({
    annotate,
  }) => {
    const env = {
      REDIS_CONNECT_TIMEOUT_MS: '1500',
      REDIS_COMMAND_TIMEOUT_MS: '600',
      REDIS_RECONNECT_MAX_DELAY_MS: '200',
    };
    const { nodes, scheduler, gateway } = await startFleet(fx, { env });
    const worker = await fx.startNotificationWorker(env);
    const apps = [...nodes, scheduler, gateway.process, worker];

    // FR-038, read back from each client as ioredis holds it.
    for (const app of apps) {
      await waitFor(() => logEntries(app, 'Redis connection ready').length >= 1, {
        timeoutMs: 5_000,
        description: `${app.name} connected`,
      });
      const first = new Map<string, Record<string, unknown>>();
      for (const entry of logEntries(app, 'Redis connection ready'))
        if (entry['settings'] !== undefined)
          first.set(String(entry['connection']), entry['settings'] as Record<string, unknown>);
      expect(first.size, app.name).toBeGreaterThanOrEqual(1);
      for (const [name, settings] of first) {
        expect(settings['connectTimeoutMs'], name).toBe(1_500);
        expect(settings['keepAliveMs'], name).toBe(10_000);
        const delays = settings['reconnectDelaysMs'] as number[];
        expect(
          delays.every((d) => d > 0 && d <= 200),
          name,
        ).toBe(true);
        if (settings['maxRetriesPerRequest'] === null) {
          // A blocking (BullMQ) connection: waits through an outage, no command timeout.
          expect(settings['commandTimeoutMs'], name).toBeNull();
        } else {
          expect(settings, name).toMatchObject({
            commandTimeoutMs: 600,
            socketTimeoutMs: 600,
            maxRetriesPerRequest: 1,
            offlineQueue: false,
          });
        }
      }
    }

    const parts = ['execution-node:a', 'execution-node:b', 'livecore-scheduler', 'api-gateway'];
    parts.push('notification-worker');
    const connections = () => Promise.all(parts.map((part) => fx.connectionNames(part)));
    const before = await connections();
    for (const names of before) expect(names.length).toBeGreaterThanOrEqual(1);
    const total = (lists: string[][]) => lists.reduce((sum, names) => sum + names.length, 0);

    const outages = ['kill', 'freeze', 'kill', 'kill'] as const;
    for (const [i, outage] of outages.entries()) {
      if (outage === 'kill') await server.kill();
      else server.freeze();
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      if (outage === 'kill') await server.restart({ keepData: i % 2 === 0 });
      else server.thaw();
      await waitFor(async () => (await gatewayStatus(gateway.url)) === 200, { timeoutMs: 10_000 });
      await waitFor(async () => JSON.stringify(await connections()) === JSON.stringify(before), {
        timeoutMs: 15_000,
        description: `the same connections after outage ${i + 1} (${outage})`,
      });
    }
    // Settled, not just passing through: still the same a moment later.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await connections()).toEqual(before);
    for (const app of apps) expect(app.exit, app.name).toBeUndefined();
    await annotate(
      `${total(before)} connections held by 5 apps, the same after ${outages.length} outages`,
    );
  }, 120_000);
});
