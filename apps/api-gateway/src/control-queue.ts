import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  AuditLog,
  encodeAuditEntry,
  queueControlRequest,
  type AuditInput,
  type AuditRecord,
} from '@ginkgo-live/fleet';
import {
  decodePayload,
  encodePayload,
  type ControlRequest,
  type ControlResult,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { callRedis } from './redis-unavailable.ts';

/** A request's fate as the requester sees it. */
export type ControlOutcome =
  | { status: 'pending' }
  | { status: 'accepted' | 'refused'; result: ControlResult }
  | { status: 'unknown' };

/** Who asks: the key's name (never its secret) and the client address the gateway saw. */
export interface Requester {
  name: string;
  address: string;
}

/** What a request asks for, without what the queue adds (id, version, who, when). */
export type ControlBody = Omit<ControlRequest, '_v' | 'id' | 'requested_at' | 'requested_by'>;

/** Control requests scanned per round trip while looking for a pending one. */
const SCAN_BATCH = 500;
/** Audit fields are capped by the entry's schema; a client's strings are cut to fit. */
const clip = (value: string | null | undefined, max: number): string | null =>
  value === null || value === undefined ? null : value.slice(0, max);

/** The audit entry's target of a request (or of a refused one, from what the client sent). */
export function auditTarget(body: {
  node_id?: unknown;
  portfolio_id?: unknown;
  target_node_id?: unknown;
}): AuditInput['target'] {
  const text = (v: unknown) => (typeof v === 'string' ? clip(v, 128) : null);
  return {
    node_id: text(body.node_id),
    portfolio_id: text(body.portfolio_id),
    target_node_id: text(body.target_node_id),
  };
}

/**
 * Writes operator requests for the scheduler on `{scheduler}:control`, reads their answers, and
 * keeps the gateway's side of the audit trail (`{scheduler}:audit`). The gateway holds no business
 * rule: whether a drain or a migration is possible is the scheduler's call, read back by request id.
 * Every Redis failure is a `RedisUnavailableError`.
 */
export class ControlQueue {
  private readonly audit: AuditLog;

  constructor(
    private readonly redis: Redis,
    private readonly keys: StateKeys,
  ) {
    this.audit = new AuditLog(redis, keys);
  }

  /**
   * Queues a request with its `queued` audit entry in one script (both keys are in the
   * `{scheduler}` slot): when the entry cannot be written, nothing is queued and the caller gets
   * the `RedisUnavailableError`. Resolves to the request's id (a UUID).
   */
  async submit(body: ControlBody, by: Requester): Promise<string> {
    const id = randomUUID();
    // The routes validated the body: an encoding failure here is a bug, not a client's error.
    const payload = encodePayload('controlRequest', {
      _v: 1,
      id,
      ...body,
      requested_by: by.name,
      requested_at: new Date().toISOString(),
    });
    const entry = encodeAuditEntry({
      actor: by.name,
      via: 'api-gateway',
      action: body.action,
      target: auditTarget(body),
      outcome: 'queued',
      reason: null,
      request_id: id,
      address: clip(by.address, 64),
    });
    await callRedis(this.redis, () => queueControlRequest(this.redis, this.keys, payload, entry));
    return id;
  }

  /** Records a request refused at the gateway (`forbidden`, `invalid`): nothing was queued. */
  async refused(
    entry: { action: string; target: AuditInput['target']; reason: string },
    outcome: 'forbidden' | 'invalid',
    by: Requester,
  ): Promise<void> {
    await callRedis(this.redis, () =>
      this.audit.append({
        actor: clip(by.name, 128) ?? 'unknown',
        via: 'api-gateway',
        action: clip(entry.action, 64) ?? 'unknown',
        target: entry.target,
        outcome,
        reason: clip(entry.reason, 500),
        request_id: null,
        address: clip(by.address, 64),
      }),
    );
  }

  /** A page of the audit trail, newest first, strictly older than the stream id `before`. */
  async auditTrail(page: { limit: number; before?: string }): Promise<AuditRecord[]> {
    return callRedis(this.redis, () => this.audit.list(page));
  }

  /**
   * The outcome of a request: answered, still queued, or unknown (never sent, or expired). The
   * scheduler writes the answer and removes the request in one script, so the order here — answer,
   * queue, answer again — never calls a request unknown that was merely answered in between.
   * The queue is searched by decoding its entries and comparing ids (a substring of the JSON could
   * match a request that merely mentions the id), in batches of `SCAN_BATCH`, to its head; it is
   * short while a scheduler runs (each tick takes up to 100), and a pending marker would be a second
   * key for the scheduler to keep in step with the queue.
   */
  async outcome(id: string): Promise<ControlOutcome> {
    const first = await this.answer(id);
    if (first !== undefined) return first;
    if (await callRedis(this.redis, () => this.isQueued(id))) return { status: 'pending' };
    return (await this.answer(id)) ?? { status: 'unknown' };
  }

  private async answer(id: string): Promise<ControlOutcome | undefined> {
    const key = this.keys.controlResults();
    const raw = await callRedis(this.redis, () => this.redis.hget(key, id));
    if (raw === null) return undefined;
    const decoded = decodePayload('controlResult', key, raw);
    // A malformed answer is the scheduler's bug, not Redis being away: it fails as itself (500).
    if (!decoded.ok) throw new Error(`Malformed control result: ${decoded.error.problem}`);
    return { status: decoded.value.ok ? 'accepted' : 'refused', result: decoded.value };
  }

  private async isQueued(id: string): Promise<boolean> {
    const key = this.keys.controlRequests();
    // From the tail (where requests are pushed) towards the head (where the scheduler takes them):
    // indices counted from the end do not shift when the head is taken, so no entry is skipped.
    for (let end = -1; ; end -= SCAN_BATCH) {
      const batch = await this.redis.lrange(key, end - SCAN_BATCH + 1, end);
      for (const raw of batch) {
        const decoded = decodePayload('controlRequest', key, raw);
        if (decoded.ok && decoded.value.id === id) return true;
      }
      if (batch.length < SCAN_BATCH) return false;
    }
  }
}
