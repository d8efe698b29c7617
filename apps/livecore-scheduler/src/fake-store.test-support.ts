import type {
  Assignment,
  ControlRequest,
  ControlResult,
  NodeInfo,
  NodeRecord,
  PlanMeta,
  PortfolioSpec,
  TradingHalt,
} from '@ginkgo-live/state-keys';
import type { AuditInput } from '@ginkgo-live/fleet';
import { fleetNodeInfo } from '@ginkgo-live/testing';
import type { SchedulerSettings } from './decide.ts';
import { PlanWriteRefused, type PlanWrite, type SchedulerStore, type World } from './world.ts';

/**
 * The scheduler's store on plain data, for unit tests of the core and the shell: the same fence
 * as the Lua script (leader, version, a forgotten node that beat again), the same all-or-nothing
 * write, and failures injected on demand.
 */
export class FakeStore implements SchedulerStore {
  leader: string | null = null;
  meta: PlanMeta | null = null;
  records = new Map<string, NodeRecord>();
  assignments = new Map<string, Assignment>();
  nodeKeys = new Map<string, string[]>();
  catalog = new Map<string, PortfolioSpec>();
  requests: ControlRequest[] = [];
  results = new Map<string, ControlResult>();
  /** Node id → epoch ms of its last beat. */
  registry = new Map<string, number>();
  /** Nodes whose heartbeat key exists. */
  beating = new Set<string>();
  infos = new Map<string, NodeInfo>();
  halt: TradingHalt | null = null;
  /** The halt record is a lift: as in a fleet that was halted and resumed before. */
  haltLifted = true;
  /** The audit entries the plan writes carried. */
  readonly audit: AuditInput[] = [];
  /** Every write that went through. */
  readonly writes: PlanWrite[] = [];
  /** How many calls of each method fail with a Redis error before they work again. */
  readonly failing = { lead: 0, readWorld: 0, writePlan: 0 };

  constructor(readonly schedulerId = 's1') {}

  /** A node beats at `at`: heartbeat, registry score and info (what it runs, its capacity). */
  beat(nodeId: string, at: number, options: { running?: string[]; capacity?: number } = {}): void {
    this.beating.add(nodeId);
    this.registry.set(nodeId, at);
    this.infos.set(nodeId, nodeInfo(nodeId, at, options.running ?? [], options.capacity ?? 5));
  }

  /** A node dies: its heartbeat expires (its info with it, later), its registry entry stays. */
  kill(nodeId: string): void {
    this.beating.delete(nodeId);
    this.infos.delete(nodeId);
  }

  addSpecs(...ids: string[]): void {
    for (const id of ids) this.catalog.set(id, spec(id));
  }

  request(r: Omit<ControlRequest, '_v' | 'requested_by' | 'requested_at'>): void {
    this.requests.push({ _v: 1, requested_by: 'test', requested_at: iso(0), ...r });
  }

  /** Portfolio → node id, or `orphaned: <reason>`, as in the plan. */
  plan(): Record<string, string> {
    return Object.fromEntries(
      [...this.assignments.values()].map((a) => [
        a.portfolio_id,
        a.node_id ?? `orphaned: ${a.reason ?? ''}`,
      ]),
    );
  }

  async lead(): Promise<boolean> {
    this.maybeFail('lead');
    this.leader ??= this.schedulerId;
    return Promise.resolve(this.leader === this.schedulerId);
  }

  async resign(): Promise<void> {
    if (this.leader === this.schedulerId) this.leader = null;
    return Promise.resolve();
  }

  async readWorld(): Promise<World> {
    this.maybeFail('readWorld');
    const ids = [...new Set([...this.registry.keys(), ...this.records.keys()])].sort();
    return Promise.resolve({
      nodes: ids.map((nodeId) => ({
        nodeId,
        liveness: {
          alive: this.beating.has(nodeId),
          reason: this.beating.has(nodeId) ? 'beating' : 'no heartbeat',
          lastHeartbeatAt: null,
          heartbeatAgeMs: null,
          problem: null,
        },
        info: this.infos.get(nodeId) ?? null,
        record: this.records.get(nodeId) ?? null,
        lastSeenMs: this.registry.get(nodeId) ?? null,
      })),
      assignments: new Map(this.assignments),
      catalog: new Map(this.catalog),
      planToken: this.planToken(),
      meta: this.meta,
      requests: [...this.requests],
      requestCount: this.requests.length,
      problems: [],
      halt: this.halt,
      haltLifted: this.halt === null && this.haltLifted,
    });
  }

  async writePlan(plan: PlanWrite): Promise<number> {
    this.maybeFail('writePlan');
    if (this.leader !== this.schedulerId) throw new PlanWriteRefused('NOT_LEADER');
    const current = this.meta?.version ?? 0;
    if (current !== plan.expectedVersion) throw new PlanWriteRefused(`STALE_VERSION ${current}`);
    for (const { nodeId, lastSeenMs } of plan.prune ?? []) {
      const score = this.registry.get(nodeId);
      if (score !== undefined && (lastSeenMs === null || score > lastSeenMs))
        throw new PlanWriteRefused(`NODE_BACK ${nodeId}`);
    }
    if (plan.partial === undefined) {
      this.records = new Map(plan.nodes.map((n) => [n.node_id, n]));
      this.assignments = new Map(plan.assignments.map((a) => [a.portfolio_id, a]));
    } else {
      for (const n of plan.nodes) this.records.set(n.node_id, n);
      for (const a of plan.assignments) this.assignments.set(a.portfolio_id, a);
      for (const id of plan.partial.removedAssignments) this.assignments.delete(id);
    }
    for (const { nodeId } of plan.prune ?? []) this.records.delete(nodeId);
    for (const [nodeId, ids] of plan.nodeAssignments) this.nodeKeys.set(nodeId, ids);
    for (const r of plan.results) this.results.set(r.id, r);
    this.requests = this.requests.slice(plan.consumedRequests);
    for (const s of plan.catalog?.set ?? []) this.catalog.set(s.portfolio_id, s);
    for (const id of plan.catalog?.remove ?? []) this.catalog.delete(id);
    for (const { nodeId } of plan.prune ?? []) {
      this.registry.delete(nodeId);
      this.nodeKeys.delete(nodeId);
    }
    this.audit.push(...(plan.audit ?? []));
    this.meta = plan.meta;
    this.writes.push(plan);
    // What it wrote is what it holds: the same reading, as the Redis store says after its write.
    this.planToken();
    return Promise.resolve(plan.meta.version);
  }

  private token: { fingerprint: string; token: object } | undefined;

  /**
   * The same object while records, plan, catalog and meta are as this store last handed them out
   * or wrote them; a new one once a test changed them behind the scheduler's back.
   */
  private planToken(): object {
    const fingerprint = JSON.stringify([
      [...this.records],
      [...this.assignments],
      [...this.catalog],
      this.meta,
    ]);
    if (this.token?.fingerprint !== fingerprint) this.token = { fingerprint, token: {} };
    return this.token.token;
  }

  /** How many times the scheduler asked the store to forget what it remembered. */
  forgotten = 0;

  forget(): void {
    this.forgotten += 1;
  }

  async migrateLegacyKeys(): Promise<{ moved: string[]; kept: string[] }> {
    return Promise.resolve({ moved: [], kept: [] });
  }

  private maybeFail(method: keyof FakeStore['failing']): void {
    if (this.failing[method] === 0) return;
    this.failing[method] -= 1;
    throw new Error(`ECONNREFUSED (injected into ${method})`);
  }
}

/** Epoch ms → ISO time, from a fixed origin so that tests read in small numbers. */
export const T0 = Date.parse('2026-01-01T00:00:00.000Z');
export const iso = (ms: number): string => new Date(T0 + ms).toISOString();

export function spec(id: string): PortfolioSpec {
  return {
    _v: 1,
    portfolio_id: id,
    symbols: ['BTCUSDT'],
    strategy: { name: 'ma-crossover', params: {} },
    starting_cash: 1_000,
  };
}

export function nodeInfo(
  nodeId: string,
  at: number,
  running: string[],
  capacity: number,
): NodeInfo {
  return { ...fleetNodeInfo(nodeId, running, new Date(at).toISOString()), capacity };
}

export const DAY_MS = 24 * 60 * 60 * 1_000;

export const SETTINGS: SchedulerSettings = {
  schedulerId: 's1',
  tickMs: 1_000,
  defaultCapacity: 5,
  outageGraceMs: 15_000,
  orphanNotifyAfterMs: 15_000,
  settleMs: 0,
  nodeRetentionMs: DAY_MS,
  rebalancePerMinute: 0,
  catalogFile: undefined,
};
