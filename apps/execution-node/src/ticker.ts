import type { Logger } from '@ginkgo-live/runtime';

/**
 * Runs `work` every `intervalMs`, never overlapping: the next run is scheduled after the previous
 * one ended. A failing run is logged (the first failure of a streak at warn, the rest at debug,
 * the recovery at info) and the loop goes on.
 */
export class Ticker {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private current: Promise<void> | undefined;
  private failures = 0;

  constructor(
    readonly name: string,
    private readonly intervalMs: number,
    private readonly work: () => Promise<void>,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.run();
  }

  /** Stops the loop and waits for a run in progress. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.current;
  }

  private async run(): Promise<void> {
    this.current = this.work().then(
      () => {
        if (this.failures > 0)
          this.logger.info('Loop recovered', { loop: this.name, failures: this.failures });
        this.failures = 0;
      },
      (err: unknown) => {
        this.failures += 1;
        if (this.failures === 1)
          this.logger.warn('Loop run failed; retrying', { loop: this.name, err });
        else
          this.logger.debug('Loop run failed again', { loop: this.name, failures: this.failures });
      },
    );
    await this.current;
    this.current = undefined;
    if (this.running) this.timer = setTimeout(() => void this.run(), this.intervalMs);
  }
}
