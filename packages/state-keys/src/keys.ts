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
  /** `heartbeat:node:{<nodeId>}` — STRING `Heartbeat`, TTL = heartbeat TTL. Its existence is liveness. */
  heartbeat(nodeId: string): string;
  /** `execution_node:{<nodeId>}:info` — STRING `NodeInfo`, TTL = node info TTL; deleted on clean stop. */
  nodeInfo(nodeId: string): string;
  /** `portfolio:{<portfolioId>}:state` — STRING `PortfolioState`, TTL = portfolio state TTL. */
  portfolioState(portfolioId: string): string;
  /** `{scheduler}:execution_node_registry` — ZSET nodeId → epoch ms of its last beat; lists nodes without KEYS. */
  nodeRegistry(): string;
  /** `{scheduler}:execution_nodes` — HASH nodeId → `NodeRecord`, the scheduler's view of every node. */
  executionNodes(): string;
  /** `{scheduler}:portfolio_assignments` — HASH portfolioId → `Assignment`, the scheduler's plan. */
  portfolioAssignments(): string;
  /** `{scheduler}:execution_node:<nodeId>:assignment` — STRING `NodeAssignment`, derived from the plan in the same write. */
  nodeAssignment(nodeId: string): string;
  /** `{scheduler}:plan_meta` — STRING `PlanMeta`: plan version, time and leader of the last write. */
  planMeta(): string;
  /** `{scheduler}:leader` — STRING scheduler id, with a TTL: the leader lock. */
  schedulerLeader(): string;
  /** `{scheduler}:portfolio_catalog` — HASH portfolioId → `PortfolioSpec`: every portfolio that should run. */
  portfolioCatalog(): string;
  /** `portfolio:{<portfolioId>}:book` — STRING `PortfolioBook`: cash, positions, strategy memory; no TTL. */
  portfolioBook(portfolioId: string): string;
  /**
   * `portfolio:{<portfolioId>}:lease` — STRING lease token (`<nodeId>/<process instance>/<epoch>`),
   * TTL = heartbeat TTL: who may run the portfolio.
   */
  portfolioLease(portfolioId: string): string;
  /**
   * `portfolio:{<portfolioId>}:fence` — HASH `token`, `version`: the fence of the book's last write,
   * written with it in one script; no TTL. A write is refused unless it continues this fence.
   */
  portfolioFence(portfolioId: string): string;
  /**
   * `portfolio:{<portfolioId>}:nobook` — HASH `first`, `last` (Redis TIME, ms): since when, and when
   * last, an execution node's acquire found the portfolio with no fence and no book; TTL a few
   * fresh-start windows. Nobody starts it fresh until `first` is a window old.
   */
  portfolioNoBook(portfolioId: string): string;
  /**
   * `portfolio:{<portfolioId>}:claims` — HASH `v:<lease token>` → book version, `b:<lease token>` →
   * book payload: books held in memory by holders whose lease expired while Redis lost lease and
   * fence, as candidates; the highest version is loaded once the no-book marker stood a fresh-start
   * window. TTL several windows, refreshed by each claim; deleted when a fence is written.
   */
  portfolioClaims(portfolioId: string): string;
  /** `portfolio_queue_refusals` — HASH portfolioId → events refused because the queue was full. */
  queueRefusals(): string;
  /** `notify:cooldown:<kind>:{<nodeId>:<portfolioId>}:<level>` — STRING, TTL = the level's cooldown. */
  notificationCooldown(kind: string, subject: NotificationSubject, level: string): string;
  /** `notify:active:<group>:{<nodeId>:<portfolioId>}` — HASH `kind|level` → epoch ms: conditions firing. */
  notificationActive(group: string, subject: NotificationSubject): string;
  /** `notifications:history` — LIST of `NotificationRecord`, newest first, capped. */
  notificationHistory(): string;
  /** `notify:silences` — HASH silence id → `Silence`. */
  notificationSilences(): string;
  /**
   * `notify:outage_reporter` — STRING owner (app, instance, process), TTL = the reporter lease TTL:
   * the one process that tells the webhooks directly when Redis goes away, so an outage is one notice.
   */
  notificationOutageReporter(): string;
  /**
   * `notify:outage_told` — STRING `<since ms>-<until ms>`, TTL 2 min: the last outage its reporter
   * told, written once Redis is back, so that nobody else tells it late.
   */
  notificationOutageTold(): string;
  /** `notify:outage_late` — STRING owner, TTL 1 min: who tells an outage nobody told (`SET NX`). */
  notificationOutageLate(): string;
  /** BullMQ queue name of the notifications: `{notifications}`. */
  notificationsQueue(): string;
  /** `{scheduler}:control` — LIST of `ControlRequest`, oldest at the head; the leader consumes it. */
  controlRequests(): string;
  /** `{scheduler}:control_results` — HASH request id → `ControlResult`, for requesters to read back. */
  controlResults(): string;
  /**
   * `{scheduler}:trading_halt` — STRING `TradingHalt`, no TTL: while its state is `halted` the whole
   * fleet is halted (no portfolio applies events; queues keep what arrives until full); a lift is
   * the same record with state `lifted`, never a deleted key. Written by the gateway and
   * `ginkgo-ctl` (operate scope), read by every node and the scheduler leader.
   */
  tradingHalt(): string;
  /** `{scheduler}:paused_portfolios` — HASH portfolioId → `PortfolioPause`: pauses and their resumes. */
  pausedPortfolios(): string;
  /** `{scheduler}:audit` — STREAM, capped: one entry (field `entry`, an `AuditEntry`) per control request. */
  auditLog(): string;
  /**
   * `{scheduler}:push:execution_node:<nodeId>` — sharded pub/sub CHANNEL, not a key: the plan write
   * `SPUBLISH`es the new plan version on it when it changes the node's assignment. A hint only: the
   * node re-reads its assignment (and reads it again every beat, in case a message was lost).
   */
  nodeOrdersChannel(nodeId: string): string;
  /**
   * `{scheduler}:push:trading` — sharded pub/sub CHANNEL: every halt, lift, pause and resume
   * `SPUBLISH`es `<op>:<request id>` on it; every node re-reads the trading controls.
   */
  tradingChannel(): string;
  /** BullMQ prefix of every queue: `{prefix}bull`. */
  queuePrefix(): string;
  /** BullMQ queue name of a portfolio's event queue: `portfolio-{<portfolioId>}` (BullMQ forbids `:`). */
  portfolioQueue(portfolioId: string): string;
  /**
   * Names from before the hash tags (0.1), read once to carry data over, never written: the
   * scheduler's keys (renamed at its start) and a portfolio's book (read when the tagged one is
   * missing).
   */
  legacySchedulerKeys(): { from: string; to: string }[];
  legacyPortfolioBook(portfolioId: string): string;
}

/**
 * Redis Cluster hash tags. Keys that one Lua script or MULTI touches together share the part in
 * braces, so they live in one hash slot: a node's heartbeat and info (`{<nodeId>}`); a portfolio's
 * state, book, lease and BullMQ queue (`{<portfolioId>}`); the scheduler's plan, node records,
 * per-node assignments, meta, lock, registry, catalog and control lists (`{scheduler}`); a
 * notification subject's cooldowns and active conditions (`{<nodeId>:<portfolioId>}`). Everything
 * else is spread over the slots by its id. On a single Redis the braces are just characters.
 */
const tag = (inner: string): string => `{${inner}}`;
const SCHEDULER = tag('scheduler');

/** Builds the key set for a global prefix (`''` by default). The prefix may not hold `{` or `}`. */
export function createStateKeys(prefix = ''): StateKeys {
  if (/[{}]/.test(prefix)) {
    throw new RangeError(
      `Invalid key prefix "${prefix}": braces would make one hash tag of every key (no { or })`,
    );
  }
  const k = (name: string): string => `${prefix}${name}`;
  const node = (nodeId: string): string => tag(assertValidId('node id', nodeId));
  const portfolio = (portfolioId: string): string =>
    tag(assertValidId('portfolio id', portfolioId));
  const subject = (s: NotificationSubject): string =>
    tag(`${subjectPart(s.nodeId, 'node id')}:${subjectPart(s.portfolioId, 'portfolio id')}`);
  const keys: StateKeys = {
    prefix,
    heartbeat: (nodeId) => k(`heartbeat:node:${node(nodeId)}`),
    nodeInfo: (nodeId) => k(`execution_node:${node(nodeId)}:info`),
    portfolioState: (portfolioId) => k(`portfolio:${portfolio(portfolioId)}:state`),
    nodeRegistry: () => k(`${SCHEDULER}:execution_node_registry`),
    executionNodes: () => k(`${SCHEDULER}:execution_nodes`),
    portfolioAssignments: () => k(`${SCHEDULER}:portfolio_assignments`),
    nodeAssignment: (nodeId) =>
      k(`${SCHEDULER}:execution_node:${assertValidId('node id', nodeId)}:assignment`),
    planMeta: () => k(`${SCHEDULER}:plan_meta`),
    schedulerLeader: () => k(`${SCHEDULER}:leader`),
    portfolioCatalog: () => k(`${SCHEDULER}:portfolio_catalog`),
    portfolioBook: (portfolioId) => k(`portfolio:${portfolio(portfolioId)}:book`),
    portfolioLease: (portfolioId) => k(`portfolio:${portfolio(portfolioId)}:lease`),
    portfolioFence: (portfolioId) => k(`portfolio:${portfolio(portfolioId)}:fence`),
    portfolioNoBook: (portfolioId) => k(`portfolio:${portfolio(portfolioId)}:nobook`),
    portfolioClaims: (portfolioId) => k(`portfolio:${portfolio(portfolioId)}:claims`),
    queueRefusals: () => k('portfolio_queue_refusals'),
    notificationCooldown: (kind, s, level) =>
      k(`notify:cooldown:${assertKind(kind)}:${subject(s)}:${assertKind(level)}`),
    notificationActive: (group, s) => k(`notify:active:${assertKind(group)}:${subject(s)}`),
    notificationHistory: () => k('notifications:history'),
    notificationSilences: () => k('notify:silences'),
    notificationOutageReporter: () => k('notify:outage_reporter'),
    notificationOutageTold: () => k('notify:outage_told'),
    notificationOutageLate: () => k('notify:outage_late'),
    notificationsQueue: () => tag('notifications'),
    controlRequests: () => k(`${SCHEDULER}:control`),
    controlResults: () => k(`${SCHEDULER}:control_results`),
    tradingHalt: () => k(`${SCHEDULER}:trading_halt`),
    pausedPortfolios: () => k(`${SCHEDULER}:paused_portfolios`),
    auditLog: () => k(`${SCHEDULER}:audit`),
    // In the {scheduler} slot: a script SPUBLISHes only on a channel its shard owns (Redis
    // refuses a channel of another shard as a "non local key"), and the plan write and the
    // trading change run on that shard.
    nodeOrdersChannel: (nodeId) =>
      k(`${SCHEDULER}:push:execution_node:${assertValidId('node id', nodeId)}`),
    tradingChannel: () => k(`${SCHEDULER}:push:trading`),
    queuePrefix: () => k('bull'),
    portfolioQueue: (portfolioId) => `portfolio-${portfolio(portfolioId)}`,
    legacySchedulerKeys: () =>
      (
        [
          ['execution_node_registry', 'nodeRegistry'],
          ['execution_nodes', 'executionNodes'],
          ['portfolio_assignments', 'portfolioAssignments'],
          ['scheduler:plan_meta', 'planMeta'],
          ['portfolio_catalog', 'portfolioCatalog'],
          ['scheduler:control', 'controlRequests'],
          ['scheduler:control_results', 'controlResults'],
        ] as const
      ).map(([from, to]) => ({ from: k(from), to: keys[to]() })),
    legacyPortfolioBook: (portfolioId) =>
      k(`portfolio:${assertValidId('portfolio id', portfolioId)}:book`),
  };
  return keys;
}
