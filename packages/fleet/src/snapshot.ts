import { Cluster, type ChainableCommander } from 'ioredis';
import { byMaster, type RedisLike } from '@ginkgo-live/redis-client';
import {
  assessLiveness,
  isValidId,
  PayloadDecoder,
  type HeartbeatReading,
  type Liveness,
  type NodeInfo,
  type NodeRecord,
  type PayloadProblem,
  type StateKeys,
} from '@ginkgo-live/state-keys';

/** One node as read from Redis at one instant, decoded. */
export interface NodeSnapshot {
  nodeId: string;
  /** `GET` and `PTTL` of its heartbeat key, as read. */
  heartbeat: HeartbeatReading;
  /** The liveness rule applied to `heartbeat`. */
  liveness: Liveness;
  /** Its `execution_node:{id}:info`, null when absent, malformed or not read. */
  info: NodeInfo | null;
  /** The scheduler's record of it (`execution_nodes[id]`), null when absent, malformed or not read. */
  record: NodeRecord | null;
  /** Its registry score (epoch ms of the last beat the node registered), null when absent or not read. */
  lastSeenMs: number | null;
  /** Malformed payloads among heartbeat, info and record: reported beside the rest, never thrown. */
  problems: PayloadProblem[];
}

export interface ReadNodeSnapshotsOptions {
  /** Read the node info (default true). */
  info?: boolean;
  /** Read the scheduler's record and the registry score (default true). */
  record?: boolean;
  /** A long-lived decoder, so unchanged payloads are decoded once (default: a fresh one). */
  decoder?: PayloadDecoder;
  /** The clock for heartbeat ages (default `Date.now()` after the read). */
  nowMs?: number;
}

/** Ids per HMGET / ZMSCORE: a whole fleet's records in one reply would hold Redis and the reader up. */
const FIELD_BATCH = 500;
/** Snapshots decoded between two yields to the event loop. */
const YIELD_EVERY = 1_000;

type Reply = [Error | null, unknown];

/**
 * Reads these nodes' snapshots: per node `GET` + `PTTL` of the heartbeat and `GET` of the info, and
 * the scheduler's records and registry scores in `HMGET` / `ZMSCORE` batches of 500 ids — all in ONE
 * pipeline (one round trip) on one Redis; on a Redis Cluster, one pipeline per master. Ids that
 * cannot be node ids are skipped; duplicates are read once; the order of `ids` is kept. A reply
 * error rejects the whole read (the caller reports Redis unavailable rather than half a fleet); a
 * malformed payload is a `problem` of its node. Yields to the event loop every 1,000 nodes while
 * decoding, so a large fleet does not starve other requests.
 */
export async function readNodeSnapshots(
  redis: RedisLike,
  keys: StateKeys,
  ids: readonly string[],
  options: ReadNodeSnapshotsOptions = {},
): Promise<NodeSnapshot[]> {
  const wanted = [...new Set(ids.filter(isValidId))];
  if (wanted.length === 0) return [];
  const withInfo = options.info ?? true;
  const withRecord = options.record ?? true;
  const decoder = options.decoder ?? new PayloadDecoder();
  const perNode = withInfo ? 3 : 2;

  const index = new Map(wanted.map((id, i) => [id, i]));
  const nodeGroups = byMaster(redis, wanted, (id) => keys.heartbeat(id));
  const pipelines: { pipeline: ChainableCommander; nodes: string[]; scheduler: boolean }[] =
    nodeGroups.map((group) => {
      const pipeline = redis.pipeline();
      for (const id of group) {
        pipeline.get(keys.heartbeat(id)).pttl(keys.heartbeat(id));
        if (withInfo) pipeline.get(keys.nodeInfo(id));
      }
      return { pipeline, nodes: group, scheduler: false };
    });
  if (withRecord) {
    // The scheduler's keys share the `{scheduler}` slot: on one Redis they ride in the same pipeline.
    const target = redis instanceof Cluster ? undefined : pipelines[0];
    const pipeline = target?.pipeline ?? redis.pipeline();
    for (let i = 0; i < wanted.length; i += FIELD_BATCH) {
      const batch = wanted.slice(i, i + FIELD_BATCH);
      pipeline.hmget(keys.executionNodes(), ...batch).zmscore(keys.nodeRegistry(), ...batch);
    }
    if (target !== undefined) target.scheduler = true;
    else pipelines.push({ pipeline, nodes: [], scheduler: true });
  }

  const replies = await Promise.all(pipelines.map(({ pipeline }) => pipeline.exec()));
  const heartbeats: (string | null)[] = new Array<string | null>(wanted.length).fill(null);
  const ttls: number[] = new Array<number>(wanted.length).fill(-2);
  const infos: (string | null)[] = new Array<string | null>(wanted.length).fill(null);
  const records: (string | null)[] = new Array<string | null>(wanted.length).fill(null);
  const scores: (string | null)[] = new Array<string | null>(wanted.length).fill(null);
  for (const [p, { nodes, scheduler }] of pipelines.entries()) {
    const got = replies[p];
    if (got === null || got === undefined) throw new Error('Fleet read: the pipeline was aborted');
    const value = (j: number): unknown => {
      const reply: Reply | undefined = got[j];
      if (reply === undefined) throw new Error('Fleet read: a reply is missing');
      if (reply[0] !== null) throw reply[0];
      return reply[1];
    };
    for (const [n, id] of nodes.entries()) {
      const i = index.get(id) ?? -1;
      heartbeats[i] = value(n * perNode) as string | null;
      ttls[i] = value(n * perNode + 1) as number;
      if (withInfo) infos[i] = value(n * perNode + 2) as string | null;
    }
    if (!scheduler) continue;
    let j = nodes.length * perNode;
    for (let i = 0; i < wanted.length; i += FIELD_BATCH, j += 2) {
      const recorded = value(j) as (string | null)[];
      const scored = value(j + 1) as (string | null)[];
      for (let b = 0; b < recorded.length; b++) {
        records[i + b] = recorded[b] ?? null;
        scores[i + b] = scored[b] ?? null;
      }
    }
  }

  const now = options.nowMs ?? Date.now();
  const out: NodeSnapshot[] = [];
  for (const [i, nodeId] of wanted.entries()) {
    if (i > 0 && i % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
    out.push(
      decodeNodeSnapshot(
        keys,
        {
          nodeId,
          heartbeat: heartbeats[i] ?? null,
          pttlMs: ttls[i] ?? -2,
          info: infos[i] ?? null,
          record: records[i] ?? null,
          lastSeen: scores[i] ?? null,
        },
        now,
        decoder,
      ),
    );
  }
  return out;
}

/** What Redis answered for one node, undecoded (null: the key or field does not exist). */
export interface RawNodeReplies {
  nodeId: string;
  /** `GET heartbeat`. */
  heartbeat: string | null;
  /** `PTTL heartbeat`: ms left, -2 without the key, -1 without a TTL. */
  pttlMs: number;
  /** `GET info`. */
  info: string | null;
  /** `HGET execution_nodes id`. */
  record: string | null;
  /** `ZSCORE registry id`, as Redis answers it. */
  lastSeen: string | null;
}

/**
 * A snapshot from one node's raw replies: the liveness rule, then the payloads decoded with the
 * codec. Pure (given `nowMs`); what `readNodeSnapshots` does with each node it read.
 */
export function decodeNodeSnapshot(
  keys: StateKeys,
  raw: RawNodeReplies,
  now: number,
  decoder: PayloadDecoder = new PayloadDecoder(),
): NodeSnapshot {
  const { nodeId } = raw;
  const problems: PayloadProblem[] = [];
  const heartbeat: HeartbeatReading = {
    key: keys.heartbeat(nodeId),
    raw: raw.heartbeat,
    pttlMs: raw.pttlMs,
  };
  const liveness = assessLiveness(heartbeat, now);
  if (liveness.problem !== null && raw.heartbeat !== null) {
    problems.push({
      key: heartbeat.key,
      payload: 'heartbeat',
      problem: liveness.problem,
      raw: raw.heartbeat.slice(0, 200),
    });
  }
  let info: NodeInfo | null = null;
  if (raw.info !== null) {
    const decoded = decoder.decode('nodeInfo', keys.nodeInfo(nodeId), raw.info);
    if (decoded.ok) info = decoded.value;
    else problems.push(decoded.error);
  }
  let record: NodeRecord | null = null;
  if (raw.record !== null) {
    const decoded = decoder.decode('nodeRecord', `${keys.executionNodes()}[${nodeId}]`, raw.record);
    if (decoded.ok) record = decoded.value;
    else problems.push(decoded.error);
  }
  const score = raw.lastSeen === null ? Number.NaN : Number(raw.lastSeen);
  return {
    nodeId,
    heartbeat,
    liveness,
    info,
    record,
    lastSeenMs: Number.isFinite(score) ? score : null,
    problems,
  };
}

/**
 * Every node the fleet knows of — in the registry (it beat once) or in the scheduler's records —
 * sorted; two small replies of the `{scheduler}` slot.
 */
export async function readNodeIds(redis: RedisLike, keys: StateKeys): Promise<string[]> {
  const [registry, recorded] = await Promise.all([
    redis.zrange(keys.nodeRegistry(), 0, -1),
    redis.hkeys(keys.executionNodes()),
  ]);
  return [...new Set([...registry, ...recorded])].sort();
}

/** About how many nodes there are (the larger of registry and records), in one small reply each. */
export async function countNodes(redis: RedisLike, keys: StateKeys): Promise<number> {
  const [registered, recorded] = await Promise.all([
    redis.zcard(keys.nodeRegistry()),
    redis.hlen(keys.executionNodes()),
  ]);
  return Math.max(registered, recorded);
}
