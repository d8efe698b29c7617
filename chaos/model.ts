/**
 * The campaign's vocabulary: fault kinds, the seeded fault schedule, and what the runner records
 * (every seq the producer was told about, every fault's window, samples of every book). Pure: no
 * Redis, no processes — the checker, the report and the timeline work on these alone.
 */
import { Rng } from './rng.ts';

export const FAULT_KINDS = [
  'node-kill',
  'node-pause',
  'node-term',
  'drain-migrate',
  'redis-kill',
  'redis-empty',
  'redis-freeze',
  'leader-kill',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What each fault does, for the report. */
export const FAULT_TITLES: Record<FaultKind, string> = {
  'node-kill': 'node SIGKILL, restarted with the same NODE_ID',
  'node-pause': 'node SIGSTOP longer than the lease TTL, then SIGCONT',
  'node-term': 'node graceful stop (SIGTERM), restarted',
  'drain-migrate': 'graceful drain + undrain, or a migrate (scheduler control list)',
  'redis-kill': 'Redis SIGKILL, restarted with its AOF (appendfsync everysec)',
  'redis-empty': 'Redis SIGKILL, restarted empty',
  'redis-freeze': 'Redis frozen (SIGSTOP), then SIGCONT',
  'leader-kill': 'scheduler leader SIGKILL, restarted',
};

/**
 * Notification kinds each fault should raise (firing, then resolved), and who raises them. Empty:
 * none expected (a graceful operation). Matched by kind (and node for node faults).
 */
export const EXPECTED_NOTICES: Record<FaultKind, readonly string[]> = {
  'node-kill': ['node_lost'],
  'node-pause': ['node_lost'],
  'node-term': [],
  'drain-migrate': [],
  'redis-kill': ['redis_unavailable'],
  'redis-empty': ['redis_unavailable'],
  'redis-freeze': ['redis_unavailable'],
  // The standby scheduler takes the lock within the leader TTL: no scheduler is missing long
  // enough for the gateway's scheduler_leader_missing (e2e/live/who-notices.test.ts kills them all).
  'leader-kill': [],
};

/** One planned fault: every random choice made up front, so a seed gives the same schedule. */
export interface FaultPlan {
  kind: FaultKind;
  /** Index of the node (node faults) or portfolio (migrate) chosen; wraps over the fleet. */
  targetIndex: number;
  /** Second index: the migrate target node. */
  otherIndex: number;
  /** drain-migrate: drain and undrain a node (true) or migrate one portfolio (false). */
  drain: boolean;
  /** How long the fault lasts (down, frozen, stopped) before its recovery, in ms. */
  durationMs: number;
  /** Quiet time after the recovery before the next fault, in ms. */
  gapMs: number;
}

export interface ScheduleOptions {
  /** Lease / heartbeat TTL of the stack, in ms: a pause lasts 1.5–3 TTLs. */
  ttlMs: number;
  /** Quiet time between faults, in ms: [min, max]. */
  gapMs: [number, number];
}

/**
 * The seeded fault schedule, one fault at a time: the kinds are dealt from a deck reshuffled
 * every round (each kind once per round of eight, in random order), so even a short run meets
 * every kind; targets, durations and gaps are drawn from the same generator.
 */
export class FaultSchedule {
  private readonly rng: Rng;
  private deck: FaultKind[] = [];

  constructor(
    readonly seed: number,
    private readonly options: ScheduleOptions,
    private readonly kinds: readonly FaultKind[] = FAULT_KINDS,
  ) {
    if (kinds.length === 0) throw new RangeError('no fault kinds to schedule');
    this.rng = new Rng(seed);
  }

  next(): FaultPlan {
    if (this.deck.length === 0) this.deck = this.rng.shuffle(this.kinds);
    const kind = this.deck.shift() as FaultKind;
    const rng = this.rng;
    const ttl = this.options.ttlMs;
    const durationMs = (() => {
      switch (kind) {
        case 'node-kill':
          return rng.int(1_000, 4_000); // dead before the restart (the TTL runs out meanwhile)
        case 'node-pause':
          return rng.int(Math.round(1.5 * ttl), 3 * ttl);
        case 'node-term':
          return rng.int(500, 3_000);
        case 'drain-migrate':
          return rng.int(1_000, 4_000); // drained this long before the undrain
        case 'redis-kill':
        case 'redis-empty':
          return rng.int(1_000, 4_000);
        case 'redis-freeze':
          return rng.int(2_000, 5_000);
        case 'leader-kill':
          return rng.int(1_000, 4_000);
      }
    })();
    return {
      kind,
      targetIndex: rng.int(0, 1_000),
      otherIndex: rng.int(0, 1_000),
      drain: rng.next() < 0.5,
      durationMs,
      gapMs: rng.int(this.options.gapMs[0], this.options.gapMs[1]),
    };
  }
}

/** How the producer was told an event went. A refused (full) add consumes no seq: not recorded. */
export type Outcome = 'accepted' | 'unknown';

/** One seq of one portfolio: what the producer was told and when (ms since the campaign start). */
export interface SeqRecord {
  outcome: Outcome;
  atMs: number;
}

/** Everything the producer did for one portfolio. */
export interface FeedRecord {
  portfolioId: string;
  /** seq → outcome; seqs with no entry were never attempted. */
  seqs: Map<number, SeqRecord>;
  /** Adds refused because the queue was full (no seq consumed). */
  refused: number;
  /** Surprises in the producer's answers (a seq reused, a seq skipped), with when. */
  anomalies: string[];
}

/** One injected fault, as it happened (ms since the campaign start). */
export interface FaultRecord {
  id: number;
  kind: FaultKind;
  /** What it hit: a node id, `redis`, a scheduler id, `portfolio → node`. */
  target: string;
  startMs: number;
  /** When the recovery (restart, thaw, undrain) was done. */
  endMs: number;
  /**
   * Redis kills: when the restart began. No Redis ran between the kill and this moment, so an add
   * the producer recorded as accepted before it was accepted by the Redis that was killed, even when
   * its reply was handled after the kill had started (`startMs`).
   */
  restartedMs?: number;
  /** What happened, in words (durations, exit codes, anything odd). */
  notes: string[];
  /**
   * Redis kills: per portfolio, the last seq its book in Redis said was applied just before the
   * kill (from a read taken right before it). Events above it still queued at the kill are the
   * ones an empty restart may lose.
   */
  appliedBefore?: Record<string, number>;
}

/** A producer's applied range as the book keeps it (`applied.producers[<id>]`). */
export interface AppliedRange {
  first: number;
  last: number;
  count: number;
  checksum: number;
  gaps: [number, number][];
}

/** What the checker needs of a book, read loosely (the checker does not trust the writer). */
export interface BookView {
  /** False when the key does not exist. */
  present: boolean;
  /** `processed_count`, when readable. */
  processedCount: number | null;
  /** This producer's applied range; null when the book has no `applied` record for it. */
  applied: AppliedRange | null;
  /** Set when the book is there but unreadable (not JSON, malformed range). */
  problem?: string;
}

/** A process that ended without the nemesis asking it to. */
export interface ExitRecord {
  name: string;
  atMs: number;
  code: number | null;
  signal: string | null;
  /** Its last lines of output. */
  tail: string[];
}

/** One sample of every portfolio (every ~250 ms). */
export interface Sample {
  atMs: number;
  /** False when Redis could not be read: nothing is known, and nothing ran. */
  ok: boolean;
  portfolios: Record<string, PortfolioSample>;
}

export interface PortfolioSample {
  /** Events applied so far (the book's applied count, else its processed count); null if unknown. */
  progress: number | null;
  /** Events waiting or in hand in its queue. */
  depth: number | null;
  /** Events the producer had been told were accepted, so far. */
  accepted: number;
  /** The node its state names and that state's status, when there is one. */
  node: string | null;
  status: string | null;
}

/** A duplicate or a reordering first seen in a sampled book (the final book is the verdict). */
export interface Detection {
  atMs: number;
  portfolioId: string;
  what: 'duplicate' | 'out-of-order';
  /** Duplicates: how many more applications than seqs appeared; order: 1. */
  amount: number;
}

/**
 * A sampled book that went back: its last applied seq fell, its first rose (a reset), or it
 * vanished. Events it had applied and no longer holds were lost by the fault before it.
 */
export interface Rollback {
  atMs: number;
  portfolioId: string;
  /** The range before (the last one seen). */
  before: AppliedRange;
  /** The range after; null when the book (or its applied record) vanished. */
  after: AppliedRange | null;
}

/** A notification the webhook received. */
export interface NoticeRecord {
  atMs: number;
  kind: string;
  status: 'firing' | 'resolved';
  title: string;
  nodeId: string | null;
  portfolioId: string | null;
  source: string;
}
