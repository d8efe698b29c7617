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
 * On a cluster, PING the master of every slot range, as the client's slot map names them, at once:
 * a shard whose master is gone (before a replica is promoted and the map fetched again) fails the
 * check, naming the node, though the other shards still answer.
 */
async function pingCluster(client: Cluster, timeoutMs: number): Promise<PingResult> {
  if (client.status !== 'ready') {
    return { ok: false, latencyMs: 0, reason: `cluster connection is ${client.status}` };
  }
  const connected = new Map(
    client.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]),
  );
  const masters = new Set<string>();
  for (const holders of client.slots) if (holders[0] !== undefined) masters.add(holders[0]);
  if (masters.size === 0) return { ok: false, latencyMs: 0, reason: 'no cluster master known' };
  const results = await Promise.all(
    [...masters].map(async (address) => {
      const node = connected.get(address);
      const result: PingResult =
        node === undefined
          ? { ok: false, latencyMs: 0, reason: 'not connected' }
          : await pingOne(node, timeoutMs, true);
      return { address, result };
    }),
  );
  const latencyMs = Math.max(...results.map((r) => r.result.latencyMs));
  const failed = results.find((r) => !r.result.ok);
  if (failed === undefined || failed.result.ok) return { ok: true, latencyMs };
  return { ok: false, latencyMs, reason: `master ${failed.address}: ${failed.result.reason}` };
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
