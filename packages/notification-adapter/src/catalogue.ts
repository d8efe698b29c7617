import type { NotificationLevel, NotificationSubject } from '@ginkgo-live/state-keys';

/**
 * Every notification ginkgo-live raises, in one place: its levels, what identifies one occurrence
 * (its subject), the text operators read, the dedupe group it shares with other kinds, and how it
 * resolves. Callers raise and resolve by name (`Notifier.raise`, `Notifier.resolve`), so a kind
 * that is not here, a level it does not have, or a missing subject id is a type error. The table
 * "Who raises what" in this package's README is checked against it (`catalogue.test.ts`).
 */

export type Level = NotificationLevel;

/** Which ids identify one occurrence: a node, a portfolio, or nothing (one for the fleet). */
export type SubjectKind = 'node' | 'portfolio' | 'none';

/** The subject ids a caller gives for a kind of subject. */
export type SubjectIds<S extends SubjectKind> = S extends 'node'
  ? { nodeId: string }
  : S extends 'portfolio'
    ? { portfolioId: string }
    : Record<string, never>;

/** A queue reading by the execution node sampling the queues it consumes. */
export interface QueueSample {
  node_id: string;
  depth: number;
  capacity: number;
  usage: number;
  refused_since_last_notice: number;
}

/** A queue reading by a producer whose add was refused or accepted. */
export interface QueueRefusal {
  depth: number;
  capacity: number;
  seen_by: string;
}

/**
 * The type map of the catalogue: per kind, the condition it belongs to, its subject, its levels
 * (the first is the default) and the details its raiser gives (wire details, but for the fields
 * marked as text-only in the kind's entry).
 */
export interface Kinds {
  node_lost: {
    condition: 'node_lost';
    subject: 'node';
    levels: ['critical'];
    details: { last_seen: string | null };
  };
  portfolio_orphaned: {
    condition: 'portfolio_orphaned';
    subject: 'portfolio';
    levels: ['critical'];
    details: { reason: string | null; orphaned_since: string };
  };
  catalog_missing: {
    condition: 'catalog_missing';
    subject: 'none';
    levels: ['critical'];
    /** `reload_from_file`: whether the catalog file is reloaded (message only). */
    details: { plan_portfolios: number; reload_from_file: boolean };
  };
  fleet_halted: {
    condition: 'fleet_halted';
    subject: 'none';
    levels: ['warning'];
    details: { halted_at: string; by: string; reason: string | null };
  };
  halt_missing: {
    condition: 'halt_missing';
    subject: 'node';
    levels: ['critical'];
    /** `halt_id`: the halt kept (null: none); `paused`: portfolios whose pause is kept. */
    details: { halt_id: string | null; paused: string[] };
  };
  queue_usage_high: {
    condition: 'queue';
    subject: 'portfolio';
    levels: ['warning', 'critical'];
    details: QueueSample;
  };
  queue_full: {
    condition: 'queue';
    subject: 'portfolio';
    levels: ['critical'];
    details: QueueSample | QueueRefusal;
  };
  scheduler_leader_missing: {
    condition: 'scheduler_leader_missing';
    subject: 'none';
    levels: ['critical'];
    /** `missing_for_ms` is for the message only. */
    details: { missing_since: string; missing_for_ms: number };
  };
  redis_unavailable: {
    condition: 'redis_unavailable';
    subject: 'none';
    levels: ['critical'];
    /** Told by the outage reporter while it lasts, or late by another process once Redis is back. */
    details:
      | { app: string; since: string; seconds: number; held: string[]; dropped: number }
      | { since: string; until: string; seconds: number; late: true };
  };
}

/** Per condition (what resolves), the details its resolver gives. */
export interface Conditions {
  node_lost: { subject: 'node'; details: Record<string, never> };
  portfolio_orphaned: { subject: 'portfolio'; details: { node_id: string | null } };
  catalog_missing: { subject: 'none'; details: { portfolios: number } };
  fleet_halted: { subject: 'none'; details: Record<string, never> };
  halt_missing: { subject: 'node'; details: Record<string, never> };
  queue: {
    subject: 'portfolio';
    /** `resolve_below` (the node's threshold) is for the message only. */
    details:
      (QueueSample & { resolve_below: number }) | (QueueRefusal & { refused_since_raise: number });
  };
  scheduler_leader_missing: { subject: 'none'; details: { leader: string } };
  redis_unavailable: {
    subject: 'none';
    details:
      | { seconds: number; held: number; dropped: number }
      | { since: string; until: string; seconds: number; late: true };
  };
}

export type KindName = keyof Kinds;
export type ConditionName = keyof Conditions;
export type ConditionOf<K extends KindName> = Kinds[K]['condition'];
export type KindSubject<K extends KindName> = SubjectIds<Kinds[K]['subject']>;
export type ConditionSubject<C extends ConditionName> = SubjectIds<Conditions[C]['subject']>;
export type KindDetails<K extends KindName> = Kinds[K]['details'];
export type ConditionDetails<C extends ConditionName> = Conditions[C]['details'];
export type KindLevel<K extends KindName> = Kinds[K]['levels'][number];
/** The level argument of `raise`: optional for a kind with one level, required otherwise. */
export type LevelArg<K extends KindName> = Kinds[K]['levels'] extends [infer Only]
  ? [level?: Only]
  : [level: KindLevel<K>];

/** Title, message and the details sent, from the subject ids and what the caller gave. */
interface Text<S extends SubjectKind, D> {
  title: (subject: SubjectIds<S>, details: D) => string;
  message: (subject: SubjectIds<S>, details: D) => string;
  /** The details sent (default: the subject's id, then the caller's details as given). */
  wire?: (subject: SubjectIds<S>, details: D) => Record<string, unknown>;
}

export interface KindSpec<K extends KindName> extends Text<Kinds[K]['subject'], KindDetails<K>> {
  condition: ConditionOf<K>;
  subject: Kinds[K]['subject'];
  levels: Kinds[K]['levels'];
  /** The fault, as the README's table says it. */
  fault: string;
  /** Who raises it (README). */
  raisedBy: string;
  /** Tests that prove who raises and resolves it (README). */
  checkedIn: string[];
}

export interface ConditionSpec<C extends ConditionName> extends Text<
  Conditions[C]['subject'],
  ConditionDetails<C>
> {
  /**
   * The dedupe group: part of the Redis keys of the active condition (`notify:active:<group>:…`),
   * so it never changes (a fleet upgraded mid-incident resolves what the old release raised).
   */
  group: string;
  subject: Conditions[C]['subject'];
  /** Who resolves it (README). */
  resolvedBy: string;
  /** Delivered straight to the webhooks, not through the queue and the shared dedupe. */
  direct?: true;
}

const percent = (q: { depth: number; capacity: number }): string =>
  `${Math.round((q.depth / q.capacity) * 100)} %`;

/** A node's queue sample as sent: the node's own id first, as the node has always sent it. */
const sampleDetails = (portfolioId: string, { node_id, ...rest }: QueueSample) => ({
  node_id,
  portfolio_id: portfolioId,
  ...rest,
});

const isRefusal = (q: QueueSample | QueueRefusal): q is QueueRefusal => 'seen_by' in q;

export const KINDS: { [K in KindName]: KindSpec<K> } = {
  node_lost: {
    condition: 'node_lost',
    subject: 'node',
    levels: ['critical'],
    fault: 'node killed or frozen past its heartbeat TTL',
    raisedBy: 'the scheduler leader, when the heartbeat has expired',
    checkedIn: ['e2e/live/who-notices.test.ts'],
    title: ({ nodeId }) => `Node ${nodeId} lost`,
    message: ({ nodeId }) =>
      `No heartbeat from ${nodeId}; its portfolios are moved to other nodes.`,
  },
  portfolio_orphaned: {
    condition: 'portfolio_orphaned',
    subject: 'portfolio',
    levels: ['critical'],
    fault: 'a portfolio with nowhere to run (no live node with room)',
    raisedBy:
      'the scheduler leader, once a portfolio has been orphaned for `ORPHAN_NOTIFY_AFTER_MS`',
    checkedIn: ['e2e/live/who-notices.test.ts'],
    title: ({ portfolioId }) => `Portfolio ${portfolioId} has no node`,
    message: ({ portfolioId }, d) => `${portfolioId} runs nowhere: ${d.reason ?? 'no reason'}.`,
  },
  catalog_missing: {
    condition: 'catalog_missing',
    subject: 'none',
    levels: ['critical'],
    fault: 'catalog missing (Redis back empty, or deleted)',
    raisedBy: 'the scheduler leader, at a tick that finds the catalog empty after one was seen',
    checkedIn: ['e2e/live/who-notices.test.ts'],
    title: () => 'Portfolio catalog missing',
    message: (_, d) =>
      `The catalog is gone from Redis (the plan holds ${d.plan_portfolios} portfolios); nothing was unassigned.${d.reload_from_file ? ' Reloading the catalog file.' : ' No catalog file was given: reload it.'}`,
    wire: (_, d) => ({ plan_portfolios: d.plan_portfolios }),
  },
  fleet_halted: {
    condition: 'fleet_halted',
    subject: 'none',
    levels: ['warning'],
    fault:
      "none: an operator's act — the trading halt (`{scheduler}:trading_halt`) is set, no portfolio applies events",
    raisedBy:
      'the scheduler leader, at every tick while the halt record says halted (the halt works without any scheduler; with no leader, `scheduler_leader_missing` is told instead)',
    checkedIn: [
      'apps/execution-node/e2e/trading-halt.test.ts',
      'apps/livecore-scheduler/src/decide.test.ts',
    ],
    title: () => 'Trading halted',
    message: (_, d) =>
      `${d.by} halted trading for the whole fleet${d.reason === null ? '' : `: ${d.reason}`}. No portfolio applies events until the halt is lifted; queues keep what arrives until full.`,
  },
  halt_missing: {
    condition: 'halt_missing',
    subject: 'node',
    levels: ['critical'],
    fault:
      'a halt or pause a node holds is gone from Redis, or lifted under another id (Redis restarted empty, or a replica that missed the write was promoted)',
    raisedBy:
      'the execution node that holds it: it keeps the halt or pause (a missing record never lifts one) and logs an error',
    checkedIn: ['apps/execution-node/e2e/trading-halt.test.ts'],
    title: ({ nodeId }) => `Halt kept by ${nodeId} is gone from Redis`,
    message: ({ nodeId }, d) =>
      `${nodeId} keeps ${d.halt_id === null ? '' : `the trading halt ${d.halt_id}`}${d.halt_id !== null && d.paused.length > 0 ? ' and ' : ''}${d.paused.length > 0 ? `the pauses of ${d.paused.join(', ')}` : ''}, which Redis no longer shows. It stays held until an operator halts (or pauses) and resumes again.`,
  },
  queue_usage_high: {
    condition: 'queue',
    subject: 'portfolio',
    levels: ['warning', 'critical'],
    fault: 'queue filling: warning at 70 %, critical at 95 %',
    raisedBy: 'the execution node sampling its queues (every `QUEUE_SAMPLE_MS`)',
    checkedIn: ['apps/execution-node/e2e/queue-notifications.test.ts'],
    title: ({ portfolioId }, d) => `Queue of ${portfolioId} at ${percent(d)}`,
    message: ({ portfolioId }, d) =>
      `${d.depth}/${d.capacity} events (${percent(d)}) waiting for ${portfolioId}.`,
    wire: ({ portfolioId }, d) => sampleDetails(portfolioId, d),
  },
  queue_full: {
    condition: 'queue',
    subject: 'portfolio',
    levels: ['critical'],
    fault: 'queue full',
    raisedBy:
      'its producer (`QueueFullAlarm` in the market feed), at the first refused add — even with every consumer frozen or dead; and the execution node sampling its queues. One notice per portfolio for all of them',
    checkedIn: [
      'e2e/live/who-notices.test.ts',
      'apps/execution-node/src/queue-pressure.int.test.ts',
    ],
    title: ({ portfolioId }) => `Queue of ${portfolioId} is full`,
    message: ({ portfolioId }, d) =>
      `${d.depth}/${d.capacity} events: ${isRefusal(d) ? "the producer's " : ''}new events for ${portfolioId} are refused.`,
    wire: ({ portfolioId }, d) =>
      isRefusal(d) ? { portfolio_id: portfolioId, ...d } : sampleDetails(portfolioId, d),
  },
  scheduler_leader_missing: {
    condition: 'scheduler_leader_missing',
    subject: 'none',
    levels: ['critical'],
    fault: 'scheduler leader gone (every scheduler dead or frozen)',
    raisedBy:
      'the api-gateway (`LeaderWatch`), when no scheduler has held `{scheduler}:leader` for `GATEWAY_LEADER_MISSING_AFTER_MS` (30 s); several gateways send one',
    checkedIn: ['e2e/live/who-notices.test.ts', 'apps/api-gateway/src/leader-watch.test.ts'],
    title: () => 'No scheduler leader',
    message: (_, d) =>
      `No scheduler has held the leader lock for ${Math.round(d.missing_for_ms / 1_000)} s: portfolios keep running where they are, but nothing is placed or moved (dead or draining nodes, control requests) until a scheduler leads again.`,
    wire: (_, d) => ({ missing_since: d.missing_since }),
  },
  redis_unavailable: {
    condition: 'redis_unavailable',
    subject: 'none',
    levels: ['critical'],
    fault: 'Redis unreachable',
    raisedBy:
      'the one process holding the outage reporter lease when the outage began (any app with a webhook sink), after `NOTIFY_REDIS_DOWN_AFTER_MS`, straight to the webhooks; when that process was gone, another one late, once Redis is back',
    checkedIn: ['e2e/live/who-notices.test.ts', 'src/notifications.int.test.ts'],
    title: () => 'Redis unavailable',
    message: (_, d) =>
      'late' in d
        ? `Redis could not be reached for ${d.seconds} s (told late: the process that watches for outages was not running).`
        : `${d.app} cannot reach Redis for ${d.seconds} s; notifications are held until it is back.`,
    wire: (_, d) =>
      'late' in d
        ? { since: d.since, until: d.until, late: true }
        : { since: d.since, held: d.held, dropped: d.dropped },
  },
};

export const CONDITIONS: { [C in ConditionName]: ConditionSpec<C> } = {
  node_lost: {
    group: 'node',
    subject: 'node',
    resolvedBy: 'the scheduler leader, when the node beats again',
    title: ({ nodeId }) => `Node ${nodeId} back`,
    message: ({ nodeId }) => `${nodeId} is beating again.`,
  },
  portfolio_orphaned: {
    group: 'orphan',
    subject: 'portfolio',
    resolvedBy: 'the scheduler leader, when the portfolio is placed',
    title: ({ portfolioId }) => `Portfolio ${portfolioId} placed`,
    message: ({ portfolioId }, d) => `${portfolioId} runs on ${d.node_id ?? '?'} again.`,
  },
  catalog_missing: {
    group: 'catalog_missing',
    subject: 'none',
    resolvedBy:
      "the scheduler leader, at its first tick that finds the catalog again (reloaded from `CATALOG_FILE` or restored); a new leader's first tick clears one left behind",
    title: () => 'Portfolio catalog back',
    message: (_, d) =>
      `The catalog is in Redis again (${d.portfolios} portfolios); planning goes on.`,
  },
  fleet_halted: {
    group: 'fleet_halted',
    subject: 'none',
    resolvedBy:
      "the scheduler leader, at its first tick that reads the halt's lift record (a missing key resolves nothing: Redis may have lost the halt); a new leader's first such tick clears one left behind",
    title: () => 'Trading resumed',
    message: () => 'The trading halt was lifted; portfolios go on in queue order.',
  },
  halt_missing: {
    group: 'halt_missing',
    subject: 'node',
    resolvedBy:
      'the execution node, when Redis shows a halt or lift (pause or resume) that settles every hold it kept',
    title: ({ nodeId }) => `Holds of ${nodeId} settled`,
    message: ({ nodeId }) => `Redis shows the halts and pauses ${nodeId} holds again.`,
  },
  queue: {
    group: 'queue',
    subject: 'portfolio',
    resolvedBy:
      'whichever first sees it below 60 %: an accepted add (producer) or a sample (node); one resolved notice for the whole group',
    title: ({ portfolioId }) => `Queue of ${portfolioId} back to normal`,
    message: ({ portfolioId }, d) =>
      'seen_by' in d
        ? `${d.depth}/${d.capacity} events: ${portfolioId} accepts events again.`
        : `${d.depth}/${d.capacity} events (${percent(d)}), below ${d.resolve_below * 100} %.`,
    wire: ({ portfolioId }, d) => {
      if ('seen_by' in d) return { portfolio_id: portfolioId, ...d };
      const { resolve_below: _, ...sample } = d;
      return sampleDetails(portfolioId, sample);
    },
  },
  scheduler_leader_missing: {
    group: 'scheduler_leader',
    subject: 'none',
    resolvedBy:
      "the gateway that first sees a leader again (also at a gateway's first sight, for one left firing by a gateway that died)",
    title: () => 'Scheduler leader back',
    message: (_, d) => `${d.leader} leads the plan again.`,
  },
  redis_unavailable: {
    group: 'redis_unavailable',
    subject: 'none',
    direct: true,
    resolvedBy: 'the same process, through the queue, when its connection is ready again',
    title: () => 'Redis available again',
    message: (_, d) => `Redis is back after ${d.seconds} s.`,
    wire: (_, d) =>
      'late' in d
        ? { since: d.since, until: d.until, late: true }
        : { held: d.held, dropped: d.dropped },
  },
};

/** The kinds (and every level of each) that share a condition's dedupe group. */
export function kindsOf(condition: ConditionName): { kind: KindName; level: Level }[] {
  return (Object.keys(KINDS) as KindName[])
    .filter((kind) => KINDS[kind].condition === condition)
    .flatMap((kind) => (KINDS[kind].levels as readonly Level[]).map((level) => ({ kind, level })));
}

/** The dedupe subject (both ids, null where the kind has none) of a caller's subject ids. */
export function dedupeSubject(ids: {
  nodeId?: string | null;
  portfolioId?: string | null;
}): NotificationSubject {
  return { nodeId: ids.nodeId ?? null, portfolioId: ids.portfolioId ?? null };
}

/** The subject's id as it leads the details sent. */
function subjectDetails(ids: { nodeId?: string; portfolioId?: string }): Record<string, string> {
  if (ids.nodeId !== undefined) return { node_id: ids.nodeId };
  if (ids.portfolioId !== undefined) return { portfolio_id: ids.portfolioId };
  return {};
}

/** Title, message and details of a kind raised. */
export function raisedText<K extends KindName>(
  kind: K,
  subject: KindSubject<K>,
  details: KindDetails<K>,
): { title: string; message: string; details: Record<string, unknown> } {
  return render(KINDS[kind] as unknown as Text<SubjectKind, unknown>, subject, details);
}

/** Title, message and details of a condition's resolved notice. */
export function resolvedText<C extends ConditionName>(
  condition: C,
  subject: ConditionSubject<C>,
  details: ConditionDetails<C>,
): { title: string; message: string; details: Record<string, unknown> } {
  return render(CONDITIONS[condition] as unknown as Text<SubjectKind, unknown>, subject, details);
}

function render(
  spec: Text<SubjectKind, unknown>,
  subject: SubjectIds<SubjectKind>,
  details: unknown,
): { title: string; message: string; details: Record<string, unknown> } {
  return {
    title: spec.title(subject, details),
    message: spec.message(subject, details),
    details: spec.wire?.(subject, details) ?? {
      ...subjectDetails(subject),
      ...(details as Record<string, unknown>),
    },
  };
}
