import { assertValidId } from './ids.ts';

/**
 * Builders of every Redis key and BullMQ queue name in ginkgo-live. No other code spells a key.
 * The table in this package's README says, for each, its type, writer, readers, TTL and payload.
 */
/** What a notification is about: a node, a portfolio, both or neither. */
export interface NotificationSubject {
  nodeId: string | null;
  portfolioId: string | null;
}

const subjectPart = (id: string | null, what: string): string =>
  id === null ? '-' : assertValidId(what, id);

const KIND = /^[a-z][a-z0-9_]{0,63}$/;
function assertKind(kind: string): string {
  if (!KIND.test(kind)) throw new RangeError(`Invalid notification kind "${kind}"`);
  return kind;
}

export interface StateKeys {
  /** The global prefix in front of every key (`REDIS_KEY_PREFIX`), `''` by default. */
  readonly prefix: string;
  /** `heartbeat:node:{nodeId}` — STRING `Heartbeat`, TTL = heartbeat TTL. Its existence is liveness. */
  heartbeat(nodeId: string): string;
  /** `execution_node:{nodeId}:info` — STRING `NodeInfo`, TTL = node info TTL; deleted on clean stop. */
  nodeInfo(nodeId: string): string;
  /** `portfolio:{portfolioId}:state` — STRING `PortfolioState`, TTL = portfolio state TTL. */
  portfolioState(portfolioId: string): string;
  /** `execution_node_registry` — ZSET nodeId → epoch ms of its last beat; lets readers list nodes without KEYS. */
  nodeRegistry(): string;
  /** `execution_nodes` — HASH nodeId → `NodeRecord`, the scheduler's view of every node. */
  executionNodes(): string;
  /** `portfolio_assignments` — HASH portfolioId → `Assignment`, the scheduler's plan. */
  portfolioAssignments(): string;
  /** `execution_node:{nodeId}:assignment` — STRING `NodeAssignment`, derived from the plan in the same write. */
  nodeAssignment(nodeId: string): string;
  /** `scheduler:plan_meta` — STRING `PlanMeta`: plan version, time and leader of the last write. */
  planMeta(): string;
  /** `scheduler:leader` — STRING scheduler id, with a TTL: the leader lock. */
  schedulerLeader(): string;
  /** `portfolio_catalog` — HASH portfolioId → `PortfolioSpec`: every portfolio that should run. */
  portfolioCatalog(): string;
  /** `portfolio:{portfolioId}:book` — STRING `PortfolioBook`: cash, positions, strategy memory; no TTL. */
  portfolioBook(portfolioId: string): string;
  /** `portfolio:{portfolioId}:lease` — STRING nodeId, TTL = heartbeat TTL: who may run the portfolio. */
  portfolioLease(portfolioId: string): string;
  /** `portfolio_queue_refusals` — HASH portfolioId → events refused because the queue was full. */
  queueRefusals(): string;
  /** `notify:cooldown:{kind}:{node}:{portfolio}:{level}` — STRING, TTL = the level's cooldown. */
  notificationCooldown(kind: string, subject: NotificationSubject, level: string): string;
  /** `notify:active:{group}:{node}:{portfolio}` — HASH `kind|level` → epoch ms: conditions firing. */
  notificationActive(group: string, subject: NotificationSubject): string;
  /** `notifications:history` — LIST of `NotificationRecord`, newest first, capped. */
  notificationHistory(): string;
  /** BullMQ queue name of the notifications: `notifications`. */
  notificationsQueue(): string;
  /** `scheduler:control` — LIST of `ControlRequest`, oldest at the head; the leader consumes it. */
  controlRequests(): string;
  /** `scheduler:control_results` — HASH request id → `ControlResult`, for requesters to read back. */
  controlResults(): string;
  /** BullMQ prefix of every queue: `{prefix}bull`. */
  queuePrefix(): string;
  /** BullMQ queue name of a portfolio's event queue: `portfolio-{portfolioId}` (BullMQ forbids `:`). */
  portfolioQueue(portfolioId: string): string;
}

/** Builds the key set for a global prefix (`''` by default). */
export function createStateKeys(prefix = ''): StateKeys {
  const k = (name: string): string => `${prefix}${name}`;
  return {
    prefix,
    heartbeat: (nodeId) => k(`heartbeat:node:${assertValidId('node id', nodeId)}`),
    nodeInfo: (nodeId) => k(`execution_node:${assertValidId('node id', nodeId)}:info`),
    portfolioState: (portfolioId) =>
      k(`portfolio:${assertValidId('portfolio id', portfolioId)}:state`),
    nodeRegistry: () => k('execution_node_registry'),
    executionNodes: () => k('execution_nodes'),
    portfolioAssignments: () => k('portfolio_assignments'),
    nodeAssignment: (nodeId) => k(`execution_node:${assertValidId('node id', nodeId)}:assignment`),
    planMeta: () => k('scheduler:plan_meta'),
    schedulerLeader: () => k('scheduler:leader'),
    portfolioCatalog: () => k('portfolio_catalog'),
    portfolioBook: (portfolioId) =>
      k(`portfolio:${assertValidId('portfolio id', portfolioId)}:book`),
    portfolioLease: (portfolioId) =>
      k(`portfolio:${assertValidId('portfolio id', portfolioId)}:lease`),
    queueRefusals: () => k('portfolio_queue_refusals'),
    notificationCooldown: (kind, subject, level) =>
      k(
        `notify:cooldown:${assertKind(kind)}:${subjectPart(subject.nodeId, 'node id')}:${subjectPart(subject.portfolioId, 'portfolio id')}:${assertKind(level)}`,
      ),
    notificationActive: (group, subject) =>
      k(
        `notify:active:${assertKind(group)}:${subjectPart(subject.nodeId, 'node id')}:${subjectPart(subject.portfolioId, 'portfolio id')}`,
      ),
    notificationHistory: () => k('notifications:history'),
    notificationsQueue: () => 'notifications',
    controlRequests: () => k('scheduler:control'),
    controlResults: () => k('scheduler:control_results'),
    queuePrefix: () => k('bull'),
    portfolioQueue: (portfolioId) => `portfolio-${assertValidId('portfolio id', portfolioId)}`,
  };
}
