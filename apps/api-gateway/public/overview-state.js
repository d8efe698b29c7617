// The operations page's copy of the overview, kept from the gateway's event stream: the whole
// overview comes first (`overview` events), then only the rows each update changed
// (`overview-delta` events). Plain ES module with no DOM use, so the gateway's tests run the very
// code the page runs.

/** The gateway's order of ids (one collator: `localeCompare` makes one per call). */
const byId = new Intl.Collator();

function withoutRows(frame) {
  const { nodes: _nodes, portfolios: _portfolios, base: _base, ...head } = frame;
  return head;
}

/**
 * The rows as of the last update applied, keyed by id, and the rest of that update. A delta
 * applies only to the update it names as `base`; one that does not (an update was missed) is
 * refused, and the page asks for the whole overview again.
 */
export class OverviewState {
  constructor() {
    /** The last update applied (null: none yet). */
    this.seq = null;
    this.head = undefined;
    this.nodes = new Map();
    this.portfolios = new Map();
    /** Per node, when it was last heard from (ms, by the gateway's clock), or null. */
    this.heardAt = new Map();
    this.nodeOrder = undefined;
    this.portfolioOrder = undefined;
  }

  /**
   * Applies one frame (`event` is the server-sent event's name, `frame` its parsed data). Returns
   * false for a delta that does not build on the last update applied: nothing is changed then, and
   * the caller must get a whole overview (reconnect). Other events are ignored.
   */
  apply(event, frame) {
    if (event === 'overview') {
      this.nodes = new Map();
      this.portfolios = new Map();
      this.heardAt = new Map();
      this.setRows(frame, frame.nodes, [], frame.portfolios, []);
      return true;
    }
    if (event !== 'overview-delta') return true;
    if (this.seq === null || frame.base !== this.seq) return false;
    this.setRows(
      frame,
      frame.nodes.set,
      frame.nodes.remove,
      frame.portfolios.set,
      frame.portfolios.remove,
    );
    return true;
  }

  setRows(frame, nodes, nodesGone, portfolios, portfoliosGone) {
    const at = Date.parse(frame.generated_at);
    for (const id of nodesGone) {
      this.nodes.delete(id);
      this.heardAt.delete(id);
      this.nodeOrder = undefined;
    }
    for (const row of nodes) {
      const before = this.nodes.get(row.node_id);
      if (before === undefined || before.status !== row.status) this.nodeOrder = undefined;
      this.nodes.set(row.node_id, row);
      this.heardAt.set(
        row.node_id,
        row.heartbeat_age_ms === null ? null : at - row.heartbeat_age_ms,
      );
    }
    for (const id of portfoliosGone) {
      this.portfolios.delete(id);
      this.portfolioOrder = undefined;
    }
    for (const row of portfolios) {
      const before = this.portfolios.get(row.portfolio_id);
      if (
        before === undefined ||
        before.status !== row.status ||
        before.queue_level !== row.queue_level
      )
        this.portfolioOrder = undefined;
      this.portfolios.set(row.portfolio_id, row);
    }
    this.head = withoutRows(frame);
    this.seq = frame.seq;
  }

  /**
   * The overview as of the last update, shaped as the gateway's whole one: rows in its order
   * (lost nodes first, orphaned and fullest portfolios first, then by id), each node's heartbeat age
   * as of that update. Unchanged portfolio rows are the same objects as before.
   */
  overview() {
    if (this.head === undefined) return undefined;
    const rank = this.head.queue_level_rank ?? {};
    this.nodeOrder ??= [...this.nodes.values()]
      .sort(
        (a, b) =>
          Number(a.status !== 'lost') - Number(b.status !== 'lost') ||
          byId.compare(a.node_id, b.node_id),
      )
      .map((n) => n.node_id);
    this.portfolioOrder ??= [...this.portfolios.values()]
      .sort(
        (a, b) =>
          Number(a.status !== 'orphaned') - Number(b.status !== 'orphaned') ||
          (rank[a.queue_level] ?? 0) - (rank[b.queue_level] ?? 0) ||
          byId.compare(a.portfolio_id, b.portfolio_id),
      )
      .map((p) => p.portfolio_id);
    const at = Date.parse(this.head.generated_at);
    const nodes = this.nodeOrder.map((id) => {
      const row = this.nodes.get(id);
      const heard = this.heardAt.get(id);
      const age = heard === null || heard === undefined ? null : Math.max(0, at - heard);
      return row.heartbeat_age_ms === age ? row : { ...row, heartbeat_age_ms: age };
    });
    const portfolios = this.portfolioOrder.map((id) => this.portfolios.get(id));
    return { ...this.head, nodes, portfolios };
  }
}
