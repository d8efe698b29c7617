import { describe, expect, it } from 'vitest';
import { RandomWalk, startingPrice } from './random-walk.ts';

describe('RandomWalk', () => {
  it('stays positive and moves by about sigma per step', () => {
    const walk = new RandomWalk(100, 0.001);
    const prices = Array.from({ length: 1_000 }, () => walk.next());
    expect(Math.min(...prices)).toBeGreaterThan(0);
    const steps = prices.slice(1).map((p, i) => Math.log(p / (prices[i] ?? p)));
    const sd = Math.sqrt(steps.reduce((s, x) => s + x * x, 0) / steps.length);
    expect(sd).toBeGreaterThan(0.0005);
    expect(sd).toBeLessThan(0.002);
  });

  it('does not move with zero volatility', () => {
    const walk = new RandomWalk(123.45, 0);
    expect([walk.next(), walk.next()]).toEqual([123.45, 123.45]);
  });

  it('gives each symbol a stable starting price', () => {
    expect(startingPrice('BTC')).toBe(startingPrice('BTC'));
    expect(startingPrice('BTC')).not.toBe(startingPrice('ETH'));
  });
});
