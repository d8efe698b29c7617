import { describe, expect, it } from 'vitest';
import {
  NO_HOLDS,
  settleHolds,
  type SeenRecord,
  type TradingControlsSeen,
} from './trading-hold.ts';

const halted = (id: string): SeenRecord => ({ id, lifted: false, by: 'desk', reason: null });
const lifted = (id: string): SeenRecord => ({ id, lifted: true, by: 'desk', reason: null });
const seen = (
  halt: SeenRecord | null,
  pauses: Record<string, SeenRecord> = {},
): TradingControlsSeen => ({ halt, pauses: new Map(Object.entries(pauses)) });

describe('settleHolds', () => {
  it('a process that never saw a hold trades when there is no record', () => {
    expect(settleHolds(NO_HOLDS, seen(null))).toEqual({
      holds: { halt: null, paused: new Map() },
      missing: { halt: null, paused: [] },
    });
    expect(settleHolds(NO_HOLDS, seen(lifted('h0'))).holds.halt).toBeNull();
  });

  it('a halt seen is kept when its record goes missing or a lift names another id', () => {
    const { holds } = settleHolds(NO_HOLDS, seen(halted('h1')));
    expect(holds.halt).toEqual({ id: 'h1', by: 'desk', reason: null });
    expect(settleHolds(holds, seen(null))).toEqual({
      holds,
      missing: { halt: 'h1', paused: [] },
    });
    expect(settleHolds(holds, seen(lifted('h0')))).toEqual({
      holds,
      missing: { halt: 'h1', paused: [] },
    });
  });

  it('only the lift of the held id, or a newer halt, changes it', () => {
    const { holds } = settleHolds(NO_HOLDS, seen(halted('h1')));
    expect(settleHolds(holds, seen(lifted('h1')))).toEqual({
      holds: { halt: null, paused: new Map() },
      missing: { halt: null, paused: [] },
    });
    const newer = settleHolds(holds, seen(halted('h2')));
    expect(newer.holds.halt?.id).toBe('h2');
    expect(newer.missing).toEqual({ halt: null, paused: [] });
    expect(settleHolds(newer.holds, seen(lifted('h2'))).holds.halt).toBeNull();
  });

  it('pauses follow the same rule, portfolio by portfolio', () => {
    const first = settleHolds(NO_HOLDS, seen(null, { p1: halted('a'), p2: halted('b') }));
    expect([...first.holds.paused]).toEqual([
      ['p1', 'a'],
      ['p2', 'b'],
    ]);
    // p1's entry gone, p2 resumed under its own id, p3 paused anew.
    const next = settleHolds(first.holds, seen(null, { p2: lifted('b'), p3: halted('c') }));
    expect([...next.holds.paused].sort()).toEqual([
      ['p1', 'a'],
      ['p3', 'c'],
    ]);
    expect(next.missing).toEqual({ halt: null, paused: ['p1'] });
    // A resume of another pause of p1 lifts nothing; the resume of 'a' does.
    expect(
      settleHolds(next.holds, seen(null, { p1: lifted('z'), p3: halted('c') })).missing,
    ).toEqual({ halt: null, paused: ['p1'] });
    expect([
      ...settleHolds(next.holds, seen(null, { p1: lifted('a'), p3: halted('c') })).holds.paused,
    ]).toEqual([['p3', 'c']]);
  });
});
