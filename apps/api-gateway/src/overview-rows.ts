import type { NodeView } from './fleet-views.ts';
import {
  comparePortfolioRows,
  compareNodeRows,
  nodeRow,
  type NodeRow,
  type PortfolioItem,
  type PortfolioRow,
} from './overview.ts';

/** The rows one update changed, keyed: rows added or changed (whole), ids removed. */
export interface RowChanges<R> {
  set: R[];
  remove: string[];
}

export interface RowDelta {
  nodes: RowChanges<NodeRow>;
  portfolios: RowChanges<PortfolioRow>;
}

/** Rows compared between two yields to the event loop. */
const YIELD_EVERY = 2_000;

/** Whether two rows of primitives are equal field by field, leaving out `skip`. */
function sameRow<R extends object>(a: R, b: R, skip?: keyof R): boolean {
  for (const key of Object.keys(a) as (keyof R)[])
    if (key !== skip && a[key] !== b[key]) return false;
  return true;
}

/**
 * The operations page's rows, kept between updates: each node's row, and each portfolio's item as
 * the fleet view hands it out (the same object, not a copy). An update compares the fleet just read
 * with them field by field and says which rows were added, changed or removed; a whole overview's
 * rows (for a page that connects, or one that fell behind) are serialised then, sorted only when an
 * order-changing field moved.
 */
export class OverviewRows {
  private nodes = new Map<string, NodeRow>();
  private portfolios = new Map<string, PortfolioItem>();
  private nodeOrder: string[] | undefined;
  private portfolioOrder: string[] | undefined;

  /**
   * Takes the fleet as read now; returns what changed since the last update. Yields to the event
   * loop every `YIELD_EVERY` rows (API requests wait behind it otherwise). A whole overview made
   * meanwhile holds some rows of this update already: the delta that follows sets and removes them
   * again, which changes nothing, so a page that applies it ends where this update does.
   */
  async update(input: {
    nodes: NodeView[];
    portfolios: PortfolioItem[];
    now: Date;
  }): Promise<RowDelta> {
    const delta: RowDelta = {
      nodes: { set: [], remove: [] },
      portfolios: { set: [], remove: [] },
    };
    let done = 0;
    const pause = async (): Promise<void> => {
      if (++done % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
    };
    const seenNodes = new Set<string>();
    for (const view of input.nodes) {
      await pause();
      const row = nodeRow(view, input.now);
      seenNodes.add(row.node_id);
      const before = this.nodes.get(row.node_id);
      // A heartbeat age alone moves with the clock: the page ages rows from `generated_at`.
      if (before === undefined || !sameRow(before, row, 'heartbeat_age_ms')) {
        delta.nodes.set.push(row);
        if (before === undefined || before.status !== row.status) this.nodeOrder = undefined;
      }
      this.nodes.set(row.node_id, row);
    }
    for (const id of this.nodes.keys())
      if (!seenNodes.has(id)) {
        this.nodes.delete(id);
        delta.nodes.remove.push(id);
        this.nodeOrder = undefined;
      }

    const seenPortfolios = new Set<string>();
    for (const item of input.portfolios) {
      await pause();
      const { row } = item;
      seenPortfolios.add(row.portfolio_id);
      const before = this.portfolios.get(row.portfolio_id);
      // The fleet view hands out the same item while nothing of it was read again.
      if (before === item) continue;
      this.portfolios.set(row.portfolio_id, item);
      if (before !== undefined && sameRow(before.row, row)) continue;
      delta.portfolios.set.push(row);
      if (
        before === undefined ||
        before.row.status !== row.status ||
        before.row.queue_level !== row.queue_level
      )
        this.portfolioOrder = undefined;
    }
    for (const id of this.portfolios.keys())
      if (!seenPortfolios.has(id)) {
        this.portfolios.delete(id);
        delta.portfolios.remove.push(id);
        this.portfolioOrder = undefined;
      }
    return delta;
  }

  /** Forgets every row (Redis lost its data: the next update adds all anew). */
  clear(): void {
    this.nodes = new Map();
    this.portfolios = new Map();
    this.nodeOrder = undefined;
    this.portfolioOrder = undefined;
  }

  nodeRows(): IterableIterator<NodeRow> {
    return this.nodes.values();
  }

  portfolioRows(): IterableIterator<PortfolioRow> {
    return (function* (portfolios: Map<string, PortfolioItem>) {
      for (const p of portfolios.values()) yield p.row;
    })(this.portfolios);
  }

  /** Every node row, in the page's order. */
  sortedNodes(): NodeRow[] {
    this.nodeOrder ??= [...this.nodes.values()].sort(compareNodeRows).map((r) => r.node_id);
    return this.nodeOrder.flatMap((id) => {
      const n = this.nodes.get(id);
      return n === undefined ? [] : [n];
    });
  }

  /**
   * Every portfolio row, in the page's order, as one JSON array: serialised here, for the pages
   * that need a whole overview, rather than kept (a second copy of every row, 25,000 at 5,000 nodes).
   */
  portfoliosJson(): string {
    this.portfolioOrder ??= [...this.portfolios.values()]
      .map((p) => p.row)
      .sort(comparePortfolioRows)
      .map((r) => r.portfolio_id);
    const parts: string[] = [];
    for (const id of this.portfolioOrder) {
      const p = this.portfolios.get(id);
      if (p !== undefined) parts.push(JSON.stringify(p.row));
    }
    return `[${parts.join(',')}]`;
  }
}
