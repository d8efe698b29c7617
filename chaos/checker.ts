/**
 * The checker: from what the producer was told (every seq's outcome and time), the final books and
 * the fault timeline, decides per portfolio which accepted events were lost (durably, or inside a
 * window Redis itself declares: the fsync window of a killed Redis, the queue of one restarted
 * empty), which were applied twice or out of order, and which were applied but never sent. Pure.
 *
 * A book keeps, per producer, first/last applied seq, how many it applied, a checksum folded over
 * the seqs in apply order and the skipped ranges (gaps). The applied set is first..last minus the
 * gaps; count and checksum recomputed over that set in increasing order must agree with the book's:
 * a larger count is a duplicate, an equal count with another checksum a reordering.
 */
import type {
  AppliedRange,
  BookView,
  Detection,
  ExitRecord,
  FaultKind,
  FaultRecord,
  FeedRecord,
  NoticeRecord,
  Rollback,
  Sample,
} from './model.ts';
import { EXPECTED_NOTICES, FAULT_KINDS } from './model.ts';

/** Modulus of the applied-seq checksum (the largest prime below 2^32). */
export const CHECKSUM_MODULUS = 4_294_967_291;

/** Gap ranges a book keeps per producer (the most recent ones; older ones are forgotten). */
export const DEFAULT_MAX_GAPS = 100;

/** One step of the checksum fold. */
export function foldSeq(h: number, seq: number): number {
  return (h * 31 + seq) % CHECKSUM_MODULUS;
}

/** The checksum of seqs applied in the given order. */
export function checksumOf(seqs: Iterable<number>): number {
  let h = 0;
  for (const seq of seqs) h = foldSeq(h, seq);
  return h;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** Reads a producer's applied range from loose JSON; a string says what is wrong with it. */
export function readAppliedRange(raw: unknown): AppliedRange | string {
  if (raw === null || typeof raw !== 'object') return 'not an object';
  const r = raw as Record<string, unknown>;
  const { first, last, count, checksum, gaps } = r;
  if (!isCount(first) || first < 1) return `first is not a positive integer (${String(first)})`;
  if (!isCount(last) || last < first) return `last is not an integer ≥ first (${String(last)})`;
  if (!isCount(count) || count < 0) return `count is not a count (${String(count)})`;
  if (!isCount(checksum) || checksum < 0 || checksum >= CHECKSUM_MODULUS)
    return `checksum out of range (${String(checksum)})`;
  if (!Array.isArray(gaps)) return 'gaps is not a list';
  const out: [number, number][] = [];
  let floor = first;
  for (const gap of gaps as unknown[]) {
    if (!Array.isArray(gap) || gap.length !== 2 || !isCount(gap[0]) || !isCount(gap[1]))
      return `gap ${JSON.stringify(gap)} is not a pair of integers`;
    const [from, to] = gap as [number, number];
    if (from <= floor || to < from || to >= last)
      return `gap [${from}, ${to}] is not inside (${floor}, ${last}) in increasing order`;
    out.push([from, to]);
    floor = to + 1;
  }
  return { first, last, count, checksum, gaps: out };
}

/** Reads a book (its raw JSON string, or null when the key is missing) for one producer. */
export function readBook(raw: string | null, producerId: string): BookView {
  if (raw === null) return { present: false, processedCount: null, applied: null };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { present: true, processedCount: null, applied: null, problem: 'not JSON' };
  }
  if (json === null || typeof json !== 'object')
    return { present: true, processedCount: null, applied: null, problem: 'not an object' };
  const book = json as Record<string, unknown>;
  const processedCount = isCount(book['processed_count']) ? book['processed_count'] : null;
  const applied = book['applied'] as { producers?: Record<string, unknown> } | undefined;
  const mine = applied?.producers?.[producerId];
  if (mine === undefined) return { present: true, processedCount, applied: null };
  const range = readAppliedRange(mine);
  if (typeof range === 'string')
    return { present: true, processedCount, applied: null, problem: `applied range: ${range}` };
  return { present: true, processedCount, applied: range };
}

/** Number of seqs in a range's applied set: first..last minus the gaps. */
export function appliedSize(range: AppliedRange): number {
  let size = range.last - range.first + 1;
  for (const [from, to] of range.gaps) size -= to - from + 1;
  return size;
}

/**
 * The applied set, in increasing order. With `maxGaps` or more gaps the book may have forgotten
 * older ones: the set is exact only from the first kept gap on (`exactFrom`).
 */
export function rebuildApplied(
  range: AppliedRange,
  maxGaps = DEFAULT_MAX_GAPS,
): { seqs: number[]; exactFrom: number } {
  const seqs: number[] = [];
  let next = range.first;
  for (const [from, to] of range.gaps) {
    for (let s = next; s < from; s++) seqs.push(s);
    next = to + 1;
  }
  for (let s = next; s <= range.last; s++) seqs.push(s);
  const firstGap = range.gaps[0];
  const exactFrom = range.gaps.length >= maxGaps && firstGap !== undefined ? firstGap[0] : 1;
  return { seqs, exactFrom };
}

/** Why an accepted event missing from the book is permitted, or that it is not. */
export type LossClass = { permitted: true; faultId: number } | { permitted: false };

/**
 * Classifies an accepted seq the book does not hold. Permitted only inside a window Redis itself
 * declares: accepted within `fsyncWindowMs` before a Redis SIGKILL (appendfsync everysec), or
 * accepted before a kill that restarted Redis empty while it was still queued (above the last seq
 * the book in Redis said it had applied just before the kill). An event a sampled book had applied
 * and a later rollback took away is excused only by the fsync window of the kill before that
 * rollback. Everything else is a durable loss.
 */
export function classifyLoss(
  portfolioId: string,
  seq: number,
  atMs: number,
  faults: readonly FaultRecord[],
  fsyncWindowMs: number,
  rollbacks: readonly Rollback[] = [],
): LossClass {
  // Seen applied in a book Redis held, then taken away: only a Redis SIGKILL whose fsync window
  // holds the event (its queue entry and the book's record of it both unwritten) excuses that.
  const back = rollbackOf(rollbacks, portfolioId, seq, atMs);
  if (back !== undefined) {
    const f = faultBefore(faults, back.atMs);
    return f?.kind === 'redis-kill' &&
      atMs >= f.startMs - fsyncWindowMs &&
      atMs <= (f.restartedMs ?? f.startMs)
      ? { permitted: true, faultId: f.id }
      : { permitted: false };
  }
  for (const f of faults) {
    // Accepted by the Redis that was killed: before the restart began (see FaultRecord.restartedMs).
    const killedBy = f.restartedMs ?? f.startMs;
    if (f.kind === 'redis-kill' && atMs >= f.startMs - fsyncWindowMs && atMs <= killedBy)
      return { permitted: true, faultId: f.id };
    if (f.kind === 'redis-empty' && atMs <= killedBy) {
      const before = f.appliedBefore?.[portfolioId] ?? 0;
      if (seq > before) return { permitted: true, faultId: f.id };
    }
  }
  return { permitted: false };
}

export type CheckMode =
  /** The book's applied record rebuilds the applied set exactly. */
  | 'exact'
  /** The book kept its maximum of gaps: older ones may be forgotten, the start is unverifiable. */
  | 'incomplete'
  /** The book has no applied record for this producer: only counts can be compared. */
  | 'count-only'
  /** The book is there but unreadable. */
  | 'unreadable';

export interface PortfolioVerdict {
  portfolioId: string;
  mode: CheckMode;
  accepted: number;
  /** Adds whose outcome is unknown (Redis failed): each may be applied, at most once. */
  unknown: number;
  /** Of those, applied. */
  unknownApplied: number;
  /** Adds refused by a full queue (no seq consumed). */
  refused: number;
  /** Applied events: the applied set's size (count-only mode: the book's processed count). */
  applied: number;
  /** The book's own count of applications (null when it has none). */
  bookCount: number | null;
  lostDurable: number[];
  lostWindow: { seq: number; faultId: number }[];
  /** Applied seqs the producer never attempted. */
  phantom: number[];
  /** Applications beyond the applied set (count − set size). */
  duplicates: number;
  /** Count agrees but the checksum does not: applied out of order. */
  outOfOrder: boolean;
  /** The book contradicts itself (count below its own set, unreadable). */
  inconsistent: string | null;
  /** Incomplete mode: seqs below this could not be rebuilt and are not judged. */
  unverifiedBelow: number | null;
  /** Count-only mode: what the counts alone prove (lower bounds). */
  lowerBound: { lost: number; duplicates: number } | null;
  notes: string[];
}

export interface CheckOptions {
  fsyncWindowMs: number;
  maxGaps?: number;
  /** Books seen going back: an event a sample saw applied and a rollback took away. */
  rollbacks?: readonly Rollback[];
}

/** Checks one portfolio's final book against what its producer was told. */
export function checkPortfolio(
  feed: FeedRecord,
  book: BookView,
  faults: readonly FaultRecord[],
  options: CheckOptions,
): PortfolioVerdict {
  const p = feed.portfolioId;
  let accepted = 0;
  let unknown = 0;
  for (const r of feed.seqs.values()) {
    if (r.outcome === 'accepted') accepted += 1;
    else unknown += 1;
  }
  const verdict: PortfolioVerdict = {
    portfolioId: p,
    mode: 'exact',
    accepted,
    unknown,
    unknownApplied: 0,
    refused: feed.refused,
    applied: 0,
    bookCount: null,
    lostDurable: [],
    lostWindow: [],
    phantom: [],
    duplicates: 0,
    outOfOrder: false,
    inconsistent: null,
    unverifiedBelow: null,
    lowerBound: null,
    notes: [...feed.anomalies],
  };
  if (book.problem !== undefined) {
    verdict.mode = 'unreadable';
    verdict.inconsistent = `book unreadable: ${book.problem}`;
    return verdict;
  }
  if (book.applied === null && book.present && (book.processedCount ?? 0) > 0) {
    // No applied record: the counts bound what happened, nothing more.
    const processed = book.processedCount ?? 0;
    verdict.mode = 'count-only';
    verdict.applied = processed;
    verdict.bookCount = processed;
    verdict.lowerBound = {
      lost: Math.max(0, accepted - processed),
      duplicates: Math.max(0, processed - accepted - unknown),
    };
    verdict.notes.push(
      'the book has no applied record for this producer: loss and duplicates are lower bounds from processed_count, order unverifiable',
    );
    return verdict;
  }
  const range = book.applied;
  const maxGaps = options.maxGaps ?? DEFAULT_MAX_GAPS;
  const rebuilt =
    range === null ? { seqs: [] as number[], exactFrom: 1 } : rebuildApplied(range, maxGaps);
  const applied = new Set(rebuilt.seqs);
  verdict.applied = applied.size;
  if (range !== null) {
    verdict.bookCount = range.count;
    if (rebuilt.exactFrom > 1) {
      verdict.mode = 'incomplete';
      verdict.unverifiedBelow = rebuilt.exactFrom;
      verdict.notes.push(
        `the book kept ${range.gaps.length} gaps (its maximum): older ones may be forgotten, seqs below ${rebuilt.exactFrom} are not judged, count and checksum cannot be checked`,
      );
    } else if (range.count > applied.size) {
      verdict.duplicates = range.count - applied.size;
    } else if (range.count < applied.size) {
      verdict.inconsistent = `count ${range.count} is below the applied set's ${applied.size} seqs`;
    } else if (checksumOf(rebuilt.seqs) !== range.checksum) {
      verdict.outOfOrder = true;
    }
  }
  for (const seq of rebuilt.seqs) {
    if (seq < rebuilt.exactFrom) continue;
    const record = feed.seqs.get(seq);
    if (record === undefined) verdict.phantom.push(seq);
    else if (record.outcome === 'unknown') verdict.unknownApplied += 1;
  }
  const ordered = [...feed.seqs.entries()].sort((a, b) => a[0] - b[0]);
  for (const [seq, record] of ordered) {
    if (record.outcome !== 'accepted' || applied.has(seq) || seq < rebuilt.exactFrom) continue;
    const loss = classifyLoss(
      p,
      seq,
      record.atMs,
      faults,
      options.fsyncWindowMs,
      options.rollbacks,
    );
    if (loss.permitted) verdict.lostWindow.push({ seq, faultId: loss.faultId });
    else verdict.lostDurable.push(seq);
  }
  return verdict;
}

/** Consecutive seqs as inclusive ranges. */
export function toRanges(seqs: readonly number[]): [number, number][] {
  const sorted = [...seqs].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && s === last[1] + 1) last[1] = s;
    else out.push([s, s]);
  }
  return out;
}

/**
 * Follows one portfolio's book through the samples and reports when a duplicate or a reordering
 * first shows (to charge it to the fault at that time). Keeps the checksum of the applied set
 * incrementally while the book only grows; recomputes it when the book was reset or rolled back.
 */
export class BookWatcher {
  /** Every time the book went back. */
  readonly rollbacks: Rollback[] = [];
  private excess = 0;
  private disordered = false;
  private seen: AppliedRange | undefined;
  private cache:
    | {
        first: number;
        last: number;
        gaps: number;
        lastGap: [number, number] | undefined;
        checksum: number;
      }
    | undefined;

  constructor(
    readonly portfolioId: string,
    private readonly maxGaps = DEFAULT_MAX_GAPS,
  ) {}

  observe(atMs: number, range: AppliedRange | null): Detection[] {
    const seen = this.seen;
    if (
      seen !== undefined &&
      (range === null || range.last < seen.last || range.first > seen.first)
    ) {
      this.rollbacks.push({ atMs, portfolioId: this.portfolioId, before: seen, after: range });
    }
    if (range === null) return [];
    this.seen = range;
    if (range.gaps.length >= this.maxGaps) return []; // not checkable
    const size = appliedSize(range);
    const out: Detection[] = [];
    const excess = Math.max(0, range.count - size);
    if (excess > this.excess)
      out.push({
        atMs,
        portfolioId: this.portfolioId,
        what: 'duplicate',
        amount: excess - this.excess,
      });
    this.excess = excess;
    if (range.count === size) {
      const disordered = this.expectedChecksum(range) !== range.checksum;
      if (disordered && !this.disordered)
        out.push({ atMs, portfolioId: this.portfolioId, what: 'out-of-order', amount: 1 });
      this.disordered = disordered;
    }
    return out;
  }

  private expectedChecksum(range: AppliedRange): number {
    const cache = this.cache;
    const lastGap = cache === undefined ? undefined : range.gaps[cache.gaps - 1];
    // While the book only grows, its first seq stays and gaps are only appended: carry on from the
    // cached fold. A reset or a rollback recomputes from the start.
    const keeps =
      cache !== undefined &&
      cache.first === range.first &&
      cache.last <= range.last &&
      cache.gaps <= range.gaps.length &&
      (cache.gaps === 0 ||
        (lastGap !== undefined &&
          lastGap[0] === cache.lastGap?.[0] &&
          lastGap[1] === cache.lastGap[1]));
    let h = keeps ? cache.checksum : 0;
    let gapIndex = keeps ? cache.gaps : 0;
    const from = keeps ? cache.last + 1 : range.first;
    for (let s = from; s <= range.last; s++) {
      let gap = range.gaps[gapIndex];
      while (gap !== undefined && gap[1] < s) gap = range.gaps[++gapIndex];
      if (gap !== undefined && s >= gap[0]) {
        s = gap[1]; // the loop's s++ moves past the gap
        continue;
      }
      h = foldSeq(h, s);
    }
    this.cache = {
      first: range.first,
      last: range.last,
      gaps: range.gaps.length,
      lastGap: range.gaps[range.gaps.length - 1],
      checksum: h,
    };
    return h;
  }
}

/** A stretch during which a portfolio applied nothing while events waited for it. */
export interface Stall {
  portfolioId: string;
  startMs: number;
  endMs: number;
}

/**
 * Stalls of one portfolio from the samples: no progress while its queue held events or the
 * producer got new ones accepted, or Redis down (`redisDown`: unreadable during a Redis fault). A
 * stall runs from the last sample that saw progress to the first that sees it again. A sample that
 * could not read a Redis that was up says nothing: it ends the stall under way (at the last sample
 * that knew) and none starts before a sample reads again.
 */
export function stallsOf(
  samples: readonly Sample[],
  portfolioId: string,
  redisDown: (atMs: number) => boolean = () => true,
): Stall[] {
  const out: Stall[] = [];
  let prev: { atMs: number; progress: number; accepted: number } | undefined;
  let stallStart: number | undefined;
  let lastAt: number | undefined;
  for (const s of samples) {
    if (!s.ok && !redisDown(s.atMs)) {
      // The campaign could not read a Redis that was up: nothing is known from here on until it
      // reads again, so a stall under way ends where knowledge did.
      if (stallStart !== undefined && lastAt !== undefined)
        out.push({ portfolioId, startMs: stallStart, endMs: lastAt });
      stallStart = undefined;
      prev = undefined;
      continue;
    }
    const cur = s.ok ? s.portfolios[portfolioId] : undefined;
    let stalled: boolean;
    if (cur === undefined || cur.progress === null) stalled = prev !== undefined;
    else if (prev === undefined) stalled = false;
    else
      stalled =
        cur.progress === prev.progress && ((cur.depth ?? 0) > 0 || cur.accepted > prev.accepted);
    if (stalled && stallStart === undefined) stallStart = prev?.atMs ?? s.atMs;
    if (!stalled && stallStart !== undefined) {
      out.push({ portfolioId, startMs: stallStart, endMs: s.atMs });
      stallStart = undefined;
    }
    if (cur !== undefined && cur.progress !== null)
      prev = { atMs: s.atMs, progress: cur.progress, accepted: cur.accepted };
    lastAt = s.atMs;
  }
  if (stallStart !== undefined && lastAt !== undefined)
    out.push({ portfolioId, startMs: stallStart, endMs: lastAt });
  return out;
}

/** The fault active at `atMs`, else the next one to start: the first fault an event lived through. */
export function faultLivedThrough(
  faults: readonly FaultRecord[],
  atMs: number,
): FaultRecord | undefined {
  return faults.find((f) => atMs <= f.endMs);
}

/** The fault active at `atMs`, else the last one started before it: the likely cause. */
export function faultBefore(faults: readonly FaultRecord[], atMs: number): FaultRecord | undefined {
  let found: FaultRecord | undefined;
  for (const f of faults) if (f.startMs <= atMs) found = f;
  return found;
}

/** Whether a range's applied set holds `seq`. */
export function holds(range: AppliedRange, seq: number): boolean {
  if (seq < range.first || seq > range.last) return false;
  return !range.gaps.some(([from, to]) => seq >= from && seq <= to);
}

/**
 * The rollback that took an applied event away: the first one after it was accepted whose book
 * before held it and after did not.
 */
export function rollbackOf(
  rollbacks: readonly Rollback[],
  portfolioId: string,
  seq: number,
  acceptedAtMs: number,
): Rollback | undefined {
  return rollbacks.find(
    (r) =>
      r.portfolioId === portfolioId &&
      r.atMs >= acceptedAtMs &&
      holds(r.before, seq) &&
      (r.after === null || !holds(r.after, seq)),
  );
}

/**
 * The fault a stall belongs to: the one whose window it overlaps most (a stall starts at the last
 * sample that saw progress, just before the fault), else the last one before it.
 */
export function faultOfStall(
  faults: readonly FaultRecord[],
  stall: Stall,
): FaultRecord | undefined {
  let best: FaultRecord | undefined;
  let bestOverlap = 0;
  for (const f of faults) {
    const overlap = Math.min(f.endMs, stall.endMs) - Math.max(f.startMs, stall.startMs);
    if (overlap > bestOverlap) {
      best = f;
      bestOverlap = overlap;
    }
  }
  return best ?? faultBefore(faults, stall.startMs);
}

/** The notices one fault raised: firing and resolved of its expected kinds, before the next fault. */
export interface FaultNotices {
  faultId: number;
  expected: readonly string[];
  firing: number;
  resolved: number;
}

export function noticesOf(
  faults: readonly FaultRecord[],
  notices: readonly NoticeRecord[],
  endMs: number,
): FaultNotices[] {
  return faults.map((f, i) => {
    const expected = EXPECTED_NOTICES[f.kind];
    const until = faults[i + 1]?.startMs ?? endMs;
    const nodeFault = f.kind.startsWith('node-');
    const mine = notices.filter(
      (n) =>
        n.atMs >= f.startMs &&
        n.atMs < until &&
        expected.includes(n.kind) &&
        (!nodeFault || n.nodeId === f.target),
    );
    return {
      faultId: f.id,
      expected,
      firing: mine.filter((n) => n.status === 'firing').length,
      resolved: mine.filter((n) => n.status === 'resolved').length,
    };
  });
}

/** After a Redis restart or thaw, clients take this long to be back: still the fault's doing. */
export const REDIS_RECOVERY_MS = 2_000;

/** One line of the per-fault-kind table; null where the books cannot say (count-only mode). */
export interface KindRow {
  label: string;
  kind: FaultKind | null;
  faults: number;
  accepted: number;
  applied: number | null;
  lostDurable: number | null;
  lostWindow: number | null;
  duplicates: number | null;
  outOfOrder: number | null;
  exits: number;
  longestStallMs: number;
  /** Faults that raised an expected notice / faults of the kind; null when none is expected. */
  notified: [number, number] | null;
  resolved: [number, number] | null;
}

export interface CampaignInput {
  portfolios: readonly string[];
  feeds: ReadonlyMap<string, FeedRecord>;
  books: ReadonlyMap<string, BookView>;
  faults: readonly FaultRecord[];
  samples: readonly Sample[];
  detections: readonly Detection[];
  /** Books seen going back (from the samples). */
  rollbacks?: readonly Rollback[];
  exits: readonly ExitRecord[];
  notices: readonly NoticeRecord[];
  /** When the campaign ended (ms since its start), drain included. */
  endMs: number;
  fsyncWindowMs: number;
  maxGaps?: number;
  /** Things that went wrong in the campaign itself (the queues never drained, say). */
  problems?: readonly string[];
}

export interface CampaignVerdict {
  ok: boolean;
  /** Why the run fails, one line each. */
  failures: string[];
  portfolios: PortfolioVerdict[];
  kinds: KindRow[];
  total: KindRow;
  stalls: Stall[];
  notices: FaultNotices[];
  /** Time the campaign could not read a Redis that was up (its own clients): stalls unknown then. */
  blindMs: number;
}

const sumOf = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/** The whole verdict: every portfolio, every fault kind, the failures. */
export function checkCampaign(input: CampaignInput): CampaignVerdict {
  const faults = [...input.faults].sort((a, b) => a.startMs - b.startMs);
  const options = {
    fsyncWindowMs: input.fsyncWindowMs,
    maxGaps: input.maxGaps,
    rollbacks: input.rollbacks,
  };
  const verdicts = input.portfolios.map((p) =>
    checkPortfolio(
      input.feeds.get(p) ?? { portfolioId: p, seqs: new Map(), refused: 0, anomalies: [] },
      input.books.get(p) ?? { present: false, processedCount: null, applied: null },
      faults,
      options,
    ),
  );
  const exact = verdicts.every((v) => v.mode === 'exact');
  const redisDown = (atMs: number): boolean =>
    faults.some(
      (f) =>
        f.kind.startsWith('redis-') && atMs >= f.startMs && atMs <= f.endMs + REDIS_RECOVERY_MS,
    );
  const stalls = input.portfolios.flatMap((p) => stallsOf(input.samples, p, redisDown));
  let blindMs = 0;
  input.samples.forEach((s, i) => {
    const before = input.samples[i - 1];
    if (!s.ok && !redisDown(s.atMs) && before !== undefined) blindMs += s.atMs - before.atMs;
  });
  const notices = noticesOf(faults, input.notices, input.endMs);

  const rows = new Map<string, KindRow>();
  const emptyRow = (label: string, kind: FaultKind | null = null): KindRow => ({
    label,
    kind,
    faults: 0,
    accepted: 0,
    applied: exact ? 0 : null,
    lostDurable: exact ? 0 : null,
    lostWindow: exact ? 0 : null,
    duplicates: exact ? 0 : null,
    outOfOrder: exact ? 0 : null,
    exits: 0,
    longestStallMs: 0,
    notified: null,
    resolved: null,
  });
  const row = (f: FaultRecord | undefined): KindRow => {
    const label = f?.kind ?? 'outside any fault';
    let r = rows.get(label);
    if (r === undefined) {
      r = emptyRow(label, f?.kind ?? null);
      rows.set(label, r);
    }
    return r;
  };
  for (const kind of FAULT_KINDS) {
    const ofKind = faults.filter((f) => f.kind === kind);
    if (ofKind.length === 0) continue;
    const r = row(ofKind[0]);
    r.faults = ofKind.length;
    if (EXPECTED_NOTICES[kind].length > 0) {
      const mine = notices.filter((n) => ofKind.some((f) => f.id === n.faultId));
      r.notified = [mine.filter((n) => n.firing > 0).length, ofKind.length];
      r.resolved = [mine.filter((n) => n.resolved > 0).length, ofKind.length];
    }
  }
  const add = (r: KindRow, key: 'applied' | 'lostDurable' | 'lostWindow', n = 1): void => {
    const v = r[key];
    if (v !== null) r[key] = v + n;
  };
  for (const v of verdicts) {
    const feed = input.feeds.get(v.portfolioId);
    if (feed === undefined) continue;
    const lost = new Set(v.lostDurable);
    const window = new Map(v.lostWindow.map((l) => [l.seq, l.faultId]));
    for (const [seq, record] of feed.seqs) {
      const r = row(faultLivedThrough(faults, record.atMs));
      if (record.outcome === 'accepted') r.accepted += 1;
      if (lost.has(seq)) {
        // Applied, then taken away by a rollback: charged to the fault before the rollback.
        const back = rollbackOf(input.rollbacks ?? [], v.portfolioId, seq, record.atMs);
        add(back === undefined ? r : row(faultBefore(faults, back.atMs)), 'lostDurable');
      } else if (window.has(seq)) {
        add(
          row(
            faults.find((f) => f.id === window.get(seq)) ?? faultLivedThrough(faults, record.atMs),
          ),
          'lostWindow',
        );
      } else if (record.outcome === 'accepted') add(r, 'applied');
    }
    // Unknown-outcome events that were applied count as applied too.
    if (v.unknownApplied > 0) {
      const range = input.books.get(v.portfolioId)?.applied;
      if (range !== null && range !== undefined) {
        for (const seq of rebuildApplied(range, input.maxGaps).seqs) {
          const record = feed.seqs.get(seq);
          if (record?.outcome === 'unknown')
            add(row(faultLivedThrough(faults, record.atMs)), 'applied');
        }
      }
    }
  }
  for (const d of input.detections) {
    const r = row(faultBefore(faults, d.atMs));
    if (d.what === 'duplicate' && r.duplicates !== null) r.duplicates += d.amount;
    if (d.what === 'out-of-order' && r.outOfOrder !== null) r.outOfOrder += d.amount;
  }
  for (const e of input.exits) row(faultBefore(faults, e.atMs)).exits += 1;
  for (const s of stalls) {
    const r = row(faultOfStall(faults, s));
    r.longestStallMs = Math.max(r.longestStallMs, s.endMs - s.startMs);
  }

  const total: KindRow = {
    label: 'total',
    kind: null,
    faults: faults.length,
    accepted: sumOf(verdicts.map((v) => v.accepted)),
    applied: exact ? sumOf(verdicts.map((v) => v.applied)) : null,
    lostDurable: exact ? sumOf(verdicts.map((v) => v.lostDurable.length)) : null,
    lostWindow: exact ? sumOf(verdicts.map((v) => v.lostWindow.length)) : null,
    duplicates: exact ? sumOf(verdicts.map((v) => v.duplicates)) : null,
    outOfOrder: exact ? verdicts.filter((v) => v.outOfOrder).length : null,
    exits: input.exits.length,
    longestStallMs: Math.max(0, ...stalls.map((s) => s.endMs - s.startMs)),
    notified: null,
    resolved: null,
  };
  // Duplicates and reorderings seen in samples may be fewer than the final books show (a
  // duplicate between two samples that a rollback then hid, one that appeared at the very end):
  // the difference is shown on its own line, never dropped.
  if (exact) {
    const seenDup = sumOf(
      input.detections.filter((d) => d.what === 'duplicate').map((d) => d.amount),
    );
    const seenOrder = input.detections.filter((d) => d.what === 'out-of-order').length;
    const dup = (total.duplicates ?? 0) - seenDup;
    const ooo = (total.outOfOrder ?? 0) - seenOrder;
    if (dup !== 0 || ooo !== 0) {
      rows.set('not attributed', {
        ...emptyRow('not attributed (final books minus what the samples saw)'),
        duplicates: dup,
        outOfOrder: ooo,
      });
    }
  }
  const order = (label: string): number => {
    const i = (FAULT_KINDS as readonly string[]).indexOf(label);
    return i === -1 ? FAULT_KINDS.length : i;
  };
  const kinds = [...rows.values()].sort((a, b) => order(a.label) - order(b.label));

  const failures: string[] = [...(input.problems ?? [])];
  for (const v of verdicts) {
    const p = v.portfolioId;
    if (v.lostDurable.length > 0)
      failures.push(
        `${p}: ${v.lostDurable.length} accepted events lost outside any declared window`,
      );
    if (v.duplicates > 0) failures.push(`${p}: ${v.duplicates} events applied more than once`);
    if (v.outOfOrder) failures.push(`${p}: events applied out of order (checksum differs)`);
    if (v.phantom.length > 0)
      failures.push(`${p}: ${v.phantom.length} applied events were never sent (phantoms)`);
    if (v.inconsistent !== null) failures.push(`${p}: ${v.inconsistent}`);
    if (v.mode === 'count-only' && v.lowerBound !== null)
      failures.push(
        `${p}: unverifiable (no applied record in the book); at least ${v.lowerBound.lost} lost, at least ${v.lowerBound.duplicates} applied twice`,
      );
    if (v.mode === 'incomplete')
      failures.push(`${p}: unverifiable below seq ${v.unverifiedBelow ?? '?'} (gap list full)`);
    for (const a of input.feeds.get(p)?.anomalies ?? []) failures.push(`${p}: producer: ${a}`);
  }
  for (const e of input.exits)
    failures.push(
      `${e.name} exited unexpectedly (code ${e.code ?? 'none'}, signal ${e.signal ?? 'none'})`,
    );
  return {
    ok: failures.length === 0,
    failures,
    portfolios: verdicts,
    kinds,
    total,
    stalls,
    notices,
    blindMs,
  };
}
