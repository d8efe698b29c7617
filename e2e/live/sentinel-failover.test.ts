import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { appliedSeqs, SEQ_CHECKSUM_MODULUS } from '@ginkgo-live/state-keys';
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
    // Seqs accepted per portfolio, before and after the failover.
    const before = new Map<string, number[]>(ids.map((id) => [id, []]));
    const after = new Map<string, number[]>(ids.map((id) => [id, []]));
    const offer = async (i: number, into: Map<string, number[]>) => {
      for (const id of ids) {
        const result = await queues.add(id, tick(i));
        if (result.ok) into.get(id)?.push(result.seq);
      }
    };
    for (let i = 0; i < 30; i++) await offer(i, before);
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

    // Events after the failover are accepted and applied too.
    for (let i = 30; i < 40; i++) await offer(i, after);
    const appliedOf = async (id: string) =>
      (await fx.book(id))?.applied?.producers[queues.producerId];
    await waitFor(
      async () => {
        for (const id of ids) {
          const range = await appliedOf(id);
          if (range?.last !== after.get(id)?.at(-1)) return false;
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 250, description: 'the events after the failover applied' },
    );
    // Asynchronous replication: what the master had not yet sent to the replica when it died may
    // be gone — only events accepted before the kill. Everything in a book is there once, in order.
    let lost = 0;
    for (const id of ids) {
      const range = await appliedOf(id);
      if (range === undefined) throw new Error(`${id}: nothing applied`);
      const { seqs } = appliedSeqs(range);
      expect(range.count).toBe(seqs.length);
      expect(range.checksum).toBe(seqs.reduce((h, q) => (h * 31 + q) % SEQ_CHECKSUM_MODULUS, 0));
      const applied = new Set(seqs);
      for (const seq of after.get(id) ?? [])
        expect(applied.has(seq), `${id} seq ${seq}`).toBe(true);
      lost += (before.get(id) ?? []).filter((seq) => !applied.has(seq)).length;
    }
    const accepted = [...before.values(), ...after.values()].reduce((n, l) => n + l.length, 0);
    expect(await fx.plan()).toEqual(plan);
    for (const p of [...nodes, scheduler, gateway.process]) expect(p.exit, p.name).toBeUndefined();
    await queues.close();
    await annotate(
      `replica promoted ${promotedMs} ms after SIGKILL; nodes beating and gateway answering from it after ${recoveredMs} ms; accepted ${accepted}, lost to asynchronous replication ${lost} (all accepted before the kill), none applied twice`,
    );
  }, 120_000);
});
