import type { Redis } from 'ioredis';
import {
  countNodes,
  TradingControls,
  nodeStatus,
  readNodeIds,
  readNodeSnapshots,
  type NodeFleetStatus,
  type NodeSnapshot,
  type TradingReading,
} from '@ginkgo-live/fleet';
import {
  isValidId,
  PayloadDecoder,
  type NodeInfo,
  type NotificationRecord,
  type Payload,
  type PortfolioState,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { callRedis } from './redis-unavailable.ts';

/** One node as the API shows it; `error` set when one of its payloads is malformed. */
export interface NodeView {
  node_id: string;
  host: string | null;
  /** The fleet's one status (`@ginkgo-live/fleet`): online, draining or lost. */
  status: NodeFleetStatus;
  /** Its heartbeat is alive: status online or draining. */
  is_online: boolean;
  last_heartbeat: string | null;
  heartbeat_age_ms: number | null;
  portfolio_count: number;
  portfolio_ids: string[];
  capacity: number | null;
  queue_usage_max: number | null;
  events_per_second: number | null;
  uptime_seconds: number | null;
  cpu_percent: number | null;
  memory_rss_bytes: number | null;
  redis: NodeInfo['redis'] | null;
  error?: string;
}

/** One portfolio as the API shows it: its state (from its node) and its place in the plan. */
export interface PortfolioView {
  portfolio_id: string;
  name: string | null;
  symbols: string[];
  status: string;
  node_id: string | null;
  assignment: {
    status: 'assigned' | 'orphaned' | 'unplanned';
    node_id: string | null;
    reason: string | null;
  };
  state: Omit<PortfolioState, '_v'> | null;
  error?: string;
}

/** Portfolio states per MGET: a fleet's worth in one reply would hold Redis and the reader up. */
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

/** A node's snapshot as the API shows it: what a lost node last reported is not shown as current. */
function nodeView(snapshot: NodeSnapshot): NodeView {
  const { info, record, liveness } = snapshot;
  const status = nodeStatus(snapshot);
  const online = status !== 'lost';
  const view: NodeView = {
    node_id: snapshot.nodeId,
    host: info?.host ?? null,
    status,
    is_online: online,
    last_heartbeat: liveness.lastHeartbeatAt ?? info?.last_heartbeat ?? record?.last_seen ?? null,
    heartbeat_age_ms: liveness.heartbeatAgeMs,
    portfolio_count: online ? (info?.portfolio_count ?? 0) : 0,
    portfolio_ids: online ? (info?.portfolio_ids ?? []) : [],
    capacity: info?.capacity ?? record?.capacity ?? null,
    queue_usage_max: online ? (info?.queue_usage_max ?? null) : null,
    events_per_second: online ? (info?.events_per_second ?? null) : null,
    uptime_seconds: online ? (info?.uptime_seconds ?? null) : null,
    cpu_percent: online ? (info?.cpu_percent ?? null) : null,
    memory_rss_bytes: online ? (info?.memory_rss_bytes ?? null) : null,
    redis: info?.redis ?? null,
  };
  return snapshot.problems.length > 0
    ? { ...view, error: snapshot.problems.map((p) => `${p.key}: ${p.problem}`).join('; ') }
    : view;
}

/** Decoded payloads remembered per generation (two generations). */
const DECODER_ENTRIES = 150_000;

/**
 * Reads the fleet from Redis for the API, in pipelined batches (never KEYS, never one round trip
 * per key). A malformed entry is returned with an `error` and the rest of the answer; a Redis
 * failure throws `RedisUnavailableError`, never an empty answer.
 */
export class FleetReader {
  /**
   * Most payloads have not changed since the last read: each distinct value is decoded once. Sized
   * for a whole large fleet's payloads (5,000 nodes' info and records, 25,000 portfolios' specs,
   * assignments and states are 110,000): a cache smaller than one read forgets everything each time.
   */
  private readonly decoder = new PayloadDecoder(DECODER_ENTRIES);

  constructor(
    private readonly redis: Redis,
    private readonly keys: StateKeys,
  ) {}

  private run<T>(call: () => Promise<T>): Promise<T> {
    return callRedis(this.redis, call);
  }

  /** About how many nodes there are (the larger of the registry and the records): one round trip. */
  async nodeCount(): Promise<number> {
    return this.run(() => countNodes(this.redis, this.keys));
  }

  /**
   * Every known node (registry and scheduler records) with its liveness only: no info is read, so
   * this stays cheap however large the fleet (two round trips, two small replies per node).
   */
  async nodeIndex(): Promise<{ nodeId: string; online: boolean }[]> {
    return this.run(async () => {
      const ids = await readNodeIds(this.redis, this.keys);
      const snapshots = await readNodeSnapshots(this.redis, this.keys, ids, {
        info: false,
        record: false,
      });
      return snapshots.map((s) => ({ nodeId: s.nodeId, online: s.liveness.alive }));
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
   * Portfolios as the API shows them, with their states: every one of the catalog or the plan, or
   * with `only` just those of these ids found in either. States are read in batches of
   * `STATE_BATCH` keys, so no single reply holds the whole fleet.
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
      const pipeline = this.redis.pipeline();
      for (let i = 0; i < ids.length; i += STATE_BATCH)
        pipeline.mget(...ids.slice(i, i + STATE_BATCH).map((id) => k.portfolioState(id)));
      const batches = ids.length === 0 ? [] : ((await pipeline.exec()) ?? []);
      const states: (string | null)[] = [];
      for (const [err, batch] of batches) {
        if (err) throw err;
        states.push(...(batch as (string | null)[]));
      }
      return mapYielding(ids, (id, i) => {
        const problems: string[] = [];
        const decode = <N extends 'portfolioSpec' | 'assignment' | 'portfolioState'>(
          name: N,
          key: string,
          raw: string | null | undefined,
        ): Payload<N> | null => {
          if (raw === null || raw === undefined) return null;
          const decoded = this.decoder.decode(name, key, raw);
          if (decoded.ok) return decoded.value;
          problems.push(`${key}: ${decoded.error.problem}`);
          return null;
        };
        const spec = decode('portfolioSpec', `${k.portfolioCatalog()}[${id}]`, catalogRaw[id]);
        const assignment = decode(
          'assignment',
          `${k.portfolioAssignments()}[${id}]`,
          assignmentsRaw[id],
        );
        const state = decode('portfolioState', k.portfolioState(id), states[i]);
        const stateWithoutVersion = state === null ? null : (({ _v, ...rest }) => rest)(state);
        const view: PortfolioView = {
          portfolio_id: id,
          name: spec?.name ?? null,
          symbols: spec?.symbols ?? [],
          status: assignment?.status === 'orphaned' ? 'orphaned' : (state?.status ?? 'pending'),
          node_id: assignment?.node_id ?? null,
          assignment: {
            status: assignment?.status ?? 'unplanned',
            node_id: assignment?.node_id ?? null,
            reason: assignment?.reason ?? null,
          },
          state: stateWithoutVersion,
        };
        return problems.length > 0 ? { ...view, error: problems.join('; ') } : view;
      });
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
