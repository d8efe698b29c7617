import { describe, expect, it } from 'vitest';
import {
  decide,
  initialMemory,
  type Decisions,
  type Effect,
  type SchedulerMemory,
  type SchedulerSettings,
} from './decide.ts';
import { DAY_MS, FakeStore, iso, SETTINGS, spec, T0 } from './fake-store.test-support.ts';
import type { Notice } from './notices.ts';

/**
 * The scheduler's core tick by tick on plain data: the fake store carries what was written from
 * one tick to the next, as Redis would. Times are ms after T0.
 */
class Sim {
  readonly store = new FakeStore();
  memory: SchedulerMemory = initialMemory();
  settings: SchedulerSettings;

  constructor(settings: Partial<SchedulerSettings> = {}) {
    this.settings = { ...SETTINGS, ...settings };
    this.store.leader = this.settings.schedulerId;
  }

  /** One tick at `at`: read, decide, write (when the store lets it), remember. */
  async tick(at: number): Promise<Decisions> {
    const d = decide(await this.store.readWorld(), this.memory, T0 + at, this.settings);
    let written = true;
    if (d.write !== null) {
      try {
        await this.store.writePlan(d.write);
      } catch {
        written = false;
      }
    }
    this.memory = written ? d.memory : d.memoryUnwritten;
    return d;
  }

  beat(at: number, ...nodes: string[]): void {
    for (const n of nodes)
      this.store.beat(n, T0 + at, { running: this.running(n), capacity: this.capacity.get(n) });
  }

  /** What a node runs: by default exactly what the plan gives it (a well-behaved node). */
  readonly reports = new Map<string, string[]>();
  readonly capacity = new Map<string, number>();
  private running(nodeId: string): string[] {
    return (
      this.reports.get(nodeId) ??
      Object.entries(this.store.plan())
        .filter(([, n]) => n === nodeId)
        .map(([p]) => p)
    );
  }
}

const logs = (effects: readonly Effect[], message?: string) =>
  effects.flatMap((e) =>
    e.type === 'log' && (message === undefined || e.message === message) ? [e] : [],
  );
const notices = (effects: readonly Effect[]): Notice[] =>
  effects.flatMap((e) => (e.type === 'notice' ? [e.notice] : []));
const brief = (effects: readonly Effect[]) =>
  notices(effects).map((n) => `${n.op} ${n.kind} ${JSON.stringify(n.subject)}`);
const loads = (plan: Record<string, string>) => {
  const out: Record<string, number> = {};
  for (const node of Object.values(plan)) out[node] = (out[node] ?? 0) + 1;
  return out;
};

describe('decide: failover and node lost / back', () => {
  it('moves a lost node’s portfolios in the same write, and says so once', async () => {
    const sim = new Sim();
    sim.store.addSpecs('p1', 'p2', 'p3');
    sim.beat(0, 'a');
    await sim.tick(0);
    sim.beat(1_000, 'b');
    await sim.tick(1_000);
    expect(sim.store.plan()).toEqual({ p1: 'a', p2: 'a', p3: 'a' });

    sim.store.kill('a');
    const d = await sim.tick(2_000);
    expect(sim.store.plan()).toEqual({ p1: 'b', p2: 'b', p3: 'b' });
    expect(d.reasons).toEqual(['3 moves', 'node assignments', 'nodes a:lost b:alive']);
    expect(sim.store.records.get('a')).toMatchObject({ status: 'lost', assigned_count: 0 });
    expect(sim.store.nodeKeys.get('a')).toEqual([]);
    expect(brief(d.afterWrite)).toEqual(['raise node_lost {"nodeId":"a"}']);
    expect(logs(d.afterWrite, 'Portfolio placed').map((l) => l.fields)).toEqual([
      { portfolioId: 'p1', from: 'a', to: 'b', why: 'plan', planVersion: 3 },
      { portfolioId: 'p2', from: 'a', to: 'b', why: 'plan', planVersion: 3 },
      { portfolioId: 'p3', from: 'a', to: 'b', why: 'plan', planVersion: 3 },
    ]);

    sim.beat(3_000, 'b');
    const quiet = await sim.tick(3_000);
    expect(quiet.write).toBeNull();
    expect(brief(quiet.afterWrite)).toEqual([]);

    sim.beat(4_000, 'a');
    const back = await sim.tick(4_000);
    expect(brief(back.afterWrite)).toEqual(['resolve node_lost {"nodeId":"a"}']);
    expect(logs(back.afterWrite, 'Node back')).toHaveLength(1);
    // Stable: nothing moves back to the returning node.
    expect(sim.store.plan()).toEqual({ p1: 'b', p2: 'b', p3: 'b' });
  });
});

describe('decide: the outage grace', () => {
  it('keeps a node that was alive alive in its record and plan while Redis was just back', async () => {
    const sim = new Sim({ outageGraceMs: 15_000 });
    sim.store.addSpecs('p1', 'p2');
    sim.beat(0, 'a', 'b');
    await sim.tick(0);
    sim.store.request({ id: 'r1', action: 'drain', node_id: 'b' });
    await sim.tick(1_000);
    expect(sim.store.plan()).toEqual({ p1: 'a', p2: 'a' });
    // Redis was down long enough for both heartbeats to expire; it is back at 10 s.
    sim.store.kill('a');
    sim.store.kill('b');
    sim.memory = { ...sim.memory, outageEndedAt: T0 + 10_000 };
    const inGrace = await sim.tick(10_000);
    expect(inGrace.write).toBeNull();
    expect(sim.store.records.get('a')?.status).toBe('alive');
    expect(sim.store.records.get('b')?.status).toBe('draining');
    expect(logs([...inGrace.effects, ...inGrace.afterWrite], 'Node lost')).toEqual([]);
    expect(await sim.tick(24_999)).toMatchObject({ write: null });

    const after = await sim.tick(25_000);
    expect(after.reasons).toEqual(['2 moves', 'node assignments', 'nodes a:lost b:lost']);
    expect(sim.store.plan()).toEqual({
      p1: 'orphaned: no alive, non-draining node',
      p2: 'orphaned: no alive, non-draining node',
    });
    expect(brief(after.afterWrite)).toEqual([
      'raise node_lost {"nodeId":"a"}',
      'raise node_lost {"nodeId":"b"}',
    ]);
  });

  it('sends no nudge in the grace (node reports written during the outage are stale) and keeps the backoff', async () => {
    const sim = new Sim();
    sim.store.addSpecs('p1');
    sim.beat(0, 'a');
    await sim.tick(0);
    sim.reports.set('a', []);
    sim.beat(3_000, 'a');
    expect((await sim.tick(3_000)).reasons).toEqual(['nudges', 'node assignments']);
    const backoff = new Map([['a|p1', { count: 1, nextAtMs: T0 + 9_000 }]]);
    expect(sim.memory.nudges).toEqual(backoff);
    sim.beat(9_000, 'a');
    sim.memory = { ...sim.memory, outageEndedAt: T0 + 8_000 };
    expect((await sim.tick(9_000)).write).toBeNull();
    expect(sim.memory.nudges).toEqual(backoff);
    sim.memory = { ...sim.memory, outageEndedAt: null };
    const d = await sim.tick(10_000);
    expect(logs(d.afterWrite, 'Node does not run an assigned portfolio; nudging it')).toMatchObject(
      [{ fields: { nodeId: 'a', portfolioId: 'p1', nudges: 2 } }],
    );
  });
});

describe('decide: control requests', () => {
  it('drains a node (its portfolios move, it gets none) and undrains it (nothing moves back)', async () => {
    const sim = new Sim();
    sim.store.addSpecs('p1', 'p2');
    sim.beat(0, 'a', 'b');
    await sim.tick(0);
    expect(sim.store.plan()).toEqual({ p1: 'a', p2: 'b' });
    sim.store.request({ id: 'r1', action: 'drain', node_id: 'a' });
    sim.store.request({ id: 'r2', action: 'drain', node_id: 'ghost' });
    const drained = await sim.tick(1_000);
    expect(sim.store.plan()).toEqual({ p1: 'b', p2: 'b' });
    expect(sim.store.records.get('a')?.status).toBe('draining');
    expect([...sim.store.results.values()]).toEqual([
      { _v: 1, id: 'r1', ok: true, reason: null, plan_version: 2, processed_at: iso(1_000) },
      {
        _v: 1,
        id: 'r2',
        ok: false,
        reason: 'unknown node ghost',
        plan_version: 2,
        processed_at: iso(1_000),
      },
    ]);
    // One line per request, with who asked, and its audit entry in the same write.
    expect(
      logs(drained.afterWrite, 'Control request').map((l) => [
        l.level,
        l.fields['requestId'],
        l.fields['actor'],
        l.fields['action'],
        l.fields['outcome'],
        l.fields['reason'],
      ]),
    ).toEqual([
      ['info', 'r1', 'test', 'drain', 'accepted', null],
      ['warn', 'r2', 'test', 'drain', 'refused', 'unknown node ghost'],
    ]);
    expect(sim.store.audit).toEqual([
      {
        at: iso(1_000),
        actor: 'test',
        via: 'livecore-scheduler',
        action: 'drain',
        target: { node_id: 'a', portfolio_id: null, target_node_id: null },
        outcome: 'accepted',
        reason: null,
        request_id: 'r1',
        address: null,
      },
      {
        at: iso(1_000),
        actor: 'test',
        via: 'livecore-scheduler',
        action: 'drain',
        target: { node_id: 'ghost', portfolio_id: null, target_node_id: null },
        outcome: 'refused',
        reason: 'unknown node ghost',
        request_id: 'r2',
        address: null,
      },
    ]);
    expect(sim.store.requests).toEqual([]);
    // Still draining at the next ticks, without a request.
    expect(await sim.tick(2_000)).toMatchObject({ write: null });

    sim.store.request({ id: 'r3', action: 'undrain', node_id: 'a' });
    await sim.tick(3_000);
    expect(sim.store.records.get('a')?.status).toBe('alive');
    expect(sim.store.plan()).toEqual({ p1: 'b', p2: 'b' });
    sim.store.addSpecs('p3');
    await sim.tick(4_000);
    expect(sim.store.plan()['p3']).toBe('a');
  });

  it('migrates on request so that it sticks, and refuses a migration with the reason', async () => {
    const sim = new Sim();
    sim.capacity.set('b', 1);
    sim.store.addSpecs('p1', 'p2');
    sim.beat(0, 'a', 'b');
    await sim.tick(0);
    expect(sim.store.plan()).toEqual({ p1: 'a', p2: 'b' });
    sim.store.request({ id: 'm1', action: 'migrate', portfolio_id: 'p1', target_node_id: 'b' });
    sim.store.request({ id: 'm2', action: 'migrate', portfolio_id: 'p2', target_node_id: 'b' });
    sim.store.request({ id: 'm3', action: 'migrate', portfolio_id: 'p2', target_node_id: 'zz' });
    sim.store.request({ id: 'm4', action: 'migrate', portfolio_id: 'p2' });
    const moved = await sim.tick(1_000);
    expect(
      [...sim.store.results.values()].map((r) => [r.id, r.ok, r.reason, r.plan_version]),
    ).toEqual([
      ['m1', true, null, 2],
      ['m2', false, 'node b is full', 2],
      ['m3', false, 'unknown node zz', 2],
      ['m4', false, 'migrate needs portfolio_id and target_node_id', 2],
    ]);
    // An operator's move wins over stability: p2 makes room for it on b (capacity 1).
    expect(sim.store.plan()).toEqual({ p1: 'b', p2: 'a' });
    expect(moved.reasons).toEqual(['2 moves', '4 requests', 'node assignments']);
    sim.beat(2_000, 'a', 'b');
    expect(await sim.tick(2_000)).toMatchObject({ write: null });
    expect(sim.store.plan()).toEqual({ p1: 'b', p2: 'a' });
  });

  it('adds and removes catalog entries in the plan write, and refuses bad ones with a reason', async () => {
    const sim = new Sim();
    sim.store.addSpecs('p1');
    sim.beat(0, 'a');
    await sim.tick(0);
    sim.store.request({ id: 'c1', action: 'catalog_add', spec: spec('p2') });
    sim.store.request({ id: 'c2', action: 'catalog_add', spec: { portfolio_id: 'bad' } });
    sim.store.request({ id: 'c3', action: 'catalog_remove', portfolio_id: 'p1' });
    sim.store.request({ id: 'c4', action: 'catalog_remove', portfolio_id: 'nope' });
    const d = await sim.tick(1_000);
    expect(d.write?.catalog).toEqual({ set: [spec('p2')], remove: ['p1'] });
    expect([...sim.store.catalog.keys()]).toEqual(['p2']);
    expect(sim.store.plan()).toEqual({ p2: 'a' });
    expect(
      [...sim.store.results.values()].map((r) => [r.id, r.ok, r.reason?.split(':')[0] ?? null]),
    ).toEqual([
      ['c1', true, null],
      ['c2', false, 'invalid spec'],
      ['c3', true, null],
      ['c4', false, 'unknown portfolio nope'],
    ]);
  });

  it('never accepts a catalog change whose write failed: nothing consumed, retried next tick', async () => {
    const sim = new Sim();
    sim.store.addSpecs('p1');
    sim.beat(0, 'a');
    await sim.tick(0);
    sim.store.request({ id: 'c1', action: 'catalog_add', spec: spec('p2') });
    sim.store.failing.writePlan = 1;
    const failed = await sim.tick(1_000);
    expect(failed.write?.results).toEqual([
      { _v: 1, id: 'c1', ok: true, reason: null, plan_version: 2, processed_at: iso(1_000) },
    ]);
    expect(sim.store.results.size).toBe(0);
    expect(sim.store.requests.map((r) => r.id)).toEqual(['c1']);
    expect([...sim.store.catalog.keys()]).toEqual(['p1']);

    await sim.tick(2_000);
    expect([...sim.store.results.values()]).toEqual([
      { _v: 1, id: 'c1', ok: true, reason: null, plan_version: 2, processed_at: iso(2_000) },
    ]);
    expect(sim.store.meta?.version).toBe(2);
    expect([...sim.store.catalog.keys()]).toEqual(['p1', 'p2']);
    expect(sim.store.requests).toEqual([]);
  });
});

describe('decide: the trading halt', () => {
  const halt = {
    _v: 1 as const,
    id: 'h1',
    state: 'halted' as const,
    halted_at: iso(500),
    by: 'desk-lead',
    reason: 'exchange outage',
    lifted_at: null,
    lifted_by: null,
    lift_request_id: null,
  };

  it('raises fleet_halted at every tick while halted (the dedupe sends it once) and resolves it once lifted', async () => {
    const sim = new Sim();
    sim.store.addSpecs('p1');
    sim.beat(0, 'a');
    await sim.tick(0);
    sim.store.halt = halt;
    const raised = await sim.tick(1_000);
    expect(notices(raised.effects)).toEqual([
      {
        op: 'raise',
        kind: 'fleet_halted',
        subject: {},
        details: { halted_at: iso(500), by: 'desk-lead', reason: 'exchange outage' },
      },
    ]);
    // An operator's act, not a plan change: nothing is written for it, nothing moves.
    expect(raised.write).toBeNull();
    expect(brief((await sim.tick(2_000)).effects)).toEqual(['raise fleet_halted {}']);

    sim.store.halt = null;
    expect(brief((await sim.tick(3_000)).effects)).toEqual(['resolve fleet_halted {}']);
    expect(brief((await sim.tick(4_000)).effects)).toEqual([]);
  });

  it('a halt record gone missing (Redis back empty) resolves nothing; only its lift does', async () => {
    const sim = new Sim();
    sim.store.addSpecs('p1');
    sim.beat(0, 'a');
    await sim.tick(0);
    sim.store.halt = halt;
    expect(brief((await sim.tick(500)).effects)).toEqual(['raise fleet_halted {}']);
    sim.store.halt = null;
    sim.store.haltLifted = false;
    expect(brief((await sim.tick(1_000)).effects)).toEqual([]);
    expect(brief((await sim.tick(2_000)).effects)).toEqual([]);
    sim.store.haltLifted = true;
    expect(brief((await sim.tick(3_000)).effects)).toEqual(['resolve fleet_halted {}']);
  });

  it('is told even at a tick that plans nothing (the catalog lost) and whatever the write does', async () => {
    const sim = new Sim();
    sim.reports.set('a', ['p1']);
    sim.beat(0, 'a');
    sim.store.halt = halt;
    const d = await sim.tick(0);
    expect(d.write).toBeNull();
    expect(brief(d.effects)).toEqual(['raise catalog_missing {}', 'raise fleet_halted {}']);

    const failing = new Sim();
    failing.store.addSpecs('p1');
    failing.beat(0, 'a');
    failing.store.halt = halt;
    failing.store.failing.writePlan = 1;
    const unwritten = await failing.tick(0);
    expect(unwritten.write).not.toBeNull();
    expect(brief(unwritten.effects)).toContain('raise fleet_halted {}');
    // Lifted later: the failed write did not make the scheduler forget it was firing.
    failing.store.halt = null;
    expect(brief((await failing.tick(1_000)).effects)).toEqual(['resolve fleet_halted {}']);
  });
});

describe('decide: control requests audited in the plan write', () => {
  it('a write that fails carries its audit entries and records none; the retry records each once', async () => {
    const sim = new Sim();
    sim.store.addSpecs('p1');
    sim.beat(0, 'a', 'b');
    await sim.tick(0);
    sim.store.requests.push({
      _v: 1,
      id: 'm1',
      action: 'migrate',
      portfolio_id: 'p1',
      target_node_id: 'b',
      requested_by: 'desk-lead',
      requested_at: iso(0),
    });
    sim.store.request({ id: 'c1', action: 'catalog_add', spec: spec('p9') });
    sim.store.failing.writePlan = 1;
    const failed = await sim.tick(1_000);
    expect(failed.write?.audit?.map((e) => [e.request_id, e.outcome])).toEqual([
      ['m1', 'accepted'],
      ['c1', 'accepted'],
    ]);
    expect(logs(failed.afterWrite, 'Control request')).toHaveLength(2);
    expect(sim.store.audit).toEqual([]);

    await sim.tick(2_000);
    expect(
      sim.store.audit.map((e) => [e.request_id, e.actor, e.action, e.target, e.outcome]),
    ).toEqual([
      [
        'm1',
        'desk-lead',
        'migrate',
        { node_id: null, portfolio_id: 'p1', target_node_id: 'b' },
        'accepted',
      ],
      [
        'c1',
        'test',
        'catalog_add',
        { node_id: null, portfolio_id: 'p9', target_node_id: null },
        'accepted',
      ],
    ]);
    expect(await sim.tick(3_000)).toMatchObject({ write: null });
    expect(sim.store.audit).toHaveLength(2);
  });
});

describe('decide: the catalog', () => {
  it('says a vanished catalog loudly and unassigns nothing; its return resolves the notice', async () => {
    const sim = new Sim();
    sim.store.addSpecs('p1', 'p2');
    sim.beat(0, 'a');
    const first = await sim.tick(0);
    // A new scheduler may inherit a catalog_missing (or a fleet_halted) raised by a dead leader:
    // resolved at first sight.
    expect(brief(first.effects)).toEqual(['resolve catalog_missing {}', 'resolve fleet_halted {}']);
    expect(brief((await sim.tick(1_000)).effects)).toEqual([]);

    sim.store.catalog.clear();
    sim.store.request({ id: 'r1', action: 'drain', node_id: 'a' });
    const gone = await sim.tick(2_000);
    expect(gone.write).toBeNull();
    expect(logs(gone.effects, 'Portfolio catalog vanished; nothing is unassigned')).toEqual([
      {
        type: 'log',
        level: 'error',
        message: 'Portfolio catalog vanished; nothing is unassigned',
        fields: { planPortfolios: 2, runningOnNodes: 0, reloadFrom: null },
      },
    ]);
    expect(notices(gone.effects)).toEqual([
      {
        op: 'raise',
        kind: 'catalog_missing',
        subject: {},
        details: { plan_portfolios: 2, reload_from_file: false },
      },
    ]);
    expect(sim.store.plan()).toEqual({ p1: 'a', p2: 'a' });
    expect(sim.store.requests).toHaveLength(1); // answered once there is a catalog again

    sim.store.addSpecs('p1', 'p2');
    const back = await sim.tick(3_000);
    expect(brief(back.effects)).toEqual(['resolve catalog_missing {}']);
    expect(sim.store.results.get('r1')).toMatchObject({ ok: true });
  });

  it('writes the catalog file back in the plan write when the catalog vanished', async () => {
    const sim = new Sim({ catalogFile: [spec('p1'), spec('p2')] });
    sim.beat(0, 'a', 'b');
    const seeded = await sim.tick(0);
    expect(logs(seeded.effects, 'Catalog empty; loading the catalog file')).toHaveLength(1);
    expect(seeded.write?.catalog).toEqual({ set: [spec('p1'), spec('p2')], remove: [] });
    expect(sim.store.plan()).toEqual({ p1: 'a', p2: 'b' });
    sim.beat(500, 'a', 'b');
    await sim.tick(500);

    // Redis restarted empty: no plan, no catalog; the nodes still run what they ran.
    sim.store.catalog.clear();
    sim.store.assignments.clear();
    sim.store.meta = null;
    sim.beat(1_000, 'a', 'b');
    const reloaded = await sim.tick(1_000);
    expect(notices(reloaded.effects)).toMatchObject([
      { op: 'raise', kind: 'catalog_missing', details: { reload_from_file: true } },
    ]);
    expect(reloaded.write?.catalog?.set.map((s) => s.portfolio_id)).toEqual(['p1', 'p2']);
    expect(sim.store.plan()).toEqual({ p1: 'a', p2: 'b' });
  });

  it('after Redis came back empty, waits the settle window for nodes to say what they run', async () => {
    const sim = new Sim({ catalogFile: [spec('p1'), spec('p2')], settleMs: 2_000 });
    sim.beat(0, 'a', 'b');
    await sim.tick(0);
    sim.beat(2_000, 'a', 'b');
    await sim.tick(2_000);
    expect(sim.store.plan()).toEqual({ p1: 'a', p2: 'b' });
    sim.beat(3_000, 'a', 'b');
    await sim.tick(3_000);

    // Redis restarted empty; b has beaten since, a not yet.
    const { store } = sim;
    for (const m of [store.catalog, store.assignments, store.records, store.registry, store.infos])
      m.clear();
    store.beating.clear();
    store.meta = null;
    sim.reports.set('a', ['p1']);
    sim.reports.set('b', ['p2']);
    sim.beat(4_000, 'b');
    await sim.tick(4_000);
    expect(sim.store.plan()).toEqual({ p2: 'b' });
    sim.beat(4_500, 'a', 'b');
    await sim.tick(4_500);
    expect(sim.store.plan()).toEqual({ p1: 'a', p2: 'b' });
  });

  it('after Redis came back empty, writes every node key again, an empty list included', async () => {
    const sim = new Sim({ catalogFile: [spec('p1')] });
    sim.beat(0, 'a', 'b');
    await sim.tick(0);
    sim.store.request({ id: 'r1', action: 'catalog_add', spec: spec('p2') });
    sim.beat(1_000, 'a', 'b');
    await sim.tick(1_000);
    expect(sim.store.plan()).toEqual({ p1: 'a', p2: 'b' });
    sim.beat(2_000, 'a', 'b');
    await sim.tick(2_000);

    // Redis restarted empty, node keys included; b still runs p2, which the file does not name.
    const { store } = sim;
    for (const m of [store.catalog, store.assignments, store.records, store.nodeKeys]) m.clear();
    store.meta = null;
    sim.reports.set('a', ['p1']);
    sim.reports.set('b', ['p2']);
    sim.beat(3_000, 'a', 'b');
    const d = await sim.tick(3_000);
    expect(sim.store.plan()).toEqual({ p1: 'a' });
    // A node with no key keeps what it runs: b must read that it runs nothing now.
    expect(Object.fromEntries(d.write?.nodeAssignments ?? [])).toEqual({ a: ['p1'], b: [] });
    expect(Object.fromEntries(sim.store.nodeKeys)).toEqual({ a: ['p1'], b: [] });
  });

  it('writes every node key again when the plan alone is gone', async () => {
    const sim = new Sim();
    sim.store.addSpecs('p1');
    sim.beat(0, 'a', 'b');
    await sim.tick(0);
    sim.beat(1_000, 'a', 'b');
    await sim.tick(1_000);
    const { store } = sim;
    for (const m of [store.assignments, store.records, store.nodeKeys]) m.clear();
    store.meta = null;
    sim.reports.set('a', ['p1']);
    sim.beat(2_000, 'a', 'b');
    await sim.tick(2_000);
    expect(Object.fromEntries(sim.store.nodeKeys)).toEqual({ a: ['p1'], b: [] });
  });

  // A scheduler that takes over (or starts) after Redis came back empty has seen no catalog: only
  // what the nodes say they run tells an emptied Redis from a fresh one.
  it('seeds a fresh Redis quietly when the nodes run nothing', async () => {
    const sim = new Sim({ catalogFile: [spec('p1')] });
    sim.beat(0, 'a');
    const d = await sim.tick(0);
    expect(brief(d.effects)).toEqual(['resolve fleet_halted {}']);
    expect(logs(d.effects).map((l) => l.message)).toEqual([
      'Catalog empty; loading the catalog file',
    ]);
    expect(sim.store.plan()).toEqual({ p1: 'a' });
  });

  it('calls an empty Redis whose nodes run portfolios a lost catalog, and writes no empty list', async () => {
    const sim = new Sim();
    sim.reports.set('a', ['p1', 'p2']);
    sim.reports.set('b', ['p3']);
    sim.beat(0, 'a', 'b');
    const d = await sim.tick(0);
    expect(d.write).toBeNull();
    expect(logs(d.effects, 'Portfolio catalog vanished; nothing is unassigned')).toMatchObject([
      { level: 'error', fields: { planPortfolios: 0, runningOnNodes: 3, reloadFrom: null } },
    ]);
    expect(notices(d.effects)).toEqual([
      {
        op: 'raise',
        kind: 'catalog_missing',
        subject: {},
        details: { plan_portfolios: 0, reload_from_file: false },
      },
      { op: 'resolve', kind: 'fleet_halted', subject: {}, details: {} },
    ]);
    expect(sim.store.nodeKeys.size).toBe(0);
    expect(sim.store.catalog.size).toBe(0);
    // Still lost at the next tick, even with nobody reporting: the catalog is back only when it is.
    sim.reports.set('a', []);
    sim.reports.set('b', []);
    sim.beat(1_000, 'a', 'b');
    expect(brief((await sim.tick(1_000)).effects)).toEqual(['raise catalog_missing {}']);
    expect(sim.store.writes).toEqual([]);
  });

  it('reloads the catalog file, loudly, into an empty Redis whose nodes run portfolios', async () => {
    const sim = new Sim({ catalogFile: [spec('p1')] });
    sim.reports.set('a', ['p1']);
    sim.reports.set('b', ['added-by-ctl']);
    sim.beat(0, 'a', 'b');
    const d = await sim.tick(0);
    expect(notices(d.effects)).toMatchObject([
      { op: 'raise', kind: 'catalog_missing', details: { reload_from_file: true } },
      { op: 'resolve', kind: 'fleet_halted' },
    ]);
    expect(logs(d.effects, 'Catalog empty; loading the catalog file')).toEqual([]);
    expect(d.write?.catalog).toEqual({ set: [spec('p1')], remove: [] });
    expect(sim.store.plan()).toEqual({ p1: 'a' });
  });

  it('does not write the file over a catalog that is there: Redis’s catalog is the truth', async () => {
    const sim = new Sim({ catalogFile: [spec('p1'), spec('from-file')] });
    sim.store.addSpecs('p1', 'added-by-ctl');
    sim.beat(0, 'a');
    const d = await sim.tick(0);
    expect(d.write?.catalog).toEqual({ set: [], remove: [] });
    expect([...sim.store.catalog.keys()]).toEqual(['p1', 'added-by-ctl']);
    // Said once, at the first sight of the catalog.
    expect(logs(d.effects).map((l) => [l.level, l.message, l.fields['first']])).toEqual([
      ['warn', "Catalog file differs from the catalog in Redis; Redis's is kept", ['from-file']],
    ]);
    sim.beat(1_000, 'a');
    expect(logs((await sim.tick(1_000)).effects)).toEqual([]);
  });
});

describe('decide: nudges', () => {
  it('nudges a node that does not run its portfolio after 3 ticks, then 2× and 4× that later', async () => {
    const sim = new Sim({ tickMs: 1_000 });
    sim.store.addSpecs('p1');
    sim.beat(0, 'a');
    await sim.tick(0);
    expect(sim.store.plan()).toEqual({ p1: 'a' });
    sim.reports.set('a', []); // the node does not load it
    const nudgedAt: number[] = [];
    const counts: unknown[] = [];
    for (let t = 1_000; t <= 40_000; t += 1_000) {
      sim.beat(t, 'a');
      const d = await sim.tick(t);
      const nudges = logs(d.afterWrite, 'Node does not run an assigned portfolio; nudging it');
      if (nudges.length > 0) {
        nudgedAt.push(t);
        counts.push(nudges[0]?.fields['nudges']);
        expect(d.write?.nodeAssignments).toEqual(new Map([['a', ['p1']]]));
      } else expect(d.write).toBeNull();
    }
    // Grace 3 ticks (3 s): first at 3 s, then 3 s × 2 later, then 3 s × 4 later.
    expect(nudgedAt).toEqual([3_000, 9_000, 21_000]);
    expect(counts).toEqual([1, 2, 3]);

    // Once it runs it, the backoff is forgotten.
    sim.reports.delete('a');
    sim.beat(41_000, 'a');
    await sim.tick(41_000);
    expect(sim.memory.nudges.size).toBe(0);
  });
});

describe('decide: orphans', () => {
  it('notifies an orphan once it has been one for orphanNotifyAfterMs, and resolves it when placed', async () => {
    const sim = new Sim({ orphanNotifyAfterMs: 15_000 });
    sim.capacity.set('a', 1);
    sim.store.addSpecs('p1', 'p2');
    sim.beat(0, 'a');
    await sim.tick(0);
    expect(sim.store.plan()).toEqual({
      p1: 'a',
      p2: 'orphaned: every alive node is full (1 nodes, capacity 1)',
    });
    expect(brief((await sim.tick(14_999)).afterWrite)).toEqual([]);
    const raised = await sim.tick(15_000);
    expect(notices(raised.afterWrite)).toEqual([
      {
        op: 'raise',
        kind: 'portfolio_orphaned',
        subject: { portfolioId: 'p2' },
        details: {
          reason: 'every alive node is full (1 nodes, capacity 1)',
          orphaned_since: iso(0),
        },
      },
    ]);
    sim.beat(16_000, 'b');
    const placed = await sim.tick(16_000);
    expect(sim.store.plan()).toEqual({ p1: 'a', p2: 'b' });
    expect(brief(placed.afterWrite)).toEqual(['resolve portfolio_orphaned {"portfolioId":"p2"}']);
  });
});

describe('decide: forgetting lost nodes', () => {
  it('forgets a node lost for the retention, counted from its last beat, in the fenced write', async () => {
    const sim = new Sim({ nodeRetentionMs: DAY_MS });
    sim.store.addSpecs('p1');
    sim.beat(0, 'a', 'old');
    await sim.tick(0);
    sim.store.kill('old');
    await sim.tick(1_000);
    expect(sim.store.records.get('old')).toMatchObject({ status: 'lost', last_seen: iso(0) });

    sim.beat(DAY_MS - 1, 'a');
    expect((await sim.tick(DAY_MS - 1)).write).toBeNull();
    sim.beat(DAY_MS, 'a');
    const d = await sim.tick(DAY_MS);
    expect(d.reasons).toEqual(['1 lost nodes forgotten']);
    expect(d.write?.prune).toEqual([{ nodeId: 'old', lastSeenMs: T0 }]);
    // Only what changed is written: the record of `a` is as it was, the forgotten one goes.
    expect(d.write?.nodes).toEqual([]);
    expect(logs(d.afterWrite, 'Lost node forgotten').map((l) => l.fields)).toEqual([
      { nodeId: 'old', lastSeen: iso(0), lostForMs: DAY_MS, retentionMs: DAY_MS },
    ]);
    expect([...sim.store.registry.keys()]).toEqual(['a']);
    expect([...sim.store.records.keys()]).toEqual(['a']);
    expect(sim.store.nodeKeys.has('old')).toBe(false);
    expect((await sim.tick(DAY_MS + 1_000)).write).toBeNull();
  });

  it('counts from when it saw the node lost when no beat is on record', async () => {
    const sim = new Sim({ nodeRetentionMs: 60_000 });
    sim.store.addSpecs('p1');
    sim.beat(0, 'a');
    // A record without a registry entry or a last beat (written before last_seen was kept).
    sim.store.records.set('ghost', {
      _v: 1,
      node_id: 'ghost',
      status: 'lost',
      capacity: 5,
      assigned_count: 0,
      last_seen: null,
    });
    await sim.tick(10_000);
    expect(sim.memory.lostSince).toEqual(new Map([['ghost', T0 + 10_000]]));
    sim.beat(69_999, 'a');
    expect((await sim.tick(69_999)).write).toBeNull();
    sim.beat(70_000, 'a');
    expect((await sim.tick(70_000)).write?.prune).toEqual([{ nodeId: 'ghost', lastSeenMs: null }]);
    expect(sim.memory.lostSince.size).toBe(0);
  });
});

describe('decide: the settle window before the first placement', () => {
  const eight = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8'];

  it('without it, the first node to beat gets everything up to its capacity', async () => {
    const sim = new Sim({ settleMs: 0 });
    sim.store.addSpecs(...eight);
    sim.beat(0, 'node-1');
    await sim.tick(0);
    sim.beat(1_000, 'node-1', 'node-2');
    await sim.tick(1_000);
    sim.beat(2_000, 'node-1', 'node-2', 'node-3');
    await sim.tick(2_000);
    expect(loads(sim.store.plan())).toEqual({ 'node-1': 5, 'node-2': 3 });
  });

  it('places nothing until the window ends, then spreads over every node that beat by then', async () => {
    const sim = new Sim({ settleMs: 10_000 });
    sim.store.addSpecs(...eight);
    const nodesAt = (t: number) =>
      t < 4_000 ? ['node-1'] : t < 8_000 ? ['node-1', 'node-2'] : ['node-1', 'node-2', 'node-3'];
    for (let t = 0; t < 10_000; t += 1_000) {
      sim.beat(t, ...nodesAt(t));
      const d = await sim.tick(t);
      if (t === 0)
        expect(logs(d.effects).map((l) => [l.message, l.fields])).toEqual([
          [
            'First node seen; the first placement waits for the others to beat',
            { portfolios: 8, settleMs: 10_000 },
          ],
        ]);
      expect(sim.store.assignments.size).toBe(0);
    }
    sim.beat(10_000, 'node-1', 'node-2', 'node-3');
    await sim.tick(10_000);
    expect(loads(sim.store.plan())).toEqual({ 'node-1': 3, 'node-2': 3, 'node-3': 2 });
  });

  it('never delays a failover, what runs on a live node, or what a node reports running', async () => {
    const sim = new Sim({ settleMs: 10_000 });
    sim.store.addSpecs('on-live', 'on-dead', 'reported', 'new');
    // The plan a previous leader left; this scheduler just took over.
    const assigned = (id: string, node: string) => ({
      _v: 1 as const,
      portfolio_id: id,
      status: 'assigned' as const,
      node_id: node,
      reason: null,
      plan_version: 1,
      since: iso(0),
    });
    sim.store.assignments.set('on-live', assigned('on-live', 'a'));
    sim.store.assignments.set('on-dead', assigned('on-dead', 'dead'));
    sim.store.meta = { _v: 1, version: 1, updated_at: iso(0), leader: 'old' };
    sim.store.records.set('dead', {
      _v: 1,
      node_id: 'dead',
      status: 'alive',
      capacity: 5,
      assigned_count: 1,
      last_seen: iso(0),
    });
    sim.reports.set('b', ['reported']);
    sim.beat(0, 'a', 'b');
    await sim.tick(1_000);
    expect(sim.store.plan()).toEqual({ 'on-live': 'a', 'on-dead': 'b', reported: 'b' });
    sim.beat(11_000, 'a', 'b');
    await sim.tick(11_000);
    expect(sim.store.plan()).toEqual({
      'on-live': 'a',
      'on-dead': 'b',
      reported: 'b',
      new: 'a',
    });
  });
});

describe('decide: the optional rebalance', () => {
  const ten = Array.from({ length: 10 }, (_, i) => `p${String(i).padStart(2, '0')}`);

  it('is off by default: a new node gets nothing of a loaded one', async () => {
    const sim = new Sim({ rebalancePerMinute: 0 });
    sim.capacity.set('a', 10);
    sim.store.addSpecs(...ten);
    sim.beat(0, 'a');
    await sim.tick(0);
    for (let t = 1_000; t <= 120_000; t += 10_000) {
      sim.beat(t, 'a', 'b');
      await sim.tick(t);
    }
    expect(loads(sim.store.plan())).toEqual({ a: 10 });
  });

  it('moves at most N a minute from the busiest node to the idlest while they differ by more than 1', async () => {
    const sim = new Sim({ rebalancePerMinute: 2 });
    sim.capacity.set('a', 10);
    sim.store.addSpecs(...ten);
    sim.beat(0, 'a');
    await sim.tick(0);
    expect(loads(sim.store.plan())).toEqual({ a: 10 });
    const movedAt: [number, string[]][] = [];
    for (let t = 1_000; t <= 200_000; t += 1_000) {
      sim.beat(t, 'a', 'b');
      const d = await sim.tick(t);
      const moves = logs(d.afterWrite, 'Portfolio placed');
      if (moves.length > 0)
        movedAt.push([
          t,
          moves.map((m) => `${String(m.fields['portfolioId'])}:${String(m.fields['why'])}`),
        ]);
    }
    expect(movedAt).toEqual([
      [1_000, ['p09:rebalance', 'p08:rebalance']],
      [61_000, ['p07:rebalance', 'p06:rebalance']],
      [121_000, ['p05:rebalance']],
    ]);
    expect(loads(sim.store.plan())).toEqual({ a: 5, b: 5 });
  });
});

describe('decide: the plan kept between ticks', () => {
  it('writes, tick after tick, what planning from the whole world at every tick writes', async () => {
    let seed = 11;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    // Two schedulers fed the same world: one keeps its plan, the other forgets it before each tick.
    const kept = new Sim();
    const whole = new Sim();
    const both = (f: (sim: Sim) => void): void => {
      f(kept);
      f(whole);
    };
    const nodes = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5'];
    const up = new Set(nodes.slice(0, 4));
    both((sim) => sim.store.addSpecs(...Array.from({ length: 14 }, (_, i) => `p${i}`)));
    let updated = 0;
    let requestId = 0;
    for (let t = 0; t < 150; t++) {
      const at = t * 1_000;
      for (const n of nodes) {
        const r = random();
        if (r < 0.04) up.delete(n);
        else if (r < 0.1) up.add(n);
      }
      const change = random();
      const node = nodes[Math.floor(random() * nodes.length)] as string;
      const id = `r${requestId++}`;
      const capacity = Math.floor(random() * 5);
      if (change < 0.08) both((sim) => sim.capacity.set(node, capacity));
      else if (change < 0.12) {
        const runs = [`p${Math.floor(random() * 16)}`];
        both((sim) => sim.reports.set(node, runs));
      } else if (change < 0.16) both((sim) => sim.reports.delete(node));
      else if (change < 0.2)
        both((sim) => sim.store.request({ id, action: 'drain', node_id: node }));
      else if (change < 0.24)
        both((sim) => sim.store.request({ id, action: 'undrain', node_id: node }));
      else if (change < 0.3) {
        const portfolio = `p${Math.floor(random() * 16)}`;
        both((sim) =>
          sim.store.request({
            id,
            action: 'migrate',
            portfolio_id: portfolio,
            target_node_id: node,
          }),
        );
      } else if (change < 0.34) {
        const portfolio = `p${14 + Math.floor(random() * 4)}`;
        both((sim) =>
          sim.store.request({
            id,
            action: 'catalog_add',
            spec: { ...spec(portfolio), _v: undefined },
          }),
        );
      } else if (change < 0.38) {
        const portfolio = `p${Math.floor(random() * 18)}`;
        both((sim) => sim.store.request({ id, action: 'catalog_remove', portfolio_id: portfolio }));
      } else if (change < 0.41) both((sim) => (sim.store.failing.writePlan = 1));
      // Same random draws for both: which nodes beat this tick.
      const beating = nodes.filter((n) => up.has(n) && random() < 0.9);
      for (const n of nodes) if (!up.has(n)) both((sim) => sim.store.kill(n));
      both((sim) => sim.beat(at, ...beating));

      whole.memory = { ...whole.memory, plan: null };
      const wasKept = kept.memory.plan !== null;
      const a = await kept.tick(at);
      const b = await whole.tick(at);
      if (wasKept) updated += 1;
      const where = `tick ${t}`;
      expect(kept.store.plan(), where).toEqual(whole.store.plan());
      expect(kept.store.records, where).toEqual(whole.store.records);
      expect(kept.store.nodeKeys, where).toEqual(whole.store.nodeKeys);
      expect(kept.store.results, where).toEqual(whole.store.results);
      expect(kept.store.catalog, where).toEqual(whole.store.catalog);
      expect(kept.store.meta, where).toEqual(whole.store.meta);
      expect(a.reasons, where).toEqual(b.reasons);
      expect(a.summary, where).toEqual(b.summary);
      const said = (d: Decisions) =>
        [...d.effects, ...d.afterWrite]
          .map((e) => JSON.stringify(e.type === 'log' ? [e.message, e.fields] : e.notice))
          .sort();
      expect(said(a), where).toEqual(said(b));
    }
    // Most ticks updated the kept plan (the others: after a failed write, a change made behind
    // the scheduler's back, and once a minute).
    expect(updated).toBeGreaterThan(100);
  });
});
