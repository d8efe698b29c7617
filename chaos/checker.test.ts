import { describe, expect, it } from 'vitest';
import {
  appliedSize,
  BookWatcher,
  checkCampaign,
  checkPortfolio,
  checksumOf,
  classifyLoss,
  faultBefore,
  faultLivedThrough,
  faultOfStall,
  noticesOf,
  readAppliedRange,
  readBook,
  rebuildApplied,
  stallsOf,
  toRanges,
  type CampaignInput,
} from './checker.ts';
import { failureHistory } from './report.ts';
import type {
  AppliedRange,
  BookView,
  FaultKind,
  FaultRecord,
  FeedRecord,
  NoticeRecord,
  Sample,
} from './model.ts';
import { Rng } from './rng.ts';

/**
 * A book's applied range after applying `order` (the contract, written out here independently of
 * the consumer): first/last, count, checksum folded in apply order, gaps between first and last.
 * Like the consumer, it skips a seq at or below the last one — unless `blind`, a broken consumer
 * that applies whatever comes: a late seq fills its gap (a reordering), an applied one counts again
 * (a duplicate).
 */
function rangeOf(order: readonly number[], blind = false): AppliedRange {
  let range: AppliedRange | undefined;
  for (const seq of order) {
    if (range === undefined) {
      range = { first: seq, last: seq, count: 1, checksum: seq, gaps: [] };
      continue;
    }
    if (seq <= range.last) {
      if (!blind) continue;
      const i = range.gaps.findIndex(([from, to]) => seq >= from && seq <= to);
      const gap = range.gaps[i];
      if (gap !== undefined) {
        const parts: [number, number][] = [];
        if (gap[0] < seq) parts.push([gap[0], seq - 1]);
        if (seq < gap[1]) parts.push([seq + 1, gap[1]]);
        range.gaps.splice(i, 1, ...parts);
      }
    } else if (seq > range.last + 1) range.gaps.push([range.last + 1, seq - 1]);
    range.last = Math.max(range.last, seq);
    range.count += 1;
    range.checksum = (range.checksum * 31 + seq) % 4_294_967_291;
  }
  if (range === undefined) throw new Error('empty order');
  return range;
}

const book = (range: AppliedRange | null, processedCount: number | null = null): BookView => ({
  present: true,
  processedCount,
  applied: range,
});

/** A feed of seqs 1..n accepted at 1000·seq ms, with some unknown. */
function feedOf(n: number, unknown: readonly number[] = [], p = 'p1'): FeedRecord {
  const seqs = new Map<number, { outcome: 'accepted' | 'unknown'; atMs: number }>();
  for (let s = 1; s <= n; s++)
    seqs.set(s, { outcome: unknown.includes(s) ? 'unknown' : 'accepted', atMs: s * 1_000 });
  return { portfolioId: p, seqs, refused: 0, anomalies: [] };
}

function fault(
  id: number,
  kind: FaultKind,
  startMs: number,
  endMs: number,
  extra: Partial<FaultRecord> = {},
): FaultRecord {
  return {
    id,
    kind,
    target: kind.startsWith('node') ? 'node-1' : 'redis',
    startMs,
    endMs,
    notes: [],
    ...extra,
  };
}

const range1to = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

describe('the applied set from a book', () => {
  it('is first..last minus the gaps, in increasing order', () => {
    const range = rangeOf([3, 4, 7, 8, 10, 11, 12]);
    expect(range.gaps).toEqual([
      [5, 6],
      [9, 9],
    ]);
    expect(rebuildApplied(range)).toEqual({ seqs: [3, 4, 7, 8, 10, 11, 12], exactFrom: 1 });
    expect(appliedSize(range)).toBe(7);
  });

  it('is exact only from the first kept gap once the book kept its maximum of gaps', () => {
    const range = rangeOf([1, 3, 5, 7]); // gaps [2,2] [4,4] [6,6]
    expect(rebuildApplied(range, 3).exactFrom).toBe(2);
    expect(rebuildApplied(range, 4).exactFrom).toBe(1);
  });

  it('refuses malformed ranges with the reason', () => {
    const ok = {
      first: 1,
      last: 9,
      count: 7,
      checksum: 5,
      gaps: [
        [2, 2],
        [5, 6],
      ],
    };
    expect(readAppliedRange(ok)).toEqual({
      ...ok,
      gaps: [
        [2, 2],
        [5, 6],
      ],
    });
    expect(
      readAppliedRange({
        ...ok,
        gaps: [
          [5, 6],
          [2, 2],
        ],
      }),
    ).toMatch(/increasing order/);
    expect(readAppliedRange({ ...ok, gaps: [[1, 2]] })).toMatch(/not inside/);
    expect(readAppliedRange({ ...ok, gaps: [[8, 9]] })).toMatch(/not inside/);
    expect(readAppliedRange({ ...ok, last: 0 })).toMatch(/last/);
    expect(readAppliedRange({ ...ok, checksum: 4_294_967_291 })).toMatch(/checksum/);
    expect(readAppliedRange({ ...ok, gaps: [[2]] })).toMatch(/pair/);
    expect(readAppliedRange('x')).toBe('not an object');
  });

  it('reads a book loosely: missing, no applied record, another producer, unreadable', () => {
    expect(readBook(null, 'chaos-feed')).toEqual({
      present: false,
      processedCount: null,
      applied: null,
    });
    expect(readBook('{"processed_count":4}', 'chaos-feed')).toEqual(book(null, 4));
    const range = { first: 1, last: 2, count: 2, checksum: 33, gaps: [] };
    const raw = JSON.stringify({
      processed_count: 2,
      applied: { producers: { 'chaos-feed': range, other: range } },
    });
    expect(readBook(raw, 'chaos-feed')).toEqual(book(range, 2));
    expect(readBook(raw, 'nobody')).toEqual(book(null, 2));
    expect(readBook('{', 'chaos-feed').problem).toBe('not JSON');
    expect(
      readBook(
        JSON.stringify({ applied: { producers: { 'chaos-feed': { first: 0 } } } }),
        'chaos-feed',
      ).problem,
    ).toMatch(/^applied range: first/);
  });
});

describe('one portfolio', () => {
  it('passes when every accepted event was applied once, in order', () => {
    const v = checkPortfolio(feedOf(10), book(rangeOf(range1to(10))), [], { fsyncWindowMs: 2_000 });
    expect(v).toMatchObject({
      mode: 'exact',
      accepted: 10,
      applied: 10,
      bookCount: 10,
      lostDurable: [],
      lostWindow: [],
      phantom: [],
      duplicates: 0,
      outOfOrder: false,
      inconsistent: null,
    });
  });

  it('counts a seq applied twice (count above the set) as a duplicate', () => {
    const v = checkPortfolio(feedOf(4), book(rangeOf([1, 2, 3, 3, 4], true)), [], {
      fsyncWindowMs: 2_000,
    });
    expect(v.duplicates).toBe(1);
    expect(v.lostDurable).toEqual([]);
  });

  it('sees a reordering in the checksum when the count agrees', () => {
    const range = rangeOf([1, 3, 2, 4], true); // count 4 over the set {1..4}: gaps none
    expect(range).toMatchObject({ first: 1, last: 4, count: 4, gaps: [] });
    expect(range.checksum).not.toBe(checksumOf([1, 2, 3, 4]));
    const v = checkPortfolio(feedOf(4), book(range), [], { fsyncWindowMs: 2_000 });
    expect(v.outOfOrder).toBe(true);
    expect(v.duplicates).toBe(0);
  });

  it('calls a count below the set inconsistent', () => {
    const range = { ...rangeOf([1, 2, 3]), count: 2 };
    expect(checkPortfolio(feedOf(3), book(range), [], { fsyncWindowMs: 2_000 }).inconsistent).toBe(
      "count 2 is below the applied set's 3 seqs",
    );
  });

  it('lists accepted events missing from the book as durable losses outside any window', () => {
    const v = checkPortfolio(feedOf(10), book(rangeOf([1, 2, 3, 4, 5, 8, 9, 10])), [], {
      fsyncWindowMs: 2_000,
    });
    expect(v.lostDurable).toEqual([6, 7]);
    expect(v.applied).toBe(8);
  });

  it('permits the events accepted within the fsync window before a Redis SIGKILL', () => {
    const applied = book(rangeOf([1, 2, 3, 4, 5, 8, 9, 10]));
    // seq 6 at 6000 ms, 7 at 7000 ms; killed at 7500 ms with a 2 s window: from 5500 ms.
    const v = checkPortfolio(feedOf(10), applied, [fault(1, 'redis-kill', 7_500, 9_000)], {
      fsyncWindowMs: 2_000,
    });
    expect(v.lostWindow).toEqual([
      { seq: 6, faultId: 1 },
      { seq: 7, faultId: 1 },
    ]);
    expect(v.lostDurable).toEqual([]);
    // A narrower window keeps seq 6 a durable loss.
    const narrow = checkPortfolio(feedOf(10), applied, [fault(1, 'redis-kill', 7_500, 9_000)], {
      fsyncWindowMs: 1_000,
    });
    expect(narrow.lostDurable).toEqual([6]);
    expect(narrow.lostWindow).toEqual([{ seq: 7, faultId: 1 }]);
  });

  it('permits what was still queued at an empty restart, never what the book had applied', () => {
    const applied = book(rangeOf([1, 2, 3, 4, 5, 8, 9, 10]));
    const empty = (appliedBefore: number) =>
      fault(1, 'redis-empty', 7_500, 9_000, { appliedBefore: { p1: appliedBefore } });
    expect(
      checkPortfolio(feedOf(10), applied, [empty(5)], { fsyncWindowMs: 2_000 }).lostWindow,
    ).toEqual([
      { seq: 6, faultId: 1 },
      { seq: 7, faultId: 1 },
    ]);
    // The book in Redis had applied 6 before the kill: losing it is the book's loss.
    const regressed = checkPortfolio(feedOf(10), applied, [empty(6)], { fsyncWindowMs: 2_000 });
    expect(regressed.lostDurable).toEqual([6]);
    expect(regressed.lostWindow).toEqual([{ seq: 7, faultId: 1 }]);
    // Accepted after the kill: no window covers it.
    expect(classifyLoss('p1', 9, 9_500, [empty(5)], 2_000)).toEqual({ permitted: false });
  });

  it("counts an add whose reply was handled after the kill began, before the restart, as the killed Redis's", () => {
    // Killed at 7,500, restarted from 10,000: the reply of an add was handled at 7,520.
    const killed = (kind: 'redis-empty' | 'redis-kill') =>
      fault(1, kind, 7_500, 10_500, { appliedBefore: { p1: 5 }, restartedMs: 10_000 });
    expect(classifyLoss('p1', 6, 7_520, [killed('redis-empty')], 2_000)).toEqual({
      permitted: true,
      faultId: 1,
    });
    expect(classifyLoss('p1', 6, 7_520, [killed('redis-kill')], 2_000)).toEqual({
      permitted: true,
      faultId: 1,
    });
    // Accepted once the restart began: by the new Redis, so its loss is nobody's window.
    expect(classifyLoss('p1', 6, 10_100, [killed('redis-empty')], 2_000)).toEqual({
      permitted: false,
    });
    expect(classifyLoss('p1', 6, 10_100, [killed('redis-kill')], 2_000)).toEqual({
      permitted: false,
    });
  });

  it('never counts unknown outcomes as lost, and counts those applied', () => {
    const feed = feedOf(10, [6, 7]);
    const without = checkPortfolio(feed, book(rangeOf([1, 2, 3, 4, 5, 8, 9, 10])), [], {
      fsyncWindowMs: 2_000,
    });
    expect(without).toMatchObject({ accepted: 8, unknown: 2, unknownApplied: 0, lostDurable: [] });
    const withOne = checkPortfolio(feed, book(rangeOf([1, 2, 3, 4, 5, 6, 8, 9, 10])), [], {
      fsyncWindowMs: 2_000,
    });
    expect(withOne).toMatchObject({ unknownApplied: 1, lostDurable: [] });
  });

  it('finds phantoms: applied seqs the producer never sent', () => {
    const v = checkPortfolio(feedOf(10), book(rangeOf(range1to(12))), [], { fsyncWindowMs: 2_000 });
    expect(v.phantom).toEqual([11, 12]);
  });

  it('treats a missing book as nothing applied', () => {
    const v = checkPortfolio(
      feedOf(3),
      { present: false, processedCount: null, applied: null },
      [],
      { fsyncWindowMs: 2_000 },
    );
    expect(v).toMatchObject({ mode: 'exact', applied: 0, lostDurable: [1, 2, 3] });
  });

  it('without an applied record, gives lower bounds from processed_count only', () => {
    const short = checkPortfolio(feedOf(10, [9]), book(null, 7), [], { fsyncWindowMs: 2_000 });
    expect(short).toMatchObject({
      mode: 'count-only',
      applied: 7,
      lowerBound: { lost: 2, duplicates: 0 },
      lostDurable: [],
    });
    const over = checkPortfolio(feedOf(10, [9]), book(null, 13), [], { fsyncWindowMs: 2_000 });
    expect(over.lowerBound).toEqual({ lost: 0, duplicates: 3 });
  });

  it('does not judge what a full gap list may have forgotten', () => {
    const range = rangeOf([1, 3, 5, 7, 8]); // gaps [2,2] [4,4] [6,6]
    const v = checkPortfolio(feedOf(8), book(range), [], { fsyncWindowMs: 2_000, maxGaps: 3 });
    expect(v.mode).toBe('incomplete');
    expect(v.unverifiedBelow).toBe(2);
    expect(v.lostDurable).toEqual([2, 4, 6]);
  });
});

describe('following books through the samples', () => {
  it('keeps the checksum incrementally, equal to a full recomputation, over random growth', () => {
    const rng = new Rng(42);
    for (let round = 0; round < 20; round++) {
      const order: number[] = [];
      let seq = rng.int(1, 5);
      const watcher = new BookWatcher('p1');
      for (let step = 0; step < 200; step++) {
        order.push(seq);
        seq += rng.next() < 0.1 ? rng.int(2, 6) : 1;
        if (rng.next() < 0.3) expect(watcher.observe(step, rangeOf(order))).toEqual([]);
      }
      expect(watcher.observe(999, rangeOf(order))).toEqual([]);
    }
  });

  it('reports a duplicate once, when the excess grows', () => {
    const watcher = new BookWatcher('p1');
    expect(watcher.observe(1, rangeOf([1, 2, 3]))).toEqual([]);
    expect(watcher.observe(2, rangeOf([1, 2, 3, 3, 4], true))).toEqual([
      { atMs: 2, portfolioId: 'p1', what: 'duplicate', amount: 1 },
    ]);
    expect(watcher.observe(3, rangeOf([1, 2, 3, 3, 4, 5], true))).toEqual([]);
    expect(watcher.observe(4, rangeOf([1, 2, 3, 3, 4, 4, 4, 5], true))).toEqual([
      { atMs: 4, portfolioId: 'p1', what: 'duplicate', amount: 2 },
    ]);
  });

  it('reports a reordering when the checksum breaks, and again only after it healed', () => {
    const watcher = new BookWatcher('p1');
    expect(watcher.observe(1, rangeOf([1, 2]))).toEqual([]);
    expect(watcher.observe(2, rangeOf([1, 2, 4, 3], true))).toEqual([
      { atMs: 2, portfolioId: 'p1', what: 'out-of-order', amount: 1 },
    ]);
    expect(watcher.observe(3, rangeOf([1, 2, 4, 3, 5], true))).toEqual([]);
    // A reset book (Redis restarted empty, re-applied in order) heals; a new reordering shows again.
    expect(watcher.observe(4, rangeOf([1, 2, 3]))).toEqual([]);
    expect(watcher.observe(5, rangeOf([1, 2, 3, 5, 4], true))).toEqual([
      { atMs: 5, portfolioId: 'p1', what: 'out-of-order', amount: 1 },
    ]);
  });
});

function sample(atMs: number, progress: number | null, depth = 0, accepted = 0): Sample {
  return {
    atMs,
    ok: true,
    portfolios: { p1: { progress, depth, accepted, node: 'node-1', status: 'running' } },
  };
}

describe('stalls', () => {
  it('run from the last progress to the next while events waited, or Redis was unreadable', () => {
    const samples: Sample[] = [
      sample(0, 0, 0, 0),
      sample(250, 5, 1, 5),
      sample(500, 5, 3, 8), // no progress, events waiting: stalled since 250
      sample(750, 5, 6, 11),
      { atMs: 1_000, ok: false, portfolios: {} },
      sample(1_250, 9, 2, 11), // progress again
      sample(1_500, 9, 0, 11), // idle, nothing waiting: not a stall
      sample(1_750, 9, 0, 12), // a new event accepted, none applied
      sample(2_000, 10, 0, 12),
    ];
    expect(stallsOf(samples, 'p1')).toEqual([
      { portfolioId: 'p1', startMs: 250, endMs: 1_250 },
      { portfolioId: 'p1', startMs: 1_500, endMs: 2_000 },
    ]);
  });

  it('belong to the fault they overlap most, else the one before', () => {
    const faults = [fault(1, 'redis-kill', 10_000, 12_000), fault(2, 'node-kill', 20_000, 22_000)];
    const stall = (startMs: number, endMs: number) => ({ portfolioId: 'p1', startMs, endMs });
    expect(faultOfStall(faults, stall(9_800, 12_500))?.id).toBe(1);
    expect(faultOfStall(faults, stall(11_900, 21_000))?.id).toBe(2);
    expect(faultOfStall(faults, stall(14_000, 15_000))?.id).toBe(1);
    expect(faultOfStall(faults, stall(1_000, 2_000))).toBeUndefined();
  });

  it('say nothing while the campaign cannot read a Redis that is up', () => {
    const samples: Sample[] = [
      sample(0, 1, 0, 1),
      sample(250, 1, 3, 4), // stalled since 0
      { atMs: 500, ok: false, portfolios: {} }, // Redis down: still stalled
      { atMs: 750, ok: false, portfolios: {} }, // Redis up, the campaign blind: the stall ends at 500
      { atMs: 1_000, ok: false, portfolios: {} },
      sample(1_250, 9, 9, 9), // reads again: a new reference, no stall
      sample(1_500, 9, 2, 12), // stalled since 1250
      sample(1_750, 12, 0, 12),
    ];
    expect(stallsOf(samples, 'p1', (atMs) => atMs <= 500)).toEqual([
      { portfolioId: 'p1', startMs: 0, endMs: 500 },
      { portfolioId: 'p1', startMs: 1_250, endMs: 1_750 },
    ]);
  });

  it('closes a stall still open at the last sample', () => {
    expect(
      stallsOf([sample(0, 1, 0, 1), sample(250, 1, 4, 5), sample(500, 1, 9, 9)], 'p1'),
    ).toEqual([{ portfolioId: 'p1', startMs: 0, endMs: 500 }]);
  });
});

describe('charging to faults', () => {
  const faults = [fault(1, 'node-kill', 10_000, 12_000), fault(2, 'redis-empty', 20_000, 22_000)];

  it('charges an event to the fault it lived through first, a finding to the fault before it', () => {
    expect(faultLivedThrough(faults, 5_000)?.id).toBe(1);
    expect(faultLivedThrough(faults, 11_000)?.id).toBe(1);
    expect(faultLivedThrough(faults, 15_000)?.id).toBe(2);
    expect(faultLivedThrough(faults, 25_000)).toBeUndefined();
    expect(faultBefore(faults, 5_000)).toBeUndefined();
    expect(faultBefore(faults, 15_000)?.id).toBe(1);
    expect(faultBefore(faults, 21_000)?.id).toBe(2);
  });

  it('matches notices to faults by kind, and node faults by node', () => {
    const notice = (
      atMs: number,
      kind: string,
      status: 'firing' | 'resolved',
      nodeId: string | null,
    ): NoticeRecord => ({
      atMs,
      kind,
      status,
      title: kind,
      nodeId,
      portfolioId: null,
      source: 'x',
    });
    const n = noticesOf(
      faults,
      [
        notice(11_000, 'node_lost', 'firing', 'node-1'),
        notice(11_500, 'node_lost', 'firing', 'node-2'),
        notice(13_000, 'node_lost', 'resolved', 'node-1'),
        notice(20_500, 'redis_unavailable', 'firing', null),
        notice(20_600, 'redis_unavailable', 'firing', null),
        notice(30_000, 'redis_unavailable', 'resolved', null),
      ],
      40_000,
    );
    expect(n).toEqual([
      { faultId: 1, expected: ['node_lost'], firing: 1, resolved: 1 },
      { faultId: 2, expected: ['redis_unavailable'], firing: 2, resolved: 1 },
    ]);
  });

  it('builds the per-kind table and the failures from the books', () => {
    // p1: 30 events, 1/s; seqs 11–12 lost with the node kill; 21 still queued at the empty restart.
    const p1 = feedOf(30);
    const applied1 = range1to(30).filter((s) => ![11, 12, 21].includes(s));
    // p2: everything applied, but seq 25 twice.
    const p2 = feedOf(30, [], 'p2');
    const applied2 = [...range1to(25), 25, ...range1to(30).slice(25)];
    const input: CampaignInput = {
      portfolios: ['p1', 'p2'],
      feeds: new Map([
        ['p1', p1],
        ['p2', p2],
      ]),
      books: new Map([
        ['p1', book(rangeOf(applied1))],
        ['p2', book(rangeOf(applied2, true))],
      ]),
      faults: [
        fault(1, 'node-kill', 10_500, 12_500),
        fault(2, 'redis-empty', 21_500, 23_000, { appliedBefore: { p1: 20, p2: 21 } }),
      ],
      samples: [],
      detections: [{ atMs: 26_000, portfolioId: 'p2', what: 'duplicate', amount: 1 }],
      exits: [{ name: 'node node-3', atMs: 11_000, code: 1, signal: null, tail: [] }],
      notices: [],
      endMs: 40_000,
      fsyncWindowMs: 2_000,
    };
    const v = checkCampaign(input);
    expect(v.ok).toBe(false);
    expect(v.failures).toEqual([
      'p1: 2 accepted events lost outside any declared window',
      'p2: 1 events applied more than once',
      'node node-3 exited unexpectedly (code 1, signal none)',
    ]);
    const byLabel = Object.fromEntries(v.kinds.map((k) => [k.label, k]));
    // node-kill: seqs 1–12 lived through it first (accepted by 12.5 s), both portfolios.
    expect(byLabel['node-kill']).toMatchObject({
      faults: 1,
      accepted: 24,
      applied: 22,
      lostDurable: 2,
      lostWindow: 0,
      duplicates: 0,
      exits: 1,
      notified: [0, 1],
      resolved: [0, 1],
    });
    // redis-empty: seqs 13–23.
    expect(byLabel['redis-empty']).toMatchObject({
      faults: 1,
      accepted: 22,
      applied: 21,
      lostDurable: 0,
      lostWindow: 1,
      duplicates: 1,
    });
    expect(byLabel['outside any fault']).toMatchObject({ faults: 0, accepted: 14, applied: 14 });
    expect(v.total).toMatchObject({
      faults: 2,
      accepted: 60,
      applied: 57,
      lostDurable: 2,
      lostWindow: 1,
      duplicates: 1,
      outOfOrder: 0,
      exits: 1,
    });
    expect(v.kinds.find((k) => k.label.startsWith('not attributed'))).toBeUndefined();
  });

  it('shows duplicates the samples never saw on a line of their own', () => {
    const p2 = feedOf(5, [], 'p2');
    const v = checkCampaign({
      portfolios: ['p2'],
      feeds: new Map([['p2', p2]]),
      books: new Map([['p2', book(rangeOf([1, 2, 3, 3, 4, 5], true))]]),
      faults: [],
      samples: [],
      detections: [],
      exits: [],
      notices: [],
      endMs: 10_000,
      fsyncWindowMs: 2_000,
    });
    expect(v.kinds.map((k) => [k.label, k.duplicates])).toEqual([
      ['outside any fault', 0],
      ['not attributed (final books minus what the samples saw)', 1],
    ]);
  });

  it('leaves the per-kind loss columns unknown when a book has no applied record', () => {
    const v = checkCampaign({
      portfolios: ['p1'],
      feeds: new Map([['p1', feedOf(10)]]),
      books: new Map([['p1', book(null, 8)]]),
      faults: [fault(1, 'node-kill', 5_500, 6_000)],
      samples: [],
      detections: [],
      exits: [],
      notices: [],
      endMs: 12_000,
      fsyncWindowMs: 2_000,
    });
    expect(v.total).toMatchObject({
      accepted: 10,
      applied: null,
      lostDurable: null,
      duplicates: null,
    });
    expect(v.failures).toEqual([
      'p1: unverifiable (no applied record in the book); at least 2 lost, at least 0 applied twice',
    ]);
  });

  it('counts the time it could not read a Redis that was up, and charges stalls by overlap', () => {
    const failed = (atMs: number): Sample => ({ atMs, ok: false, portfolios: {} });
    const v = checkCampaign({
      portfolios: ['p1'],
      feeds: new Map([['p1', feedOf(3)]]),
      books: new Map([['p1', book(rangeOf([1, 2, 3]))]]),
      faults: [fault(1, 'redis-kill', 1_000, 2_000)],
      // Down from 1000 to 2000 (and 2000 more to recover), blind from 4250 to 4750.
      samples: [
        sample(750, 1, 0, 1),
        failed(1_000),
        failed(3_750),
        sample(4_000, 2, 0, 2),
        failed(4_250),
        failed(4_500),
        sample(4_750, 3, 0, 3),
      ],
      detections: [],
      exits: [],
      notices: [],
      endMs: 5_000,
      fsyncWindowMs: 2_000,
    });
    expect(v.blindMs).toBe(500);
    expect(v.stalls).toEqual([{ portfolioId: 'p1', startMs: 750, endMs: 4_000 }]);
    expect(v.kinds.find((k) => k.label === 'redis-kill')?.longestStallMs).toBe(3_250);
    expect(v.ok).toBe(true);
  });

  it('groups seqs into ranges', () => {
    expect(toRanges([7, 1, 2, 3, 9, 8, 12])).toEqual([
      [1, 3],
      [7, 9],
      [12, 12],
    ]);
  });
});

describe('books that go back', () => {
  it('are recorded when the last seq falls, the first rises or the book vanishes', () => {
    const watcher = new BookWatcher('p1');
    watcher.observe(1, rangeOf(range1to(5)));
    watcher.observe(2, rangeOf(range1to(8)));
    watcher.observe(3, null);
    watcher.observe(4, rangeOf([12, 13]));
    watcher.observe(5, rangeOf([12, 13, 14]));
    watcher.observe(6, rangeOf([12]));
    expect(watcher.rollbacks.map((r) => [r.atMs, r.before.last, r.after?.first ?? null])).toEqual([
      [3, 8, null],
      [4, 8, 12],
      [6, 14, 12],
    ]);
  });

  it('charge what was applied and then taken away to the fault before the rollback', () => {
    const feed = feedOf(30);
    const gone = rangeOf(range1to(20));
    const input: CampaignInput = {
      portfolios: ['p1'],
      feeds: new Map([['p1', feed]]),
      books: new Map([['p1', book(rangeOf(range1to(30).slice(20)))]]),
      faults: [
        fault(1, 'node-kill', 5_000, 6_000),
        fault(2, 'redis-empty', 20_500, 22_000, { appliedBefore: { p1: 20 } }),
      ],
      samples: [],
      detections: [],
      rollbacks: [{ atMs: 21_500, portfolioId: 'p1', before: gone, after: null }],
      exits: [],
      notices: [],
      endMs: 40_000,
      fsyncWindowMs: 2_000,
    };
    const v = checkCampaign(input);
    expect(v.portfolios[0]?.lostDurable).toEqual(range1to(20));
    const byLabel = Object.fromEntries(v.kinds.map((k) => [k.label, k]));
    // Seqs 1–6 lived through the node kill first, but the empty restart took them.
    expect(byLabel['node-kill']).toMatchObject({ accepted: 6, lostDurable: 0 });
    expect(byLabel['redis-empty']).toMatchObject({ accepted: 16, lostDurable: 20 });
    const history = failureHistory(v, input);
    expect(history).toContain(
      '    seen applied, then the book went back at 21.5 s: 1..20 → gone (after fault #2 redis-empty redis)',
    );
    expect(history.slice(0, 6)).toEqual([
      'p1: exact; accepted 30, applied 10, book count 10, book range 21..30 with 0 gaps',
      '  lost seqs 1–20 (20), accepted 1.0 s → 20.0 s:',
      '      seq 1: accepted at 1.0 s, LOST',
      '      seq 2: accepted at 2.0 s, LOST',
      '      seq 3: accepted at 3.0 s, LOST',
      '      …',
    ]);
    expect(history).toContain('      seq 21: accepted at 21.0 s, applied');
  });
});

describe('losses of events a sampled book had applied', () => {
  const applied = book(rangeOf([1, 2, 3, 4, 5, 8, 9, 10]));
  const seen = rangeOf(range1to(7));
  const kill = fault(1, 'redis-kill', 7_500, 9_000);

  it('are excused by the fsync window of the kill that rolled the book back', () => {
    const rollbacks = [
      { atMs: 9_100, portfolioId: 'p1', before: seen, after: rangeOf(range1to(5)) },
    ];
    const v = checkPortfolio(feedOf(10), applied, [kill], { fsyncWindowMs: 2_000, rollbacks });
    expect(v.lostWindow).toEqual([
      { seq: 6, faultId: 1 },
      { seq: 7, faultId: 1 },
    ]);
  });

  it('are durable when a later fault took them, even if accepted within a kill’s window', () => {
    const empty = fault(2, 'redis-empty', 20_000, 21_000, { appliedBefore: { p1: 7 } });
    const rollbacks = [{ atMs: 20_500, portfolioId: 'p1', before: seen, after: null }];
    const v = checkPortfolio(feedOf(10), applied, [kill, empty], {
      fsyncWindowMs: 2_000,
      rollbacks,
    });
    expect(v.lostDurable).toEqual([6, 7]);
    expect(v.lostWindow).toEqual([]);
  });
});
