import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { SentinelGroup, StackFixture, tick, waitFor } from '@ginkgo-live/testing';
import { startFleet } from './fleet.ts';

/**
 * The stack on Redis Sentinel (issue 10): a real master, replica and three sentinels; every app is
 * given only the sentinels. The master is SIGKILLed under load; the sentinels promote the replica.
 */
let group: SentinelGroup;
let fx: StackFixture;

beforeEach(async () => {
  group = await SentinelGroup.start();
  fx = new StackFixture(group.master, { sentinel: group });
});
afterEach(async () => {
  await fx.close();
  await group.cleanup();
});

describe('the whole stack through Redis Sentinel', () => {
  it('follows a master failover: nothing exits, heartbeats and plan go on, accepted events are processed', async ({
    annotate,
  }) => {
    const { nodes, scheduler, gateway, plan } = await startFleet(fx);
    const ids = Object.keys(plan);
    const queues = new PortfolioQueues({ connection: fx.redis, keys: fx.keys });
    let accepted = 0;
    for (let i = 0; i < 30; i++)
      for (const id of ids) if ((await queues.add(id, tick(i))).ok) accepted += 1;
    const seqBefore = (await fx.info('a'))?.last_heartbeat;

    await group.master.kill();
    const killedAt = Date.now();
    await waitFor(async () => (await group.currentMaster()).port === group.replica.port, {
      timeoutMs: 20_000,
      description: 'the replica promoted',
    });
    const promotedMs = Date.now() - killedAt;
    // Every app finds the new master by itself: beats land there, the gateway answers from it.
    await waitFor(
      async () => {
        const info = await fx.info('a').catch(() => null);
        return info !== null && info.last_heartbeat !== seqBefore && info.redis.healthy;
      },
      { timeoutMs: 20_000, description: 'node a beating on the new master' },
    );
    await waitFor(
      async () => {
        const response = await fetch(`${gateway.url}/api/nodes`);
        const body = (await response.json()) as { online_count?: number };
        if (response.status !== 200 || body.online_count !== 2)
          throw new Error(
            `HTTP ${response.status} online ${String(body.online_count)}; node b said: ${nodes[1].lines
              .slice(-6)
              .map((l) => l.slice(0, 300))
              .join(' | ')}`,
          );
        return true;
      },
      // Polled gently: the gateway's rate limit (300 a minute) counts these too.
      {
        timeoutMs: 20_000,
        intervalMs: 500,
        description: 'the gateway answering from the new master',
      },
    );
    const recoveredMs = Date.now() - killedAt;

    // Events after the failover are accepted and processed too.
    for (let i = 30; i < 40; i++)
      for (const id of ids) if ((await queues.add(id, tick(i))).ok) accepted += 1;
    let last = -1;
    await waitFor(
      async () => {
        const states = await Promise.all(ids.map((id) => fx.state(id)));
        const sum = states.reduce((total, s) => total + (s?.processed_count ?? 0), 0);
        const settled = states.every((s) => s?.queue_depth === 0) && sum === last;
        last = sum;
        if (!settled)
          throw new Error(
            JSON.stringify(
              states.map((s) => [
                s?.node_id,
                s?.status,
                s?.queue_depth,
                s?.processed_count,
                s?.last_error,
              ]),
            ),
          );
        return settled;
      },
      // An event in hand when the master died waits for BullMQ's stalled-job check (lock 30 s,
      // checks 30 s apart) before it runs again: hence the long bound.
      { timeoutMs: 120_000, intervalMs: 500, description: 'queues drained on the new master' },
    );
    // Asynchronous replication: what the master had not yet sent to the replica when it died is
    // gone. Nothing is processed twice; the number lost is shown.
    expect(last).toBeLessThanOrEqual(accepted);
    expect(last).toBeGreaterThanOrEqual(40 * ids.length - 30 * ids.length);
    expect(await fx.plan()).toEqual(plan);
    for (const p of [...nodes, scheduler, gateway.process]) expect(p.exit, p.name).toBeUndefined();
    await queues.close();
    await annotate(
      `replica promoted ${promotedMs} ms after SIGKILL; nodes beating and gateway answering from it after ${recoveredMs} ms; accepted ${accepted}, processed ${last} (lost to asynchronous replication: ${accepted - last})`,
    );
  }, 200_000);
});
