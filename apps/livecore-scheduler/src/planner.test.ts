import { describe, expect, it } from 'vitest';
import { computePlan, type NodeView, type Placement } from './planner.ts';

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
