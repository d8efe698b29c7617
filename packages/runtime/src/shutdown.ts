import type { Logger } from './logger.ts';

export interface ShutdownOptions {
  logger: Logger;
  /** Stops the process's services; resolves to the exit code. Runs once. */
  stop: (signal: NodeJS.Signals) => Promise<number>;
  /**
   * A repeat within this window is the same Ctrl-C delivered twice (by the terminal to the process
   * group and again by a parent that forwards it), not a second request. Default 1000 ms.
   */
  repeatWindowMs?: number;
  /**
   * When `stop` has not finished this long after the first signal, the process exits with 1
   * anyway (logged): a stop that hangs must not keep a process half-alive. Default: no limit.
   */
  hardExitAfterMs?: number;
}

/**
 * The one SIGTERM/SIGINT handler of a process: the first signal runs `stop` and exits with its
 * code; a second signal (after the repeat window) exits at once with 130, and so does a stop that
 * outlasts `hardExitAfterMs` (with 1).
 */
export function handleShutdownSignals(options: ShutdownOptions): void {
  const windowMs = options.repeatWindowMs ?? 1_000;
  let firstAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    const now = Date.now();
    if (firstAt !== undefined) {
      if (now - firstAt < windowMs) {
        options.logger.debug('Repeated signal ignored', { signal });
        return;
      }
      options.logger.warn('Second signal: exiting at once', { signal });
      process.exit(130);
    }
    firstAt = now;
    options.logger.info('Shutting down', { signal });
    const limit = options.hardExitAfterMs;
    if (limit !== undefined) {
      setTimeout(() => {
        options.logger.error('Stop did not finish in time; exiting anyway', { afterMs: limit });
        process.exit(1);
      }, limit).unref();
    }
    options.stop(signal).then(
      (code) => process.exit(code),
      (err: unknown) => {
        options.logger.error('Shutdown failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
