import { Cluster, type Redis } from 'ioredis';

/** The answer of a health ping. */
export type PingResult =
  { ok: true; latencyMs: number } | { ok: false; latencyMs: number; reason: string };

/**
 * Sends PING with its own deadline, independent of the connection's command timeout. A connection
 * that is not ready answers at once (no offline queueing), so a health check never hangs.
 */
export async function pingRedis(client: Redis | Cluster, timeoutMs: number): Promise<PingResult> {
  if (client instanceof Cluster) return pingCluster(client, timeoutMs);
  return pingOne(client, timeoutMs);
}

/**
 * On a cluster, PING every master the client knows, at once: a shard whose master is gone (before
 * a replica is promoted) fails the check, naming the node, though the other shards still answer.
 */
async function pingCluster(client: Cluster, timeoutMs: number): Promise<PingResult> {
  if (client.status !== 'ready') {
    return { ok: false, latencyMs: 0, reason: `cluster connection is ${client.status}` };
  }
  const masters = client.nodes('master');
  if (masters.length === 0) return { ok: false, latencyMs: 0, reason: 'no cluster master known' };
  const results = await Promise.all(masters.map((node) => pingOne(node, timeoutMs, true)));
  const latencyMs = Math.max(...results.map((r) => r.latencyMs));
  const failed = results.findIndex((r) => !r.ok);
  const node = masters[failed];
  const result = results[failed];
  if (node === undefined || result === undefined || result.ok) return { ok: true, latencyMs };
  return {
    ok: false,
    latencyMs,
    reason: `master ${node.options.host}:${node.options.port}: ${result.reason}`,
  };
}

async function pingOne(client: Redis, timeoutMs: number, anyStatus = false): Promise<PingResult> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  // A cluster's node connections start lazily and queue until ready: only their reply counts.
  if (!anyStatus && client.status !== 'ready') {
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
