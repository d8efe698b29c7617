import { decodePayload } from './codec.ts';

/** What a reader fetched for one node's heartbeat: `GET` and `PTTL` of `heartbeat:node:{id}`. */
export interface HeartbeatReading {
  key: string;
  /** The value, or null when the key does not exist. */
  raw: string | null;
  /** `PTTL` reply: remaining ms, -2 when the key does not exist, -1 when it has no TTL. */
  pttlMs: number;
}

/** A node's liveness as the one rule sees it. */
export interface Liveness {
  alive: boolean;
  /** Why: `beating`, `no heartbeat` (expired or never sent) or `heartbeat without TTL`. */
  reason: 'beating' | 'no heartbeat' | 'heartbeat without TTL';
  /** Sender time of the last beat, when the payload is readable. */
  lastHeartbeatAt: string | null;
  /** now − last beat, in ms, when readable (sender clock: informative, not the rule). */
  heartbeatAgeMs: number | null;
  /** Set when the key exists but its payload is malformed; liveness does not depend on it. */
  problem: string | null;
}

/**
 * THE liveness rule, used by node, scheduler and gateway alike: a node is alive exactly while its
 * heartbeat key exists with a TTL. Expiry is decided by Redis's clock alone, so clock skew between
 * hosts cannot make a dead node look alive or a live one dead. A key without a TTL would never
 * expire and is not taken as a sign of life.
 */
export function assessLiveness(reading: HeartbeatReading, nowMs: number): Liveness {
  const exists = reading.raw !== null && reading.pttlMs !== -2;
  let lastHeartbeatAt: string | null = null;
  let problem: string | null = null;
  if (reading.raw !== null) {
    const decoded = decodePayload('heartbeat', reading.key, reading.raw);
    if (decoded.ok) lastHeartbeatAt = decoded.value.sent_at;
    else problem = decoded.error.problem;
  }
  const heartbeatAgeMs =
    lastHeartbeatAt === null ? null : Math.max(0, nowMs - Date.parse(lastHeartbeatAt));
  if (!exists) {
    return { alive: false, reason: 'no heartbeat', lastHeartbeatAt, heartbeatAgeMs, problem };
  }
  if (reading.pttlMs === -1) {
    return {
      alive: false,
      reason: 'heartbeat without TTL',
      lastHeartbeatAt,
      heartbeatAgeMs,
      problem,
    };
  }
  return { alive: true, reason: 'beating', lastHeartbeatAt, heartbeatAgeMs, problem };
}

/** Shorthand of `assessLiveness(reading, now).alive`. */
export function isNodeAlive(reading: HeartbeatReading): boolean {
  return assessLiveness(reading, Date.now()).alive;
}
