import { createHash } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import { byMaster, type RedisLike } from '@ginkgo-live/redis-client';
import {
  PAYLOAD_SCHEMAS,
  PAYLOAD_VERSION,
  placementDigest,
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
const placementSchema = PAYLOAD_SCHEMAS.nodeInfo.pick({
  capacity: true,
  portfolio_ids: true,
  placement: true,
});

/** How an info that carries placement digest `digest` begins, as the codec writes it. */
const INFO_HEAD = `{"_v":${PAYLOAD_VERSION},"placement":"`;
const infoPrefix = (digest: string): string => `${INFO_HEAD}${digest}",`;

/**
 * PTTL of each node's heartbeat and its info, in one read-only script on one Redis. An info that
 * begins with the placement digest the scheduler holds for that node (ARGV[1 + i]) comes back as 0,
 * not as its ~600 bytes: at every tick every node has beaten, and all but a few placements are the
 * ones the last tick read. An info without a digest, or with another, comes back whole.
 * KEYS[2i-1] heartbeat of node i   KEYS[2i] its info   ARGV[1] the head of an info before its digest
 * ARGV[1+i] the digest held for node i ('' for none)
 * Returns, per node: its PTTL, then its info, false (none) or 0 (its digest is the one held).
 * Run with EVALSHA_RO: its keys then need only read access, which is what the scheduler's ACL user
 * has on the nodes' keys (EVAL would need write access to every key it declares).
 */
const READ_NODES = `
local head = ARGV[1]
local out = {}
for i = 1, #KEYS / 2 do
  out[2 * i - 1] = redis.call('PTTL', KEYS[2 * i - 1])
  local info = redis.call('GET', KEYS[2 * i])
  local held = ARGV[i + 1]
  if info and held ~= '' then
    local prefix = head .. held .. '",'
    if string.sub(info, 1, #prefix) == prefix then info = 0 end
  end
  out[2 * i] = info
end
return out
`;
const READ_NODES_SHA = createHash('sha1').update(READ_NODES).digest('hex');
/** Nodes per script run: at 10,000 nodes one run would hold Redis for tens of milliseconds. */
const SCRIPT_CHUNK = 2_000;

/** One node as last read: its registry score then, and what its heartbeat and info said. */
interface Known {
  /** Registry score when it was read (null: no entry, read again at every tick). */
  score: number | null;
  liveness: Liveness;
  info: PlacementInfo | null;
  /** The placement digest `info` was checked against ('' when it had none or a wrong one). */
  digest: string;
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
  /** Infos fetched and decoded (the others fetched said their placement was the one held). */
  decoded: number;
  /** How they were fetched: the read-only script, the pipeline it falls back to, or a cluster's. */
  via: 'script' | 'pipeline' | 'cluster';
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
  private lastStats: NodeReadStats = { read: 0, kept: 0, full: true, decoded: 0, via: 'script' };
  /** Infos decoded by the read under way, and how it fetched. */
  private decodedCount = 0;
  private via: NodeReadStats['via'] = 'script';
  /** False once Redis refused the read-only script (no EVALSHA_RO before 7.0, an older ACL). */
  private scripted = true;
  /**
   * Each node's last placement whose digest matched its fields. Kept through `forget`: a digest
   * stands for its capacity and portfolio ids whatever server or time it was read from, so the read
   * after a failed one or a new leadership still skips every unchanged info (where decoding all of
   * them again, at 10,000 nodes on a loaded machine, outlasted the command timeout and failed in
   * turn). Pruned of nodes gone at each full read.
   */
  private placements = new Map<string, { digest: string; info: PlacementInfo }>();

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
    this.decodedCount = 0;
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
    if (full) {
      const present = new Set(ids);
      for (const id of this.placements.keys()) if (!present.has(id)) this.placements.delete(id);
    }
    this.lastStats = {
      read: fetch.length,
      kept: ids.length - fetch.length,
      full,
      decoded: this.decodedCount,
      via: this.via,
    };
    // Forgotten meanwhile (a reconnection): what was fetched may come from the server before it.
    if (generation !== this.generation) return out;
    this.known = next;
    if (full) this.fullAtMs = started;
    return out;
  }

  /**
   * `PTTL` heartbeat and `GET` info of each node: on one Redis by `READ_NODES` (an info whose digest
   * is the one held is not sent), on a cluster one pipeline per master, sent together.
   */
  private async fetch(
    ids: readonly string[],
    scores: ReadonlyMap<string, number>,
    sentAtMs: number,
    remembered: ReadonlyMap<string, Known>,
  ): Promise<Map<string, Known>> {
    const k = this.keys;
    const out = new Map<string, Known>();
    /** `infoRaw` 0: the script found the digest held, the info is the one read before. */
    const add = (id: string, pttlMs: number, infoRaw: string | null | 0): void => {
      const before = remembered.get(id);
      // The raw payload is not kept: thousands of them a tick, kept until the next one, were old
      // garbage for the collector; an unchanged placement is told from its digest or its fields.
      const held = this.placements.get(id);
      if (infoRaw === 0 && held === undefined)
        throw new Error(`Node read: node ${id} said unchanged, but none was held`);
      const decoded =
        infoRaw === 0 && held !== undefined
          ? { ...held, problem: null }
          : this.decodeInfo(id, infoRaw === 0 ? null : infoRaw, before?.info ?? null);
      out.set(id, {
        score: scores.get(id) ?? null,
        liveness: livenessOf(pttlMs),
        info: decoded.info,
        digest: decoded.digest,
        problem: decoded.problem,
        expiresAtMs: pttlMs >= 0 ? sentAtMs + pttlMs : Number.POSITIVE_INFINITY,
      });
    };
    this.via = this.redis instanceof Cluster ? 'cluster' : this.scripted ? 'script' : 'pipeline';
    if (ids.length === 0) return out;
    if (!(this.redis instanceof Cluster) && this.scripted) {
      const replies = await this.runReadNodes(this.redis, ids);
      if (replies !== undefined) {
        if (replies.length !== 2 * ids.length) throw new Error('Node read: a reply is missing');
        for (const [i, id] of ids.entries()) {
          const info = replies[2 * i + 1];
          add(id, Number(replies[2 * i]), info === 0 || typeof info === 'string' ? info : null);
        }
        return out;
      }
    }
    if (!(this.redis instanceof Cluster)) {
      this.via = 'pipeline';
      // Redis refused the read-only script: the infos of thousands of nodes are one MGET (at
      // 10,000 nodes the client's work per command was most of the read), a PTTL per node. A
      // cluster keeps its per-master pipelines (an MGET's or a script's keys must share a slot).
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
   * `READ_NODES` over `ids`, sending the digest held for each; undefined when Redis refuses the
   * read-only script (a Redis before 7.0, an ACL without it): then the pipeline reads, from now on.
   */
  private async runReadNodes(redis: Redis, ids: readonly string[]): Promise<unknown[] | undefined> {
    const k = this.keys;
    const chunks: Promise<unknown[]>[] = [];
    // Sent together, in parts: Redis serves other clients between two of them.
    for (let from = 0; from < ids.length; from += SCRIPT_CHUNK) {
      const part = ids.slice(from, from + SCRIPT_CHUNK);
      // One array, not spread into a call: tens of thousands of arguments would overflow it.
      const rest: (string | number)[] = [2 * part.length];
      for (const id of part) rest.push(k.heartbeat(id), k.nodeInfo(id));
      rest.push(INFO_HEAD);
      for (const id of part) rest.push(this.placements.get(id)?.digest ?? '');
      chunks.push(
        (async () => {
          try {
            return (await redis.call('evalsha_ro', [READ_NODES_SHA, ...rest])) as unknown[];
          } catch (err) {
            if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
            return (await redis.call('eval_ro', [READ_NODES, ...rest])) as unknown[];
          }
        })(),
      );
    }
    try {
      return (await Promise.all(chunks)).flat();
    } catch (err) {
      if (err instanceof Error && /^(NOPERM|ERR unknown command)/.test(err.message)) {
        this.scripted = false;
        return undefined;
      }
      throw err;
    }
  }

  /**
   * The placement fields of an info payload, checked as the codec checks the whole payload. A node's
   * info changes at every beat (its counters), its placement fields seldom: when they are those of
   * the info read before (`before`, which passed the same checks), that object is handed out again,
   * unchecked, so that the planner sees an unchanged node as the same. An info that begins with the
   * digest `before` was checked against is not even parsed; a digest is trusted only once the
   * fields it came with matched it.
   */
  private decodeInfo(
    nodeId: string,
    raw: string | null,
    before: PlacementInfo | null,
  ): { info: PlacementInfo | null; digest: string; problem: PayloadProblem | null } {
    if (raw === null) return { info: null, digest: '', problem: null };
    const kept = this.placements.get(nodeId);
    if (kept !== undefined && raw.startsWith(infoPrefix(kept.digest)))
      return { info: kept.info, digest: kept.digest, problem: null };
    const held = before ?? kept?.info ?? null;
    this.decodedCount += 1;
    const key = this.keys.nodeInfo(nodeId);
    const fail = (problem: string): { info: null; digest: ''; problem: PayloadProblem } => ({
      info: null,
      digest: '',
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
    const fields = json as Record<string, unknown>;
    const ids = fields['portfolio_ids'];
    // A node without a digest (from before it): its unchanged fields need no schema check.
    if (
      held !== null &&
      fields['placement'] === undefined &&
      Array.isArray(ids) &&
      samePlacement(fields['capacity'], ids, held)
    )
      return { info: held, digest: '', problem: null };
    const parsed = placementSchema.safeParse(json);
    if (!parsed.success)
      return fail(
        parsed.error.issues
          .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`)
          .join('; '),
      );
    const { capacity, portfolio_ids, placement } = parsed.data;
    const digest =
      placement !== undefined && placement === placementDigest(capacity, portfolio_ids)
        ? placement
        : '';
    const info =
      held !== null && samePlacement(capacity, portfolio_ids, held)
        ? held
        : { capacity, portfolio_ids };
    if (digest === '') this.placements.delete(nodeId);
    else this.placements.set(nodeId, { digest, info });
    return { info, digest, problem: null };
  }
}

/** Whether `capacity` and `ids` are exactly the capacity and portfolio ids of `info`. */
function samePlacement(capacity: unknown, ids: readonly unknown[], info: PlacementInfo): boolean {
  if (capacity !== info.capacity) return false;
  const known = info.portfolio_ids;
  if (ids.length !== known.length) return false;
  for (let i = 0; i < ids.length; i++) if (ids[i] !== known[i]) return false;
  return true;
}
