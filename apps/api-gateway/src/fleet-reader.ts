import type { Redis } from 'ioredis';
import {
  assessLiveness,
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

/**
 * Reads the fleet from Redis for the API, in pipelined batches (never KEYS, never one round trip
 * per key). A malformed entry is returned with an `error` and the rest of the answer; a Redis
 * failure is a 503 `REDIS_UNAVAILABLE`, never an empty answer.
 */
export class FleetReader {
  /** Most payloads have not changed since the last read: each distinct value is decoded once. */
  private readonly decoder = new PayloadDecoder();

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

  /** Every known node (registry and scheduler records): two round trips. */
  async nodes(): Promise<NodeView[]> {
    return this.run(async () => {
      const k = this.keys;
      const [registry, records] = await Promise.all([
        this.redis.zrange(k.nodeRegistry(), 0, -1),
        this.redis.hgetall(k.executionNodes()),
      ]);
      const ids = [...new Set([...registry, ...Object.keys(records)])].sort();
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.get(k.heartbeat(id)).pttl(k.heartbeat(id)).get(k.nodeInfo(id));
      const replies = ids.length === 0 ? [] : ((await pipeline.exec()) ?? []);
      const now = Date.now();
      return ids.map((id, i) => {
        const [hb, pttl, infoRaw] = [0, 1, 2].map((j) => {
          const [err, value] = replies[3 * i + j] ?? [new Error('missing reply'), null];
          if (err) throw err;
          return value;
        }) as [string | null, number, string | null];
        const liveness = assessLiveness({ key: k.heartbeat(id), raw: hb, pttlMs: pttl }, now);
        const problems: string[] = [];
        let info: NodeInfo | null = null;
        if (infoRaw !== null) {
          const decoded = this.decoder.decode('nodeInfo', k.nodeInfo(id), infoRaw);
          if (decoded.ok) info = decoded.value;
          else problems.push(`${decoded.error.key}: ${decoded.error.problem}`);
        }
        let record: NodeRecord | null = null;
        const recordRaw = records[id];
        if (recordRaw !== undefined) {
          const decoded = this.decoder.decode(
            'nodeRecord',
            `${k.executionNodes()}[${id}]`,
            recordRaw,
          );
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
          last_heartbeat:
            liveness.lastHeartbeatAt ?? info?.last_heartbeat ?? record?.last_seen ?? null,
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
      });
    });
  }

  /** Every portfolio of the catalog or the plan, with its state: two round trips. */
  async portfolios(): Promise<PortfolioView[]> {
    return this.run(async () => {
      const k = this.keys;
      const [catalogRaw, assignmentsRaw] = await Promise.all([
        this.redis.hgetall(k.portfolioCatalog()),
        this.redis.hgetall(k.portfolioAssignments()),
      ]);
      const ids = [...new Set([...Object.keys(catalogRaw), ...Object.keys(assignmentsRaw)])].sort();
      const states =
        ids.length === 0 ? [] : await this.redis.mget(...ids.map((id) => k.portfolioState(id)));
      return ids.map((id, i) => {
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
        const decoded = this.decoder.decode('assignment', id, raw);
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
