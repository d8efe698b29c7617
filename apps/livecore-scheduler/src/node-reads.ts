import { Cluster } from 'ioredis';
import { byMaster, type RedisLike } from '@ginkgo-live/redis-client';
import {
  PAYLOAD_SCHEMAS,
  PAYLOAD_VERSION,
  type Liveness,
  type PayloadProblem,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import type { PlacementInfo } from './world.ts';

/**
 * The placement fields of a node info, validated by the info schema's own rules. The rest of the
 * info (counters, queue levels, memory) changes at every beat and is none of the planner's business:
 * the gateway reads and checks it whole.
 */
const placementSchema = PAYLOAD_SCHEMAS.nodeInfo.pick({ capacity: true, portfolio_ids: true });

/** One node as last read: its registry score then, and what its heartbeat and info said. */
interface Known {
  /** Registry score when it was read (null: no entry, read again at every tick). */
  score: number | null;
  liveness: Liveness;
  info: PlacementInfo | null;
  problem: PayloadProblem | null;
  /**
   * Reader's clock (ms) by which its heartbeat key may have expired: the read's send time plus the
   * PTTL it answered (the key was judged no earlier than that, so it expires no earlier). Infinity
   * when it was not alive: only a beat (a new score) or the periodic full read changes that.
   */
  expiresAtMs: number;
}

/** What one node read gives the tick. */
export interface NodeLive {
  liveness: Liveness;
  info: PlacementInfo | null;
  problem: PayloadProblem | null;
}

/** How the last `read` went, for tests and the debug log. */
export interface NodeReadStats {
  /** Nodes whose heartbeat and info were fetched. */
  read: number;
  /** Nodes handed out as remembered. */
  kept: number;
  /** Whether every node was fetched (first read, after `forget`, a rollback, or the periodic one). */
  full: boolean;
}

const ALIVE: Omit<Liveness, 'lastHeartbeatAt'> = {
  alive: true,
  reason: 'beating',
  heartbeatAgeMs: null,
  problem: null,
};

/**
 * The liveness rule (state-keys `assessLiveness`: alive exactly while the heartbeat key exists with
 * a TTL) from `PTTL` alone: -2 says the key does not exist, -1 that it has no TTL. The payload is
 * not fetched: the rule does not depend on it.
 */
function livenessOf(pttlMs: number): Liveness {
  if (pttlMs >= 0) return { ...ALIVE, lastHeartbeatAt: null };
  return {
    alive: false,
    reason: pttlMs === -1 ? 'heartbeat without TTL' : 'no heartbeat',
    lastHeartbeatAt: null,
    heartbeatAgeMs: null,
    problem: null,
  };
}

/**
 * The scheduler's incremental read of its nodes. The registry (`{scheduler}:execution_node_registry`,
 * read by the tick with its scores) carries each node's last beat: a node is fetched again (`PTTL`
 * of its heartbeat and `GET` of its info, per hash slot) only when
 * - it is new, or has no registry entry (a node that stopped removes its own);
 * - its score differs from the one it was read with (it beat, or the registry was rewritten);
 * - it was alive and its heartbeat may have expired since (its PTTL then has run out), so a
 *   silent node is seen lost at the first tick after its key expires, as with a full read;
 * and every node is fetched at the first read, after `forget` (a new leadership, a failed read),
 * when any score went back (Redis restarted from an older snapshot, or a failover to a replica that
 * had not seen the latest beats), and at least every `fullEveryMs`.
 */
export class NodeReader {
  private known = new Map<string, Known>();
  private fullAtMs = Number.NEGATIVE_INFINITY;
  /** Bumped by `forget`: a read that was under way then remembers nothing of what it fetched. */
  private generation = 0;
  private lastStats: NodeReadStats = { read: 0, kept: 0, full: true };

  constructor(
    private readonly redis: RedisLike,
    private readonly keys: StateKeys,
    private readonly fullEveryMs: number,
    /** A monotonic clock (ms): a wall clock stepped back must not keep an expired node alive. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Drops everything remembered: the next read fetches every node. */
  forget(): void {
    this.known = new Map();
    this.fullAtMs = Number.NEGATIVE_INFINITY;
    this.generation += 1;
  }

  get stats(): NodeReadStats {
    return this.lastStats;
  }

  /**
   * Liveness and placement info of each of `ids` (registry scores in `scores`), fetched or as
   * remembered. Rejects when Redis fails, remembering nothing then.
   */
  async read(
    ids: readonly string[],
    scores: ReadonlyMap<string, number>,
  ): Promise<Map<string, NodeLive>> {
    const started = this.now();
    const generation = this.generation;
    // What this read keeps comes from here, whatever `forget` does while it waits for Redis.
    const remembered = this.known;
    let full = started - this.fullAtMs >= this.fullEveryMs;
    if (!full) {
      for (const [id, known] of remembered) {
        const score = scores.get(id);
        if (known.score !== null && score !== undefined && score < known.score) {
          full = true;
          break;
        }
      }
    }
    const fetch: string[] = [];
    for (const id of ids) {
      const known = full ? undefined : remembered.get(id);
      if (
        known === undefined ||
        known.score === null ||
        known.score !== (scores.get(id) ?? null) ||
        started >= known.expiresAtMs
      )
        fetch.push(id);
    }
    let fetched: Map<string, Known>;
    try {
      fetched = await this.fetch(fetch, scores, started, remembered);
    } catch (err) {
      this.forget();
      throw err;
    }
    const next = new Map<string, Known>();
    const out = new Map<string, NodeLive>();
    for (const id of ids) {
      const known = fetched.get(id) ?? remembered.get(id);
      // A node left out of the world would lose its record at the next plan write.
      if (known === undefined) throw new Error(`Node read: no reading of node ${id}`);
      next.set(id, known);
      out.set(id, { liveness: known.liveness, info: known.info, problem: known.problem });
    }
    this.lastStats = { read: fetch.length, kept: ids.length - fetch.length, full };
    // Forgotten meanwhile (a reconnection): what was fetched may come from the server before it.
    if (generation !== this.generation) return out;
    this.known = next;
    if (full) this.fullAtMs = started;
    return out;
  }

  /** `PTTL` heartbeat and `GET` info of each node, one pipeline per master (cluster), sent together. */
  private async fetch(
    ids: readonly string[],
    scores: ReadonlyMap<string, number>,
    sentAtMs: number,
    remembered: ReadonlyMap<string, Known>,
  ): Promise<Map<string, Known>> {
    const k = this.keys;
    const out = new Map<string, Known>();
    const add = (id: string, pttlMs: number, infoRaw: string | null): void => {
      const before = remembered.get(id);
      // The raw payload is not kept: thousands of them a tick, kept until the next one, were old
      // garbage for the collector; an unchanged placement is told from the parsed payload.
      const decoded = this.decodeInfo(id, infoRaw, before?.info ?? null);
      out.set(id, {
        score: scores.get(id) ?? null,
        liveness: livenessOf(pttlMs),
        info: decoded.info,
        problem: decoded.problem,
        expiresAtMs: pttlMs >= 0 ? sentAtMs + pttlMs : Number.POSITIVE_INFINITY,
      });
    };
    if (ids.length === 0) return out;
    if (!(this.redis instanceof Cluster)) {
      // On one Redis the infos of thousands of nodes are one MGET (at 10,000 nodes the client's
      // work per command was most of the read). The PTTLs stay one command each: a script would
      // do them at once, but a script's keys need write access, and the scheduler's ACL user only
      // reads the nodes' keys. A cluster keeps its per-master pipelines (an MGET's keys must share
      // a slot).
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.pttl(k.heartbeat(id));
      pipeline.mget(ids.map((id) => k.nodeInfo(id)));
      const got = await pipeline.exec();
      if (got === null) throw new Error('Node read: the pipeline was aborted');
      for (const [err] of got) if (err !== null) throw err;
      const infos = got[ids.length]?.[1] as (string | null)[] | undefined;
      if (got.length !== ids.length + 1 || infos?.length !== ids.length)
        throw new Error('Node read: a reply is missing');
      for (const [i, id] of ids.entries()) add(id, Number(got[i]?.[1]), infos[i] ?? null);
      return out;
    }
    const groups = byMaster(this.redis, ids, (id) => k.heartbeat(id));
    const replies = await Promise.all(
      groups.map((group) => {
        const pipeline = this.redis.pipeline();
        for (const id of group) pipeline.pttl(k.heartbeat(id)).get(k.nodeInfo(id));
        return pipeline.exec();
      }),
    );
    for (const [g, group] of groups.entries()) {
      const got = replies[g];
      if (got === null || got === undefined) throw new Error('Node read: the pipeline was aborted');
      for (const [i, id] of group.entries()) {
        const ttl = got[2 * i];
        const info = got[2 * i + 1];
        if (ttl === undefined || info === undefined)
          throw new Error('Node read: a reply is missing');
        if (ttl[0] !== null) throw ttl[0];
        if (info[0] !== null) throw info[0];
        add(id, Number(ttl[1]), (info[1] as string | null) ?? null);
      }
    }
    return out;
  }

  /**
   * The placement fields of an info payload, checked as the codec checks the whole payload. A node's
   * info changes at every beat (its counters), its placement fields seldom: when they are those of
   * the info read before (`before`, which passed the same checks), that object is handed out again,
   * unchecked, so that the planner sees an unchanged node as the same.
   */
  private decodeInfo(
    nodeId: string,
    raw: string | null,
    before: PlacementInfo | null = null,
  ): { info: PlacementInfo | null; problem: PayloadProblem | null } {
    if (raw === null) return { info: null, problem: null };
    const key = this.keys.nodeInfo(nodeId);
    const fail = (problem: string): { info: null; problem: PayloadProblem } => ({
      info: null,
      problem: { key, payload: 'nodeInfo', problem, raw: raw.slice(0, 200) },
    });
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (err) {
      return fail(`not JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json))
      return fail('not a JSON object');
    const v = (json as { _v?: unknown })._v;
    if (v === undefined) return fail('missing version field _v');
    if (v !== PAYLOAD_VERSION)
      return fail(
        `unsupported version _v=${JSON.stringify(v)}; this reader knows _v=${PAYLOAD_VERSION}`,
      );
    if (before !== null && samePlacement(json as Record<string, unknown>, before))
      return { info: before, problem: null };
    const parsed = placementSchema.safeParse(json);
    if (!parsed.success)
      return fail(
        parsed.error.issues
          .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`)
          .join('; '),
      );
    return { info: parsed.data, problem: null };
  }
}

/** Whether a parsed info says exactly the capacity and portfolio ids of `info`. */
function samePlacement(json: Record<string, unknown>, info: PlacementInfo): boolean {
  const ids = json['portfolio_ids'];
  if (json['capacity'] !== info.capacity || !Array.isArray(ids)) return false;
  const known = info.portfolio_ids;
  if (ids.length !== known.length) return false;
  for (let i = 0; i < ids.length; i++) if (ids[i] !== known[i]) return false;
  return true;
}
