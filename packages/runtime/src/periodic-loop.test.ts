import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryTransport } from '@ginkgo-live/testing';
import { createLogger } from './logger.ts';
import { PeriodicLoop, type PeriodicLoopOptions } from './periodic-loop.ts';

/** Log lines as `level message`. */
function lines(capture: MemoryTransport): string[] {
  return capture.entries.map((e) => `${e.level} ${e.message}`);
}

/** A promise with its resolve handle: a run that ends when the test says so. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

function loopWith(overrides: Partial<PeriodicLoopOptions> & Pick<PeriodicLoopOptions, 'run'>): {
  loop: PeriodicLoop;
  capture: MemoryTransport;
} {
  const capture = new MemoryTransport();
  const logger = createLogger({
    app: 'test',
    format: 'json',
    level: 'debug',
    transports: [capture],
  });
  const loop = new PeriodicLoop({ name: 'heartbeat', intervalMs: 100, logger, ...overrides });
  return { loop, capture };
}

/** Stops the loop while fake time passes, so a run sleeping on a fake timer can end. */
async function stopAfter(loop: PeriodicLoop, ms = 1_000): Promise<boolean> {
  const stopping = loop.stop();
  await vi.advanceTimersByTimeAsync(ms);
  return stopping;
}

describe('PeriodicLoop', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs at once on start, then the interval after the end of each run', async () => {
    const startedAt: number[] = [];
    const { loop } = loopWith({
      run: async () => {
        startedAt.push(Date.now());
        await new Promise((r) => setTimeout(r, 30));
      },
    });
    const t0 = Date.now();
    loop.start();
    loop.start(); // idempotent: no second chain of runs
    await vi.advanceTimersByTimeAsync(400);
    await stopAfter(loop);
    // each run takes 30 ms, then 100 ms pause: starts at 0, 130, 260, 390
    expect(startedAt.map((t) => t - t0)).toEqual([0, 130, 260, 390]);
    expect(loop.stats.runs).toBe(4);
  });

  it('with immediate: false waits one interval before the first run', async () => {
    let runs = 0;
    const { loop } = loopWith({
      immediate: false,
      run: () => {
        runs += 1;
        return Promise.resolve();
      },
    });
    loop.start();
    await vi.advanceTimersByTimeAsync(99);
    expect(runs).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toBe(1);
    await loop.stop();
  });

  it('reads an interval function before every pause', async () => {
    const startedAt: number[] = [];
    let interval = 10;
    const { loop } = loopWith({
      intervalMs: () => interval,
      run: () => {
        startedAt.push(Date.now());
        interval *= 2;
        return Promise.resolve();
      },
    });
    const t0 = Date.now();
    loop.start();
    await vi.advanceTimersByTimeAsync(150);
    await loop.stop();
    expect(startedAt.map((t) => t - t0)).toEqual([0, 20, 60, 140]);
  });

  it('never overlaps runs, even when one outlasts the interval and a trigger arrives', async () => {
    let concurrent = 0;
    let maxConcurrent = 0;
    const { loop } = loopWith({
      intervalMs: 5,
      run: async () => {
        concurrent += 1;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        await new Promise((r) => setTimeout(r, 50));
        concurrent -= 1;
      },
    });
    loop.start();
    await vi.advanceTimersByTimeAsync(10);
    loop.trigger();
    loop.trigger();
    await vi.advanceTimersByTimeAsync(300);
    await stopAfter(loop);
    expect(maxConcurrent).toBe(1);
    expect(loop.stats.runs).toBe(6);
  });

  it('logs the first failure, counts repeats silently, and logs the recovery with the count', async () => {
    let outcome: 'ok' | 'fail' = 'ok';
    const { loop, capture } = loopWith({
      run: () => (outcome === 'ok' ? Promise.resolve() : Promise.reject(new Error('ECONNREFUSED'))),
    });
    loop.start();
    await vi.advanceTimersByTimeAsync(0); // run 1 ok
    outcome = 'fail';
    await vi.advanceTimersByTimeAsync(400); // runs 2..5 fail
    outcome = 'ok';
    await vi.advanceTimersByTimeAsync(100); // run 6 ok
    await vi.advanceTimersByTimeAsync(100); // run 7 ok
    await loop.stop();
    expect(lines(capture)).toEqual(['error Heartbeat failed', 'info Heartbeat recovered']);
    const [failed, recovered] = capture.entries;
    expect((failed?.['err'] as { message: string }).message).toBe('ECONNREFUSED');
    expect(failed?.['loop']).toBe('heartbeat');
    expect(recovered).toMatchObject({ loop: 'heartbeat', failedRuns: 4, failingForMs: 400 });
    expect(loop.stats).toEqual({ runs: 7, failures: 4, consecutiveFailures: 0, lastRunMs: 0 });
  });

  it('catches a run that throws synchronously', async () => {
    const { loop, capture } = loopWith({
      run: () => {
        throw new Error('sync');
      },
    });
    loop.start();
    await vi.advanceTimersByTimeAsync(250);
    await loop.stop();
    expect(loop.stats).toMatchObject({ runs: 3, failures: 3, consecutiveFailures: 3 });
    expect(lines(capture)).toEqual(['error Heartbeat failed']);
  });

  it('stop waits for the run in progress and starts no other', async () => {
    const running = gate();
    let runs = 0;
    const { loop } = loopWith({
      run: async () => {
        runs += 1;
        await running.promise;
      },
    });
    loop.start();
    await vi.advanceTimersByTimeAsync(0);
    let stopped: boolean | undefined;
    const stopping = loop.stop().then((clean) => {
      stopped = clean;
    });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(stopped).toBeUndefined();
    expect(loop.running).toBe(false);
    running.open();
    await stopping;
    expect(stopped).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runs).toBe(1);
  });

  it('stop with a deadline abandons a hung run, says so, and resolves false', async () => {
    const { loop, capture } = loopWith({ run: () => new Promise<void>(() => undefined) });
    loop.start();
    await vi.advanceTimersByTimeAsync(0);
    let stopped: boolean | undefined;
    void loop.stop(500).then((clean) => {
      stopped = clean;
    });
    await vi.advanceTimersByTimeAsync(499);
    expect(stopped).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(stopped).toBe(false);
    expect(lines(capture)).toEqual([
      'warn Heartbeat still running at the stop deadline; abandoned',
    ]);
    expect(capture.entries[0]).toMatchObject({ loop: 'heartbeat', deadlineMs: 500 });
  });

  it('start after a stop that abandoned a run waits for that run to end: never two at once', async () => {
    const first = gate();
    let started = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    const { loop } = loopWith({
      run: async () => {
        started += 1;
        concurrent += 1;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        if (started === 1) await first.promise;
        concurrent -= 1;
      },
    });
    loop.start();
    await vi.advanceTimersByTimeAsync(0);
    const stopping = loop.stop(100);
    await vi.advanceTimersByTimeAsync(100);
    expect(await stopping).toBe(false);
    loop.start();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(started).toBe(1);
    first.open();
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toBe(2);
    expect(maxConcurrent).toBe(1);
    await stopAfter(loop);
  });

  it('stop with a deadline resolves true when the run ends in time', async () => {
    const running = gate();
    const { loop, capture } = loopWith({ run: () => running.promise });
    loop.start();
    await vi.advanceTimersByTimeAsync(0);
    const stopping = loop.stop(500);
    await vi.advanceTimersByTimeAsync(200);
    running.open();
    expect(await stopping).toBe(true);
    expect(capture.entries).toEqual([]);
  });

  it('stop between runs resolves at once; start after stop resumes', async () => {
    let runs = 0;
    const { loop } = loopWith({
      run: () => {
        runs += 1;
        return Promise.resolve();
      },
    });
    loop.start();
    await vi.advanceTimersByTimeAsync(50);
    expect(await loop.stop(10)).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runs).toBe(1);
    loop.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toBe(2);
    await loop.stop();
  });

  it('trigger between runs starts the next run now instead of after the interval', async () => {
    const startedAt: number[] = [];
    const { loop } = loopWith({
      intervalMs: 1_000,
      run: () => {
        startedAt.push(Date.now());
        return Promise.resolve();
      },
    });
    const t0 = Date.now();
    loop.start();
    await vi.advanceTimersByTimeAsync(300);
    loop.trigger();
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(1_000);
    await loop.stop();
    expect(startedAt.map((t) => t - t0)).toEqual([0, 300, 1_300]);
  });

  it('trigger during a run starts the next one as soon as it ends, once', async () => {
    const startedAt: number[] = [];
    const { loop } = loopWith({
      intervalMs: 1_000,
      run: async () => {
        startedAt.push(Date.now());
        await new Promise((r) => setTimeout(r, 50));
      },
    });
    const t0 = Date.now();
    loop.start();
    await vi.advanceTimersByTimeAsync(10);
    loop.trigger();
    loop.trigger();
    await vi.advanceTimersByTimeAsync(1_200);
    await stopAfter(loop);
    // run 1 at 0 ends at 50 → run 2 (triggered) at once, ends at 101 → run 3 after the interval.
    // "At once" is 51 here: fake-timers puts a zero-delay timer added during a tick 1 ms later.
    expect(startedAt.map((t) => t - t0)).toEqual([0, 51, 1_101]);
  });

  it('trigger before start or after stop does nothing', async () => {
    let runs = 0;
    const { loop } = loopWith({
      run: () => {
        runs += 1;
        return Promise.resolve();
      },
    });
    loop.trigger();
    await vi.advanceTimersByTimeAsync(500);
    expect(runs).toBe(0);
    loop.start();
    await vi.advanceTimersByTimeAsync(0);
    await loop.stop();
    loop.trigger();
    await vi.advanceTimersByTimeAsync(500);
    expect(runs).toBe(1);
  });
});
