/** Bounds of an exponential backoff. */
export interface BackoffOptions {
  /** Delay of the first attempt before jitter, in ms. */
  baseDelayMs: number;
  /** No delay exceeds this, in ms. */
  maxDelayMs: number;
}

/**
 * Delay before reconnect attempt `attempt` (1-based): exponential growth from `baseDelayMs`,
 * capped at `maxDelayMs`, with "equal jitter" (half fixed, half random) so that many clients that
 * lost the same Redis do not dial it again in lockstep. Never gives up: every attempt has a delay.
 */
export function backoffDelayMs(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(attempt, 1) - 1, 30);
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** exponent);
  const half = ceiling / 2;
  return Math.round(half + random() * half);
}
