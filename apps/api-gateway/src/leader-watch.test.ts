import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import { MemoryTransport } from '@ginkgo-live/testing';
import { LeaderWatch } from './leader-watch.ts';

/** A watch over a scripted lock: each reading is a leader id, null (no leader) or an Error. */
function setup(missingAfterMs = 3_000) {
  let clock = 0;
  let reading: string | null | Error = 's1';
  const notify = vi.fn();
  const resolve = vi.fn();
  const watch = new LeaderWatch({
    readLeader: () =>
      reading instanceof Error ? Promise.reject(reading) : Promise.resolve(reading),
    notifier: { notify, resolve },
    logger: createLogger({ app: 'test', transports: [new MemoryTransport()] }),
    missingAfterMs,
    now: () => clock,
  });
  const at = async (ms: number, value: string | null | Error) => {
    clock = ms;
    reading = value;
    await watch.check();
  };
  return { notify, resolve, at };
}

describe('LeaderWatch', () => {
  it('raises scheduler_leader_missing once when no leader for the grace, and resolves once when one is back', async () => {
    const { notify, resolve, at } = setup();
    await at(0, 's1');
    resolve.mockClear(); // the first sight of a leader clears what a dead gateway may have left
    await at(1_000, null);
    await at(3_999, null);
    expect(notify).not.toHaveBeenCalled();
    await at(4_000, null);
    await at(9_000, null);
    expect(notify).toHaveBeenCalledTimes(1);
    expect(notify.mock.calls[0]?.[0]).toMatchObject({
      kind: 'scheduler_leader_missing',
      level: 'critical',
      group: 'scheduler_leader',
    });
    expect(notify.mock.calls[0]?.[0]).not.toHaveProperty('subject');
    await at(10_000, 's2');
    await at(11_000, 's2');
    expect(resolve).toHaveBeenCalledTimes(1);
    expect(resolve.mock.calls[0]?.[0]).toMatchObject({
      group: 'scheduler_leader',
      kinds: [{ kind: 'scheduler_leader_missing', level: 'critical' }],
      details: { leader: 's2' },
    });
  });

  it('takes a failover shorter than the grace for no alarm', async () => {
    const { notify, at } = setup();
    await at(0, 's1');
    await at(1_000, null);
    await at(2_500, 's2');
    await at(3_000, null);
    await at(5_500, null);
    expect(notify).not.toHaveBeenCalled();
  });

  it('counts an unreadable lock as unknown, not absent: the absence starts again after it', async () => {
    const { notify, resolve, at } = setup();
    await at(0, null);
    await at(2_000, new Error('Connection is closed.'));
    await at(4_000, null);
    await at(6_999, null);
    expect(notify).not.toHaveBeenCalled();
    expect(resolve).not.toHaveBeenCalled();
    await at(7_000, null);
    expect(notify).toHaveBeenCalledTimes(1);
  });

  it('resolves at its first sight of a leader, once, in case a gateway that died left the condition firing', async () => {
    const { resolve, at } = setup();
    await at(0, 's1');
    await at(1_000, 's1');
    expect(resolve).toHaveBeenCalledTimes(1);
  });
});
