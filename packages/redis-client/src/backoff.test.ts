import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from './backoff.ts';

const bounds = { baseDelayMs: 100, maxDelayMs: 5_000 };

describe('backoffDelayMs', () => {
  it('doubles from the base delay with the random half at its extremes', () => {
    const low = [1, 2, 3, 4, 5].map((a) => backoffDelayMs(a, bounds, () => 0));
    const high = [1, 2, 3, 4, 5].map((a) => backoffDelayMs(a, bounds, () => 1));
    expect(low).toEqual([50, 100, 200, 400, 800]);
    expect(high).toEqual([100, 200, 400, 800, 1_600]);
  });

  it('is capped at the maximum delay and never gives up', () => {
    for (const attempt of [7, 8, 50, 10_000]) {
      const delay = backoffDelayMs(attempt, bounds);
      expect(delay).toBeGreaterThanOrEqual(2_500);
      expect(delay).toBeLessThanOrEqual(5_000);
    }
  });

  it('spreads clients that retry at the same attempt', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelayMs(6, bounds)));
    expect(delays.size).toBeGreaterThan(10);
  });

  it('treats attempt 0 or below as the first attempt', () => {
    expect(backoffDelayMs(0, bounds, () => 1)).toBe(100);
    expect(backoffDelayMs(-3, bounds, () => 1)).toBe(100);
  });
});
