import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import { MemoryTransport } from '@ginkgo-live/testing';
import { LeaderWatch } from './leader-watch.ts';

/** A watch over a scripted lock: each reading is a leader id, null (no leader) or an Error. */
function setup(missingAfterMs = 3_000) {
  let clock = 0;
  let reading: string | null | Error = 's1';
  const raise = vi.fn();
  const resolve = vi.fn();
  const watch = new LeaderWatch({
    readLeader: () =>
      reading instanceof Error ? Promise.reject(reading) : Promise.resolve(reading),
    notifier: { raise, resolve },
    logger: createLogger({ app: 'test', transports: [new MemoryTransport()] }),
    missingAfterMs,
    now: () => clock,
  });
  const at = async (ms: number, value: string | null | Error) => {
    clock = ms;
    reading = value;
    await watch.check();
  };
  return { raise, resolve, at };
}

describe('LeaderWatch', () => {
  it('raises scheduler_leader_missing once when no leader for the grace, and resolves once when one is back', async () => {
    const { raise, resolve, at } = setup();
    await at(0, 's1');
    resolve.mockClear(); // the first sight of a leader clears what a dead gateway may have left
    await at(1_000, null);
    await at(3_999, null);
    expect(raise).not.toHaveBeenCalled();
    await at(4_000, null);
    await at(9_000, null);
    expect(raise).toHaveBeenCalledTimes(1);
    // The absence counts from the first reading without a leader (1 s), told at 4 s.
    expect(raise.mock.calls[0]).toEqual([
      'scheduler_leader_missing',
      {},
      { missing_since: new Date(1_000).toISOString(), missing_for_ms: 3_000 },
    ]);
    await at(10_000, 's2');
    await at(11_000, 's2');
    expect(resolve).toHaveBeenCalledTimes(1);
    expect(resolve.mock.calls[0]).toEqual(['scheduler_leader_missing', {}, { leader: 's2' }]);
  });

  it('takes a failover shorter than the grace for no alarm', async () => {
    const { raise, at } = setup();
    await at(0, 's1');
    await at(1_000, null);
    await at(2_500, 's2');
    await at(3_000, null);
    await at(5_500, null);
    expect(raise).not.toHaveBeenCalled();
  });

  it('counts an unreadable lock as unknown, not absent: the absence starts again after it', async () => {
    const { raise, resolve, at } = setup();
    await at(0, null);
    await at(2_000, new Error('Connection is closed.'));
    await at(4_000, null);
    await at(6_999, null);
    expect(raise).not.toHaveBeenCalled();
    expect(resolve).not.toHaveBeenCalled();
    await at(7_000, null);
    expect(raise).toHaveBeenCalledTimes(1);
  });

  it('resolves at its first sight of a leader, once, in case a gateway that died left the condition firing', async () => {
    const { resolve, at } = setup();
    await at(0, 's1');
    await at(1_000, 's1');
    expect(resolve).toHaveBeenCalledTimes(1);
  });
});
