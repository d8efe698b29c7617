import type { Logger } from '@ginkgo-live/runtime';
import type { Notifier } from '@ginkgo-live/notification-adapter';
import {
  decodePayload,
  type Assignment,
  type ControlRequest,
  type ControlResult,
  type NodeRecord,
  type PortfolioSpec,
} from '@ginkgo-live/state-keys';
import { computePlan, type Migration, type NodeView, type Placement } from './planner.ts';
import { PlanWriteRefused, type SchedulerStore, type World } from './scheduler-store.ts';

export interface SchedulerOptions {
  store: SchedulerStore;
  notifier: Notifier;
  logger: Logger;
  schedulerId: string;
  tickMs: number;
  leaderTtlMs: number;
  defaultCapacity: number;
  /** After a Redis outage, how long nodes have to beat again before they count as lost. */
  outageGraceMs: number;
  /** A portfolio orphaned at least this long is notified (a fleet still starting is no alarm). */
  orphanNotifyAfterMs: number;
  /** Specs from the catalog file: loaded at start, and again when the catalog vanished. */
  catalogFile: PortfolioSpec[] | undefined;
  /** When the process started (epoch ms), for the recovery measurement. */
  processStartMs: number;
}

/** What the scheduler is doing, for metrics and health. */
export interface SchedulerStatus {
  role: 'starting' | 'leader' | 'standby';
  planVersion: number;
  consecutiveFailures: number;
  totalFailures: number;
  lastTickMs: number;
  /** Ticks run since start, whatever their outcome. */
  ticks: number;
  /** Process start → plan loaded → first tick done, once measured. */
  recovery: { planLoadedMs: number; firstTickMs: number } | null;
  assigned: number;
  orphaned: number;
  nodes: Record<NodeRecord['status'], number>;
}

type Safe<T> = { ok: true; value: T } | { ok: false };

/**
 * The LiveCore scheduler loop. Each tick (never overlapping): lead or stand by; read the world;
 * compute the plan; write it atomically, fenced by leadership and version, before any node acts.
 *
 * FR-037: every Redis call is caught, logged at error level with the consecutive-failure count, and
 * yields a value flagged as failed. A tick that saw a failed read writes nothing and moves nothing —
 * an unreadable node list is unknown, not empty — and the loop goes on.
 */
export class Scheduler {
  readonly status: SchedulerStatus = {
    role: 'starting',
    planVersion: 0,
    consecutiveFailures: 0,
    totalFailures: 0,
    lastTickMs: 0,
    ticks: 0,
    recovery: null,
    assigned: 0,
    orphaned: 0,
    nodes: { alive: 0, lost: 0, draining: 0 },
  };
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private current: Promise<void> | undefined;
  private planLoadedAt: number | undefined;
  private wroteAllNodeKeys = false;
  /** When Redis became reachable again after failed ticks. */
  private outageEndedAt: number | undefined;
  /** Nudges sent per `node|portfolio`, with when the next one is allowed (backoff). */
  private readonly nudges = new Map<string, { count: number; nextAtMs: number }>();
  /** A non-empty catalog was seen since start: an empty one later means it was lost. */
  private catalogSeen = false;
  /**
   * Whether `catalog_missing` may be firing: true after this scheduler raised it, and at start (a
   * leader that died may have raised it), so the first sight of a catalog resolves it.
   */
  private catalogMissingMayFire = true;
  private readonly log: Logger;

  constructor(private readonly options: SchedulerOptions) {
    this.log = options.logger.child({ component: 'scheduler' });
  }

  /** Loads the catalog file, then runs the first tick at once. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const migrated = await this.safely('carry over keys from before the hash tags', () =>
      this.options.store.migrateLegacyKeys(),
    );
    if (migrated.ok && migrated.value.moved.length > 0)
      this.log.warn('Keys from before the hash tags renamed', { moved: migrated.value.moved });
    if (migrated.ok && migrated.value.kept.length > 0)
      this.log.error('Keys from before the hash tags left in place: their new names exist', {
        kept: migrated.value.kept,
      });
    if (this.options.catalogFile !== undefined) {
      const loaded = await this.safely('load catalog file', () =>
        this.options.store.loadCatalog(this.options.catalogFile ?? []),
      );
      if (loaded.ok)
        this.log.info('Catalog file loaded', { portfolios: this.options.catalogFile.length });
    }
    await this.loop();
  }

  /** Stops after the tick in progress and gives up leadership. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.current;
    if (this.status.role === 'leader')
      await this.safely('resign', () => this.options.store.resign());
  }

  private async loop(): Promise<void> {
    const started = performance.now();
    this.current = this.tick().catch((err: unknown) => {
      this.log.error('Tick failed unexpectedly; the loop goes on', { err });
    });
    await this.current;
    this.current = undefined;
    this.status.lastTickMs = Math.round(performance.now() - started);
    this.status.ticks += 1;
    this.log.debug('Tick done', {
      tick: this.status.ticks,
      ms: this.status.lastTickMs,
      role: this.status.role,
      failed: this.status.consecutiveFailures > 0,
    });
    if (this.running) this.timer = setTimeout(() => void this.loop(), this.options.tickMs);
  }

  /** FR-037: one Redis call, caught, logged with the consecutive count, flagged when it failed. */
  private async safely<T>(what: string, call: () => Promise<T>): Promise<Safe<T>> {
    try {
      const value = await call();
      return { ok: true, value };
    } catch (err) {
      this.status.consecutiveFailures += 1;
      this.status.totalFailures += 1;
      this.log.error('Redis operation failed; this tick changes nothing', {
        operation: what,
        consecutiveFailures: this.status.consecutiveFailures,
        totalFailures: this.status.totalFailures,
        err,
      });
      return { ok: false };
    }
  }

  private async tick(): Promise<void> {
    const { store } = this.options;
    const lead = await this.safely('leader lock', () => store.lead(this.options.leaderTtlMs));
    if (!lead.ok) return;
    if (!lead.value) {
      if (this.status.role !== 'standby') this.log.info('Standing by: another scheduler leads');
      this.status.role = 'standby';
      return;
    }
    if (this.status.role !== 'leader')
      this.log.info('Leading the plan', { schedulerId: this.options.schedulerId });
    this.status.role = 'leader';
    const world = await this.safely('read world', () => store.readWorld());
    if (!world.ok) return;
    if (this.status.consecutiveFailures > 0) {
      this.log.info('Redis reachable again; planning resumes', {
        afterFailures: this.status.consecutiveFailures,
        graceMs: this.options.outageGraceMs,
      });
      this.status.consecutiveFailures = 0;
      this.outageEndedAt = Date.now();
    }
    this.planLoadedAt ??= Date.now();
    for (const problem of world.value.problems)
      this.log.error('Malformed payload in Redis; skipped', { ...problem });
    if (await this.catalogVanished(world.value)) return;
    await this.plan(world.value);
    if (this.status.recovery === null) {
      const now = Date.now();
      this.status.recovery = {
        planLoadedMs: this.planLoadedAt - this.options.processStartMs,
        firstTickMs: now - this.options.processStartMs,
      };
      this.log.info('Recovered: plan loaded and first tick done', {
        planVersion: this.status.planVersion,
        planLoadedMs: this.status.recovery.planLoadedMs,
        recoveryMs: this.status.recovery.firstTickMs,
      });
    }
  }

  /**
   * An empty catalog after one was seen (or while the plan holds portfolios) was lost — Redis
   * restarted empty, or someone deleted it: unknown, not "every portfolio removed". Say so loudly
   * and reload the catalog file. A fresh Redis with no catalog is seeded from the file quietly.
   */
  private async catalogVanished(world: World): Promise<boolean> {
    if (world.catalog.size > 0) {
      this.catalogSeen = true;
      this.catalogBack(world.catalog.size);
      return false;
    }
    if (world.assignments.size === 0 && !this.catalogSeen) {
      // Nothing known yet: a fresh Redis. Seed it from the file, if there is one.
      if (this.options.catalogFile === undefined || this.options.catalogFile.length === 0)
        return false;
      this.log.info('Catalog empty; loading the catalog file', {
        portfolios: this.options.catalogFile.length,
      });
      await this.safely('load catalog file', () =>
        this.options.store.loadCatalog(this.options.catalogFile ?? []),
      );
      return true;
    }
    this.log.error('Portfolio catalog vanished; nothing is unassigned', {
      planPortfolios: world.assignments.size,
      reloadFrom: this.options.catalogFile === undefined ? null : 'catalog file',
    });
    this.catalogMissingMayFire = true;
    this.options.notifier.notify({
      kind: 'catalog_missing',
      level: 'critical',
      title: 'Portfolio catalog missing',
      message: `The catalog is gone from Redis (the plan holds ${world.assignments.size} portfolios); nothing was unassigned.${this.options.catalogFile === undefined ? ' No catalog file was given: reload it.' : ' Reloading the catalog file.'}`,
      details: { plan_portfolios: world.assignments.size },
    });
    if (this.options.catalogFile !== undefined) {
      await this.safely('reload catalog file', () =>
        this.options.store.loadCatalog(this.options.catalogFile ?? []),
      );
    }
    return true;
  }

  /** The catalog is in Redis: a `catalog_missing` still firing gets its one resolved notice. */
  private catalogBack(portfolios: number): void {
    if (!this.catalogMissingMayFire) return;
    this.catalogMissingMayFire = false;
    this.options.notifier.resolve({
      group: 'catalog_missing',
      title: 'Portfolio catalog back',
      message: `The catalog is in Redis again (${portfolios} portfolios); planning goes on.`,
      details: { portfolios },
      kinds: [{ kind: 'catalog_missing', level: 'critical' }],
    });
  }

  private async plan(world: World): Promise<void> {
    const now = new Date().toISOString();
    const catalog = new Map(world.catalog);
    const { draining, migrations, results } = await this.applyRequests(world, catalog, now);
    // Heartbeats expire while Redis is frozen or down, through no fault of the nodes: right after an
    // outage a node that was alive keeps its portfolios until it has had time to beat again.
    const inGrace =
      this.outageEndedAt !== undefined &&
      Date.now() - this.outageEndedAt < this.options.outageGraceMs;
    const views: NodeView[] = world.nodes.map((n) => ({
      nodeId: n.nodeId,
      alive: n.liveness.alive || (inGrace && n.record?.status === 'alive'),
      draining: draining.get(n.nodeId) ?? n.record?.status === 'draining',
      capacity: n.info?.capacity ?? n.record?.capacity ?? this.options.defaultCapacity,
      reportedPortfolios: n.info?.portfolio_ids ?? [],
    }));
    const previous = new Map<string, Placement>(
      [...world.assignments].map(([id, a]) => [
        id,
        a.status === 'assigned' && a.node_id !== null
          ? { status: 'assigned', nodeId: a.node_id }
          : { status: 'orphaned', reason: a.reason ?? '' },
      ]),
    );
    const out = computePlan({
      nodes: views,
      portfolios: [...catalog.keys()],
      previous,
      migrations,
    });
    for (const { migration, reason } of out.rejected) {
      const request = world.requests.find(
        (r) =>
          r.action === 'migrate' &&
          r.portfolio_id === migration.portfolioId &&
          r.target_node_id === migration.targetNodeId &&
          !results.has(r.id),
      );
      if (request !== undefined)
        results.set(request.id, this.result(request.id, false, reason, now));
    }
    for (const r of world.requests)
      if (!results.has(r.id)) results.set(r.id, this.result(r.id, true, null, now));

    const version = world.meta?.version ?? 0;
    const assignments: Assignment[] = [...out.placements].map(([portfolioId, p]) => {
      const before = world.assignments.get(portfolioId);
      const same =
        before !== undefined &&
        (p.status === 'assigned'
          ? before.node_id === p.nodeId
          : before.status === 'orphaned' && before.reason === p.reason);
      return {
        _v: 1,
        portfolio_id: portfolioId,
        status: p.status,
        node_id: p.status === 'assigned' ? p.nodeId : null,
        reason: p.status === 'orphaned' ? p.reason : null,
        plan_version: same ? before.plan_version : version + 1,
        since: same ? before.since : now,
      };
    });
    const perNode = new Map<string, string[]>(views.map((v) => [v.nodeId, []]));
    for (const a of assignments)
      if (a.node_id !== null) perNode.get(a.node_id)?.push(a.portfolio_id);
    const records: NodeRecord[] = world.nodes.map((n, i) => {
      const view = views[i];
      // In the outage grace a node that was alive stays alive in its record too: a heartbeat that
      // expired while Redis was down is no news of the node (no "Node lost", no plan write).
      const status: NodeRecord['status'] =
        view?.alive !== true ? 'lost' : view?.draining === true ? 'draining' : 'alive';
      return {
        _v: 1,
        node_id: n.nodeId,
        status,
        capacity: view?.capacity ?? this.options.defaultCapacity,
        assigned_count: perNode.get(n.nodeId)?.length ?? 0,
        last_seen:
          n.lastSeenMs === null
            ? (n.record?.last_seen ?? null)
            : new Date(n.lastSeenMs).toISOString(),
      };
    });
    this.announce(world, records, assignments);
    this.updateStatus(records, assignments, version);

    const previousPerNode = new Map<string, string[]>();
    for (const [id, a] of world.assignments) {
      if (a.node_id === null) continue;
      const ids = previousPerNode.get(a.node_id);
      if (ids === undefined) previousPerNode.set(a.node_id, [id]);
      else ids.push(id);
    }
    const key = (ids: readonly string[] | undefined): string => [...(ids ?? [])].sort().join(',');
    // After a (re)start every node key is written once, then only the ones whose list changed.
    const changedNodes = new Map(
      [...perNode].filter(
        ([nodeId, ids]) => !this.wroteAllNodeKeys || key(previousPerNode.get(nodeId)) !== key(ids),
      ),
    );
    // Node reports are stale right after an outage (they could not write them): no nudges then.
    const nudged = inGrace ? new Set<string>() : this.nudge(world, assignments, perNode);
    for (const nodeId of nudged) changedNodes.set(nodeId, perNode.get(nodeId) ?? []);
    const readings = new Map(world.nodes.map((n) => [n.nodeId, n]));
    const recordChanges = records
      .filter((r) => {
        const before = readings.get(r.node_id)?.record;
        return (
          before?.status !== r.status ||
          before.capacity !== r.capacity ||
          before.assigned_count !== r.assigned_count
        );
      })
      .map((r) => `${r.node_id}:${r.status}`);
    const reasons = [
      ...(world.meta === null ? ['no plan yet'] : []),
      ...(nudged.size > 0 ? ['nudges'] : []),
      ...(out.moves.length > 0 ? [`${out.moves.length} moves`] : []),
      ...(world.requestCount > 0 ? [`${world.requestCount} requests`] : []),
      // Rewriting every node key after a restart rides along with a real change; alone it is none.
      ...(changedNodes.size > 0 && this.wroteAllNodeKeys ? ['node assignments'] : []),
      ...(recordChanges.length > 0 ? [`nodes ${recordChanges.join(' ')}`] : []),
    ];
    const planChanged = reasons.length > 0;
    if (!planChanged) return;
    const written = await this.safely('write plan', async () => {
      try {
        return await this.options.store.writePlan({
          expectedVersion: version,
          meta: { _v: 1, version: version + 1, updated_at: now, leader: this.options.schedulerId },
          nodes: records,
          assignments,
          nodeAssignments: changedNodes,
          results: [...results.values()],
          consumedRequests: world.requestCount,
        });
      } catch (err) {
        if (err instanceof PlanWriteRefused) {
          this.log.warn('Plan write refused; re-reading next tick', { reason: err.message });
          return null;
        }
        throw err;
      }
    });
    if (!written.ok || written.value === null) return;
    this.wroteAllNodeKeys = true;
    this.status.planVersion = written.value;
    this.log.info('Plan written', { planVersion: written.value, reasons });
    for (const move of out.moves)
      this.log.info('Portfolio placed', { ...move, planVersion: written.value });
  }

  /**
   * Reconcile: a node that reports (in its info) that it does not run a portfolio assigned to it
   * for a while is nudged — its assignment key written again — with exponential backoff per
   * (node, portfolio), not every tick.
   */
  private nudge(
    world: World,
    assignments: Assignment[],
    perNode: Map<string, string[]>,
  ): Set<string> {
    const now = Date.now();
    const graceMs = 3 * this.options.tickMs;
    const nudged = new Set<string>();
    const since = new Map(assignments.map((a) => [a.portfolio_id, Date.parse(a.since)]));
    const seen = new Set<string>();
    for (const node of world.nodes) {
      if (!node.liveness.alive || node.info === null) continue;
      const reported = new Set(node.info.portfolio_ids);
      for (const portfolioId of perNode.get(node.nodeId) ?? []) {
        const key = `${node.nodeId}|${portfolioId}`;
        if (reported.has(portfolioId) || now - (since.get(portfolioId) ?? now) < graceMs) continue;
        seen.add(key);
        const state = this.nudges.get(key) ?? { count: 0, nextAtMs: 0 };
        if (now < state.nextAtMs) continue;
        state.count += 1;
        state.nextAtMs = now + graceMs * 2 ** state.count;
        this.nudges.set(key, state);
        nudged.add(node.nodeId);
        this.log.warn('Node does not run an assigned portfolio; nudging it', {
          nodeId: node.nodeId,
          portfolioId,
          nudges: state.count,
        });
      }
    }
    for (const key of this.nudges.keys()) if (!seen.has(key)) this.nudges.delete(key);
    return nudged;
  }

  /** Control requests: drain/undrain flags, migrations for the planner, catalog changes applied now. */
  private async applyRequests(world: World, catalog: Map<string, PortfolioSpec>, now: string) {
    const draining = new Map<string, boolean>();
    const migrations: Migration[] = [];
    const results = new Map<string, ControlResult>();
    const known = new Set(world.nodes.map((n) => n.nodeId));
    const refuse = (r: ControlRequest, reason: string): void => {
      results.set(r.id, this.result(r.id, false, reason, now));
      this.log.warn('Control request refused', { requestId: r.id, action: r.action, reason });
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
          if (!spec.ok) {
            refuse(r, `invalid spec: ${spec.error.problem}`);
            break;
          }
          const added = await this.safely('catalog add', () =>
            this.options.store.changeCatalog({ add: spec.value }),
          );
          if (added.ok) catalog.set(spec.value.portfolio_id, spec.value);
          break;
        }
        case 'catalog_remove':
          if (r.portfolio_id === undefined || !catalog.has(r.portfolio_id)) {
            refuse(r, `unknown portfolio ${r.portfolio_id ?? '(none given)'}`);
            break;
          }
          if (
            (
              await this.safely('catalog remove', () =>
                this.options.store.changeCatalog({ remove: r.portfolio_id }),
              )
            ).ok
          ) {
            catalog.delete(r.portfolio_id);
          }
          break;
      }
    }
    return { draining, migrations, results };
  }

  private result(id: string, ok: boolean, reason: string | null, now: string): ControlResult {
    return { _v: 1, id, ok, reason, plan_version: null, processed_at: now };
  }

  /** Node lost / back and orphaned / placed notifications (deduplicated by the adapter). */
  private announce(world: World, records: NodeRecord[], assignments: Assignment[]): void {
    const { notifier } = this.options;
    const readings = new Map(world.nodes.map((n) => [n.nodeId, n]));
    for (const record of records) {
      const reading = readings.get(record.node_id);
      const before = reading?.record?.status;
      if (record.status === 'lost' && before !== 'lost') {
        this.log.warn('Node lost', {
          nodeId: record.node_id,
          heartbeat: reading?.liveness.reason,
          previousStatus: before ?? null,
        });
        notifier.notify({
          kind: 'node_lost',
          level: 'critical',
          group: 'node',
          subject: { nodeId: record.node_id },
          title: `Node ${record.node_id} lost`,
          message: `No heartbeat from ${record.node_id}; its portfolios are moved to other nodes.`,
          details: { node_id: record.node_id, last_seen: record.last_seen },
        });
      } else if (record.status !== 'lost' && before === 'lost') {
        this.log.info('Node back', { nodeId: record.node_id });
        notifier.resolve({
          group: 'node',
          subject: { nodeId: record.node_id },
          title: `Node ${record.node_id} back`,
          message: `${record.node_id} is beating again.`,
          details: { node_id: record.node_id },
          kinds: [{ kind: 'node_lost', level: 'critical' }],
        });
      }
    }
    for (const a of assignments) {
      const before = world.assignments.get(a.portfolio_id);
      if (a.status === 'orphaned') {
        if (Date.now() - Date.parse(a.since) < this.options.orphanNotifyAfterMs) continue;
        notifier.notify({
          kind: 'portfolio_orphaned',
          level: 'critical',
          group: 'orphan',
          subject: { portfolioId: a.portfolio_id },
          title: `Portfolio ${a.portfolio_id} has no node`,
          message: `${a.portfolio_id} runs nowhere: ${a.reason ?? 'no reason'}.`,
          details: { portfolio_id: a.portfolio_id, reason: a.reason, orphaned_since: a.since },
        });
      } else if (before?.status === 'orphaned') {
        notifier.resolve({
          group: 'orphan',
          subject: { portfolioId: a.portfolio_id },
          title: `Portfolio ${a.portfolio_id} placed`,
          message: `${a.portfolio_id} runs on ${a.node_id ?? '?'} again.`,
          details: { portfolio_id: a.portfolio_id, node_id: a.node_id },
          kinds: [{ kind: 'portfolio_orphaned', level: 'critical' }],
        });
      }
    }
  }

  private updateStatus(records: NodeRecord[], assignments: Assignment[], version: number): void {
    this.status.planVersion = version;
    this.status.assigned = assignments.filter((a) => a.status === 'assigned').length;
    this.status.orphaned = assignments.length - this.status.assigned;
    this.status.nodes = { alive: 0, lost: 0, draining: 0 };
    for (const r of records) this.status.nodes[r.status] += 1;
  }
}
