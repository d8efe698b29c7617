import type { NodeView, PortfolioView } from './fleet-views.ts';
import {
  comparePortfolioRows,
  compareNodeRows,
  nodeRow,
  portfolioRow,
  type NodeRow,
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

interface StoredPortfolio {
  /** The view it was made from: the fleet view hands out the same object while nothing changed. */
  view: PortfolioView;
  row: PortfolioRow;
  /** The row as JSON, joined into whole frames as it is. */
  json: string;
}

interface StoredNode {
  row: NodeRow;
  /** The row as JSON without its heartbeat age, which moves with the clock: what counts as a change. */
  key: string;
}

/**
 * The operations page's rows, one compact copy kept between updates: each portfolio's row and its
 * JSON, each node's row. An update compares the fleet just read with it and says which rows were
 * added, changed or removed; a whole overview's rows (for a page that connects, or one that fell
 * behind) are joined from the kept JSON, sorted only when an order-changing field moved.
 */
export class OverviewRows {
  private nodes = new Map<string, StoredNode>();
  private portfolios = new Map<string, StoredPortfolio>();
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
    portfolios: PortfolioView[];
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
      const { heartbeat_age_ms: _age, ...rest } = row;
      const key = JSON.stringify(rest);
      const before = this.nodes.get(row.node_id);
      if (before === undefined || before.key !== key) {
        delta.nodes.set.push(row);
        if (before === undefined || before.row.status !== row.status) this.nodeOrder = undefined;
      }
      this.nodes.set(row.node_id, { row, key });
    }
    for (const id of this.nodes.keys())
      if (!seenNodes.has(id)) {
        this.nodes.delete(id);
        delta.nodes.remove.push(id);
        this.nodeOrder = undefined;
      }

    const seenPortfolios = new Set<string>();
    for (const view of input.portfolios) {
      await pause();
      seenPortfolios.add(view.portfolio_id);
      const before = this.portfolios.get(view.portfolio_id);
      if (before?.view === view) continue;
      const row = portfolioRow(view);
      const json = JSON.stringify(row);
      this.portfolios.set(row.portfolio_id, { view, row, json });
      if (before?.json === json) continue;
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
    return (function* (nodes: Map<string, StoredNode>) {
      for (const n of nodes.values()) yield n.row;
    })(this.nodes);
  }

  portfolioRows(): IterableIterator<PortfolioRow> {
    return (function* (portfolios: Map<string, StoredPortfolio>) {
      for (const p of portfolios.values()) yield p.row;
    })(this.portfolios);
  }

  /** Every node row, in the page's order. */
  sortedNodes(): NodeRow[] {
    this.nodeOrder ??= [...this.nodes.values()]
      .map((n) => n.row)
      .sort(compareNodeRows)
      .map((r) => r.node_id);
    return this.nodeOrder.flatMap((id) => {
      const n = this.nodes.get(id);
      return n === undefined ? [] : [n.row];
    });
  }

  /** Every portfolio row, in the page's order, as one JSON array joined from the kept rows. */
  portfoliosJson(): string {
    this.portfolioOrder ??= [...this.portfolios.values()]
      .map((p) => p.row)
      .sort(comparePortfolioRows)
      .map((r) => r.portfolio_id);
    const parts: string[] = [];
    for (const id of this.portfolioOrder) {
      const p = this.portfolios.get(id);
      if (p !== undefined) parts.push(p.json);
    }
    return `[${parts.join(',')}]`;
  }
}
