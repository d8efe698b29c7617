import type { ChainableCommander } from 'ioredis';
import {
  AUDIT_MAX_ENTRIES,
  decodeTrading,
  encodeAuditEntry,
  haltRecordState,
} from '@ginkgo-live/fleet';
import { LuaScript, type RedisLike } from '@ginkgo-live/redis-client';
import {
  decodePayload,
  encodePayload,
  isValidId,
  type Assignment,
  type ControlRequest,
  type NodeRecord,
  type PayloadProblem,
  type PlanMeta,
  type PortfolioSpec,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import {
  PlanWriteRefused,
  type NodeReading,
  type PlanWrite,
  type SchedulerStore,
  type World,
} from './world.ts';
import { NodeReader, type NodeReadStats } from './node-reads.ts';

export { PlanWriteRefused, type PlanWrite, type SchedulerStore, type World } from './world.ts';

/**
 * The plan write: everything or nothing, and only by the current leader on the version it read.
 * Catalog changes, control results and the requests they answer, and forgotten nodes go in the
 * same script, so a paused former leader can replay none of them. Every key carries the
 * `{scheduler}` hash tag: one slot on a Redis Cluster.
 * KEYS[1] leader   KEYS[2] plan_meta   KEYS[3] execution_nodes   KEYS[4] portfolio_assignments
 * KEYS[5] control   KEYS[6] control_results   KEYS[7] portfolio_catalog   KEYS[8] node registry
 * KEYS[9] audit stream
 * KEYS[9+j] execution_node:<id>:assignment of the j-th forgotten node (p of them), then
 * KEYS[9+p+i] execution_node:<id>:assignment for the i-th node assignment written
 * ARGV[1] scheduler id   ARGV[2] expected plan version   ARGV[3] new plan meta payload
 * ARGV[4] p forgotten nodes, then p (node id, registry score read or -1 for none) pairs
 * then 1 to replace the records and plan hashes whole, 0 to set only the entries given
 * then n node records, then n (node id, payload) pairs
 * then m assignments, then m (portfolio id, payload) pairs
 * then d portfolio ids to remove from the plan, d ids
 * then k node assignment payloads (for the KEYS after the forgotten nodes')
 * then r control results to record, r (id, payload) pairs, then the number of requests consumed
 * then s catalog entries to set, s (portfolio id, payload) pairs, then q ids to remove, q ids
 * then the audit cap (XADD MAXLEN ~), then a audit entries (one per request consumed), a entries
 * then k push channels, one per node assignment written, in the same order (nodeOrdersChannel):
 * each gets the new plan version by SPUBLISH, last, so the message goes out only with a write that
 * happened (a scheduler killed mid-write sends nothing, Redis runs a script whole or not at all);
 * a refused SPUBLISH is ignored, the write stands (the message is a hint, the nodes read anyway).
 * A channel is no key (declared among KEYS it would need the ACL's key rights); it carries the
 * `{scheduler}` tag so that on a cluster it is the script's own shard's (Redis refuses another's).
 * Errors (nothing written): NOT_LEADER (another scheduler holds the lock), STALE_VERSION (the plan
 * moved on), NODE_BACK (a node to forget beat again since it was read), WRONGTYPE (the audit key
 * is not a stream: a Redis fault, not a refusal).
 */
const WRITE_PLAN = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('NOT_LEADER') end
-- The audit entries are appended after the plan's other writes, and Redis does not undo a script
-- that fails half way: a stream of the wrong type (or none allowed) must stop it before any write.
local auditType = redis.call('TYPE', KEYS[9]).ok
if auditType ~= 'stream' and auditType ~= 'none' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[9] .. ' is a ' .. auditType .. ', not a stream')
end
local current = 0
local meta = redis.call('GET', KEYS[2])
if meta then current = tonumber(cjson.decode(meta)['version']) end
if current ~= tonumber(ARGV[2]) then return redis.error_reply('STALE_VERSION ' .. current) end
local p = tonumber(ARGV[4])
for j = 1, p do
  local score = redis.call('ZSCORE', KEYS[8], ARGV[3 + 2 * j])
  local read = tonumber(ARGV[4 + 2 * j])
  if score and (read < 0 or tonumber(score) > read) then
    return redis.error_reply('NODE_BACK ' .. ARGV[3 + 2 * j])
  end
end
local i = 5 + 2 * p
-- A plan that changed in a few places is written as those places: the whole plan is tens of
-- thousands of entries at 10,000 nodes.
local replace = ARGV[i] == '1'; i = i + 1
local function pairsAt(key)
  local n = tonumber(ARGV[i]); i = i + 1
  if replace then redis.call('DEL', key) end
  for j = 1, n do
    redis.call('HSET', key, ARGV[i], ARGV[i + 1]); i = i + 2
  end
end
pairsAt(KEYS[3])
pairsAt(KEYS[4])
local d = tonumber(ARGV[i]); i = i + 1
for j = 1, d do
  redis.call('HDEL', KEYS[4], ARGV[i]); i = i + 1
end
local k = tonumber(ARGV[i]); i = i + 1
for j = 1, k do
  redis.call('SET', KEYS[9 + p + j], ARGV[i]); i = i + 1
end
local r = tonumber(ARGV[i]); i = i + 1
for j = 1, r do
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1]); i = i + 2
end
if r > 0 then redis.call('EXPIRE', KEYS[6], 86400) end
local consumed = tonumber(ARGV[i]); i = i + 1
if consumed > 0 then redis.call('LTRIM', KEYS[5], consumed, -1) end
local s = tonumber(ARGV[i]); i = i + 1
for j = 1, s do
  redis.call('HSET', KEYS[7], ARGV[i], ARGV[i + 1]); i = i + 2
end
local q = tonumber(ARGV[i]); i = i + 1
for j = 1, q do
  redis.call('HDEL', KEYS[7], ARGV[i]); i = i + 1
end
local cap = ARGV[i]; i = i + 1
local a = tonumber(ARGV[i]); i = i + 1
for j = 1, a do
  redis.call('XADD', KEYS[9], 'MAXLEN', '~', cap, '*', 'entry', ARGV[i]); i = i + 1
end
for j = 1, p do
  redis.call('ZREM', KEYS[8], ARGV[3 + 2 * j])
  redis.call('HDEL', KEYS[3], ARGV[3 + 2 * j])
  redis.call('DEL', KEYS[9 + j])
end
redis.call('SET', KEYS[2], ARGV[3])
-- pcall: a push Redis refuses (an ACL from before the channels, a Redis without SPUBLISH) must not
-- fail the plan write; the nodes find the change at their safety read.
for j = 1, k do
  redis.pcall('SPUBLISH', ARGV[i], current + 1); i = i + 1
end
return current + 1
`);

/**
 * Takes or keeps the leader lock.
 * KEYS[1] scheduler:leader   ARGV[1] scheduler id   ARGV[2] TTL (ms)
 * Returns 1 when this scheduler leads (renewed or newly taken), 0 when another one does.
 */
const LEAD = new LuaScript(`
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
`);

/** Releases the leader lock if this scheduler holds it. KEYS[1] lock, ARGV[1] scheduler id. */
const RESIGN = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

const MAX_REQUESTS_PER_TICK = 100;
/** Records, plan and catalog are read in full at least this often, even when nothing says so. */
const FULL_READ_EVERY_MS = 60_000;

/** Node records, plan, catalog and meta as last read or written, decoded. */
interface PlanSnapshot {
  metaRaw: string | null;
  meta: PlanMeta | null;
  records: Map<string, NodeRecord>;
  assignments: Map<string, Assignment>;
  catalog: Map<string, PortfolioSpec>;
  readAtMs: number;
  /** `World.planToken`: new at each read from Redis, kept through this store's own writes. */
  token: object;
}

/**
 * The scheduler's Redis adapter. Every method rejects when Redis fails; the scheduler turns that
 * into a flagged failure (FR-037) and a tick that changes nothing.
 */
export class RedisSchedulerStore implements SchedulerStore {
  private plan: PlanSnapshot | undefined;
  private fullReadCount = 0;
  /** Heartbeats and infos: fetched again only for nodes whose registry score or liveness moved. */
  private readonly nodes: NodeReader;
  /** The plan meta as the last read saw it: any other one (not this store's write) was not expected. */
  private lastMetaRaw: string | null | undefined;
  /** Connections made ready: a read during which this moved remembers nothing it read. */
  private connections = 0;

  constructor(
    private readonly redis: RedisLike,
    private readonly keys: StateKeys,
    private readonly schedulerId: string,
    /** `now`: the monotonic clock node expiries are judged by (tests drive it). */
    options: { now?: () => number } = {},
  ) {
    this.nodes = new NodeReader(redis, keys, FULL_READ_EVERY_MS, options.now);
    // A new connection may lead to another server (a failover, a restarted Redis): start over.
    redis.on('ready', () => {
      this.connections += 1;
      this.forget();
    });
  }

  /** Forgets everything remembered: the next read is a full one (a new leadership starts so). */
  forget(): void {
    this.plan = undefined;
    this.lastMetaRaw = undefined;
    this.nodes.forget();
  }

  /** How the last read of the nodes went: how many were fetched, how many remembered. */
  get nodeReads(): NodeReadStats {
    return this.nodes.stats;
  }

  /** Takes or renews the leader lock; true while this scheduler leads. */
  async lead(ttlMs: number): Promise<boolean> {
    return (
      (await LEAD.run(this.redis, [this.keys.schedulerLeader()], [this.schedulerId, ttlMs])) === 1
    );
  }

  async resign(): Promise<void> {
    await RESIGN.run(this.redis, [this.keys.schedulerLeader()], [this.schedulerId]);
  }

  /**
   * Reads the whole world: registry, node records, plan, catalog, meta, control requests; then
   * liveness and info of every node — fetched for the nodes whose registry score (last beat) moved
   * or whose heartbeat may have expired, remembered for the others (see `NodeReader`). A plan meta
   * other than the one last read or written (Redis restarted empty or rolled back, another leader
   * wrote) makes it a full read of everything.
   *
   * Node records, plan and catalog (tens of thousands of fields at 5,000 nodes) are re-read only when
   * they may have changed: when the plan meta is not the one this store last read or wrote, when a
   * hash's length differs from the remembered one (Redis restarted, a key deleted), or a minute
   * after the last full read. Otherwise the remembered, already decoded values are handed out again.
   */
  async readWorld(): Promise<World> {
    const connection = this.connections;
    try {
      const world = await this.readAll();
      // Part of it may come from the server before the reconnection: none of it is remembered.
      if (connection !== this.connections) this.forget();
      return world;
    } catch (err) {
      // What failed half way (a reply lost, a connection dropped) may hide a change: start over.
      this.forget();
      throw err;
    }
  }

  private async readAll(): Promise<World> {
    const k = this.keys;
    const head = await this.exec(
      this.redis
        .multi()
        .zrange(k.nodeRegistry(), 0, -1, 'WITHSCORES')
        .get(k.planMeta())
        .lrange(k.controlRequests(), 0, MAX_REQUESTS_PER_TICK - 1)
        .hlen(k.executionNodes())
        .hlen(k.portfolioAssignments())
        .hlen(k.portfolioCatalog())
        .get(k.tradingHalt()),
    );
    const [
      registryRaw,
      headMetaRaw,
      requestsRaw,
      nodesLength,
      plansLength,
      catalogLength,
      haltRaw,
    ] = head as [string[], string | null, string[], number, number, number, string | null];
    const lengths = [nodesLength, plansLength, catalogLength];
    if (headMetaRaw !== this.lastMetaRaw && headMetaRaw !== this.plan?.metaRaw) this.forget();
    this.lastMetaRaw = headMetaRaw;
    const problems: PayloadProblem[] = [];
    const trading = decodeTrading(k, haltRaw, {});
    problems.push(...trading.problems);
    const plan = await this.readPlan(headMetaRaw, lengths, problems);

    const requests: ControlRequest[] = [];
    for (const raw of requestsRaw) {
      const decoded = decodePayload('controlRequest', k.controlRequests(), raw);
      if (decoded.ok) requests.push(decoded.value);
      else problems.push(decoded.error);
    }

    const lastSeen = new Map<string, number>();
    for (let i = 0; i + 1 < registryRaw.length; i += 2)
      lastSeen.set(registryRaw[i] ?? '', Number(registryRaw[i + 1]));
    const nodeIds = [...new Set([...lastSeen.keys(), ...plan.records.keys()])]
      .filter(isValidId)
      .sort();
    const nodes = await this.readNodes(nodeIds, plan.records, lastSeen, problems);
    return {
      nodes,
      assignments: plan.assignments,
      catalog: plan.catalog,
      meta: plan.meta,
      requests,
      requestCount: requestsRaw.length,
      problems,
      halt: trading.halted,
      haltLifted: haltRecordState(haltRaw) === 'lifted',
      // Only a reading remembered whole says what Redis holds (a malformed entry was skipped).
      ...(this.plan === plan ? { planToken: plan.token } : {}),
    };
  }

  /** Each node's liveness and placement info, with the record and registry score already read. */
  private async readNodes(
    nodeIds: readonly string[],
    records: ReadonlyMap<string, NodeRecord>,
    lastSeen: ReadonlyMap<string, number>,
    problems: PayloadProblem[],
  ): Promise<NodeReading[]> {
    const live = await this.nodes.read(nodeIds, lastSeen);
    const out: NodeReading[] = [];
    for (const nodeId of nodeIds) {
      const node = live.get(nodeId);
      if (node === undefined) continue;
      if (node.problem !== null) problems.push(node.problem);
      out.push({
        nodeId,
        liveness: node.liveness,
        info: node.info,
        record: records.get(nodeId) ?? null,
        lastSeenMs: lastSeen.get(nodeId) ?? null,
      });
    }
    return out;
  }

  /** How many full reads of records, plan and catalog this store made (the rest were remembered). */
  get fullReads(): number {
    return this.fullReadCount;
  }

  private async exec(multi: ChainableCommander): Promise<unknown[]> {
    const replies = await multi.exec();
    if (replies === null) throw new Error('Transaction aborted');
    for (const [err] of replies) if (err) throw err;
    return replies.map(([, v]) => v);
  }

  /** Node records, plan, catalog and meta: remembered when nothing says they changed, else read. */
  private async readPlan(
    metaRaw: string | null,
    lengths: number[],
    problems: PayloadProblem[],
  ): Promise<PlanSnapshot> {
    const cached = this.plan;
    if (
      cached !== undefined &&
      metaRaw !== null &&
      metaRaw === cached.metaRaw &&
      lengths[0] === cached.records.size &&
      lengths[1] === cached.assignments.size &&
      lengths[2] === cached.catalog.size &&
      Date.now() - cached.readAtMs < FULL_READ_EVERY_MS
    ) {
      return cached;
    }
    const k = this.keys;
    const [recordsRaw, assignmentsRaw, catalogRaw, fullMetaRaw] = (await this.exec(
      this.redis
        .multi()
        .hgetall(k.executionNodes())
        .hgetall(k.portfolioAssignments())
        .hgetall(k.portfolioCatalog())
        .get(k.planMeta()),
    )) as [Record<string, string>, Record<string, string>, Record<string, string>, string | null];
    this.fullReadCount += 1;
    const decodeAll = <T>(
      entries: Record<string, string>,
      key: string,
      name: 'nodeRecord' | 'assignment' | 'portfolioSpec',
    ): { values: Map<string, T>; malformed: boolean } => {
      const values = new Map<string, T>();
      let malformed = false;
      // In id order: the planner then takes the catalog's ids as they come, without sorting them.
      const fields = Object.entries(entries).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      for (const [field, raw] of fields) {
        const decoded = decodePayload(name, `${key}[${field}]`, raw);
        if (decoded.ok) values.set(field, decoded.value as T);
        else {
          problems.push(decoded.error);
          malformed = true;
        }
      }
      return { values, malformed };
    };
    const records = decodeAll<NodeRecord>(recordsRaw, k.executionNodes(), 'nodeRecord');
    const assignments = decodeAll<Assignment>(
      assignmentsRaw,
      k.portfolioAssignments(),
      'assignment',
    );
    const catalog = decodeAll<PortfolioSpec>(catalogRaw, k.portfolioCatalog(), 'portfolioSpec');
    let meta: PlanMeta | null = null;
    if (fullMetaRaw !== null) {
      const decoded = decodePayload('planMeta', k.planMeta(), fullMetaRaw);
      if (decoded.ok) meta = decoded.value;
      else
        throw new Error(
          `Plan meta is malformed (${decoded.error.problem}); refusing to plan over it`,
        );
    }
    const snapshot: PlanSnapshot = {
      metaRaw: fullMetaRaw,
      meta,
      records: records.values,
      assignments: assignments.values,
      catalog: catalog.values,
      readAtMs: Date.now(),
      token: {},
    };
    // Malformed entries are reported at every read, so they are never remembered away.
    const malformed = records.malformed || assignments.malformed || catalog.malformed;
    this.plan = malformed ? undefined : snapshot;
    return snapshot;
  }

  /**
   * Writes the plan atomically, fenced by leadership and version, with the catalog changes, the
   * control results and the forgotten nodes. Returns the new version.
   */
  async writePlan(plan: PlanWrite): Promise<number> {
    const k = this.keys;
    const remembered = this.plan;
    const nodeAssignments = [...plan.nodeAssignments];
    const prune = plan.prune ?? [];
    const catalogSet = plan.catalog?.set ?? [];
    const catalogRemove = plan.catalog?.remove ?? [];
    const audit = plan.audit ?? [];
    const removed = plan.partial?.removedAssignments ?? [];
    const now = plan.meta.updated_at;
    const args: (string | number)[] = [
      this.schedulerId,
      plan.expectedVersion,
      encodePayload('planMeta', plan.meta),
      prune.length,
      ...prune.flatMap((p) => [p.nodeId, p.lastSeenMs ?? -1]),
      plan.partial === undefined ? 1 : 0,
      plan.nodes.length,
      ...plan.nodes.flatMap((n) => [n.node_id, encodePayload('nodeRecord', n)]),
      plan.assignments.length,
      ...plan.assignments.flatMap((a) => [a.portfolio_id, encodePayload('assignment', a)]),
      removed.length,
      ...removed,
      nodeAssignments.length,
      ...nodeAssignments.map(([nodeId, ids]) =>
        encodePayload('nodeAssignment', {
          _v: 1,
          node_id: nodeId,
          portfolio_ids: ids,
          plan_version: plan.meta.version,
          updated_at: now,
        }),
      ),
      plan.results.length,
      ...plan.results.flatMap((r) => [r.id, encodePayload('controlResult', r)]),
      plan.consumedRequests,
      catalogSet.length,
      ...catalogSet.flatMap((spec) => [spec.portfolio_id, encodePayload('portfolioSpec', spec)]),
      catalogRemove.length,
      ...catalogRemove,
      AUDIT_MAX_ENTRIES,
      audit.length,
      ...audit.map((entry) => encodeAuditEntry(entry)),
      ...nodeAssignments.map(([nodeId]) => k.nodeOrdersChannel(nodeId)),
    ];
    this.plan = undefined;
    try {
      const version = (await WRITE_PLAN.run(
        this.redis,
        [
          k.schedulerLeader(),
          k.planMeta(),
          k.executionNodes(),
          k.portfolioAssignments(),
          k.controlRequests(),
          k.controlResults(),
          k.portfolioCatalog(),
          k.nodeRegistry(),
          k.auditLog(),
          ...prune.map((p) => k.nodeAssignment(p.nodeId)),
          ...nodeAssignments.map(([nodeId]) => k.nodeAssignment(nodeId)),
        ],
        args,
      )) as number;
      // What was written replaces the two hashes (or the entries given) and the meta, and changes
      // the catalog as said: remember it as read. Maps that did not change stay the same objects.
      if (remembered !== undefined) {
        let catalog = remembered.catalog;
        if (catalogSet.length + catalogRemove.length > 0) {
          catalog = new Map(catalog);
          for (const spec of catalogSet) catalog.set(spec.portfolio_id, spec);
          for (const id of catalogRemove) catalog.delete(id);
        }
        let { records, assignments } = remembered;
        if (plan.partial === undefined) {
          records = new Map(plan.nodes.map((n) => [n.node_id, n]));
          assignments = new Map(plan.assignments.map((a) => [a.portfolio_id, a]));
        } else {
          // The last reading's maps, handed out with it: its tick is over.
          for (const n of plan.nodes) records.set(n.node_id, n);
          for (const a of plan.assignments) assignments.set(a.portfolio_id, a);
          for (const id of removed) assignments.delete(id);
        }
        for (const p of prune) records.delete(p.nodeId);
        this.plan = {
          metaRaw: args[2] as string,
          meta: plan.meta,
          records,
          assignments,
          catalog,
          readAtMs: remembered.readAtMs,
          token: remembered.token,
        };
      }
      return version;
    } catch (err) {
      if (err instanceof Error && /\b(NOT_LEADER|STALE_VERSION|NODE_BACK)\b/.test(err.message))
        throw new PlanWriteRefused(err.message);
      throw err;
    }
  }

  /**
   * Carries the scheduler's keys over from their names before the hash tags (0.1): each old key
   * that exists is renamed to its new name when that is free. Returns what moved, and the old keys
   * left in place because the new one already exists. On a cluster no old key can exist (0.1 did
   * not run on one), so nothing is renamed across slots.
   */
  async migrateLegacyKeys(): Promise<{ moved: string[]; kept: string[] }> {
    const moved: string[] = [];
    const kept: string[] = [];
    const legacy = this.keys.legacySchedulerKeys();
    // Sent together (one round trip on one Redis), each to its own slot on a cluster.
    const exists = await Promise.all(legacy.map(({ from }) => this.redis.exists(from)));
    for (const [i, { from, to }] of legacy.entries()) {
      if (exists[i] === 0) continue;
      if ((await this.redis.renamenx(from, to)) === 1) moved.push(from);
      else kept.push(from);
    }
    if (moved.length > 0) this.plan = undefined;
    return { moved, kept };
  }
}
