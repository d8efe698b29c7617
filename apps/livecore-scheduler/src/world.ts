import type { AuditInput } from '@ginkgo-live/fleet';
import type {
  Assignment,
  ControlRequest,
  ControlResult,
  Liveness,
  NodeInfo,
  NodeRecord,
  PayloadProblem,
  PlanMeta,
  PortfolioSpec,
  TradingHalt,
} from '@ginkgo-live/state-keys';

/**
 * The plain data between the scheduler's core (`decide.ts`) and its store: what a tick reads and
 * what one plan write contains. No Redis here, so the core and its tests need none.
 */

/** What placement needs of a node's info: how many portfolios it takes, and which it runs. */
export type PlacementInfo = Pick<NodeInfo, 'capacity' | 'portfolio_ids'>;

/** One node as read from Redis. */
export interface NodeReading {
  nodeId: string;
  liveness: Liveness;
  /** The placement fields of its info (the rest is not read), null when absent or malformed. */
  info: PlacementInfo | null;
  record: NodeRecord | null;
  /** Last beat seen in the registry (epoch ms), if any. */
  lastSeenMs: number | null;
}

/** Everything a tick reads, in two round trips. */
export interface World {
  nodes: NodeReading[];
  assignments: Map<string, Assignment>;
  catalog: Map<string, PortfolioSpec>;
  meta: PlanMeta | null;
  requests: ControlRequest[];
  /** Requests read (valid or not), to be consumed by the plan write. */
  requestCount: number;
  /** Malformed payloads met on the way: reported, not fatal. */
  problems: PayloadProblem[];
  /**
   * The fleet-wide halt (`{scheduler}:trading_halt`), null when trading; a halt whose payload is
   * unreadable is still a halt (its key exists).
   */
  halt: TradingHalt | null;
  /**
   * The halt record is a lift (state `lifted`): the only reading that says a halt is over. A
   * missing key says nothing — Redis may have come back empty, and nodes that saw the halt keep it.
   */
  haltLifted: boolean;
  /**
   * Names the store's reading of the plan: the same object while the plan, records and catalog it
   * hands out are exactly what Redis holds as it last read or wrote them, a new one after it read
   * them again (a restart, a rollback, another writer, the periodic full read). Undefined when the
   * store cannot say (a malformed entry was skipped): the plan is then made, and written, whole.
   */
  planToken?: object;
}

/** A lost node forgotten by the plan write, with the registry score it was judged on. */
export interface NodePrune {
  nodeId: string;
  /**
   * Its registry score as read (null: it had no entry). The write is refused when the registry
   * holds a newer one: the node beat again between the read and the write.
   */
  lastSeenMs: number | null;
}

/** What one plan write contains: all of it or nothing, fenced by leadership and version. */
export interface PlanWrite {
  expectedVersion: number;
  meta: PlanMeta;
  /** Node records to set: all of them, or with `partial` only the changed ones. */
  nodes: NodeRecord[];
  /** Plan entries to set: all of them, or with `partial` only the changed ones. */
  assignments: Assignment[];
  /**
   * Present when `nodes` and `assignments` are only what changed from the plan read (the store's
   * `planToken` said it was Redis's, whole): the rest stays as it is, and these entries go.
   * Absent, the two hashes are replaced by `nodes` and `assignments`.
   */
  partial?: { removedAssignments: string[] };
  /** Node id → its portfolio ids (the keys nodes read). */
  nodeAssignments: Map<string, string[]>;
  results: ControlResult[];
  consumedRequests: number;
  /** Catalog entries to set (added or replaced) and to remove, in the same write. */
  catalog?: { set: PortfolioSpec[]; remove: string[] };
  /** Lost nodes to forget: registry entry and assignment key (their record is left out of `nodes`). */
  prune?: NodePrune[];
  /** One audit entry per request consumed, with its outcome: in the write, so none without it. */
  audit?: AuditInput[];
}

/**
 * What the scheduler needs of its store. Every method rejects when Redis fails; the scheduler
 * turns that into a flagged failure (FR-037) and a tick that changes nothing.
 */
export interface SchedulerStore {
  /** Takes or renews the leader lock; true while this scheduler leads. */
  lead(ttlMs: number): Promise<boolean>;
  /** Gives the lock up, if this scheduler holds it. */
  resign(): Promise<void>;
  readWorld(): Promise<World>;
  /**
   * Drops whatever the store remembers between reads: the next `readWorld` reads everything, as
   * after a restart. Called when this scheduler becomes the leader.
   */
  forget(): void;
  /**
   * Writes the plan, catalog changes, results and prunes atomically, fenced by leadership and
   * version; returns the new version. Rejects with `PlanWriteRefused` when the fence says no.
   */
  writePlan(plan: PlanWrite): Promise<number>;
  /** Carries keys over from their names before the hash tags; says what moved and what stayed. */
  migrateLegacyKeys(): Promise<{ moved: string[]; kept: string[] }>;
}

/** Why a plan write was refused: another leader, a newer plan, or a forgotten node beating again. */
export class PlanWriteRefused extends Error {
  override readonly name = 'PlanWriteRefused';
}
