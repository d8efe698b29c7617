import { describe, expect, it, vi } from 'vitest';
import { QUEUE_THRESHOLDS, queueLevel } from '@ginkgo-live/fleet';
import { QUEUE_CONDITION } from '@ginkgo-live/notification-adapter';
import {
  DEFAULT_THRESHOLDS,
  nextPressure,
  QueuePressureWatcher,
  type QueueReading,
} from './queue-pressure.ts';

describe('nextPressure', () => {
  it("uses the fleet's one set of thresholds, and the notification condition's hysteresis", () => {
    expect(DEFAULT_THRESHOLDS).toEqual({ ...QUEUE_THRESHOLDS, resolveBelow: 0.6 });
    expect(DEFAULT_THRESHOLDS.resolveBelow).toBe(QUEUE_CONDITION.resolveBelow);
    // Rising, the node's level is the level the gateway shows for the same usage.
    for (const usage of [0.65, 0.7, 0.8, 0.95, 0.99, 1, 1.1])
      expect(nextPressure('ok', usage)).toBe(queueLevel(usage));
  });

  it('rises at once to the level the usage reaches', () => {
    expect(nextPressure('ok', 0.69)).toBe('ok');
    expect(nextPressure('ok', 0.7)).toBe('warning');
    expect(nextPressure('ok', 0.95)).toBe('critical');
    expect(nextPressure('warning', 1)).toBe('full');
  });

  it('keeps the highest level until usage falls below 60 % (no flapping at a threshold)', () => {
    expect(nextPressure('full', 0.8)).toBe('full');
    expect(nextPressure('critical', 0.71)).toBe('critical');
    expect(nextPressure('warning', 0.65)).toBe('warning');
    expect(nextPressure('warning', 0.59)).toBe('ok');
    expect(nextPressure('full', 0)).toBe('ok');
  });
});

describe('QueuePressureWatcher', () => {
  function setup() {
    const raise = vi.fn();
    const resolve = vi.fn();
    const watcher = new QueuePressureWatcher({ raise, resolve }, 'node-1');
    const read = (depth: number, refused = 0) =>
      watcher.observe({ portfolioId: 'p1', depth, capacity: 1_000, refused });
    return { raise, resolve, read };
  }

  it('notifies each level once on the way up and resolves once below 60 %', () => {
    const { raise, resolve, read } = setup();
    for (const depth of [500, 700, 750, 960, 990, 1_000, 1_000, 800, 1_000, 650, 599, 300])
      read(depth);
    expect(raise.mock.calls.map((call) => `${String(call[0])}/${String(call[3])}`)).toEqual([
      'queue_usage_high/warning',
      'queue_usage_high/critical',
      'queue_full/undefined', // its one level, critical
    ]);
    expect(resolve).toHaveBeenCalledTimes(1);
    expect(resolve.mock.calls[0]?.slice(0, 2)).toEqual(['queue', { portfolioId: 'p1' }]);
  });

  it('carries node, portfolio, depth, capacity, usage and refusals since the last notice', () => {
    const { raise, read } = setup();
    read(100, 10);
    read(720, 10);
    read(1_000, 25);
    expect(raise.mock.calls[1]).toEqual([
      'queue_full',
      { portfolioId: 'p1' },
      { node_id: 'node-1', depth: 1_000, capacity: 1_000, usage: 1, refused_since_last_notice: 15 },
    ]);
  });

  it('tells once per portfolio of a queue deeper than its capacity: a producer with a larger PORTFOLIO_QUEUE_CAPACITY', () => {
    const told: QueueReading[] = [];
    const watcher = new QueuePressureWatcher(
      { raise: vi.fn(), resolve: vi.fn() },
      'node-1',
      DEFAULT_THRESHOLDS,
      (reading) => told.push(reading),
    );
    for (const depth of [10, 20, 21, 25, 20])
      watcher.observe({ portfolioId: 'p1', depth, capacity: 20, refused: 0 });
    expect(told).toEqual([{ portfolioId: 'p1', depth: 21, capacity: 20, refused: 0 }]);
    watcher.forget('p1');
    watcher.observe({ portfolioId: 'p1', depth: 30, capacity: 20, refused: 0 });
    expect(told).toHaveLength(2);
  });
});
