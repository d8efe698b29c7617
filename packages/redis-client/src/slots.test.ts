import { describe, expect, it } from 'vitest';
import { groupBySlot, keySlot } from './slots.ts';

describe('groupBySlot', () => {
  it('groups keys by hash slot in order of first appearance, keeping each key’s position', () => {
    const keys = ['portfolio:{a}:state', 'portfolio:{b}:state', 'portfolio:{a}:book', 'x'];
    expect(groupBySlot(keys)).toEqual([
      {
        slot: keySlot('a'),
        keys: ['portfolio:{a}:state', 'portfolio:{a}:book'],
        positions: [0, 2],
      },
      { slot: keySlot('b'), keys: ['portfolio:{b}:state'], positions: [1] },
      { slot: keySlot('x'), keys: ['x'], positions: [3] },
    ]);
  });

  it('gives no group for no keys', () => {
    expect(groupBySlot([])).toEqual([]);
  });
});
