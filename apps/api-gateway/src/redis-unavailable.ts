import type { Redis } from 'ioredis';

/**
 * Redis could not answer (not connected, timed out, refused the command). The readers and writers
 * of the gateway throw this one error; the HTTP layer alone decides what a client sees (a 503 that
 * carries no client error text — the reason is for the log).
 */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';

  constructor(
    /** What went wrong, as the client library said it: for the log only. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`Redis is unavailable (${reason})`, options);
  }
}

/**
 * Runs `call` against `redis`: refused at once while the connection is not ready (a request must
 * not wait in the offline queue), and any failure of the call becomes a `RedisUnavailableError`.
 */
export async function callRedis<T>(redis: Redis, call: () => Promise<T>): Promise<T> {
  if (redis.status !== 'ready') throw new RedisUnavailableError(`connection ${redis.status}`);
  try {
    return await call();
  } catch (err) {
    if (err instanceof RedisUnavailableError) throw err;
    throw new RedisUnavailableError(err instanceof Error ? err.message : String(err), {
      cause: err,
    });
  }
}
