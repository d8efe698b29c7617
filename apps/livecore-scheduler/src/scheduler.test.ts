import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import { MemoryTransport } from '@ginkgo-live/testing';
import type { SchedulerSettings } from './decide.ts';
import { FakeStore, iso, SETTINGS, spec, T0 } from './fake-store.test-support.ts';
import { Scheduler } from './scheduler.ts';

/** The shell on the fake store, with a clock the test moves and every log line and notice kept. */
function harness(settings: Partial<SchedulerSettings> = {}, store = new FakeStore()) {
  const transport = new MemoryTransport();
  const sent: string[] = [];
  const clock = { now: T0 };
  const record =
    (op: string) =>
    (name: string, subject: unknown, ..._details: unknown[]): void => {
      sent.push(`${op} ${name} ${JSON.stringify(subject)}`);
    };
  const scheduler = new Scheduler({
    store,
    // What the notifier was asked, by name and subject (the catalogue spells the rest).
    notifier: {
      raise: record('raise'),
      resolve: record('resolve'),
    },
    logger: createLogger({ app: 'test', level: 'debug', format: 'json', transports: [transport] }),
    settings: { ...SETTINGS, ...settings },
    leaderTtlMs: 10_000,
    processStartMs: T0,
    now: () => clock.now,
  });
  const at = async (ms: number) => {
    clock.now = T0 + ms;
    await scheduler.tick();
  };
  return { scheduler, store, transport, sent, at };
}

describe('Scheduler shell', () => {
  it('stands by without writing anything, the catalog file included; leading, seeds the catalog in its plan write', async () => {
    const { store, at, transport, scheduler } = harness({
      catalogFile: [spec('p1'), spec('p2')],
    });
    store.leader = 'someone-else';
    store.beat('a', T0);
    // Started as the process starts it: the first tick runs at once.
    await scheduler.start();
    await vi.waitFor(() => {
      expect(scheduler.status.ticks).toBe(1);
    });
    await scheduler.stop();
    expect(scheduler.status.role).toBe('standby');
    expect(store.catalog.size).toBe(0);
    expect(store.writes).toEqual([]);
    expect(transport.withMessage('Standing by: another scheduler leads')).toHaveLength(1);

    store.leader = null; // the other one's lock expired
    await at(1_000);
    expect(scheduler.status.role).toBe('leader');
    expect(store.writes).toHaveLength(1);
    expect([...store.catalog.keys()]).toEqual(['p1', 'p2']);
    expect(store.plan()).toEqual({ p1: 'a', p2: 'a' });
    expect(transport.withMessage('Plan written')[0]).toMatchObject({
      planVersion: 1,
      reasons: ['no plan yet', '2 moves', 'catalog +2 -0', 'nodes a:alive'],
    });
  });

  it('makes its store forget what it remembered each time it becomes the leader, and only then', async () => {
    const { store, at } = harness();
    store.beat('a', T0);
    await at(0);
    expect(store.forgotten).toBe(1);
    await at(1_000);
    await at(2_000);
    expect(store.forgotten).toBe(1);
    store.leader = 'someone-else'; // s1's lock was taken over while it paused
    await at(3_000);
    store.leader = null;
    await at(4_000);
    expect(store.forgotten).toBe(2);
  });

  it('taking over after Redis came back empty, calls the catalog lost while the nodes run portfolios', async () => {
    const { store, at, sent, transport } = harness();
    store.leader = 'someone-else';
    await at(0);
    // Redis restarted empty; the nodes still run what the dead leader's plan gave them.
    store.beat('a', T0 + 1_000, { running: ['p1', 'p2'] });
    store.beat('b', T0 + 1_000, { running: ['p3'] });
    store.leader = null;
    await at(1_000);
    expect(sent).toEqual(['raise catalog_missing {}', 'resolve fleet_halted {}']);
    expect(transport.withMessage('Portfolio catalog vanished; nothing is unassigned')).toHaveLength(
      1,
    );
    expect(store.writes).toEqual([]);
    expect(store.nodeKeys.size).toBe(0);
  });

  it('logs each failed Redis operation with its count, accepts nothing of a failed write, and retries it', async () => {
    const { store, at, transport, scheduler } = harness();
    store.addSpecs('p1');
    store.beat('a', T0);
    await at(0);
    store.request({ id: 'c1', action: 'catalog_add', spec: spec('p2') });
    store.failing.writePlan = 1;
    store.failing.readWorld = 1;
    await at(1_000);
    await at(2_000);
    expect(
      transport
        .withMessage('Redis operation failed; this tick changes nothing')
        .map((e) => [e['operation'], e['consecutiveFailures'], e['level']]),
    ).toEqual([
      ['read world', 1, 'error'],
      ['write plan', 1, 'error'],
    ]);
    expect(store.results.size).toBe(0);
    expect(store.requests.map((r) => r.id)).toEqual(['c1']);
    expect(scheduler.status.planVersion).toBe(1);

    await at(3_000);
    expect(
      transport
        .withMessage('Redis reachable again; planning resumes')
        .map((e) => e['afterFailures']),
    ).toEqual([1, 1]);
    expect([...store.results.values()]).toMatchObject([{ id: 'c1', ok: true, plan_version: 2 }]);
    expect([...store.catalog.keys()]).toEqual(['p1', 'p2']);
    expect(scheduler.status).toMatchObject({ planVersion: 2, consecutiveFailures: 0 });
  });

  it('gives nodes the outage grace from when Redis was reachable again', async () => {
    const { store, at, transport, sent } = harness({ outageGraceMs: 5_000 });
    store.addSpecs('p1');
    store.beat('a', T0);
    await at(0);
    store.failing.lead = 3;
    for (const t of [1_000, 2_000, 3_000]) await at(t);
    store.kill('a'); // its heartbeat expired while Redis was away
    await at(4_000);
    expect(transport.withMessage('Node lost')).toEqual([]);
    expect(store.records.get('a')?.status).toBe('alive');
    await at(8_999);
    expect(store.plan()).toEqual({ p1: 'a' });
    await at(9_000);
    expect(store.records.get('a')?.status).toBe('lost');
    expect(store.plan()).toEqual({ p1: 'orphaned: no alive, non-draining node' });
    expect(sent).toEqual([
      'resolve catalog_missing {}',
      'resolve fleet_halted {}',
      'raise node_lost {"nodeId":"a"}',
    ]);
  });

  it('says nothing that a refused write did not do, and keeps its memory as before it', async () => {
    const { store, at, transport, sent } = harness();
    store.addSpecs('p1');
    store.beat('a', T0);
    store.beat('b', T0);
    await at(0);
    store.kill('a');
    // Another leader writes between this one's read and its write.
    const write = store.writePlan.bind(store);
    store.writePlan = (plan) => {
      store.meta = { _v: 1, version: 7, updated_at: iso(500), leader: 's2' };
      store.writePlan = write;
      return write(plan);
    };
    sent.length = 0;
    await at(1_000);
    expect(transport.withMessage('Plan write refused; re-reading next tick')).toMatchObject([
      { reason: 'STALE_VERSION 7' },
    ]);
    expect(transport.withMessage('Node lost')).toEqual([]);
    expect(sent).toEqual([]);
    await at(2_000);
    expect(transport.withMessage('Node lost')).toHaveLength(1);
    expect(sent).toEqual(['raise node_lost {"nodeId":"a"}']);
    expect(store.meta?.version).toBe(8);
  });

  /** The next plan write runs in the store, then its reply is lost (connection dropped after EVALSHA). */
  const loseNextReply = (store: FakeStore): void => {
    const write = store.writePlan.bind(store);
    store.writePlan = async (plan) => {
      store.writePlan = write;
      await write(plan);
      throw new Error('Connection is closed');
    };
  };

  it('a write that landed but whose reply was lost still says what it did, once', async () => {
    const { store, at, transport, sent } = harness();
    store.addSpecs('p1', 'p2', 'p3');
    store.beat('a', T0);
    store.beat('b', T0);
    await at(0);
    store.kill('a');
    loseNextReply(store);
    sent.length = 0;
    await at(1_000);
    expect(store.records.get('a')?.status).toBe('lost');
    expect(sent).toEqual([]);
    await at(2_000);
    await at(3_000);
    expect(sent).toEqual(['raise node_lost {"nodeId":"a"}']);
    expect(transport.withMessage('Node lost')).toHaveLength(1);
    expect(transport.withMessage('Plan write landed; its reply was lost')).toMatchObject([
      { planVersion: 2 },
    ]);
  });

  it('a write that landed but whose reply was lost charges the rebalance budget', async () => {
    const { store, at, transport } = harness({ rebalancePerMinute: 1 });
    store.addSpecs('p1', 'p2', 'p3', 'p4');
    store.beat('b', T0);
    await at(0);
    store.beat('c', T0 + 1_000);
    loseNextReply(store);
    await at(1_000);
    expect(store.plan()).toMatchObject({ p4: 'c' });
    // The failed reply counts as an outage: Redis is reachable again at 2 s, the grace ends at
    // 17 s; then still within the minute of the move.
    await at(2_000);
    await at(17_000);
    await at(18_000);
    expect(
      transport.withMessage('Portfolio placed').filter((e) => e['why'] === 'rebalance'),
    ).toHaveLength(1);
    expect(Object.values(store.plan()).sort()).toEqual(['b', 'b', 'b', 'c']);
  });

  it('measures recovery once and resigns the lock on stop', async () => {
    const { store, at, transport, scheduler } = harness();
    store.addSpecs('p1');
    store.beat('a', T0);
    await at(250);
    await at(1_000);
    expect(transport.withMessage('Recovered: plan loaded and first tick done')).toMatchObject([
      { planVersion: 1, planLoadedMs: 250, recoveryMs: 250 },
    ]);
    expect(transport.withMessage('Tick done').map((e) => e['tick'])).toEqual([1, 2]);
    await scheduler.stop();
    expect(store.leader).toBeNull();
  });
  it('stopped during its first tick, runs no other and gives the lock up', async () => {
    const { store, scheduler } = harness({ tickMs: 5 });
    store.addSpecs('p1');
    store.beat('a', T0);
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reading = (): void => undefined;
    const inTick = new Promise<void>((resolve) => {
      reading = resolve;
    });
    const read = store.readWorld.bind(store);
    store.readWorld = async () => {
      reading();
      await gate;
      return read();
    };
    const started = scheduler.start();
    await inTick;
    const stopped = scheduler.stop();
    release();
    await Promise.all([started, stopped]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(scheduler.status.ticks).toBe(1);
    expect(store.writes).toHaveLength(1);
    expect(store.leader).toBeNull();
  });
});
