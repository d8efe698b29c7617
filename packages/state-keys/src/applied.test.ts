import { describe, expect, it } from 'vitest';
import type { AppliedRange } from './schemas.ts';
import { appliedSeqs, recordApplied, SEQ_CHECKSUM_MODULUS } from './applied.ts';

function applyAll(seqs: number[]): { range: AppliedRange | undefined; skipped: number[] } {
  let range: AppliedRange | undefined;
  const skipped: number[] = [];
  for (const seq of seqs) {
    const d = recordApplied(range, seq);
    if (d.apply) range = d.range;
    else skipped.push(seq);
  }
  return { range, skipped };
}

const fold = (seqs: number[]) => seqs.reduce((h, s) => (h * 31 + s) % SEQ_CHECKSUM_MODULUS, 0);

describe('recordApplied', () => {
  it('applies increasing seqs once, skipping resends and replays', () => {
    const { range, skipped } = applyAll([1, 2, 2, 3, 1, 5, 6, 4, 9]);
    expect(skipped).toEqual([2, 1, 4]);
    expect(range).toEqual({
      first: 1,
      last: 9,
      count: 6,
      checksum: fold([1, 2, 3, 5, 6, 9]),
      gaps: [
        [4, 4],
        [7, 8],
      ],
    });
  });

  it('lets a checker rebuild the applied set and prove count and order', () => {
    const { range } = applyAll([3, 4, 7, 8, 20]);
    if (range === undefined) throw new Error('nothing applied');
    const { seqs, complete } = appliedSeqs(range);
    expect(seqs).toEqual([3, 4, 7, 8, 20]);
    expect(complete).toBe(true);
    expect(fold(seqs)).toBe(range.checksum);
    expect(seqs).toHaveLength(range.count);
  });

  it('keeps the checksum exact on long runs (no float drift)', () => {
    const seqs = Array.from({ length: 100_000 }, (_, i) => i + 1);
    const { range } = applyAll(seqs);
    expect(range?.checksum).toBe(fold(seqs));
    expect(Number.isSafeInteger(range?.checksum)).toBe(true);
  });

  it('keeps the most recent 100 gaps and says the set is no longer exact', () => {
    const seqs = Array.from({ length: 150 }, (_, i) => 2 * i + 1);
    const { range } = applyAll(seqs);
    expect(range?.gaps).toHaveLength(100);
    expect(range?.gaps[0]).toEqual([100, 100]);
    if (range === undefined) throw new Error('nothing applied');
    expect(appliedSeqs(range).complete).toBe(false);
  });
});
