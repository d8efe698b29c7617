/** What the scheduler knows of one node at the start of a tick. */
export interface NodeView {
  nodeId: string;
  /** By the one liveness rule (heartbeat key exists with a TTL). */
  alive: boolean;
  /** Drained by an operator: keeps nothing, gets nothing new. */
  draining: boolean;
  capacity: number;
  /** Portfolios the node reports it runs (from its info), for rebuilding a lost plan. */
  reportedPortfolios: readonly string[];
}

/** Where a portfolio runs, or why it runs nowhere. */
export type Placement =
  { status: 'assigned'; nodeId: string } | { status: 'orphaned'; reason: string };

/** A planning request from an operator, already validated against the catalog. */
export interface Migration {
  portfolioId: string;
  targetNodeId: string;
}

/** What the planner needs of the current plan: a `Map` of placements, or a view over one. */
export interface PlacementLookup extends Iterable<readonly [string, Placement]> {
  get(portfolioId: string): Placement | undefined;
}

export interface PlanInput {
  nodes: readonly NodeView[];
  /** Every portfolio that should run (the catalog). */
  portfolios: readonly string[];
  /** The current plan (a map, or anything that looks one up and lists its entries). */
  previous: PlacementLookup;
  /** Operator moves to apply this tick (they then stick: the plan is the source of truth). */
  migrations?: readonly Migration[];
}

export interface PlanOutput {
  placements: Map<string, Placement>;
  /** Portfolios whose node changed (including from nowhere), with old and new node. */
  moves: { portfolioId: string; from: string | null; to: string | null }[];
  /** Migrations refused, with the reason. */
  rejected: { migration: Migration; reason: string }[];
}

/**
 * Computes the next plan. Pure and deterministic.
 * - An assignment to an alive, non-draining node is kept (stable: no needless moves).
 * - A portfolio without a usable assignment goes first to an alive node that reports running it
 *   (after Redis lost the plan), else to the least-loaded alive, non-draining node with room,
 *   counting from the plan being built (never from stale node reports); ties by node id.
 * - With no room anywhere it is orphaned with the reason — never silently dropped.
 * - Portfolios no longer in the catalog leave the plan.
 */
export function computePlan(input: PlanInput): PlanOutput {
  const usable = new Map(
    input.nodes.filter((n) => n.alive && !n.draining).map((n) => [n.nodeId, n] as const),
  );
  const load = new Map<string, number>([...usable.keys()].map((id) => [id, 0]));
  const placements = new Map<string, Placement>();
  const rejected: PlanOutput['rejected'] = [];
  const hasRoom = (nodeId: string): boolean =>
    (load.get(nodeId) ?? Infinity) < (usable.get(nodeId)?.capacity ?? 0);
  const place = (portfolioId: string, nodeId: string): void => {
    placements.set(portfolioId, { status: 'assigned', nodeId });
    load.set(nodeId, (load.get(nodeId) ?? 0) + 1);
  };
  const catalog = sortedUnique(input.portfolios);

  // 1. Operator migrations first: they win over stability.
  const migrating = new Set<string>();
  const inCatalog = new Set(input.migrations?.length ? catalog : []);
  for (const migration of input.migrations ?? []) {
    const { portfolioId, targetNodeId } = migration;
    const reason = !inCatalog.has(portfolioId)
      ? `unknown portfolio ${portfolioId}`
      : !input.nodes.some((n) => n.nodeId === targetNodeId)
        ? `unknown node ${targetNodeId}`
        : !usable.has(targetNodeId)
          ? `node ${targetNodeId} is not alive or is draining`
          : !hasRoom(targetNodeId) && !migrating.has(portfolioId)
            ? `node ${targetNodeId} is full`
            : undefined;
    if (reason !== undefined) {
      rejected.push({ migration, reason });
      continue;
    }
    place(portfolioId, targetNodeId);
    migrating.add(portfolioId);
  }

  // 2. Keep what runs on a usable node.
  for (const portfolioId of catalog) {
    if (migrating.has(portfolioId)) continue;
    const previous = input.previous.get(portfolioId);
    if (
      previous?.status === 'assigned' &&
      usable.has(previous.nodeId) &&
      hasRoom(previous.nodeId)
    ) {
      place(portfolioId, previous.nodeId);
    }
  }

  // 3. Place the rest: where it already runs, else least loaded.
  const reporterOf = reportersOf(input.nodes, usable);
  const leastLoaded = leastLoadedOf(usable.keys(), (id) => load.get(id) ?? 0, hasRoom);
  for (const portfolioId of catalog) {
    if (placements.has(portfolioId)) continue;
    const runningOn = reporterOf(portfolioId);
    if (runningOn !== undefined && hasRoom(runningOn)) {
      place(portfolioId, runningOn);
      continue;
    }
    const target = leastLoaded();
    if (target !== undefined) {
      place(portfolioId, target);
      continue;
    }
    placements.set(portfolioId, {
      status: 'orphaned',
      reason:
        usable.size === 0
          ? 'no alive, non-draining node'
          : `every alive node is full (${usable.size} nodes, capacity ${[...usable.values()].reduce((s, n) => s + n.capacity, 0)})`,
    });
  }

  const moves: PlanOutput['moves'] = [];
  for (const [portfolioId, placement] of placements) {
    const before = input.previous.get(portfolioId);
    const from = before?.status === 'assigned' ? before.nodeId : null;
    const to = placement.status === 'assigned' ? placement.nodeId : null;
    if (from !== to) moves.push({ portfolioId, from, to });
  }
  for (const [portfolioId, before] of input.previous) {
    if (!placements.has(portfolioId) && before.status === 'assigned') {
      moves.push({ portfolioId, from: before.nodeId, to: null });
    }
  }
  return { placements, moves, rejected };
}

/** The changes a plan brought, for a caller that keeps the plan between ticks. */
export interface PlanUpdate extends PlanOutput {
  /**
   * Portfolios whose placement may differ from the previous plan (moved, orphaned with another
   * reason, placed for the first time or removed): every other entry is the previous one.
   */
  touched: ReadonlySet<string>;
}

/** A `NodeView` as the planner compares it from one tick to the next. */
function sameView(a: NodeView, b: NodeView): boolean {
  if (a.alive !== b.alive || a.draining !== b.draining || a.capacity !== b.capacity) return false;
  const x = a.reportedPortfolios;
  const y = b.reportedPortfolios;
  if (x === y) return true;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * The plan kept between ticks, updated from what changed: nodes whose view (liveness, drain,
 * capacity, reports) changed, catalog entries added or removed, operator migrations, and the
 * portfolios left without a node. Each `update` gives exactly what `computePlan` gives from the
 * same nodes, catalog and migrations with the previous plan this state holds (planner.test.ts
 * checks it over random change sequences), at a cost that follows the changes: a node that stayed
 * as it was keeps its portfolios untouched, since the previous plan never filled a node past the
 * capacity it still has.
 *
 * The caller starts it from a plan `computePlan` made (`PlanState.from`), and starts over the same
 * way whenever the plan it holds may not be the one this state mirrors.
 */
export class PlanState {
  /** Portfolio → placement: the whole plan, as the last update left it. */
  readonly placements: Map<string, Placement>;
  /** Node → the portfolios assigned to it. */
  private readonly byNode = new Map<string, Set<string>>();
  /** Catalog entries without a placement (held back by the settle window) and orphaned ones. */
  private readonly unplaced = new Set<string>();
  private views = new Map<string, NodeView>();
  private catalog: ReadonlyMap<string, unknown>;
  private readonly catalogIds: Set<string>;
  private orphanedCount = 0;

  private constructor(
    placements: Map<string, Placement>,
    nodes: readonly NodeView[],
    catalog: ReadonlyMap<string, unknown>,
  ) {
    this.placements = placements;
    this.catalog = catalog;
    this.catalogIds = new Set(catalog.keys());
    for (const n of nodes) this.views.set(n.nodeId, n);
    for (const [id, p] of placements) {
      if (p.status === 'assigned') this.assign(id, p.nodeId);
      else {
        this.unplaced.add(id);
        this.orphanedCount += 1;
      }
    }
    for (const id of this.catalogIds) if (!placements.has(id)) this.unplaced.add(id);
  }

  /**
   * The state of a plan made by `computePlan` (and the rebalance, and the settle window's held
   * portfolios) from `nodes` and `catalog`. Takes `placements` over: the caller does not change it.
   */
  static from(
    placements: Map<string, Placement>,
    nodes: readonly NodeView[],
    catalog: ReadonlyMap<string, unknown>,
  ): PlanState {
    return new PlanState(placements, nodes, catalog);
  }

  /** Portfolios placed on a node, and orphaned ones. */
  get counts(): { assigned: number; orphaned: number } {
    return {
      assigned: this.placements.size - this.orphanedCount,
      orphaned: this.orphanedCount,
    };
  }

  /** The portfolios assigned to a node (none: an empty set). */
  assignedTo(nodeId: string): ReadonlySet<string> {
    return this.byNode.get(nodeId) ?? NONE;
  }

  /** The portfolios orphaned now. */
  *orphaned(): Iterable<string> {
    for (const id of this.unplaced) if (this.placements.get(id)?.status === 'orphaned') yield id;
  }

  /** Applies moves decided after the plan (the rebalance), so that the state stays the plan. */
  apply(moves: readonly { portfolioId: string; to: string | null }[]): void {
    for (const { portfolioId, to } of moves) {
      if (to === null) continue;
      this.set(portfolioId, { status: 'assigned', nodeId: to });
    }
  }

  /**
   * The next plan from the nodes, the catalog and the migrations of this tick, as `computePlan`
   * makes it from the plan this state holds. Changes the state to that plan.
   */
  update(input: {
    nodes: readonly NodeView[];
    catalog: ReadonlyMap<string, unknown>;
    migrations?: readonly Migration[];
  }): PlanUpdate {
    const touched = new Set<string>();
    const before = new Map<string, Placement | undefined>();
    const remember = (id: string): void => {
      if (!before.has(id)) before.set(id, this.placements.get(id));
      touched.add(id);
    };

    // Which nodes changed, and the usable ones (for the orphan reason and the least loaded).
    const views = new Map<string, NodeView>();
    const dirty = new Set<string>();
    const usable = new Map<string, NodeView>();
    let capacity = 0;
    for (const n of input.nodes) {
      views.set(n.nodeId, n);
      const old = this.views.get(n.nodeId);
      if (old === undefined || !sameView(old, n)) dirty.add(n.nodeId);
      if (n.alive && !n.draining) {
        usable.set(n.nodeId, n);
        capacity += n.capacity;
      }
    }
    for (const id of this.views.keys()) if (!views.has(id)) dirty.add(id);
    this.views = views;

    // Catalog entries removed leave the plan; added ones are to be placed.
    const candidates = new Set(this.unplaced);
    if (input.catalog !== this.catalog) {
      for (const id of [...this.catalogIds]) {
        if (input.catalog.has(id)) continue;
        remember(id);
        this.catalogIds.delete(id);
        candidates.delete(id);
        this.remove(id);
      }
      for (const id of input.catalog.keys()) {
        if (this.catalogIds.has(id)) continue;
        this.catalogIds.add(id);
        candidates.add(id);
      }
      this.catalog = input.catalog;
    }

    // 1. Migrations, checked as computePlan checks them: against the loads of the migrations
    // accepted before them only (a portfolio migrated twice counts on both targets this tick).
    const extra = new Map<string, number>();
    const migrating = new Map<string, string>();
    const rejected: PlanOutput['rejected'] = [];
    for (const migration of input.migrations ?? []) {
      const { portfolioId, targetNodeId } = migration;
      const target = usable.get(targetNodeId);
      const reason = !this.catalogIds.has(portfolioId)
        ? `unknown portfolio ${portfolioId}`
        : !views.has(targetNodeId)
          ? `unknown node ${targetNodeId}`
          : target === undefined
            ? `node ${targetNodeId} is not alive or is draining`
            : (extra.get(targetNodeId) ?? 0) >= target.capacity && !migrating.has(portfolioId)
              ? `node ${targetNodeId} is full`
              : undefined;
      if (reason !== undefined) {
        rejected.push({ migration, reason });
        continue;
      }
      extra.set(targetNodeId, (extra.get(targetNodeId) ?? 0) + 1);
      migrating.set(portfolioId, targetNodeId);
    }
    const migrated: string[] = [];
    // Placed at the end: until then they count in `extra`, as in computePlan's loads.
    for (const portfolioId of migrating.keys()) {
      remember(portfolioId);
      candidates.delete(portfolioId);
      this.remove(portfolioId);
      migrated.push(portfolioId);
    }

    // 2. A node that changed (or takes migrations) keeps, in id order, what still fits on it; a
    // node that did not change keeps all it had.
    for (const nodeId of new Set([...dirty, ...extra.keys()])) {
      const mine = this.byNode.get(nodeId);
      if (mine === undefined || mine.size === 0) continue;
      const view = usable.get(nodeId);
      const room = view === undefined ? 0 : Math.max(0, view.capacity - (extra.get(nodeId) ?? 0));
      if (mine.size <= room) continue;
      const ids = [...mine].sort();
      for (const id of ids.slice(room)) {
        remember(id);
        this.remove(id);
        candidates.add(id);
      }
    }

    // 3. The rest, in id order: where it runs, else the least loaded, else orphaned.
    const loadOf = (nodeId: string): number =>
      (this.byNode.get(nodeId)?.size ?? 0) + (extra.get(nodeId) ?? 0);
    const hasRoom = (nodeId: string): boolean =>
      loadOf(nodeId) < (usable.get(nodeId)?.capacity ?? 0);
    const reporterOf = reportersOf(input.nodes, usable);
    const leastLoaded = leastLoadedOf(usable.keys(), loadOf, hasRoom);
    const orphanReason =
      usable.size === 0
        ? 'no alive, non-draining node'
        : `every alive node is full (${usable.size} nodes, capacity ${capacity})`;
    for (const portfolioId of [...candidates].sort()) {
      remember(portfolioId);
      const runningOn = reporterOf(portfolioId);
      const target = runningOn !== undefined && hasRoom(runningOn) ? runningOn : leastLoaded();
      if (target !== undefined) this.set(portfolioId, { status: 'assigned', nodeId: target });
      else {
        const was = this.placements.get(portfolioId);
        this.set(
          portfolioId,
          was?.status === 'orphaned' && was.reason === orphanReason
            ? was
            : { status: 'orphaned', reason: orphanReason },
        );
      }
    }
    for (const portfolioId of migrated)
      this.set(portfolioId, { status: 'assigned', nodeId: migrating.get(portfolioId) as string });

    const moves: PlanOutput['moves'] = [];
    const order = [...migrated, ...[...touched].filter((id) => !migrating.has(id)).sort()];
    for (const portfolioId of order) {
      const was = before.get(portfolioId);
      const now = this.placements.get(portfolioId);
      const from = was?.status === 'assigned' ? was.nodeId : null;
      const to = now?.status === 'assigned' ? now.nodeId : null;
      if (from !== to) moves.push({ portfolioId, from, to });
    }
    return { placements: this.placements, moves, rejected, touched };
  }

  /** Sets a portfolio's placement, keeping the per-node sets and counts. */
  private set(portfolioId: string, placement: Placement): void {
    this.remove(portfolioId);
    this.placements.set(portfolioId, placement);
    if (placement.status === 'assigned') this.assign(portfolioId, placement.nodeId);
    else {
      this.orphanedCount += 1;
      this.unplaced.add(portfolioId);
    }
  }

  private remove(portfolioId: string): void {
    this.unplaced.delete(portfolioId);
    const was = this.placements.get(portfolioId);
    if (was === undefined) return;
    this.placements.delete(portfolioId);
    if (was.status === 'assigned') this.byNode.get(was.nodeId)?.delete(portfolioId);
    else this.orphanedCount -= 1;
  }

  private assign(portfolioId: string, nodeId: string): void {
    const mine = this.byNode.get(nodeId);
    if (mine === undefined) this.byNode.set(nodeId, new Set([portfolioId]));
    else mine.add(portfolioId);
  }
}

const NONE: ReadonlySet<string> = new Set();

export interface RebalanceInput {
  nodes: readonly NodeView[];
  /** The plan being built. */
  placements: ReadonlyMap<string, Placement>;
  /** How many portfolios may move. */
  budget: number;
  /** Portfolios not to move (already moving in this plan). */
  pinned: ReadonlySet<string>;
}

/**
 * Evens out the load, one portfolio at a time and at most `budget` of them: from the most-loaded
 * alive, non-draining node to the least-loaded one with room, while the two differ by more than
 * one (a difference of one is as even as it gets). Ties by node id; the portfolio moved is the
 * last by id on the busiest node, so the same plan always gives the same moves. Pure.
 */
export function rebalance(input: RebalanceInput): {
  placements: Map<string, Placement>;
  moves: PlanOutput['moves'];
} {
  const placements = new Map(input.placements);
  const usable = input.nodes.filter((n) => n.alive && !n.draining);
  const movable = new Map<string, string[]>(usable.map((n) => [n.nodeId, []]));
  const load = new Map<string, number>(usable.map((n) => [n.nodeId, 0]));
  for (const [portfolioId, p] of [...placements].sort(([a], [b]) => a.localeCompare(b))) {
    if (p.status !== 'assigned' || !load.has(p.nodeId)) continue;
    load.set(p.nodeId, (load.get(p.nodeId) ?? 0) + 1);
    if (!input.pinned.has(portfolioId)) movable.get(p.nodeId)?.push(portfolioId);
  }
  const byId = [...usable].sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  const moves: PlanOutput['moves'] = [];
  while (moves.length < input.budget) {
    const loadOf = (n: NodeView): number => load.get(n.nodeId) ?? 0;
    const busiest = byId.reduce<NodeView | undefined>(
      (best, n) => (best === undefined || loadOf(n) > loadOf(best) ? n : best),
      undefined,
    );
    const idlest = byId
      .filter((n) => loadOf(n) < n.capacity)
      .reduce<NodeView | undefined>(
        (best, n) => (best === undefined || loadOf(n) < loadOf(best) ? n : best),
        undefined,
      );
    if (busiest === undefined || idlest === undefined) break;
    if (loadOf(busiest) - loadOf(idlest) <= 1) break;
    const portfolioId = movable.get(busiest.nodeId)?.pop();
    if (portfolioId === undefined) break;
    placements.set(portfolioId, { status: 'assigned', nodeId: idlest.nodeId });
    load.set(busiest.nodeId, loadOf(busiest) - 1);
    load.set(idlest.nodeId, loadOf(idlest) + 1);
    moves.push({ portfolioId, from: busiest.nodeId, to: idlest.nodeId });
  }
  return { placements, moves };
}

/**
 * The ids sorted (by UTF-16 code units, as `Array.prototype.sort`) without duplicates. A list that
 * already is (the store hands the catalog out sorted) is taken as it is: one pass, no copy.
 */
/**
 * Which usable node reports running each portfolio (after Redis lost the plan). Built at the first
 * question: in most ticks every portfolio keeps its node and none is asked.
 */
function reportersOf(
  nodes: readonly NodeView[],
  usable: ReadonlyMap<string, unknown>,
): (portfolioId: string) => string | undefined {
  let reportedBy: Map<string, string> | undefined;
  return (portfolioId) => {
    if (reportedBy === undefined) {
      reportedBy = new Map<string, string>();
      for (const node of nodes) {
        if (!usable.has(node.nodeId)) continue;
        for (const id of node.reportedPortfolios) reportedBy.set(id, node.nodeId);
      }
    }
    return reportedBy.get(portfolioId);
  };
}

/**
 * The least-loaded node with room, ties by node id, counting the placement it is asked for: a heap
 * of (load, node) entries. Loads only grow, so an entry whose load is behind the node's is stale:
 * re-queued at its load, if it has room. Built at the first question.
 */
function leastLoadedOf(
  nodeIds: Iterable<string>,
  loadOf: (nodeId: string) => number,
  hasRoom: (nodeId: string) => boolean,
): () => string | undefined {
  let byLoad: MinHeap<{ load: number; nodeId: string }> | undefined;
  return () => {
    if (byLoad === undefined) {
      byLoad = new MinHeap<{ load: number; nodeId: string }>(
        (a, b) => a.load - b.load || a.nodeId.localeCompare(b.nodeId),
      );
      for (const nodeId of nodeIds)
        if (hasRoom(nodeId)) byLoad.push({ load: loadOf(nodeId), nodeId });
    }
    for (let entry = byLoad.pop(); entry !== undefined; entry = byLoad.pop()) {
      const current = loadOf(entry.nodeId);
      if (!hasRoom(entry.nodeId)) continue;
      if (current !== entry.load) byLoad.push({ load: current, nodeId: entry.nodeId });
      else {
        byLoad.push({ load: current + 1, nodeId: entry.nodeId }); // after the placement it makes
        return entry.nodeId;
      }
    }
    return undefined;
  };
}

function sortedUnique(ids: readonly string[]): readonly string[] {
  for (let i = 1; i < ids.length; i++)
    if (!((ids[i - 1] as string) < (ids[i] as string))) return [...new Set(ids)].sort();
  return ids;
}

/** A binary min-heap: `pop` gives the item that `compare` orders first. */
class MinHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly compare: (a: T, b: T) => number) {}

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.compare(items[i] as T, items[parent] as T) >= 0) break;
      [items[i], items[parent]] = [items[parent] as T, items[i] as T];
      i = parent;
    }
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < items.length && this.compare(items[left] as T, items[smallest] as T) < 0)
        smallest = left;
      if (right < items.length && this.compare(items[right] as T, items[smallest] as T) < 0)
        smallest = right;
      if (smallest === i) return top;
      [items[i], items[smallest]] = [items[smallest] as T, items[i] as T];
      i = smallest;
    }
  }
}
