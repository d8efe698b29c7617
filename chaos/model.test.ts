import { describe, expect, it } from 'vitest';
import { FAULT_KINDS, FaultSchedule } from './model.ts';
import { Rng } from './rng.ts';

describe('the seeded schedule', () => {
  const options = { ttlMs: 2_000, gapMs: [4_000, 8_000] as [number, number] };

  it('is the same for the same seed and differs for another', () => {
    const take = (s: FaultSchedule) => Array.from({ length: 24 }, () => s.next());
    const first = take(new FaultSchedule(7, options));
    expect(take(new FaultSchedule(7, options))).toEqual(first);
    expect(take(new FaultSchedule(8, options))).not.toEqual(first);
  });

  it('deals every kind once per round, within its bounds', () => {
    const schedule = new FaultSchedule(3, options);
    for (let round = 0; round < 5; round++) {
      const plans = Array.from({ length: FAULT_KINDS.length }, () => schedule.next());
      expect(plans.map((p) => p.kind).sort()).toEqual([...FAULT_KINDS].sort());
      for (const p of plans) {
        expect(p.gapMs).toBeGreaterThanOrEqual(4_000);
        expect(p.gapMs).toBeLessThanOrEqual(8_000);
        if (p.kind === 'node-pause') {
          // Longer than the lease TTL, so the lease expires while the node is frozen.
          expect(p.durationMs).toBeGreaterThanOrEqual(3_000);
          expect(p.durationMs).toBeLessThanOrEqual(6_000);
        }
      }
    }
  });

  it('keeps to the kinds it is given', () => {
    const schedule = new FaultSchedule(1, options, ['redis-freeze', 'node-kill']);
    const kinds = new Set(Array.from({ length: 10 }, () => schedule.next().kind));
    expect([...kinds].sort()).toEqual(['node-kill', 'redis-freeze']);
    expect(() => new FaultSchedule(1, options, [])).toThrow(/no fault kinds/);
  });
});

describe('the generator', () => {
  it('repeats per seed and stays in range', () => {
    const a = new Rng(123);
    const b = new Rng(123);
    const values = Array.from({ length: 1_000 }, () => a.int(3, 9));
    expect(Array.from({ length: 1_000 }, () => b.int(3, 9))).toEqual(values);
    expect(Math.min(...values)).toBe(3);
    expect(Math.max(...values)).toBe(9);
    expect(new Rng(5).shuffle([1, 2, 3, 4, 5]).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(() => new Rng(1.5)).toThrow(RangeError);
  });
});
