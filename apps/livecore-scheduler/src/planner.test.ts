import { describe, expect, it } from 'vitest';
import {
  computePlan,
  PlanState,
  rebalance,
  type Migration,
  type NodeView,
  type Placement,
} from './planner.ts';

const node = (nodeId: string, overrides: Partial<NodeView> = {}): NodeView => ({
  nodeId,
  alive: true,
  draining: false,
  capacity: 2,
  reportedPortfolios: [],
  ...overrides,
});
const on = (nodeId: string): Placement => ({ status: 'assigned', nodeId });
const plan = (placements: Map<string, Placement>) =>
  Object.fromEntries(
    [...placements].map(([p, pl]) => [
      p,
      pl.status === 'assigned' ? pl.nodeId : `orphaned: ${pl.reason}`,
    ]),
  );

describe('computePlan', () => {
  it('spreads new portfolios over the least-loaded nodes', () => {
    const out = computePlan({
      nodes: [node('a'), node('b')],
      portfolios: ['p1', 'p2', 'p3'],
      previous: new Map(),
    });
    expect(plan(out.placements)).toEqual({ p1: 'a', p2: 'b', p3: 'a' });
  });

  it('keeps assignments on alive nodes: no needless moves', () => {
    const previous = new Map([
      ['p1', on('b')],
      ['p2', on('b')],
    ]);
    const out = computePlan({ nodes: [node('a'), node('b')], portfolios: ['p1', 'p2'], previous });
    expect(plan(out.placements)).toEqual({ p1: 'b', p2: 'b' });
    expect(out.moves).toEqual([]);
  });

  it('moves the portfolios of a lost node in the same plan', () => {
    const previous = new Map([
      ['p1', on('a')],
      ['p2', on('b')],
    ]);
    const out = computePlan({
      nodes: [node('a', { alive: false }), node('b'), node('c')],
      portfolios: ['p1', 'p2'],
      previous,
    });
    expect(plan(out.placements)).toEqual({ p1: 'c', p2: 'b' });
    expect(out.moves).toEqual([{ portfolioId: 'p1', from: 'a', to: 'c' }]);
  });

  it('gives a draining node nothing and takes its portfolios away', () => {
    const previous = new Map([['p1', on('a')]]);
    const out = computePlan({
      nodes: [node('a', { draining: true }), node('b')],
      portfolios: ['p1', 'p2'],
      previous,
    });
    expect(plan(out.placements)).toEqual({ p1: 'b', p2: 'b' });
  });

  it('orphans with a reason when no node has room, never dropping a portfolio', () => {
    const out = computePlan({
      nodes: [node('a', { capacity: 1 })],
      portfolios: ['p1', 'p2'],
      previous: new Map(),
    });
    expect(plan(out.placements)).toEqual({
      p1: 'a',
      p2: 'orphaned: every alive node is full (1 nodes, capacity 1)',
    });
    const none = computePlan({
      nodes: [node('a', { alive: false })],
      portfolios: ['p1'],
      previous: new Map(),
    });
    expect(plan(none.placements)).toEqual({ p1: 'orphaned: no alive, non-draining node' });
  });

  it('gives an orphan a node as soon as one has room', () => {
    const previous = new Map<string, Placement>([['p1', { status: 'orphaned', reason: 'x' }]]);
    const out = computePlan({ nodes: [node('a')], portfolios: ['p1'], previous });
    expect(out.moves).toEqual([{ portfolioId: 'p1', from: null, to: 'a' }]);
  });

  it('rebuilds a lost plan from what alive nodes report running', () => {
    const out = computePlan({
      nodes: [node('a', { reportedPortfolios: ['p2'] }), node('b', { reportedPortfolios: ['p1'] })],
      portfolios: ['p1', 'p2'],
      previous: new Map(),
    });
    expect(plan(out.placements)).toEqual({ p1: 'b', p2: 'a' });
  });

  it('applies a migration so that it sticks, and refuses bad ones with a reason', () => {
    const previous = new Map([['p1', on('a')]]);
    const out = computePlan({
      nodes: [node('a'), node('b', { capacity: 1 }), node('c', { alive: false })],
      portfolios: ['p1', 'p2'],
      previous,
      migrations: [
        { portfolioId: 'p1', targetNodeId: 'b' },
        { portfolioId: 'p2', targetNodeId: 'b' },
        { portfolioId: 'p2', targetNodeId: 'c' },
        { portfolioId: 'p2', targetNodeId: 'zz' },
        { portfolioId: 'p9', targetNodeId: 'a' },
      ],
    });
    expect(plan(out.placements)).toEqual({ p1: 'b', p2: 'a' });
    expect(out.rejected.map((r) => r.reason)).toEqual([
      'node b is full',
      'node c is not alive or is draining',
      'unknown node zz',
      'unknown portfolio p9',
    ]);
    const next = computePlan({
      nodes: [node('a'), node('b', { capacity: 1 })],
      portfolios: ['p1', 'p2'],
      previous: out.placements,
    });
    expect(plan(next.placements)).toEqual({ p1: 'b', p2: 'a' });
  });

  it('drops portfolios that left the catalog', () => {
    const out = computePlan({
      nodes: [node('a')],
      portfolios: ['p1'],
      previous: new Map([
        ['p1', on('a')],
        ['gone', on('a')],
      ]),
    });
    expect(plan(out.placements)).toEqual({ p1: 'a' });
    expect(out.moves).toEqual([{ portfolioId: 'gone', from: 'a', to: null }]);
  });

  it('never exceeds a node capacity, even when the previous plan did', () => {
    const previous = new Map([
      ['p1', on('a')],
      ['p2', on('a')],
      ['p3', on('a')],
    ]);
    const out = computePlan({
      nodes: [node('a'), node('b')],
      portfolios: ['p1', 'p2', 'p3'],
      previous,
    });
    expect(plan(out.placements)).toEqual({ p1: 'a', p2: 'a', p3: 'b' });
  });
});

describe('rebalance', () => {
  const placements = (entries: [string, string][]) =>
    new Map<string, Placement>(entries.map(([p, n]) => [p, on(n)]));

  it('moves from the busiest to the idlest node while they differ by more than one, within the budget', () => {
    const input = {
      nodes: [node('a', { capacity: 10 }), node('b', { capacity: 10 })],
      placements: placements([
        ['p1', 'a'],
        ['p2', 'a'],
        ['p3', 'a'],
        ['p4', 'a'],
        ['p5', 'a'],
      ]),
      pinned: new Set<string>(),
    };
    expect(rebalance({ ...input, budget: 1 }).moves).toEqual([
      { portfolioId: 'p5', from: 'a', to: 'b' },
    ]);
    // 5/0 → 3/2: a difference of one is as even as it gets.
    const all = rebalance({ ...input, budget: 10 });
    expect(all.moves.map((m) => m.portfolioId)).toEqual(['p5', 'p4']);
    expect(plan(all.placements)).toEqual({ p1: 'a', p2: 'a', p3: 'a', p4: 'b', p5: 'b' });
  });

  it('never fills a node past its capacity, nor touches a draining, lost or pinned one', () => {
    const out = rebalance({
      nodes: [
        node('a', { capacity: 10 }),
        node('full', { capacity: 1 }),
        node('drained', { draining: true }),
        node('dead', { alive: false }),
      ],
      placements: placements([
        ['p1', 'a'],
        ['p2', 'a'],
        ['p3', 'a'],
        ['p4', 'full'],
      ]),
      budget: 5,
      pinned: new Set(['p3']),
    });
    expect(out.moves).toEqual([]);
    const pinned = rebalance({
      nodes: [node('a', { capacity: 10 }), node('b', { capacity: 10 })],
      placements: placements([
        ['p1', 'a'],
        ['p2', 'a'],
        ['p3', 'a'],
      ]),
      budget: 5,
      pinned: new Set(['p3']),
    });
    expect(pinned.moves).toEqual([{ portfolioId: 'p2', from: 'a', to: 'b' }]);
  });
});

/** The placement rule spelled out the slow, obvious way: every candidate sorted for every portfolio. */
function referencePlan(nodes: NodeView[], portfolios: string[], previous: Map<string, Placement>) {
  const usable = new Map(nodes.filter((n) => n.alive && !n.draining).map((n) => [n.nodeId, n]));
  const load = new Map([...usable.keys()].map((id) => [id, 0]));
  const out: Record<string, string> = {};
  const room = (id: string) => (load.get(id) ?? Infinity) < (usable.get(id)?.capacity ?? 0);
  const place = (p: string, id: string) => {
    out[p] = id;
    load.set(id, (load.get(id) ?? 0) + 1);
  };
  const catalog = [...portfolios].sort();
  for (const p of catalog) {
    const before = previous.get(p);
    if (before?.status === 'assigned' && usable.has(before.nodeId) && room(before.nodeId))
      place(p, before.nodeId);
  }
  const reportedBy = new Map<string, string>();
  for (const n of nodes)
    for (const p of n.reportedPortfolios) if (usable.has(n.nodeId)) reportedBy.set(p, n.nodeId);
  for (const p of catalog) {
    if (out[p] !== undefined) continue;
    const running = reportedBy.get(p);
    if (running !== undefined && room(running)) {
      place(p, running);
      continue;
    }
    const target = [...usable.keys()]
      .filter(room)
      .sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || a.localeCompare(b))[0];
    out[p] = target ?? 'orphaned';
    if (target !== undefined) load.set(target, (load.get(target) ?? 0) + 1);
  }
  return out;
}

describe('computePlan against the obvious rule on random fleets', () => {
  it('places exactly as sorting every candidate for every portfolio would', () => {
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 40; round++) {
      const nodes = Array.from({ length: 1 + Math.floor(random() * 30) }, (_, i) =>
        node(`n${i}`, {
          alive: random() > 0.2,
          draining: random() > 0.85,
          capacity: Math.floor(random() * 6),
          reportedPortfolios: random() > 0.7 ? [`p${Math.floor(random() * 80)}`] : [],
        }),
      );
      const portfolios = Array.from({ length: Math.floor(random() * 80) }, (_, i) => `p${i}`);
      const previous = new Map<string, Placement>();
      for (const p of portfolios)
        if (random() > 0.5) previous.set(p, on(`n${Math.floor(random() * 35)}`));
      const got = plan(computePlan({ nodes, portfolios, previous }).placements);
      const orphansAsWord = Object.fromEntries(
        Object.entries(got).map(([p, v]) => [p, v.startsWith('orphaned') ? 'orphaned' : v]),
      );
      expect(orphansAsWord, `round ${round}`).toEqual(referencePlan(nodes, portfolios, previous));
      // The same plan from the ids already sorted (taken as they come), from ids repeated, and
      // from a view of the previous plan instead of a map.
      const sorted = [...portfolios].sort();
      const view = {
        get: (id: string) => previous.get(id),
        [Symbol.iterator]: () => previous.entries(),
      };
      expect(plan(computePlan({ nodes, portfolios: sorted, previous: view }).placements)).toEqual(
        got,
      );
      expect(
        plan(
          computePlan({ nodes, portfolios: [...sorted, ...sorted.slice(0, 3)], previous })
            .placements,
        ),
      ).toEqual(got);
    }
  });
});

describe('PlanState: the plan kept between ticks, updated from what changed', () => {
  const sortedMoves = (moves: { portfolioId: string; from: string | null; to: string | null }[]) =>
    [...moves].sort((a, b) => a.portfolioId.localeCompare(b.portfolioId));

  it('gives, tick after tick, exactly the plan computePlan gives from the same world', () => {
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(items: readonly T[]): T | undefined =>
      items[Math.floor(random() * items.length)];
    let changedPlacements = 0;
    for (let round = 0; round < 60; round++) {
      let nodes = Array.from({ length: 1 + Math.floor(random() * 12) }, (_, i) =>
        node(`n${i}`, { capacity: Math.floor(random() * 6) }),
      );
      let catalog = new Map<string, number>(
        Array.from({ length: Math.floor(random() * 40) }, (_, i) => [`p${i}`, i] as const),
      );
      let previous = computePlan({
        nodes,
        portfolios: [...catalog.keys()],
        previous: new Map(),
      }).placements;
      const state = PlanState.from(new Map(previous), nodes, catalog);
      for (let tick = 0; tick < 40; tick++) {
        // Each tick changes a few things, or nothing at all.
        const changes = Math.floor(random() * 4);
        const migrations: Migration[] = [];
        for (let c = 0; c < changes; c++) {
          const r = random();
          const target = pick(nodes);
          if (r < 0.45 && target !== undefined) {
            const change: Partial<NodeView> =
              random() < 0.35
                ? { alive: !target.alive }
                : random() < 0.5
                  ? { draining: !target.draining }
                  : random() < 0.6
                    ? { capacity: Math.floor(random() * 7) }
                    : {
                        reportedPortfolios: Array.from(
                          { length: Math.floor(random() * 3) },
                          () => `p${Math.floor(random() * 50)}`,
                        ),
                      };
            nodes = nodes.map((n) => (n === target ? { ...n, ...change } : n));
          } else if (r < 0.55) {
            nodes = [...nodes, node(`n${nodes.length + Math.floor(random() * 5)}`)].filter(
              (n, i, all) => all.findIndex((m) => m.nodeId === n.nodeId) === i,
            );
          } else if (r < 0.6 && nodes.length > 1) {
            const gone = pick(nodes);
            nodes = nodes.filter((n) => n !== gone);
          } else if (r < 0.75) {
            catalog = new Map(catalog);
            catalog.set(`p${Math.floor(random() * 60)}`, tick);
          } else if (r < 0.85) {
            catalog = new Map(catalog);
            catalog.delete(pick([...catalog.keys()]) ?? '');
          } else {
            // Valid and invalid ones: unknown portfolios and nodes, full or dead targets, twice.
            migrations.push({
              portfolioId: `p${Math.floor(random() * 45)}`,
              targetNodeId: `n${Math.floor(random() * (nodes.length + 2))}`,
            });
            if (random() < 0.3) migrations.push({ ...(migrations.at(-1) as Migration) });
          }
        }
        const full = computePlan({
          nodes,
          portfolios: [...catalog.keys()],
          previous,
          migrations,
        });
        const incremental = state.update({ nodes, catalog, migrations });
        const where = `round ${round}, tick ${tick}`;
        expect(plan(incremental.placements), where).toEqual(plan(full.placements));
        expect(sortedMoves(incremental.moves), where).toEqual(sortedMoves(full.moves));
        expect(incremental.rejected, where).toEqual(full.rejected);
        for (const { portfolioId } of full.moves)
          expect(incremental.touched.has(portfolioId), where).toBe(true);
        const assigned = [...full.placements.values()].filter((p) => p.status === 'assigned');
        expect(state.counts, where).toEqual({
          assigned: assigned.length,
          orphaned: full.placements.size - assigned.length,
        });
        for (const n of nodes)
          expect([...state.assignedTo(n.nodeId)].sort(), where).toEqual(
            [...full.placements]
              .filter(([, p]) => p.status === 'assigned' && p.nodeId === n.nodeId)
              .map(([id]) => id)
              .sort(),
          );
        changedPlacements += full.moves.length;
        previous = full.placements;
      }
    }
    // The sequences did move portfolios (the comparison is not between two empty plans).
    expect(changedPlacements).toBeGreaterThan(500);
  });

  it('touches nothing when nothing changed', () => {
    const nodes = [node('a', { capacity: 3 }), node('b', { capacity: 3 })];
    const catalog = new Map([
      ['p1', 1],
      ['p2', 2],
      ['p3', 3],
    ]);
    const first = computePlan({ nodes, portfolios: [...catalog.keys()], previous: new Map() });
    const state = PlanState.from(new Map(first.placements), nodes, catalog);
    const next = state.update({ nodes: nodes.map((n) => ({ ...n })), catalog });
    expect(next.touched.size).toBe(0);
    expect(next.moves).toEqual([]);
  });

  it('keeps the plan of a rebalance applied to it', () => {
    const nodes = [node('a', { capacity: 4 }), node('b', { capacity: 4 })];
    const catalog = new Map(['p1', 'p2', 'p3', 'p4'].map((id) => [id, id] as const));
    const placements = new Map(['p1', 'p2', 'p3', 'p4'].map((id) => [id, on('a')] as const));
    const state = PlanState.from(new Map(placements), nodes, catalog);
    const even = rebalance({ nodes, placements, budget: 5, pinned: new Set() });
    state.apply(even.moves);
    expect(plan(state.placements)).toEqual(plan(even.placements));
    expect([...state.assignedTo('b')].sort()).toEqual(['p3', 'p4']);
  });
});
