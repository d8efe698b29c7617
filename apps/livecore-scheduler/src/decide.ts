import type { AuditInput } from '@ginkgo-live/fleet';
import {
  decodePayload,
  type Assignment,
  type ControlRequest,
  type ControlResult,
  type NodeRecord,
  type NodeRecordStatus,
  type PortfolioSpec,
} from '@ginkgo-live/state-keys';
import type { Notice } from './notices.ts';
import {
  computePlan,
  PlanState,
  rebalance,
  type Migration,
  type NodeView,
  type Placement,
  type PlacementLookup,
  type PlanOutput,
} from './planner.ts';
import type { NodePrune, NodeReading, PlanWrite, World } from './world.ts';

/**
 * The scheduler's core: from what a tick read (the world), what the scheduler remembers, the time
 * and its settings, to everything the tick should do — as data. No Redis, no logger, no clock: the
 * shell (`scheduler.ts`) writes, logs and notifies what this says, so every scheduler behaviour is
 * a unit test on plain data.
 */

/** What the core is told; each from its environment variable (`config.ts`). */
export interface SchedulerSettings {
  /** `SCHEDULER_ID`, default `<host>-<pid>`: the leader lock's value. */
  schedulerId: string;
  /** `SCHEDULER_TICK_MS`, default 5000. */
  tickMs: number;
  /** `NODE_DEFAULT_CAPACITY`: capacity of a node that has not said its own, default 5. */
  defaultCapacity: number;
  /**
   * `SCHEDULER_OUTAGE_GRACE_MS`, default 15000 (the heartbeat TTL): after Redis was unreachable,
   * nodes get this long to beat again before a missing heartbeat counts as lost — heartbeats expire
   * while Redis is frozen, through no fault of the nodes.
   */
  outageGraceMs: number;
  /** `ORPHAN_NOTIFY_AFTER_MS`: a portfolio orphaned this long is notified, default 15000 (startup is not an alarm). */
  orphanNotifyAfterMs: number;
  /**
   * `SCHEDULER_SETTLE_MS`, default 2 × the tick (10 s): the first placement waits this long after
   * the leader saw the first live node, so that nodes started together share the portfolios. Two
   * ticks, because the scheduler sees nodes only at its ticks: a node that beats up to a tick after
   * the first one is still counted. 0 places at once.
   */
  settleMs: number;
  /** `SCHEDULER_NODE_RETENTION_MS`, default 24 h: a node lost this long (since its last beat) is forgotten. */
  nodeRetentionMs: number;
  /** `SCHEDULER_REBALANCE_PER_MIN`, default 0 (off): portfolios moved a minute to even out load. */
  rebalancePerMinute: number;
  /** The specs of `CATALOG_FILE`: seed an empty catalog, written back when it vanished. */
  catalogFile: readonly PortfolioSpec[] | undefined;
}

export interface NudgeState {
  count: number;
  nextAtMs: number;
}

/** What the scheduler carries from one tick to the next (in its process, never in Redis). */
export interface SchedulerMemory {
  /** When Redis became reachable again after failed ticks: the outage grace counts from there. */
  outageEndedAt: number | null;
  /** Nudges sent per `node|portfolio`, with when the next one is allowed (backoff). */
  nudges: ReadonlyMap<string, NudgeState>;
  /**
   * A non-empty catalog was seen since start, or an empty one was judged lost: an empty one later
   * means it was lost.
   */
  catalogSeen: boolean;
  /**
   * Whether `catalog_missing` may be firing: true after this scheduler raised it, and at start (a
   * leader that died may have raised it), so the first sight of a catalog resolves it.
   */
  catalogMissingMayFire: boolean;
  /**
   * Every node's assignment key was written once since start (later only the changed ones); false
   * again once the plan or the catalog is gone, since the node keys may have gone with them.
   */
  nodeKeysWritten: boolean;
  /** When this scheduler, leading, first saw a live node: the settle window counts from there. */
  firstLiveAt: number | null;
  /** Lost nodes without any last beat on record, and since when this scheduler saw them lost. */
  lostSince: ReadonlyMap<string, number>;
  /** When the rebalance moves of the last minute were written. */
  rebalancedAt: readonly number[];
  /**
   * Whether `fleet_halted` may be firing: true after this scheduler raised it, and at start (a
   * leader that died may have raised it), so the first tick without a halt resolves it.
   */
  haltMayFire: boolean;
  /**
   * The plan as this scheduler last made it, updated from what changed at the next tick: valid only
   * for the plan Redis holds at `version` as the store read it (`World.planToken`), and made anew
   * from the whole world at least every `FULL_PLAN_EVERY_MS`.
   */
  plan: KeptPlan | null;
}

/** The plan kept between ticks (see `SchedulerMemory.plan`). */
export interface KeptPlan {
  state: PlanState;
  /** The store's `World.planToken` of the plan this state mirrors. */
  token: object;
  /** The plan version in Redis this state mirrors. */
  version: number;
  /** When the plan was last made from the whole world. */
  fullAt: number;
}

/** The plan is made from the whole world at least this often: a safety net under the updates. */
export const FULL_PLAN_EVERY_MS = 60_000;

export function initialMemory(): SchedulerMemory {
  return {
    outageEndedAt: null,
    nudges: new Map(),
    catalogSeen: false,
    catalogMissingMayFire: true,
    nodeKeysWritten: false,
    firstLiveAt: null,
    lostSince: new Map(),
    rebalancedAt: [],
    haltMayFire: true,
    plan: null,
  };
}

export interface LogEvent {
  type: 'log';
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}
export type Effect = LogEvent | { type: 'notice'; notice: Notice };

export interface Decisions {
  /** The one fenced write of this tick, or null when Redis already holds what was decided. */
  write: PlanWrite | null;
  /** Why the plan is written (empty when it is not). */
  reasons: string[];
  /** Said at once, whatever becomes of the write. */
  effects: Effect[];
  /** Said once the decisions are in Redis: after the write succeeded, or at once without one. */
  afterWrite: Effect[];
  /** The memory for the next tick once the write succeeded (or when there is none). */
  memory: SchedulerMemory;
  /** The memory for the next tick when the write failed or was refused. */
  memoryUnwritten: SchedulerMemory;
  /** How the plan was made: updated from the changes, from the whole world, or not at all. */
  planned: 'changes' | 'whole' | 'none';
  summary: {
    planVersion: number;
    assigned: number;
    orphaned: number;
    nodes: Record<NodeRecordStatus, number>;
  };
}

const REBALANCE_WINDOW_MS = 60_000;

const log = (
  level: LogEvent['level'],
  message: string,
  fields: Record<string, unknown> = {},
): LogEvent => ({ type: 'log', level, message, fields });
const notice = (n: Notice): Effect => ({ type: 'notice', notice: n });

export function decide(
  world: World,
  memory: SchedulerMemory,
  now: number,
  settings: SchedulerSettings,
): Decisions {
  const at = new Date(now).toISOString();
  const effects: Effect[] = world.problems.map((problem) =>
    log('error', 'Malformed payload in Redis; skipped', { ...problem }),
  );
  const afterWrite: Effect[] = [];
  const version = world.meta?.version ?? 0;
  const next = version + 1;

  // What the catalog is, and whether the file must be written into it.
  const source = catalogSource(world, memory, settings, effects);
  const kept = { ...memory, ...source.memory };
  // The halt is an operator's act, told whatever else this tick decides.
  kept.haltMayFire = haltNotice(world, memory, effects);
  // The plan is gone (Redis back empty, or its keys deleted): the node keys went with it, and a node
  // without a key keeps what it runs, so an empty list must be written too, not only changed ones.
  if (world.meta === null) kept.nodeKeysWritten = false;
  if (source.catalog === null) return unchanged(world, kept, effects, version);

  const requests = applyRequests(world, source.catalog);
  const inGrace = kept.outageEndedAt !== null && now - kept.outageEndedAt < settings.outageGraceMs;
  const views = viewsOf(world.nodes, requests.draining, inGrace, settings.defaultCapacity);
  if (kept.firstLiveAt === null && views.some((v) => v.alive)) kept.firstLiveAt = now;

  const planner = keptPlanFor(world, kept.plan, version, now);
  const placed = place(world, requests, views, kept, now, settings, inGrace, planner);
  if (placed.held > 0 && kept.firstLiveAt === now && memory.firstLiveAt === null)
    effects.push(
      log('info', 'First node seen; the first placement waits for the others to beat', {
        portfolios: placed.held,
        settleMs: settings.settleMs,
      }),
    );
  const { moves } = placed;

  const plan = planOf(world, placed, views, next, at);

  const allRecords = recordsOf(world.nodes, views, plan.countOf, settings.defaultCapacity);

  const forget = pruneLost(world.nodes, allRecords, kept.lostSince, now, settings.nodeRetentionMs);
  kept.lostSince = forget.lostSince;
  afterWrite.push(...forget.effects);
  const pruned = new Set(forget.prune.map((p) => p.nodeId));
  const records = allRecords.filter((r) => !pruned.has(r.node_id));

  afterWrite.push(
    ...announce(world, records, plan.noticeable(), now, settings.orphanNotifyAfterMs),
  );

  // Every node's key is written once after a (re)start, riding along with the first real change:
  // listed only when there is a write, not at every tick that has none.
  const changedNodes = kept.nodeKeysWritten
    ? plan.nodeKeys(true, pruned)
    : new Map<string, string[]>();
  // Node reports are stale right after an outage (they could not write them): no nudges then.
  const nudging = inGrace
    ? { nudged: new Set<string>(), nudges: kept.nudges, effects: [] }
    : nudge(world.nodes, plan, kept.nudges, now, 3 * settings.tickMs);
  afterWrite.push(...nudging.effects);
  for (const nodeId of nudging.nudged) changedNodes.set(nodeId, plan.listOf(nodeId));

  const results = controlResults(world.requests, requests.refused, placed.rejected);
  const audit = auditOf(world.requests, results.refused, at);
  // One line per request, once its outcome is in Redis (the audit entry rides in the same write).
  for (const entry of audit)
    afterWrite.push(
      log(entry.outcome === 'accepted' ? 'info' : 'warn', 'Control request', {
        requestId: entry.request_id,
        actor: entry.actor,
        action: entry.action,
        target: entry.target,
        outcome: entry.outcome,
        reason: entry.reason,
      }),
    );

  const catalogChange = diffCatalog(world.catalog, requests.catalog);
  // Records are in the order of the readings (recordsOf).
  const changedRecords = allRecords.filter((r, i) => {
    const before = world.nodes[i]?.record;
    return (
      !pruned.has(r.node_id) &&
      (before?.status !== r.status ||
        before.capacity !== r.capacity ||
        before.assigned_count !== r.assigned_count)
    );
  });
  const recordChanges = changedRecords.map((r) => `${r.node_id}:${r.status}`);
  const catalogChanges = catalogChange.set.length + catalogChange.remove.length;
  const reasons = [
    ...(world.meta === null ? ['no plan yet'] : []),
    ...(nudging.nudged.size > 0 ? ['nudges'] : []),
    ...(moves.length > 0 ? [`${moves.length} moves`] : []),
    ...(world.requestCount > 0 ? [`${world.requestCount} requests`] : []),
    ...(catalogChanges > 0
      ? [`catalog +${catalogChange.set.length} -${catalogChange.remove.length}`]
      : []),
    ...(forget.prune.length > 0 ? [`${forget.prune.length} lost nodes forgotten`] : []),
    // Rewriting every node key after a restart rides along with a real change; alone it is none.
    ...(changedNodes.size > 0 && kept.nodeKeysWritten ? ['node assignments'] : []),
    ...(recordChanges.length > 0 ? [`nodes ${recordChanges.join(' ')}`] : []),
  ];
  const summary = summarize(records, plan.counts, version);
  const keptPlan = (planVersion: number): KeptPlan | null =>
    world.planToken === undefined
      ? null
      : {
          state: placed.state,
          token: world.planToken,
          version: planVersion,
          fullAt: planner === null ? now : (kept.plan?.fullAt ?? now),
        };
  if (reasons.length === 0) {
    // A plan that differs from Redis's without a reason to write it (none is known) is not kept:
    // the next tick starts from Redis's.
    const same = plan.changed.length === 0 && plan.removed.length === 0;
    const memoryNow = {
      ...kept,
      nudges: nudging.nudges,
      plan: same ? keptPlan(version) : null,
    };
    return {
      write: null,
      reasons,
      effects,
      afterWrite,
      memory: memoryNow,
      memoryUnwritten: memoryNow,
      planned: planner === null ? 'whole' : 'changes',
      summary,
    };
  }
  for (const move of moves)
    afterWrite.push(log('info', 'Portfolio placed', { ...move, planVersion: next }));
  const partial = plan.partial;
  return {
    write: {
      expectedVersion: version,
      meta: { _v: 1, version: next, updated_at: at, leader: settings.schedulerId },
      nodes: partial ? changedRecords : records,
      assignments: partial ? plan.changed : plan.all(),
      ...(partial ? { partial: { removedAssignments: plan.removed } } : {}),
      nodeAssignments: kept.nodeKeysWritten
        ? changedNodes
        : new Map([...plan.nodeKeys(false, pruned), ...changedNodes]),
      results: results.answers(next, at),
      consumedRequests: world.requestCount,
      catalog: catalogChange,
      prune: forget.prune,
      audit,
    },
    reasons,
    effects,
    afterWrite,
    memory: {
      ...kept,
      nodeKeysWritten: true,
      nudges: nudging.nudges,
      rebalancedAt: placed.rebalancedAt,
      plan: keptPlan(next),
    },
    // The kept plan is this tick's, not Redis's, when the write did not land.
    memoryUnwritten: { ...kept, plan: null },
    planned: planner === null ? 'whole' : 'changes',
    summary: { ...summary, planVersion: next },
  };
}

/**
 * The plan kept from the last tick when it still mirrors the plan Redis holds (same store reading,
 * same version) and was made from the whole world less than `FULL_PLAN_EVERY_MS` ago; else null,
 * and this tick plans from the whole world.
 */
function keptPlanFor(
  world: World,
  plan: KeptPlan | null,
  version: number,
  now: number,
): KeptPlan | null {
  if (plan === null || world.planToken === undefined) return null;
  if (plan.token !== world.planToken || plan.version !== version) return null;
  if (now < plan.fullAt || now - plan.fullAt >= FULL_PLAN_EVERY_MS) return null;
  return plan;
}

/**
 * The plan this tick made, as the rest of the tick needs it: the entries to write (all of them, or
 * those that differ from the plan read), who runs what, and what to announce. From a plan updated
 * by its changes, every question costs what changed (or the nodes asked about), not the plan's size.
 */
interface TickPlan {
  /** Entries that differ from the plan read (new or changed). */
  changed: Assignment[];
  /** Portfolios in the plan read and no longer in the plan. */
  removed: string[];
  /** The write may carry only `changed` and `removed`: the plan read is Redis's, whole. */
  partial: boolean;
  /** Every entry of the plan. */
  all: () => Assignment[];
  get: (portfolioId: string) => Assignment | undefined;
  /** The portfolios of a node, in the plan. */
  assignedTo: (nodeId: string) => Iterable<string>;
  countOf: (nodeId: string) => number;
  listOf: (nodeId: string) => string[];
  /** The node keys to write: every node's once after a (re)start, then those whose list changed. */
  nodeKeys: (nodeKeysWritten: boolean, pruned: ReadonlySet<string>) => Map<string, string[]>;
  /** Entries that may raise or resolve an orphan notice: the orphaned ones and the changed ones. */
  noticeable: () => Iterable<Assignment>;
  counts: { assigned: number; orphaned: number };
}

function planOf(
  world: World,
  placed: ReturnType<typeof place>,
  views: readonly NodeView[],
  version: number,
  at: string,
): TickPlan {
  const partial = world.planToken !== undefined;
  if (placed.touched === null) {
    // Planned from the whole world: every entry is looked at.
    const all = assignmentsOf(world.assignments, placed.placements, version, at);
    const perNode = new Map<string, string[]>(views.map((v) => [v.nodeId, []]));
    for (const a of all) if (a.node_id !== null) perNode.get(a.node_id)?.push(a.portfolio_id);
    // In id order, as a plan updated from its changes lists them.
    for (const ids of perNode.values()) ids.sort();
    const byId = new Map(all.map((a) => [a.portfolio_id, a]));
    const assigned = all.filter((a) => a.status === 'assigned').length;
    return {
      changed: all.filter((a) => world.assignments.get(a.portfolio_id) !== a),
      removed: [...world.assignments.keys()].filter((id) => !byId.has(id)),
      partial,
      all: () => all,
      get: (id) => byId.get(id),
      assignedTo: (nodeId) => perNode.get(nodeId) ?? [],
      countOf: (nodeId) => perNode.get(nodeId)?.length ?? 0,
      listOf: (nodeId) => perNode.get(nodeId) ?? [],
      nodeKeys: (written, pruned) =>
        changedNodeKeys(
          world.assignments,
          new Map([...perNode].filter(([nodeId]) => !pruned.has(nodeId))),
          written,
        ),
      noticeable: () => all,
      counts: { assigned, orphaned: all.length - assigned },
    };
  }
  // Updated from the changes: only the portfolios touched can differ from the plan read.
  const state = placed.state;
  const changed = new Map<string, Assignment>();
  const removed: string[] = [];
  for (const id of placed.touched) {
    const was = world.assignments.get(id);
    const p = placed.placements.get(id);
    if (p === undefined) {
      if (was !== undefined) removed.push(id);
      continue;
    }
    const a = assignmentOf(was, id, p, version, at);
    if (a !== was) changed.set(id, a);
  }
  const get = (id: string): Assignment | undefined =>
    placed.placements.has(id) ? (changed.get(id) ?? world.assignments.get(id)) : undefined;
  const listOf = (nodeId: string): string[] => [...state.assignedTo(nodeId)].sort();
  return {
    changed: [...changed.values()],
    removed,
    partial,
    all: () => [...placed.placements.keys()].flatMap((id) => get(id) ?? []),
    get,
    assignedTo: (nodeId) => state.assignedTo(nodeId),
    countOf: (nodeId) => state.assignedTo(nodeId).size,
    listOf,
    nodeKeys: (written, pruned) => {
      const ids = written
        ? new Set(
            placed.moves.flatMap((m) => [m.from, m.to]).filter((id): id is string => id !== null),
          )
        : views.map((v) => v.nodeId);
      const known = new Set(views.map((v) => v.nodeId));
      const out = new Map<string, string[]>();
      for (const nodeId of ids)
        if (known.has(nodeId) && !pruned.has(nodeId)) out.set(nodeId, listOf(nodeId));
      return out;
    },
    noticeable: () =>
      [...new Set([...state.orphaned(), ...changed.keys()])].sort().flatMap((id) => get(id) ?? []),
    counts: state.counts,
  };
}

/** No plan this tick: only what was said at once, and the memory. */
function unchanged(
  world: World,
  memory: SchedulerMemory,
  effects: Effect[],
  version: number,
): Decisions {
  let assigned = 0;
  for (const a of world.assignments.values()) if (a.status === 'assigned') assigned += 1;
  const records = world.nodes.flatMap((n) => (n.record === null ? [] : [n.record]));
  return {
    write: null,
    reasons: [],
    effects,
    afterWrite: [],
    memory,
    memoryUnwritten: memory,
    planned: 'none',
    summary: summarize(records, { assigned, orphaned: world.assignments.size - assigned }, version),
  };
}

/**
 * The catalog to plan from. An empty one after one was seen (or while the plan holds portfolios,
 * or while live nodes report running portfolios) was lost — Redis restarted empty, or someone
 * deleted it: unknown, not "every portfolio removed".
 * Said loudly, and the catalog file written back in the plan write; without a file nothing is
 * planned (null). A fresh Redis with no catalog is seeded from the file quietly.
 */
function catalogSource(
  world: World,
  memory: SchedulerMemory,
  settings: SchedulerSettings,
  effects: Effect[],
): { catalog: Map<string, PortfolioSpec> | null; memory: Partial<SchedulerMemory> } {
  const file = settings.catalogFile ?? [];
  const fromFile = new Map(file.map((s) => [s.portfolio_id, s]));
  if (world.catalog.size > 0) {
    if (memory.catalogMissingMayFire) {
      effects.push(
        notice({
          op: 'resolve',
          kind: 'catalog_missing',
          subject: {},
          details: { portfolios: world.catalog.size },
        }),
      );
    }
    if (!memory.catalogSeen) {
      // The file only seeds: at the first sight of a catalog, say where the two part ways.
      const differ = file.filter(
        (spec) => JSON.stringify(world.catalog.get(spec.portfolio_id)) !== JSON.stringify(spec),
      );
      if (differ.length > 0)
        effects.push(
          log('warn', "Catalog file differs from the catalog in Redis; Redis's is kept", {
            portfolios: differ.length,
            first: differ.slice(0, 5).map((spec) => spec.portfolio_id),
            hint: 'pnpm ctl catalog-add / catalog-remove changes the catalog in Redis',
          }),
        );
    }
    return { catalog: world.catalog, memory: { catalogSeen: true, catalogMissingMayFire: false } };
  }
  // Nothing survives Redis coming back empty but what the nodes run, and a scheduler that takes
  // over then has seen no catalog: live nodes reporting portfolios tell it from a fresh Redis.
  const running = new Set(
    world.nodes.flatMap((n) => (n.liveness.alive ? (n.info?.portfolio_ids ?? []) : [])),
  );
  if (world.assignments.size === 0 && !memory.catalogSeen && running.size === 0) {
    if (file.length > 0)
      effects.push(
        log('info', 'Catalog empty; loading the catalog file', { portfolios: file.length }),
      );
    return { catalog: fromFile, memory: {} };
  }
  effects.push(
    log('error', 'Portfolio catalog vanished; nothing is unassigned', {
      planPortfolios: world.assignments.size,
      runningOnNodes: running.size,
      reloadFrom: file.length === 0 ? null : 'catalog file',
    }),
    notice({
      op: 'raise',
      kind: 'catalog_missing',
      subject: {},
      details: { plan_portfolios: world.assignments.size, reload_from_file: file.length > 0 },
    }),
  );
  // The plan went with it (Redis back empty): nodes re-announce what they run within a beat or
  // two, so the settle window starts anew before anything else is placed.
  return {
    catalog: file.length === 0 ? null : fromFile,
    // Lost stays lost (an empty catalog means lost from now on) until a catalog is there again.
    memory: {
      catalogSeen: true,
      catalogMissingMayFire: true,
      firstLiveAt: null,
      nodeKeysWritten: false,
    },
  };
}

/**
 * `fleet_halted` while `{scheduler}:trading_halt` says halted (raised every tick: the shared
 * dedupe sends it once per cooldown), resolved at the first tick that reads its lift record when it
 * may be firing — never on a missing key: Redis that lost the halt has not lifted it (the nodes
 * that saw it keep it, and say so with `halt_missing`). Returns whether it may be firing after
 * this tick.
 */
function haltNotice(world: World, memory: SchedulerMemory, effects: Effect[]): boolean {
  const halt = world.halt;
  if (halt !== null) {
    effects.push(
      notice({
        op: 'raise',
        kind: 'fleet_halted',
        subject: {},
        details: { halted_at: halt.halted_at, by: halt.by, reason: halt.reason },
      }),
    );
    return true;
  }
  if (!world.haltLifted) return memory.haltMayFire;
  if (memory.haltMayFire)
    effects.push(notice({ op: 'resolve', kind: 'fleet_halted', subject: {}, details: {} }));
  return false;
}

/** Audit fields are bounded (`auditEntry`); a request's own fields are not always. */
const bounded = (value: string | null | undefined, max: number): string | null =>
  value === undefined || value === null ? null : value.slice(0, max);

/**
 * The audit entry of every request consumed: who asked (`requested_by`), what, on what, and its
 * outcome as answered — under the request's id, beside the `queued` entry its requester wrote.
 */
function auditOf(
  requests: readonly ControlRequest[],
  refused: readonly Refusal[],
  at: string,
): AuditInput[] {
  const reasons = new Map(refused.map((r) => [r.request.id, r.reason]));
  return requests.map((r): AuditInput => {
    const reason = reasons.get(r.id) ?? null;
    const specId =
      r.action === 'catalog_add' && typeof r.spec === 'object' && r.spec !== null
        ? (r.spec as { portfolio_id?: unknown }).portfolio_id
        : undefined;
    return {
      at,
      actor: bounded(r.requested_by, 128) ?? 'unknown',
      via: 'livecore-scheduler',
      action: r.action,
      target: {
        node_id: bounded(r.node_id, 128),
        portfolio_id: bounded(r.portfolio_id ?? (typeof specId === 'string' ? specId : null), 128),
        target_node_id: bounded(r.target_node_id, 128),
      },
      outcome: reason === null ? 'accepted' : 'refused',
      reason: bounded(reason, 500),
      request_id: r.id,
      address: null,
    };
  });
}

interface Refusal {
  request: ControlRequest;
  reason: string;
}

/** Control requests: drain/undrain flags, migrations for the planner, catalog changes to write. */
function applyRequests(world: World, base: ReadonlyMap<string, PortfolioSpec>) {
  // Copied on the first change only: most ticks change nothing, and `diffCatalog` then sees the same
  // map and compares nothing.
  let changed: Map<string, PortfolioSpec> | undefined;
  const catalog = {
    has: (id: string): boolean => (changed ?? base).has(id),
    set: (id: string, spec: PortfolioSpec): void => {
      changed ??= new Map(base);
      changed.set(id, spec);
    },
    delete: (id: string): void => {
      changed ??= new Map(base);
      changed.delete(id);
    },
  };
  const draining = new Map<string, boolean>();
  const migrations: Migration[] = [];
  const refused = new Map<string, Refusal>();
  const known = new Set(world.nodes.map((n) => n.nodeId));
  const refuse = (request: ControlRequest, reason: string): void => {
    refused.set(request.id, { request, reason });
  };
  for (const r of world.requests) {
    switch (r.action) {
      case 'drain':
      case 'undrain':
        if (r.node_id === undefined || !known.has(r.node_id))
          refuse(r, `unknown node ${r.node_id ?? '(none given)'}`);
        else draining.set(r.node_id, r.action === 'drain');
        break;
      case 'migrate':
        if (r.portfolio_id === undefined || r.target_node_id === undefined)
          refuse(r, 'migrate needs portfolio_id and target_node_id');
        else migrations.push({ portfolioId: r.portfolio_id, targetNodeId: r.target_node_id });
        break;
      case 'catalog_add': {
        const spec = decodePayload(
          'portfolioSpec',
          'request spec',
          JSON.stringify({ _v: 1, ...(r.spec as object) }),
        );
        if (spec.ok) catalog.set(spec.value.portfolio_id, spec.value);
        else refuse(r, `invalid spec: ${spec.error.problem}`);
        break;
      }
      case 'catalog_remove':
        if (r.portfolio_id === undefined || !catalog.has(r.portfolio_id))
          refuse(r, `unknown portfolio ${r.portfolio_id ?? '(none given)'}`);
        else catalog.delete(r.portfolio_id);
        break;
    }
  }
  return { catalog: changed ?? base, draining, migrations, refused };
}

/** Where every portfolio goes this tick: the settle window, the planner, the optional rebalance. */
function place(
  world: World,
  requests: ReturnType<typeof applyRequests>,
  views: readonly NodeView[],
  memory: SchedulerMemory,
  now: number,
  settings: SchedulerSettings,
  inGrace: boolean,
  kept: KeptPlan | null,
) {
  const settling =
    settings.settleMs > 0 &&
    (memory.firstLiveAt === null || now - memory.firstLiveAt < settings.settleMs);
  const recent = memory.rebalancedAt.filter((t) => now - t < REBALANCE_WINDOW_MS);
  const budget = settling || inGrace ? 0 : settings.rebalancePerMinute - recent.length;
  // Outside the settle window and without a rebalance, the kept plan is updated from the changes.
  if (kept !== null && !settling && budget <= 0) {
    const update = kept.state.update({
      nodes: views,
      catalog: requests.catalog,
      migrations: requests.migrations,
    });
    return {
      placements: update.placements as ReadonlyMap<string, Placement>,
      moves: update.moves.map((m) => ({ ...m, why: 'plan' })),
      rejected: update.rejected,
      held: 0,
      rebalancedAt: recent,
      state: kept.state,
      touched: update.touched as ReadonlySet<string> | null,
    };
  }
  // A view of the plan read, not a copy of it: tens of thousands of entries at every tick.
  const previous: PlacementLookup = {
    get: (id) => placementOf(world.assignments.get(id)),
    *[Symbol.iterator]() {
      for (const [id, a] of world.assignments) yield [id, placementOf(a) as Placement] as const;
    },
  };
  // The first placement waits the settle window; what has a node (or runs on one) never waits.
  let held = new Set<string>();
  if (settling) {
    const usable = views.filter((v) => v.alive && !v.draining);
    const running = new Set(usable.flatMap((v) => v.reportedPortfolios));
    const migrating = new Set(requests.migrations.map((m) => m.portfolioId));
    held = new Set(
      [...requests.catalog.keys()].filter(
        (id) => previous.get(id)?.status !== 'assigned' && !running.has(id) && !migrating.has(id),
      ),
    );
  }
  const out = computePlan({
    nodes: views,
    portfolios:
      held.size === 0
        ? [...requests.catalog.keys()]
        : [...requests.catalog.keys()].filter((id) => !held.has(id)),
    previous,
    migrations: requests.migrations,
  });
  for (const id of held) {
    const before = previous.get(id);
    if (before !== undefined) out.placements.set(id, before);
  }

  // Optional rebalance, rate-limited over a sliding minute.
  const even =
    budget > 0
      ? rebalance({
          nodes: views,
          placements: out.placements,
          budget,
          pinned: new Set(out.moves.map((m) => m.portfolioId)),
        })
      : { placements: out.placements, moves: [] };
  return {
    placements: even.placements,
    moves: [
      ...out.moves.map((m) => ({ ...m, why: 'plan' })),
      ...even.moves.map((m) => ({ ...m, why: 'rebalance' })),
    ],
    rejected: out.rejected,
    held: held.size,
    /** The rebalance moves of the last minute, these included (kept once written). */
    rebalancedAt: [...recent, ...even.moves.map(() => now)],
    /** The plan made, to be updated from the changes at the next tick. */
    state: PlanState.from(even.placements, views, requests.catalog),
    /** Planned from the whole world: every entry may differ. */
    touched: null as ReadonlySet<string> | null,
  };
}

/** An assignment as the planner sees it; the same object for the same entry, tick after tick. */
const placements = new WeakMap<Assignment, Placement>();
function placementOf(a: Assignment | undefined): Placement | undefined {
  if (a === undefined) return undefined;
  let p = placements.get(a);
  if (p === undefined) {
    p =
      a.status === 'assigned' && a.node_id !== null
        ? { status: 'assigned', nodeId: a.node_id }
        : { status: 'orphaned', reason: a.reason ?? '' };
    placements.set(a, p);
  }
  return p;
}

/** The plan's entries: an unchanged placement keeps its version and `since`, a changed one is new. */
function assignmentsOf(
  before: ReadonlyMap<string, Assignment>,
  placements: ReadonlyMap<string, Placement>,
  version: number,
  at: string,
): Assignment[] {
  return [...placements].map(([portfolioId, p]) =>
    assignmentOf(before.get(portfolioId), portfolioId, p, version, at),
  );
}

/** One entry of the plan: the one read when it says exactly the same, else a new one. */
function assignmentOf(
  was: Assignment | undefined,
  portfolioId: string,
  p: Placement,
  version: number,
  at: string,
): Assignment {
  const same =
    was !== undefined &&
    (p.status === 'assigned'
      ? was.node_id === p.nodeId
      : was.status === 'orphaned' && was.reason === p.reason);
  // An entry that says exactly what it said is the same object (no copy per portfolio and tick).
  if (
    same &&
    was.portfolio_id === portfolioId &&
    was.status === p.status &&
    (p.status === 'assigned' ? was.reason === null : was.node_id === null)
  )
    return was;
  return {
    _v: 1,
    portfolio_id: portfolioId,
    status: p.status,
    node_id: p.status === 'assigned' ? p.nodeId : null,
    reason: p.status === 'orphaned' ? p.reason : null,
    plan_version: same ? was.plan_version : version,
    since: same ? was.since : at,
  };
}

/** The scheduler's record of each node, as this tick sees it. */
function recordsOf(
  nodes: readonly NodeReading[],
  views: readonly NodeView[],
  countOf: (nodeId: string) => number,
  defaultCapacity: number,
): NodeRecord[] {
  return nodes.map((n, i): NodeRecord => {
    const view = views[i];
    // In the outage grace a node that was alive stays alive in its record too: a heartbeat that
    // expired while Redis was down is no news of the node (no "Node lost", no plan write).
    const status: NodeRecordStatus =
      view?.alive !== true ? 'lost' : view.draining ? 'draining' : 'alive';
    const capacity = view?.capacity ?? defaultCapacity;
    const assigned = countOf(n.nodeId);
    // A record that says what it said is the one read: it is not written (only changed records
    // are), so its last beat stays the one of its last change — the registry has the latest.
    const before = n.record;
    if (
      before !== null &&
      before.node_id === n.nodeId &&
      before.status === status &&
      before.capacity === capacity &&
      before.assigned_count === assigned
    )
      return before;
    return {
      _v: 1,
      node_id: n.nodeId,
      status,
      capacity,
      assigned_count: assigned,
      last_seen:
        n.lastSeenMs === null
          ? (n.record?.last_seen ?? null)
          : new Date(n.lastSeenMs).toISOString(),
    };
  });
}

/** Which node keys to write: all of them once after a (re)start, then only those whose list changed. */
function changedNodeKeys(
  before: ReadonlyMap<string, Assignment>,
  perNode: ReadonlyMap<string, string[]>,
  nodeKeysWritten: boolean,
): Map<string, string[]> {
  const previousPerNode = new Map<string, string[]>();
  for (const [id, a] of before) {
    if (a.node_id === null) continue;
    const ids = previousPerNode.get(a.node_id);
    if (ids === undefined) previousPerNode.set(a.node_id, [id]);
    else ids.push(id);
  }
  const listKey = (ids: readonly string[] | undefined): string => [...(ids ?? [])].sort().join(',');
  return new Map(
    [...perNode].filter(
      ([nodeId, ids]) => !nodeKeysWritten || listKey(previousPerNode.get(nodeId)) !== listKey(ids),
    ),
  );
}

/**
 * The answer to every request read: refused with its reason (by the checks of `applyRequests`, or a
 * migration the planner rejected), else accepted — each carried by the write of version `version`.
 */
function controlResults(
  requests: readonly ControlRequest[],
  refusedEarly: ReadonlyMap<string, Refusal>,
  rejected: PlanOutput['rejected'],
) {
  const refused = new Map(refusedEarly);
  for (const { migration, reason } of rejected) {
    const request = requests.find(
      (r) =>
        r.action === 'migrate' &&
        r.portfolio_id === migration.portfolioId &&
        r.target_node_id === migration.targetNodeId &&
        !refused.has(r.id),
    );
    if (request !== undefined) refused.set(request.id, { request, reason });
  }
  return {
    refused: [...refused.values()],
    answers: (version: number, at: string): ControlResult[] => [
      ...new Map(
        requests.map((r) => {
          const reason = refused.get(r.id)?.reason ?? null;
          const result: ControlResult = {
            _v: 1,
            id: r.id,
            ok: reason === null,
            reason,
            plan_version: version,
            processed_at: at,
          };
          return [r.id, result] as const;
        }),
      ).values(),
    ],
  };
}

/** What the plan write must change in the catalog to turn `before` into `after`. */
function diffCatalog(
  before: ReadonlyMap<string, PortfolioSpec>,
  after: ReadonlyMap<string, PortfolioSpec>,
): { set: PortfolioSpec[]; remove: string[] } {
  const same = (a: PortfolioSpec | undefined, b: PortfolioSpec): boolean =>
    a !== undefined && (a === b || JSON.stringify(a) === JSON.stringify(b));
  if (before === after) return { set: [], remove: [] };
  return {
    set: [...after.values()].filter((spec) => !same(before.get(spec.portfolio_id), spec)),
    remove: [...before.keys()].filter((id) => !after.has(id)),
  };
}

/** What the planner knows of each node. */
function viewsOf(
  nodes: readonly NodeReading[],
  draining: ReadonlyMap<string, boolean>,
  inGrace: boolean,
  defaultCapacity: number,
): NodeView[] {
  // Heartbeats expire while Redis is frozen or down, through no fault of the nodes: right after an
  // outage a node that was alive keeps its portfolios until it has had time to beat again.
  const wasAlive = (n: NodeReading): boolean =>
    n.record?.status === 'alive' || n.record?.status === 'draining';
  return nodes.map((n) => ({
    nodeId: n.nodeId,
    alive: n.liveness.alive || (inGrace && wasAlive(n)),
    draining: draining.get(n.nodeId) ?? n.record?.status === 'draining',
    capacity: n.info?.capacity ?? n.record?.capacity ?? defaultCapacity,
    reportedPortfolios: n.info?.portfolio_ids ?? [],
  }));
}

/**
 * Lost nodes are forgotten once lost longer than the retention, counted from their last beat (or,
 * with none on record, from when this scheduler first saw them lost): with `<host>-<pid>` node ids
 * every restart leaves one behind, read at every tick otherwise.
 */
function pruneLost(
  nodes: readonly NodeReading[],
  records: readonly NodeRecord[],
  lostSince: ReadonlyMap<string, number>,
  now: number,
  retentionMs: number,
): { prune: NodePrune[]; lostSince: Map<string, number>; effects: Effect[] } {
  const prune: NodePrune[] = [];
  const stillLost = new Map<string, number>();
  const effects: Effect[] = [];
  records.forEach((record, i) => {
    const reading = nodes[i];
    if (record.status !== 'lost' || reading === undefined) return;
    const lastBeat = record.last_seen === null ? null : Date.parse(record.last_seen);
    const since = lastBeat ?? lostSince.get(record.node_id) ?? now;
    if (lastBeat === null) stillLost.set(record.node_id, since);
    if (now - since < retentionMs) return;
    prune.push({ nodeId: record.node_id, lastSeenMs: reading.lastSeenMs });
    effects.push(
      log('info', 'Lost node forgotten', {
        nodeId: record.node_id,
        lastSeen: record.last_seen,
        lostForMs: now - since,
        retentionMs,
      }),
    );
  });
  for (const { nodeId } of prune) stillLost.delete(nodeId);
  return { prune, lostSince: stillLost, effects };
}

/** Node lost / back and orphaned / placed: logs and notices (deduplicated by the adapter). */
function announce(
  world: World,
  records: readonly NodeRecord[],
  assignments: Iterable<Assignment>,
  now: number,
  orphanNotifyAfterMs: number,
): Effect[] {
  const effects: Effect[] = [];
  const readings = new Map(world.nodes.map((n) => [n.nodeId, n]));
  for (const record of records) {
    const reading = readings.get(record.node_id);
    const before = reading?.record?.status;
    const lost = record.status === 'lost';
    if (lost === (before === 'lost')) continue;
    const nodeId = record.node_id;
    effects.push(
      lost
        ? log('warn', 'Node lost', {
            nodeId,
            heartbeat: reading?.liveness.reason,
            previousStatus: before ?? null,
          })
        : log('info', 'Node back', { nodeId }),
      notice(
        lost
          ? {
              op: 'raise',
              kind: 'node_lost',
              subject: { nodeId },
              details: { last_seen: record.last_seen },
            }
          : { op: 'resolve', kind: 'node_lost', subject: { nodeId }, details: {} },
      ),
    );
  }
  for (const a of assignments) {
    const subject = { portfolioId: a.portfolio_id };
    if (a.status === 'orphaned') {
      if (now - Date.parse(a.since) < orphanNotifyAfterMs) continue;
      effects.push(
        notice({
          op: 'raise',
          kind: 'portfolio_orphaned',
          subject,
          details: { reason: a.reason, orphaned_since: a.since },
        }),
      );
    } else if (world.assignments.get(a.portfolio_id)?.status === 'orphaned') {
      effects.push(
        notice({
          op: 'resolve',
          kind: 'portfolio_orphaned',
          subject,
          details: { node_id: a.node_id },
        }),
      );
    }
  }
  return effects;
}

/**
 * Reconcile: a node that reports (in its info) that it does not run a portfolio assigned to it
 * for a while is nudged — its assignment key written again — with exponential backoff per
 * (node, portfolio): after `graceMs`, then 2 × graceMs later, then 4 × graceMs later, …
 */
function nudge(
  nodes: readonly NodeReading[],
  plan: Pick<TickPlan, 'assignedTo' | 'get'>,
  before: ReadonlyMap<string, NudgeState>,
  now: number,
  graceMs: number,
): { nudged: Set<string>; nudges: ReadonlyMap<string, NudgeState>; effects: Effect[] } {
  const nudged = new Set<string>();
  const nudges = new Map<string, NudgeState>();
  const effects: Effect[] = [];
  for (const node of nodes) {
    if (!node.liveness.alive || node.info === null) continue;
    const ids = node.info.portfolio_ids;
    // A node runs a handful: a look along its list costs less than a set per node and tick.
    const reported = ids.length > 16 ? new Set(ids) : undefined;
    for (const portfolioId of plan.assignedTo(node.nodeId)) {
      if (reported === undefined ? ids.includes(portfolioId) : reported.has(portfolioId)) continue;
      // Parsed only for the few portfolios a node does not report.
      const assignedAt = plan.get(portfolioId)?.since;
      if (now - (assignedAt === undefined ? now : Date.parse(assignedAt)) < graceMs) continue;
      const key = `${node.nodeId}|${portfolioId}`;
      const state = before.get(key) ?? { count: 0, nextAtMs: 0 };
      if (now < state.nextAtMs) {
        nudges.set(key, state);
        continue;
      }
      const count = state.count + 1;
      nudges.set(key, { count, nextAtMs: now + graceMs * 2 ** count });
      nudged.add(node.nodeId);
      effects.push(
        log('warn', 'Node does not run an assigned portfolio; nudging it', {
          nodeId: node.nodeId,
          portfolioId,
          nudges: count,
        }),
      );
    }
  }
  return { nudged, nudges, effects };
}

function summarize(
  records: readonly NodeRecord[],
  counts: { assigned: number; orphaned: number },
  planVersion: number,
): Decisions['summary'] {
  const nodes: Record<NodeRecordStatus, number> = { alive: 0, lost: 0, draining: 0 };
  for (const r of records) nodes[r.status] += 1;
  return { planVersion, ...counts, nodes };
}
