import type { AppliedRange } from './schemas.ts';

/** Modulus of the applied-seq checksum (the largest prime below 2^32). */
export const SEQ_CHECKSUM_MODULUS = 4_294_967_291;

/** Gap ranges a book keeps per producer: the most recent ones. */
const MAX_GAPS = 100;

export type ApplyDecision =
  { apply: true; range: AppliedRange } | { apply: false; reason: 'duplicate'; last: number };

/**
 * Decides whether the event numbered `seq` of one producer is applied, given what was applied
 * from that producer so far: only a seq above the last one is (a resend or a replay is a
 * duplicate). Returns the range after applying it; a jump over seqs records them as a gap.
 */
export function recordApplied(range: AppliedRange | undefined, seq: number): ApplyDecision {
  if (range === undefined) {
    return { apply: true, range: { first: seq, last: seq, count: 1, checksum: seq, gaps: [] } };
  }
  if (seq <= range.last) return { apply: false, reason: 'duplicate', last: range.last };
  const gaps: [number, number][] =
    seq === range.last + 1 ? range.gaps : [...range.gaps, [range.last + 1, seq - 1]];
  return {
    apply: true,
    range: {
      first: range.first,
      last: seq,
      count: range.count + 1,
      checksum: (range.checksum * 31 + seq) % SEQ_CHECKSUM_MODULUS,
      gaps: gaps.length > MAX_GAPS ? gaps.slice(gaps.length - MAX_GAPS) : gaps,
    },
  };
}

/**
 * The seqs a range says were applied, in increasing order: first..last minus the gaps. Exact
 * while no more than 100 gaps were recorded (older gaps are forgotten: `complete` is then false).
 */
export function appliedSeqs(range: AppliedRange): { seqs: number[]; complete: boolean } {
  const skipped = new Set<number>();
  for (const [from, to] of range.gaps) for (let s = from; s <= to; s++) skipped.add(s);
  const seqs: number[] = [];
  for (let s = range.first; s <= range.last; s++) if (!skipped.has(s)) seqs.push(s);
  return { seqs, complete: range.gaps.length < MAX_GAPS };
}
