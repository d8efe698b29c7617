import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import { MemoryTransport } from '@ginkgo-live/testing';
import { HeartbeatLoop, type HeartbeatLoopOptions } from './heartbeat-loop.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function loop(beat: () => Promise<void>, overrides: Partial<HeartbeatLoopOptions> = {}) {
  const logs = new MemoryTransport();
  const onRecovered = vi.fn();
  const heartbeat = new HeartbeatLoop({
    intervalMs: 5_000,
    maxAttempts: 5,
    baseDelayMs: 250,
    budgetMs: 10_000,
    beat,
    onRecovered,
    logger: createLogger({ app: 't', level: 'debug', transports: [logs] }),
    random: () => 1, // the top of the jitter range, so delays are exact
    ...overrides,
  });
  return { heartbeat, logs, onRecovered };
}

const failing = () => Promise.reject(new Error('connect ECONNREFUSED'));

describe('HeartbeatLoop (FR-036)', () => {
  it('beats at once on start, then every interval', async () => {
    const beat = vi.fn(() => Promise.resolve());
    const { heartbeat } = loop(beat);
    await heartbeat.start();
    expect(beat).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(beat).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(beat).toHaveBeenCalledTimes(4);
    expect(heartbeat.health()).toMatchObject({ healthy: true, consecutive_failures: 0 });
    await heartbeat.stop();
  });

  it('retries a failed beat with growing delays and a bounded number of attempts', async () => {
    const beat = vi.fn(failing);
    const { heartbeat, logs } = loop(beat);
    const started = heartbeat.start();
    await vi.advanceTimersByTimeAsync(250 + 500 + 1_000 + 2_000);
    await started;
    expect(beat).toHaveBeenCalledTimes(5);
    expect(heartbeat.lastRetryDelaysMs).toEqual([250, 500, 1_000, 2_000]);
    expect(heartbeat.health()).toMatchObject({
      healthy: false,
      consecutive_failures: 5,
      total_failures: 5,
      last_success_at: null,
    });
    expect(logs.withMessage('Heartbeat failed')).toHaveLength(1);
    await heartbeat.stop();
  });

  it('keeps the retries of one beat within the budget', async () => {
    const beat = vi.fn(failing);
    const { heartbeat } = loop(beat, { maxAttempts: 10, budgetMs: 2_000 });
    const started = heartbeat.start();
    await vi.advanceTimersByTimeAsync(2_000);
    await started;
    const slept = heartbeat.lastRetryDelaysMs.reduce((a, b) => a + b, 0);
    expect(slept).toBeLessThanOrEqual(2_000);
    expect(beat.mock.calls.length).toBeLessThan(10);
    await heartbeat.stop();
  });

  it('never throws and keeps beating while Redis is down, logging the failure once', async () => {
    const beat = vi.fn(failing);
    const { heartbeat, logs } = loop(beat, { maxAttempts: 2 });
    await Promise.all([heartbeat.start(), vi.advanceTimersByTimeAsync(250)]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(beat.mock.calls.length).toBeGreaterThanOrEqual(20);
    expect(logs.withMessage('Heartbeat failed')).toHaveLength(1);
    expect(heartbeat.health().total_failures).toBe(beat.mock.calls.length);
    await heartbeat.stop();
  });

  it('recovers: one log line, counters reset, and the node is told to rewrite its state', async () => {
    let down = true;
    const beat = vi.fn(() => (down ? failing() : Promise.resolve()));
    const { heartbeat, logs, onRecovered } = loop(beat, { maxAttempts: 2 });
    await Promise.all([heartbeat.start(), vi.advanceTimersByTimeAsync(250)]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(onRecovered).not.toHaveBeenCalled();
    down = false;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(onRecovered).toHaveBeenCalledTimes(1);
    expect(logs.withMessage('Heartbeat recovered')).toHaveLength(1);
    expect(heartbeat.health()).toMatchObject({ healthy: true, consecutive_failures: 0 });
    expect(heartbeat.health().total_failures).toBeGreaterThan(0);
    expect(heartbeat.health().last_success_at).not.toBeNull();
    await vi.advanceTimersByTimeAsync(20_000);
    expect(onRecovered).toHaveBeenCalledTimes(1);
    await heartbeat.stop();
  });

  it('never overlaps beats: a slow beat delays the next one', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const beat = vi.fn(async () => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 7_000));
      inFlight -= 1;
    });
    const { heartbeat } = loop(beat);
    void heartbeat.start();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(maxInFlight).toBe(1);
    expect(beat.mock.calls.length).toBe(5); // 0, 7, 14, 21, 28 s
    const stopped = heartbeat.stop(); // waits for the beat in flight
    await vi.advanceTimersByTimeAsync(7_000);
    await stopped;
    expect(beat.mock.calls.length).toBe(5);
  });

  it('stops promptly, even in the middle of a retry delay', async () => {
    const beat = vi.fn(failing);
    const { heartbeat } = loop(beat, { baseDelayMs: 60_000, budgetMs: 120_000 });
    void heartbeat.start();
    await vi.advanceTimersByTimeAsync(10);
    await heartbeat.stop();
    const calls = beat.mock.calls.length;
    await vi.advanceTimersByTimeAsync(600_000);
    expect(beat.mock.calls.length).toBe(calls);
  });
});
