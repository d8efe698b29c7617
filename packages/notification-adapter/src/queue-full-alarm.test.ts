import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import { MemoryTransport } from '@ginkgo-live/testing';
import { QueueFullAlarm } from './queue-full-alarm.ts';

function setup() {
  const raise = vi.fn();
  const resolve = vi.fn();
  const alarm = new QueueFullAlarm({
    notifier: { raise, resolve },
    producer: 'market-feed:42',
    logger: createLogger({ app: 'test', transports: [new MemoryTransport()] }),
  });
  return { raise, resolve, alarm };
}

const full = { depth: 20, capacity: 20 };

describe('QueueFullAlarm', () => {
  it('raises queue_full once for a run of refusals, under the portfolio subject the nodes use', () => {
    const { raise, alarm } = setup();
    for (let i = 0; i < 5; i++) alarm.refused('p1', full);
    expect(raise).toHaveBeenCalledTimes(1);
    expect(raise.mock.calls[0]).toEqual([
      'queue_full',
      { portfolioId: 'p1' },
      { depth: 20, capacity: 20, seen_by: 'market-feed:42' },
    ]);
  });

  it('resolves only once an accepted add finds the queue below 60 %, not at the first free slot', () => {
    const { raise, resolve, alarm } = setup();
    alarm.refused('p1', full);
    alarm.accepted('p1', { depth: 20, capacity: 20 });
    alarm.accepted('p1', { depth: 12, capacity: 20 });
    alarm.refused('p1', full);
    expect(raise).toHaveBeenCalledTimes(1);
    expect(resolve).not.toHaveBeenCalled();
    alarm.accepted('p1', { depth: 11, capacity: 20 });
    alarm.accepted('p1', { depth: 3, capacity: 20 });
    expect(resolve).toHaveBeenCalledTimes(1);
    expect(resolve.mock.calls[0]).toEqual([
      'queue',
      { portfolioId: 'p1' },
      { depth: 11, capacity: 20, seen_by: 'market-feed:42', refused_since_raise: 2 },
    ]);
  });

  it('raises again after a resolve: a new fault is a new notice', () => {
    const { raise, alarm } = setup();
    alarm.refused('p1', full);
    alarm.accepted('p1', { depth: 1, capacity: 20 });
    alarm.refused('p1', full);
    expect(raise).toHaveBeenCalledTimes(2);
  });

  it('clears a condition left by another process the first time it sees the queue low, then stays quiet', () => {
    const { resolve, alarm } = setup();
    alarm.accepted('p1', { depth: 1, capacity: 20 });
    alarm.accepted('p1', { depth: 2, capacity: 20 });
    alarm.accepted('p2', { depth: 15, capacity: 20 });
    expect(resolve).toHaveBeenCalledTimes(1);
    expect(resolve.mock.calls[0]?.[1]).toEqual({ portfolioId: 'p1' });
  });

  it('keeps portfolios apart', () => {
    const { raise, alarm } = setup();
    alarm.refused('p1', full);
    alarm.refused('p2', full);
    alarm.refused('p1', full);
    expect(raise.mock.calls.map((c) => c[1] as unknown)).toEqual([
      { portfolioId: 'p1' },
      { portfolioId: 'p2' },
    ]);
  });
});
