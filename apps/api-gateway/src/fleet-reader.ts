import type { Redis } from 'ioredis';
import {
  assessLiveness,
  isValidId,
  PayloadDecoder,
  type NodeInfo,
  type NodeRecord,
  type NotificationRecord,
  type Payload,
  type PortfolioState,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { AppError } from './http/errors.ts';

/** One node as the API shows it; `error` set when one of its payloads is malformed. */
export interface NodeView {
  node_id: string;
  host: string | null;
  status: string;
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

/** Decoded payloads remembered per generation (two generations). */
const DECODER_ENTRIES = 150_000;

/**
 * Reads the fleet from Redis for the API, in pipelined batches (never KEYS, never one round trip
 * per key). A malformed entry is returned with an `error` and the rest of the answer; a Redis
 * failure is a 503 `REDIS_UNAVAILABLE`, never an empty answer.
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

  private async run<T>(call: () => Promise<T>): Promise<T> {
    if (this.redis.status !== 'ready') {
      throw new AppError('REDIS_UNAVAILABLE', 'Redis is unavailable', {
        connection: this.redis.status,
      });
    }
    try {
      return await call();
    } catch (err) {
      throw new AppError(
        'REDIS_UNAVAILABLE',
        'Redis is unavailable',
        { reason: (err as Error).message },
        { cause: err },
      );
    }
  }

  /** About how many nodes there are (the larger of the registry and the records): one round trip. */
  async nodeCount(): Promise<number> {
    return this.run(async () => {
      const [registered, recorded] = await Promise.all([
        this.redis.zcard(this.keys.nodeRegistry()),
        this.redis.hlen(this.keys.executionNodes()),
      ]);
      return Math.max(registered, recorded);
    });
  }

  /**
   * Every known node (registry and scheduler records) with its liveness only: no info is read, so
   * this stays cheap however large the fleet (two round trips, two small replies per node).
   */
  async nodeIndex(): Promise<{ nodeId: string; online: boolean }[]> {
    return this.run(async () => {
      const k = this.keys;
      const [registry, recorded] = await Promise.all([
        this.redis.zrange(k.nodeRegistry(), 0, -1),
        this.redis.hkeys(k.executionNodes()),
      ]);
      const ids = [...new Set([...registry, ...recorded])].sort();
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.get(k.heartbeat(id)).pttl(k.heartbeat(id));
      const replies = ids.length === 0 ? [] : ((await pipeline.exec()) ?? []);
      const now = Date.now();
      return ids.map((nodeId, i) => {
        const [[e1, hb], [e2, pttl]] = [replies[2 * i], replies[2 * i + 1]].map(
          (r) => r ?? [new Error('missing reply'), null],
        ) as [[Error | null, string | null], [Error | null, number]];
        const err = e1 ?? e2;
        if (err) throw err;
        const liveness = assessLiveness({ key: k.heartbeat(nodeId), raw: hb, pttlMs: pttl }, now);
        return { nodeId, online: liveness.alive };
      });
    });
  }

  /**
   * Nodes as the API shows them: every known node, or with `only` just those of these ids that
   * are known (in the registry or the scheduler's records); ids that cannot be node ids are skipped.
   */
  async nodes(only?: readonly string[]): Promise<NodeView[]> {
    return this.run(async () => {
      const k = this.keys;
      // Per id: [registry score (only with `only`)], heartbeat, its TTL, info — one pipeline.
      let ids: string[];
      let records: Record<string, string | undefined>;
      const pipeline = this.redis.pipeline();
      if (only === undefined) {
        const [registry, all] = await Promise.all([
          this.redis.zrange(k.nodeRegistry(), 0, -1),
          this.redis.hgetall(k.executionNodes()),
        ]);
        ids = [...new Set([...registry, ...Object.keys(all)])].sort();
        records = all;
      } else {
        ids = [...new Set(only.filter(isValidId))];
        records = {};
        pipeline.hmget(k.executionNodes(), ...ids);
        for (const id of ids) pipeline.zscore(k.nodeRegistry(), id);
      }
      if (ids.length === 0) return [];
      for (const id of ids) pipeline.get(k.heartbeat(id)).pttl(k.heartbeat(id)).get(k.nodeInfo(id));
      const replies = (await pipeline.exec()) ?? [];
      for (const [err] of replies) if (err) throw err;
      let perNode = replies.map(([, value]) => value);
      if (only !== undefined) {
        const recorded = (perNode[0] ?? []) as (string | null)[];
        records = Object.fromEntries(ids.map((id, i) => [id, recorded[i] ?? undefined]));
        const scores = perNode.slice(1, 1 + ids.length);
        perNode = perNode.slice(1 + ids.length);
        // Only ids the registry or the records know are nodes.
        const known = ids.map((id, i) => scores[i] !== null || records[id] !== undefined);
        perNode = perNode.filter((_, j) => known[Math.floor(j / 3)] === true);
        ids = ids.filter((_, i) => known[i]);
      }
      const now = Date.now();
      return mapYielding(ids, (id, i) => {
        const [hb, pttl, infoRaw] = perNode.slice(3 * i, 3 * i + 3) as [
          string | null,
          number,
          string | null,
        ];
        return this.nodeView(id, hb, pttl, infoRaw, records[id], now);
      });
    });
  }

  private nodeView(
    id: string,
    hb: string | null,
    pttl: number,
    infoRaw: string | null,
    recordRaw: string | undefined,
    now: number,
  ): NodeView {
    const k = this.keys;
    const liveness = assessLiveness({ key: k.heartbeat(id), raw: hb, pttlMs: pttl }, now);
    const problems: string[] = [];
    let info: NodeInfo | null = null;
    if (infoRaw !== null) {
      const decoded = this.decoder.decode('nodeInfo', k.nodeInfo(id), infoRaw);
      if (decoded.ok) info = decoded.value;
      else problems.push(`${decoded.error.key}: ${decoded.error.problem}`);
    }
    let record: NodeRecord | null = null;
    if (recordRaw !== undefined) {
      const decoded = this.decoder.decode('nodeRecord', `${k.executionNodes()}[${id}]`, recordRaw);
      if (decoded.ok) record = decoded.value;
      else problems.push(`${decoded.error.key}: ${decoded.error.problem}`);
    }
    if (liveness.problem !== null) problems.push(`${k.heartbeat(id)}: ${liveness.problem}`);
    const online = liveness.alive;
    const view: NodeView = {
      node_id: id,
      host: info?.host ?? null,
      status: online
        ? record?.status === 'draining'
          ? 'draining'
          : (info?.status ?? 'running')
        : 'lost',
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
    return problems.length > 0 ? { ...view, error: problems.join('; ') } : view;
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
