import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('gives the documented defaults', () => {
    const result = loadConfig({});
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value).toMatchObject({
      tickMs: 5_000,
      leaderTtlMs: 10_000,
      defaultCapacity: 5,
      outageGraceMs: 15_000,
      orphanNotifyAfterMs: 15_000,
      settleMs: 10_000,
      nodeRetentionMs: 86_400_000,
      rebalancePerMinute: 0,
      catalogFile: undefined,
    });
  });

  it('derives the settle window from the tick unless it is set (0 too)', () => {
    const derived = loadConfig({ SCHEDULER_TICK_MS: '500', SCHEDULER_LEADER_TTL_MS: '2000' });
    expect(derived.ok && derived.value.settleMs).toBe(1_000);
    const off = loadConfig({ SCHEDULER_SETTLE_MS: '0' });
    expect(off.ok && off.value.settleMs).toBe(0);
    const set = loadConfig({ SCHEDULER_SETTLE_MS: '2500', SCHEDULER_REBALANCE_PER_MIN: '3' });
    expect(set.ok && [set.value.settleMs, set.value.rebalancePerMinute]).toEqual([2_500, 3]);
  });

  it('names each bad setting, every one of them', () => {
    expect(
      loadConfig({
        SCHEDULER_SETTLE_MS: '-1',
        SCHEDULER_NODE_RETENTION_MS: '1000',
        SCHEDULER_REBALANCE_PER_MIN: 'lots',
      }),
    ).toEqual({
      ok: false,
      issues: [
        { variable: 'SCHEDULER_SETTLE_MS', message: 'must be at least 0, got -1' },
        { variable: 'SCHEDULER_NODE_RETENTION_MS', message: 'must be at least 60000, got 1000' },
        { variable: 'SCHEDULER_REBALANCE_PER_MIN', message: 'must be an integer, got "lots"' },
      ],
    });
  });

  it('refuses a retention that would forget nodes still in the outage grace', () => {
    expect(
      loadConfig({ SCHEDULER_OUTAGE_GRACE_MS: '120000', SCHEDULER_NODE_RETENTION_MS: '60000' }),
    ).toEqual({
      ok: false,
      issues: [
        {
          variable: 'SCHEDULER_NODE_RETENTION_MS',
          message:
            'must exceed SCHEDULER_OUTAGE_GRACE_MS (120000), or nodes are forgotten before they had time to beat again',
        },
      ],
    });
  });
});
