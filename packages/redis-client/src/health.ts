import type { Redis } from 'ioredis';

/** The answer of a health ping. */
export type PingResult =
  { ok: true; latencyMs: number } | { ok: false; latencyMs: number; reason: string };

/**
 * Sends PING with its own deadline, independent of the connection's command timeout. A connection
 * that is not ready answers at once (no offline queueing), so a health check never hangs.
 */
export async function pingRedis(client: Redis, timeoutMs: number): Promise<PingResult> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  if (client.status !== 'ready') {
    return { ok: false, latencyMs: 0, reason: `connection is ${client.status}` };
  }
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<PingResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, latencyMs: elapsed(), reason: `no reply within ${timeoutMs} ms` }),
      timeoutMs,
    );
  });
  const reply = client.ping().then(
    (): PingResult => ({ ok: true, latencyMs: elapsed() }),
    (err: unknown): PingResult => ({
      ok: false,
      latencyMs: elapsed(),
      reason: err instanceof Error ? err.message : String(err),
    }),
  );
  try {
    return await Promise.race([reply, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
