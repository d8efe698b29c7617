import { describe, expect, it } from 'vitest';
import { cooldownMs, mostSevere } from './dedupe.ts';

describe('cooldownMs', () => {
  it('takes each level its own setting, error as critical', () => {
    const config = { infoCooldownMs: 1, warningCooldownMs: 2, criticalCooldownMs: 3 };
    expect(
      (['info', 'warning', 'error', 'critical'] as const).map((l) => cooldownMs(l, config)),
    ).toEqual([1, 2, 3, 3]);
  });
});

describe('mostSevere', () => {
  it('speaks for the most severe kind that was firing', () => {
    expect(
      mostSevere(['queue_usage_high|warning', 'queue_full|critical', 'queue_usage_high|critical']),
    ).toEqual({ kind: 'queue_full', level: 'critical' });
    expect(mostSevere(['node_lost|critical'])).toEqual({ kind: 'node_lost', level: 'critical' });
  });

  it('is nothing when nothing was firing (another process resolved it first)', () => {
    expect(mostSevere([])).toBeUndefined();
  });
});
