import {
  readNodeSnapshots,
  TradingControls,
  type NodeSnapshot,
  type TradingReading,
} from '@ginkgo-live/fleet';
import type { Redis } from 'ioredis';
import { mgetBySlot } from '@ginkgo-live/redis-client';
import {
  isValidId,
  PayloadDecoder,
  type NodeRecord,
  type NotificationRecord,
  type PayloadProblem,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { buildPortfolioView, nodeView, type NodeView } from './fleet-views.ts';
import { portfolioItem, type PortfolioItem } from './overview.ts';
import { callRedis } from './redis-unavailable.ts';

/** What one refresh of the view hands out: the whole fleet as last read, at `nowMs`. */
export interface FleetSnapshot {
  nodes: NodeView[];
  /** Each portfolio's row and counters: the same object from one refresh to the next while unread. */
  portfolios: PortfolioItem[];
  plan: { version: number | null; leader: string | null };
  notifications: (NotificationRecord | { error: string; raw: string })[];
  trading: TradingReading;
}

/** What the last refresh read, for tests and logs. */
export interface RefreshStats {
  /** Everything was read: the first refresh, a safety re-read, or after Redis went backwards. */
  full: boolean;
  /** Why a full read, when one was made. */
  reason: string | null;
  /** Nodes whose heartbeat and info were read, sorted. */
  nodesRead: string[];
  /** Portfolio states read. */
  statesRead: number;
  /** The node records, plan and catalog were read (they may have changed). */
  planRead: boolean;
}

export interface FleetViewOptions {
  /** Everything is read again at least this often, whatever the change signals say. Default 60 s. */
  fullEveryMs?: number;
  /** Unused this long, the view forgets the fleet. Default 60 s. */
  idleMs?: number;
  now?: () => number;
}

interface NodeEntry {
  /** The registry score this entry was read at (null: the node is known only by its record). */
  score: number | null;
  snapshot: NodeSnapshot;
  /** When its heartbeat key expires, by this process's clock (null: it had none, or no TTL). */
  expiresAtMs: number | null;
  /** Portfolios it said it runs. */
  portfolioIds: readonly string[];
}

/** States per MGET (per slot on a cluster): a fleet's worth in one reply would hold Redis up. */
const STATE_BATCH = 500;
const YIELD_EVERY = 1_000;

/**
 * The fleet kept in the gateway's memory and brought up to date from what changed, for the
 * operations feed and `/metrics`: a refresh reads the `{scheduler}` heads (registry with scores,
 * plan meta, hash lengths, leader), then only
 * - the heartbeat and info of nodes whose registry score (their last beat) moved, or whose heartbeat
 *   has outlived the TTL it had when last read (it may have expired), and the states of their
 *   portfolios (the beat that moved the score rewrote them);
 * - records, plan and catalog when the plan meta or a hash's length changed (the scheduler's plan
 *   write sets the meta with them), with the states of portfolios whose place or spec changed;
 * - the notification history when its head or length changed.
 * A registry that went backwards (a score lower than read before, or emptied) or a plan version
 * lower than read before — Redis restarted empty, or a failover to a replica that lagged — drops
 * everything and reads the fleet anew, as does a safety read every `fullEveryMs`.
 * What it does not see: a state written by a node's flush between two beats (the overview shows
 * each portfolio as of its node's last beat, at most one heartbeat interval old) and a heartbeat
 * deleted by a clean stop before its TTL (seen when the registry entry goes, a moment later).
 */
export class FleetView {
  /**
   * Decodings kept for the payloads that rarely change and are decoded again on every plan read or
   * every refresh (assignments, node records, plan meta, notifications): one entry per key. States,
   * specs, heartbeats and infos are decoded when read (a node's when its score moved, a
   * portfolio's when its node beat or its place changed) and only what is shown of them is kept:
   * a cache of them would keep a second decoded copy of the fleet.
   */
  private readonly decoder = new PayloadDecoder(100_000);
  /** Decodes without keeping anything (`PayloadDecoder` keeps at most the last entry at size 0). */
  private readonly once = new PayloadDecoder(0);
  private readonly portfolioDecoder: Pick<PayloadDecoder, 'decode'> = {
    decode: (name, key, raw) =>
      name === 'assignment'
        ? this.decoder.decode(name, key, raw)
        : this.once.decode(name, key, raw),
  };
  private readonly now: () => number;
  private nodes = new Map<string, NodeEntry>();
  /**
   * One item per portfolio, kept whole between refreshes: what the page and the metrics show of it,
   * without its raw payloads or its full view (their memory, and the collector's work on them,
   * were most of the gateway's with a page open at 5,000 nodes).
   */
  private portfolios = new Map<string, PortfolioItem>();
  private portfolioOrder: string[] = [];
  private records = new Map<string, string>();
  private catalog = new Map<string, string>();
  private assignments = new Map<string, string>();
  /** Per node, the portfolios the plan puts there. */
  private plannedOn = new Map<string, string[]>();
  private metaRaw: string | null | undefined;
  private metaVersion: number | null = null;
  private lengths = '';
  private lastFullMs = Number.NEGATIVE_INFINITY;
  private notificationHead: string | undefined;
  private notifications: FleetSnapshot['notifications'] = [];
  private inFlight: Promise<FleetSnapshot> | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private last: RefreshStats = {
    full: false,
    reason: null,
    nodesRead: [],
    statesRead: 0,
    planRead: false,
  };

  constructor(
    private readonly redis: Redis,
    private readonly keys: StateKeys,
    private readonly options: FleetViewOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  get stats(): Readonly<RefreshStats> {
    return this.last;
  }

  /** Forgets everything (nobody watches): the next refresh reads the whole fleet. */
  clear(): void {
    this.nodes = new Map();
    this.portfolios = new Map();
    this.portfolioOrder = [];
    this.records = new Map();
    this.catalog = new Map();
    this.assignments = new Map();
    this.plannedOn = new Map();
    this.metaRaw = undefined;
    this.metaVersion = null;
    this.lengths = '';
    this.lastFullMs = Number.NEGATIVE_INFINITY;
    this.notificationHead = undefined;
    this.notifications = [];
  }

  /**
   * Brings the view up to date and hands it out; a Redis failure throws `RedisUnavailableError`.
   * Callers during a refresh share it. Unused for `idleMs`, the view forgets everything (the memory
   * of a whole fleet is not kept for nobody).
   */
  refresh(): Promise<FleetSnapshot> {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.inFlight === undefined) this.clear();
    }, this.options.idleMs ?? 60_000);
    this.idleTimer.unref();
    this.inFlight ??= callRedis(this.redis, () => this.refreshOnce()).finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /**
   * Nodes whose own info says they are draining or stopping (whatever their heartbeat), as of a
   * refresh now: the info is written only by the beat that moves the node's registry score, so the
   * view has every info that changed.
   */
  async selfDraining(): Promise<Set<string>> {
    await this.refresh();
    const out = new Set<string>();
    for (const [id, entry] of this.nodes) {
      const status = entry.snapshot.info?.status;
      if (status === 'draining' || status === 'stopping') out.add(id);
    }
    return out;
  }

  private async refreshOnce(): Promise<FleetSnapshot> {
    const k = this.keys;
    const head = await this.redis
      .multi()
      .zrange(k.nodeRegistry(), 0, -1, 'WITHSCORES')
      .get(k.planMeta())
      .hlen(k.executionNodes())
      .hlen(k.portfolioAssignments())
      .hlen(k.portfolioCatalog())
      .get(k.schedulerLeader())
      .exec();
    if (head === null) throw new Error('Fleet view: the transaction was aborted');
    for (const [err] of head) if (err) throw err;
    const [registryRaw, metaRaw, ...rest] = head.map(([, v]) => v) as [
      string[],
      string | null,
      number,
      number,
      number,
      string | null,
    ];
    const [nodesLength, plansLength, catalogLength, leader] = rest;
    const scores = new Map<string, number>();
    for (let i = 0; i + 1 < registryRaw.length; i += 2)
      scores.set(registryRaw[i] ?? '', Number(registryRaw[i + 1]));
    const meta = metaRaw === null ? null : this.decoder.decode('planMeta', k.planMeta(), metaRaw);
    const version = meta?.ok === true ? meta.value.version : null;

    const now = this.now();
    let reason: string | null = null;
    if (this.metaRaw === undefined) reason = 'first read';
    else if (now - this.lastFullMs >= (this.options.fullEveryMs ?? 60_000))
      reason = 'safety re-read';
    else if (this.metaVersion !== null && (version === null || version < this.metaVersion))
      reason = 'the plan version went backwards';
    else if (this.nodes.size > 0 && scores.size === 0) reason = 'the registry vanished';
    else
      for (const [id, entry] of this.nodes)
        if (entry.score !== null && (scores.get(id) ?? entry.score) < entry.score) {
          reason = `the registry went backwards (${id})`;
          break;
        }
    if (reason !== null) {
      const kept = this.lastFullMs;
      this.clear();
      this.lastFullMs = kept;
    }
    const full = reason !== null;
    if (full) this.lastFullMs = now;

    // Records, plan and catalog: only when the plan write may have changed them.
    const lengths = `${nodesLength}/${plansLength}/${catalogLength}`;
    const statesToRead = new Set<string>();
    const planRead = full || metaRaw !== this.metaRaw || lengths !== this.lengths;
    if (planRead) await this.readPlan(statesToRead, full);
    this.metaRaw = metaRaw;
    this.metaVersion = version;
    this.lengths = lengths;

    // Nodes: whose beat moved, whose heartbeat may have expired, or new to the records.
    const ids = new Set([...scores.keys(), ...this.records.keys()].filter(isValidId));
    for (const id of this.nodes.keys()) if (!ids.has(id)) this.nodes.delete(id);
    const toRead: string[] = [];
    for (const id of ids) {
      const entry = this.nodes.get(id);
      if (
        entry === undefined ||
        entry.score !== (scores.get(id) ?? null) ||
        (entry.expiresAtMs !== null && now >= entry.expiresAtMs)
      )
        toRead.push(id);
    }
    toRead.sort();
    const snapshots = await readNodeSnapshots(this.redis, k, toRead, {
      record: false,
      decoder: this.once,
    });
    const readAt = this.now();
    for (const snapshot of snapshots) {
      const id = snapshot.nodeId;
      const before = this.nodes.get(id);
      const portfolioIds = snapshot.info?.portfolio_ids ?? [];
      for (const p of before?.portfolioIds ?? []) statesToRead.add(p);
      for (const p of portfolioIds) statesToRead.add(p);
      for (const p of this.plannedOn.get(id) ?? []) statesToRead.add(p);
      const { pttlMs } = snapshot.heartbeat;
      this.nodes.set(id, {
        score: scores.get(id) ?? null,
        snapshot,
        expiresAtMs: snapshot.liveness.alive && pttlMs > 0 ? readAt + pttlMs : null,
        portfolioIds,
      });
    }

    const statesRead = await this.readStates(statesToRead);
    this.last = {
      full,
      reason,
      nodesRead: toRead,
      statesRead,
      planRead,
    };
    const [notifications, trading] = [
      await this.readNotifications(),
      await new TradingControls(this.redis, k).read(),
    ];
    return {
      nodes: await this.nodeViews(),
      portfolios: this.portfolioOrder.flatMap((id) => {
        const item = this.portfolios.get(id);
        return item === undefined ? [] : [item];
      }),
      plan: { version, leader },
      notifications,
      trading,
    };
  }

  /** Records, assignments and catalog read in full; portfolios whose place or spec changed noted. */
  private async readPlan(statesToRead: Set<string>, full: boolean): Promise<void> {
    const k = this.keys;
    const [records, assignments, catalog] = await Promise.all([
      this.redis.hgetall(k.executionNodes()),
      this.redis.hgetall(k.portfolioAssignments()),
      this.redis.hgetall(k.portfolioCatalog()),
    ]);
    // A record that changed changes its node's view: read it again with the rest.
    for (const [id, raw] of Object.entries(records))
      if (this.records.get(id) !== raw) this.nodes.delete(id);
    for (const id of this.records.keys()) if (records[id] === undefined) this.nodes.delete(id);
    this.records = new Map(Object.entries(records));
    const ids = [...new Set([...Object.keys(catalog), ...Object.keys(assignments)])].sort();
    for (const id of ids)
      if (
        full ||
        this.assignments.get(id) !== assignments[id] ||
        this.catalog.get(id) !== catalog[id] ||
        !this.portfolios.has(id)
      )
        statesToRead.add(id);
    const known = new Set(ids);
    for (const id of this.portfolios.keys()) if (!known.has(id)) this.portfolios.delete(id);
    this.assignments = new Map(Object.entries(assignments));
    this.catalog = new Map(Object.entries(catalog));
    this.portfolioOrder = ids;
    this.plannedOn = new Map();
    for (const [id, raw] of this.assignments) {
      const decoded = this.decoder.decode('assignment', `${k.portfolioAssignments()}[${id}]`, raw);
      const node = decoded.ok ? decoded.value.node_id : null;
      if (node !== null) this.plannedOn.set(node, [...(this.plannedOn.get(node) ?? []), id]);
    }
  }

  /** States of these portfolios (those of the catalog or plan), in per-slot MGET batches. */
  private async readStates(wanted: Set<string>): Promise<number> {
    const ids = [...wanted].filter((id) => this.catalog.has(id) || this.assignments.has(id));
    const batches: Promise<(string | null)[]>[] = [];
    for (let i = 0; i < ids.length; i += STATE_BATCH)
      batches.push(
        mgetBySlot(
          this.redis,
          ids.slice(i, i + STATE_BATCH).map((id) => this.keys.portfolioState(id)),
        ),
      );
    const states = (await Promise.all(batches)).flat();
    for (const [i, id] of ids.entries()) {
      if (i > 0 && i % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
      // Read because its node beat or its place changed: its state has almost always changed too
      // (the beat stamps it), so it is decoded without comparing raws, and only its item is kept.
      this.portfolios.set(
        id,
        portfolioItem(
          buildPortfolioView(
            this.keys,
            this.portfolioDecoder,
            id,
            this.catalog.get(id),
            this.assignments.get(id),
            states[i] ?? null,
          ),
        ),
      );
    }
    return ids.length;
  }

  private async readNotifications(): Promise<FleetSnapshot['notifications']> {
    const key = this.keys.notificationHistory();
    const [length, first] = await Promise.all([this.redis.llen(key), this.redis.lindex(key, 0)]);
    const head = `${length}:${first ?? ''}`;
    if (head === this.notificationHead) return this.notifications;
    const raws = await this.redis.lrange(key, 0, 999);
    this.notifications = raws.map((raw) => {
      const decoded = this.decoder.decode('notificationRecord', key, raw);
      return decoded.ok ? decoded.value : { error: decoded.error.problem, raw: decoded.error.raw };
    });
    this.notificationHead = head;
    return this.notifications;
  }

  /** Every node's view, its liveness judged now by the heartbeat TTL it had when read. */
  private async nodeViews(): Promise<NodeView[]> {
    const k = this.keys;
    const now = this.now();
    const ids = [...this.nodes.keys()].sort();
    const out: NodeView[] = [];
    for (const [i, id] of ids.entries()) {
      if (i > 0 && i % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
      const entry = this.nodes.get(id);
      if (entry === undefined) continue;
      const { snapshot } = entry;
      const problems: PayloadProblem[] = [...snapshot.problems];
      let record: NodeRecord | null = null;
      const recordRaw = this.records.get(id);
      if (recordRaw !== undefined) {
        const decoded = this.decoder.decode(
          'nodeRecord',
          `${k.executionNodes()}[${id}]`,
          recordRaw,
        );
        if (decoded.ok) record = decoded.value;
        else problems.push(decoded.error);
      }
      const alive = entry.expiresAtMs !== null && now < entry.expiresAtMs;
      const sent = snapshot.liveness.lastHeartbeatAt;
      out.push(
        nodeView({
          ...snapshot,
          record,
          lastSeenMs: entry.score,
          problems,
          liveness: {
            ...snapshot.liveness,
            alive,
            reason: alive
              ? 'beating'
              : snapshot.liveness.alive
                ? 'no heartbeat'
                : snapshot.liveness.reason,
            heartbeatAgeMs: sent === null ? null : Math.max(0, now - Date.parse(sent)),
          },
        }),
      );
    }
    return out;
  }
}
