import type { Logger } from './logger.ts';

export interface PeriodicLoopOptions {
  /** Shown in logs: "heartbeat", "scheduler tick", ... */
  name: string;
  /** Pause between the end of one run and the start of the next (ms), or a function read each time. */
  intervalMs: number | (() => number);
  logger: Logger;
  /**
   * One iteration. A throw is caught: logged on the transition ok→failing (error, with the error)
   * and failing→ok ("recovered", with how many runs failed), repeats only counted.
   */
  run: () => Promise<void>;
  /** Run the first iteration at once on start() (default true). */
  immediate?: boolean;
  /**
   * A waiting loop does not keep the process alive (default false): for a background duty of a
   * library object whose owner may exit without stopping it.
   */
  unref?: boolean;
}

export interface PeriodicLoopStats {
  runs: number;
  failures: number;
  consecutiveFailures: number;
  /** How long the last finished run took. */
  lastRunMs: number;
}

/**
 * Runs `run` again and again with a pause between the end of one run and the start of the next,
 * so runs never overlap however long one takes. A loop that fails on every run logs one error
 * when it starts failing and one line when it recovers: a Redis outage of a minute must not print
 * sixty stack traces per loop.
 */
export class PeriodicLoop {
  private readonly options: PeriodicLoopOptions;
  /** Cancels the scheduled next run, if one is scheduled. */
  private cancelNext: (() => void) | undefined;
  private inFlight: Promise<void> | undefined;
  private active = false;
  private triggered = false;
  private failingSince = 0;
  private readonly counters: PeriodicLoopStats = {
    runs: 0,
    failures: 0,
    consecutiveFailures: 0,
    lastRunMs: 0,
  };

  constructor(options: PeriodicLoopOptions) {
    this.options = options;
  }

  /** Between start() and stop(), whether or not a run is in progress right now. */
  get running(): boolean {
    return this.active;
  }

  get stats(): Readonly<PeriodicLoopStats> {
    return { ...this.counters };
  }

  start(): void {
    if (this.active) return;
    this.active = true;
    if (this.inFlight !== undefined) {
      // A run abandoned by a stop deadline is still going: the next one waits for its end.
      this.triggered = this.options.immediate ?? true;
      return;
    }
    if (this.options.immediate ?? true) this.schedule('now');
    else this.schedule(this.interval());
  }

  /** Start the next run as soon as the current one (if any) ends, instead of waiting the interval. */
  trigger(): void {
    if (!this.active) return;
    if (this.inFlight !== undefined) {
      this.triggered = true;
      return;
    }
    this.schedule(0);
  }

  /**
   * No new run starts; resolves when the run in progress ended, or after `deadlineMs` (then with
   * false, logged: the run is abandoned, not cancelled — it may still finish later, but nothing
   * follows it). Resolves true when stopped cleanly.
   */
  async stop(deadlineMs?: number): Promise<boolean> {
    this.active = false;
    this.triggered = false;
    this.cancelNext?.();
    this.cancelNext = undefined;
    const inFlight = this.inFlight;
    if (inFlight === undefined) return true;
    if (deadlineMs === undefined) {
      await inFlight;
      return true;
    }
    let deadline: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      inFlight.then(() => true),
      new Promise<false>((resolve) => {
        deadline = setTimeout(() => resolve(false), deadlineMs);
      }),
    ]);
    clearTimeout(deadline);
    if (!finished) {
      this.options.logger.warn(`${this.title()} still running at the stop deadline; abandoned`, {
        loop: this.options.name,
        deadlineMs,
      });
    }
    return finished;
  }

  private interval(): number {
    const { intervalMs } = this.options;
    return typeof intervalMs === 'number' ? intervalMs : intervalMs();
  }

  private schedule(delayMs: number | 'now'): void {
    this.cancelNext?.();
    const go = (): void => {
      this.cancelNext = undefined;
      const run = this.runOnce();
      this.inFlight = run;
      void run.then(() => {
        this.inFlight = undefined;
        if (!this.active) return;
        const next = this.triggered ? 0 : this.interval();
        this.triggered = false;
        this.schedule(next);
      });
    };
    if (delayMs === 'now') {
      // The first run starts within start()'s turn of the event loop, before any timer.
      let cancelled = false;
      queueMicrotask(() => {
        if (!cancelled) go();
      });
      this.cancelNext = () => {
        cancelled = true;
      };
    } else if (delayMs <= 0) {
      // setTimeout(0) waits at least 1 ms; a triggered run should not.
      const immediate = setImmediate(go);
      if (this.options.unref === true) immediate.unref();
      this.cancelNext = () => clearImmediate(immediate);
    } else {
      const timer = setTimeout(go, delayMs);
      if (this.options.unref === true) timer.unref();
      this.cancelNext = () => clearTimeout(timer);
    }
  }

  private async runOnce(): Promise<void> {
    const started = Date.now();
    let failure: { err: unknown } | undefined;
    try {
      await this.options.run();
    } catch (err) {
      failure = { err };
    }
    this.counters.runs += 1;
    this.counters.lastRunMs = Date.now() - started;
    if (failure === undefined) this.succeeded();
    else this.failed(failure.err, started);
  }

  private succeeded(): void {
    const failedRuns = this.counters.consecutiveFailures;
    if (failedRuns === 0) return;
    this.counters.consecutiveFailures = 0;
    this.options.logger.info(`${this.title()} recovered`, {
      loop: this.options.name,
      failedRuns,
      failingForMs: Date.now() - this.failingSince,
    });
  }

  private failed(err: unknown, startedAt: number): void {
    this.counters.failures += 1;
    this.counters.consecutiveFailures += 1;
    if (this.counters.consecutiveFailures > 1) return;
    this.failingSince = startedAt;
    this.options.logger.error(`${this.title()} failed`, { loop: this.options.name, err });
  }

  /** "heartbeat" → "Heartbeat", for the start of a log line. */
  private title(): string {
    const { name } = this.options;
    return name.charAt(0).toUpperCase() + name.slice(1);
  }
}
