import type { Redis } from 'ioredis';
import {
  TradingControls,
  readNodeIds,
  readNodeSnapshots,
  type TradingReading,
} from '@ginkgo-live/fleet';
import {
  isValidId,
  PayloadDecoder,
  type NodeRecord,
  type NotificationRecord,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { mgetBySlot } from '@ginkgo-live/redis-client';
import { FleetView } from './fleet-view.ts';
import { LivenessIndex } from './liveness-index.ts';
import { buildPortfolioView, nodeView, type NodeView, type PortfolioView } from './fleet-views.ts';
import { callRedis } from './redis-unavailable.ts';

export type { NodeView, PortfolioView } from './fleet-views.ts';

/** Portfolio states per MGET (per slot on a cluster): a fleet's worth in one reply would hold Redis and the reader up. */
const STATE_BATCH = 500;
/** Items turned into views between two yields to the event loop. */
const YIELD_EVERY = 1_000;

/**
 * `items.map(fn)`, yielding to the event loop every `YIELD_EVERY` items: a large fleet's views take
 * hundreds of milliseconds to build, and other requests (and their Redis replies, which would
 * otherwise time out behind it) must be served meanwhile.
 */
async function mapYielding<T, R>(
  items: readonly T[],
  fn: (item: T, index: number) => R,
): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i++) {
    if (i > 0 && i % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
    out.push(fn(items[i] as T, i));
  }
  return out;
}

/** How long the sorted portfolio ids are reused while nothing says they changed. */
const PORTFOLIO_IDS_MAX_AGE_MS = 5_000;

/** Decoded payloads remembered per generation (two generations). */
const DECODER_ENTRIES = 20_000;

/**
 * Reads the fleet from Redis for the API, in pipelined batches (never KEYS, never one round trip
 * per key). A malformed entry is returned with an `error` and the rest of the answer; a Redis
 * failure throws `RedisUnavailableError`, never an empty answer.
 */
export class FleetReader {
  /**
   * Most payloads have not changed since the last read: each distinct value is decoded once. Sized
   * for pages (at most 1,000 items of a few payloads each) and the plan, not for the whole fleet:
   * whole-fleet reads are the fleet view's (`FleetView`), which keeps what it decoded itself.
   */
  private readonly decoder = new PayloadDecoder(DECODER_ENTRIES);
  private portfolioIdCache: { signature: string; ids: string[]; atMs: number } | undefined;

  /**
   * The fleet kept up to date from what changed (`FleetView`), for the operations feed, `/metrics`
   * and the node status filter: one per reader unless given, so that they share it.
   */
  readonly view: FleetView;

  /** Every node's liveness, kept between calls and checked in bulk (`LivenessIndex`). */
  private readonly liveness: LivenessIndex;

  constructor(
    private readonly redis: Redis,
    private readonly keys: StateKeys,
    view?: FleetView,
  ) {
    this.view = view ?? new FleetView(redis, keys);
    this.liveness = new LivenessIndex(redis, keys);
  }

  private run<T>(call: () => Promise<T>): Promise<T> {
    return callRedis(this.redis, call);
  }

  /**
   * Every known node (registry and scheduler records), sorted, with its liveness only: the
   * liveness rule (the heartbeat key exists with a TTL) as `LivenessIndex` reads it — on one Redis
   * an `EXISTS` per chunk of keys checked against what was seen last, a `PTTL` only for nodes that
   * are new or changed. No payload is read or decoded, so this stays cheap however large the fleet.
   */
  async nodeIndex(ids?: readonly string[]): Promise<{ nodeId: string; online: boolean }[]> {
    return this.run(async () => {
      const known = ids ?? (await this.nodeIds());
      const online = await this.liveness.online(known);
      return known.map((nodeId) => ({ nodeId, online: online.get(nodeId) ?? false }));
    });
  }

  /** Every known node id (registry and scheduler records) that can be a node id, sorted. */
  async nodeIds(): Promise<string[]> {
    return this.run(async () => (await readNodeIds(this.redis, this.keys)).filter(isValidId));
  }

  /**
   * The scheduler's record status of these nodes (`HMGET` of the `{scheduler}` hash, in batches),
   * undefined where a node has none or it cannot be decoded.
   */
  async recordStatuses(ids: readonly string[]): Promise<Map<string, NodeRecord['status']>> {
    return this.run(async () => {
      const out = new Map<string, NodeRecord['status']>();
      const batches: string[][] = [];
      for (let i = 0; i < ids.length; i += STATE_BATCH) batches.push(ids.slice(i, i + STATE_BATCH));
      const replies = await Promise.all(
        batches.map((batch) => this.redis.hmget(this.keys.executionNodes(), ...batch)),
      );
      batches.forEach((batch, b) =>
        batch.forEach((id, j) => {
          const raw = replies[b]?.[j];
          if (raw === null || raw === undefined) return;
          const decoded = this.decoder.decode(
            'nodeRecord',
            `${this.keys.executionNodes()}[${id}]`,
            raw,
          );
          if (decoded.ok) out.set(id, decoded.value.status);
        }),
      );
      return out;
    });
  }

  /**
   * Nodes as the API shows them: every known node, or with `only` just those of these ids that
   * are known (in the registry or the scheduler's records); ids that cannot be node ids are skipped.
   */
  async nodes(only?: readonly string[]): Promise<NodeView[]> {
    return this.run(async () => {
      const ids = only ?? (await readNodeIds(this.redis, this.keys));
      const snapshots = await readNodeSnapshots(this.redis, this.keys, ids, {
        decoder: this.decoder,
      });
      // Only ids the registry or the records know are nodes (a malformed record is still one).
      const known =
        only === undefined
          ? snapshots
          : snapshots.filter(
              (s) =>
                s.lastSeenMs !== null ||
                s.record !== null ||
                s.problems.some((p) => p.payload === 'nodeRecord'),
            );
      return known.map(nodeView);
    });
  }

  /**
   * Every portfolio of the catalog or the plan, with where the plan puts it: no state is read.
   * An assignment that cannot be decoded counts as none here; `portfolios` reports it.
   */
  async portfolioIndex(): Promise<{ portfolioId: string; nodeId: string | null }[]> {
    return this.run(async () => {
      const k = this.keys;
      const [catalog, assignmentsRaw] = await Promise.all([
        this.redis.hkeys(k.portfolioCatalog()),
        this.redis.hgetall(k.portfolioAssignments()),
      ]);
      const ids = [...new Set([...catalog, ...Object.keys(assignmentsRaw)])].sort();
      return ids.map((portfolioId) => {
        const raw = assignmentsRaw[portfolioId];
        const decoded =
          raw === undefined
            ? undefined
            : this.decoder.decode('assignment', `${k.portfolioAssignments()}[${portfolioId}]`, raw);
        return { portfolioId, nodeId: decoded?.ok === true ? decoded.value.node_id : null };
      });
    });
  }

  /**
   * The ids of every portfolio of the catalog or the plan, sorted: two replies of field names, no
   * value read. Remembered while the plan meta and both hashes' lengths stay as they were (the
   * scheduler's plan write changes the meta with them; an id that comes and goes changes a length
   * or the meta), and at most `PORTFOLIO_IDS_MAX_AGE_MS`, so a page of 25,000 portfolios does not
   * sort 25,000 ids on every request.
   */
  async portfolioIds(): Promise<string[]> {
    return this.run(async () => {
      const k = this.keys;
      const head = await this.redis
        .multi()
        .get(k.planMeta())
        .hlen(k.portfolioCatalog())
        .hlen(k.portfolioAssignments())
        .exec();
      const signature = JSON.stringify((head ?? []).map(([err, v]) => (err ? null : v)));
      const cached = this.portfolioIdCache;
      if (
        cached !== undefined &&
        cached.signature === signature &&
        Date.now() - cached.atMs < PORTFOLIO_IDS_MAX_AGE_MS
      )
        return cached.ids;
      const [catalog, planned] = await Promise.all([
        this.redis.hkeys(k.portfolioCatalog()),
        this.redis.hkeys(k.portfolioAssignments()),
      ]);
      const ids = [...new Set([...catalog, ...planned])].sort();
      this.portfolioIdCache = { signature, ids, atMs: Date.now() };
      return ids;
    });
  }

  /**
   * Portfolios as the API shows them, with their states: every one of the catalog or the plan, or
   * with `only` just those of these ids found in either. States are read in per-slot `MGET`s of at
   * most `STATE_BATCH` keys, so no single reply holds the whole fleet and none spans hash slots.
   */
  async portfolios(only?: readonly string[]): Promise<PortfolioView[]> {
    return this.run(async () => {
      const k = this.keys;
      let catalogRaw: Record<string, string | undefined>;
      let assignmentsRaw: Record<string, string | undefined>;
      let ids: string[];
      if (only === undefined) {
        [catalogRaw, assignmentsRaw] = await Promise.all([
          this.redis.hgetall(k.portfolioCatalog()),
          this.redis.hgetall(k.portfolioAssignments()),
        ]);
        ids = [...new Set([...Object.keys(catalogRaw), ...Object.keys(assignmentsRaw)])].sort();
      } else {
        const wanted = [...new Set(only.filter(isValidId))];
        if (wanted.length === 0) return [];
        const [specs, planned] = await Promise.all([
          this.redis.hmget(k.portfolioCatalog(), ...wanted),
          this.redis.hmget(k.portfolioAssignments(), ...wanted),
        ]);
        catalogRaw = Object.fromEntries(wanted.map((id, i) => [id, specs[i] ?? undefined]));
        assignmentsRaw = Object.fromEntries(wanted.map((id, i) => [id, planned[i] ?? undefined]));
        ids = wanted.filter(
          (id) => catalogRaw[id] !== undefined || assignmentsRaw[id] !== undefined,
        );
      }
      const batches: Promise<(string | null)[]>[] = [];
      for (let i = 0; i < ids.length; i += STATE_BATCH)
        batches.push(
          mgetBySlot(
            this.redis,
            ids.slice(i, i + STATE_BATCH).map((id) => k.portfolioState(id)),
          ),
        );
      const states = (await Promise.all(batches)).flat();
      return mapYielding(ids, (id, i) =>
        buildPortfolioView(k, this.decoder, id, catalogRaw[id], assignmentsRaw[id], states[i]),
      );
    });
  }

  /** The plan: per node, its portfolios; version and leader. */
  async plan(): Promise<{
    plans: { node_id: string; portfolio_ids: string[]; portfolio_count: number }[];
    total_nodes: number;
    total_portfolios: number;
    orphaned: { portfolio_id: string; reason: string | null }[];
    version: number | null;
    leader: string | null;
  }> {
    return this.run(async () => {
      const k = this.keys;
      const [assignmentsRaw, metaRaw, leader] = await Promise.all([
        this.redis.hgetall(k.portfolioAssignments()),
        this.redis.get(k.planMeta()),
        this.redis.get(k.schedulerLeader()),
      ]);
      const perNode = new Map<string, string[]>();
      const orphaned: { portfolio_id: string; reason: string | null }[] = [];
      for (const [id, raw] of Object.entries(assignmentsRaw)) {
        const decoded = this.decoder.decode(
          'assignment',
          `${k.portfolioAssignments()}[${id}]`,
          raw,
        );
        if (!decoded.ok) continue;
        if (decoded.value.node_id === null)
          orphaned.push({ portfolio_id: id, reason: decoded.value.reason });
        else
          perNode.set(
            decoded.value.node_id,
            [...(perNode.get(decoded.value.node_id) ?? []), id].sort(),
          );
      }
      const meta = metaRaw === null ? null : this.decoder.decode('planMeta', k.planMeta(), metaRaw);
      const plans = [...perNode]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([node_id, portfolio_ids]) => ({
          node_id,
          portfolio_ids,
          portfolio_count: portfolio_ids.length,
        }));
      return {
        plans,
        total_nodes: plans.length,
        total_portfolios: Object.keys(assignmentsRaw).length,
        orphaned,
        version: meta?.ok === true ? meta.value.version : null,
        leader,
      };
    });
  }

  /** The trading halt and the paused portfolios (`TradingControls.read`): one round trip. */
  async trading(): Promise<TradingReading> {
    return this.run(() => new TradingControls(this.redis, this.keys).read());
  }

  /** The notification history, newest first (at most 1000 read). */
  async notifications(): Promise<(NotificationRecord | { error: string; raw: string })[]> {
    return this.run(async () => {
      const raws = await this.redis.lrange(this.keys.notificationHistory(), 0, 999);
      return raws.map((raw) => {
        const decoded = this.decoder.decode(
          'notificationRecord',
          this.keys.notificationHistory(),
          raw,
        );
        return decoded.ok
          ? decoded.value
          : { error: decoded.error.problem, raw: decoded.error.raw };
      });
    });
  }
}
