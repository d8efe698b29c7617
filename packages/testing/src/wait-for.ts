/** Bounds of a wait. */
export interface WaitOptions {
  /** Give up after this long, in ms. Default 5000. */
  timeoutMs?: number;
  /** Poll this often, in ms. Default 25. */
  intervalMs?: number;
  /** Said in the timeout error: what was awaited. */
  description?: string;
}

/**
 * Polls `check` until it returns a value other than `undefined`/`false` (or stops throwing), and
 * returns that value. Fails with the last error or value after `timeoutMs`. Bounded polling, never
 * a fixed sleep.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  options: WaitOptions = {},
): Promise<Exclude<T, false | undefined>> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const intervalMs = options.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as Exclude<T, false | undefined>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const what = options.description ?? 'condition';
      const detail = last instanceof Error ? last.message : String(last);
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
