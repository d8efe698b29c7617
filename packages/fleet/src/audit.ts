import type { ChainableCommander } from 'ioredis';
import type { RedisLike } from '@ginkgo-live/redis-client';
import {
  decodePayload,
  encodePayload,
  type AuditEntry,
  type PayloadProblem,
  type StateKeys,
} from '@ginkgo-live/state-keys';

/** About this many entries are kept (`XADD MAXLEN ~`): months of operator actions, a few MB. */
export const AUDIT_MAX_ENTRIES = 10_000;

/** What a writer gives: everything but the version, and the time when it is not now. */
export type AuditInput = Omit<AuditEntry, '_v' | 'at'> & { at?: string };

/** One entry as read back: its stream id (time-ordered) and the decoded entry, or why it is unreadable. */
export type AuditRecord = { id: string; entry: AuditEntry } | { id: string; error: PayloadProblem };

/** Encodes an entry for the stream's one field, `entry`; throws on a bad entry (a writer bug). */
export function encodeAuditEntry(input: AuditInput): string {
  const { at, ...rest } = input;
  return encodePayload('auditEntry', { _v: 1, at: at ?? new Date().toISOString(), ...rest });
}

/**
 * The audit trail: `{scheduler}:audit`, a stream capped at about `AUDIT_MAX_ENTRIES`. Every control
 * request leaves an entry (who, what, on what, the outcome, when); a request queued for the
 * scheduler leaves a second one with its answer, under the same `request_id`.
 */
export class AuditLog {
  constructor(
    private readonly redis: RedisLike,
    private readonly keys: StateKeys,
  ) {}

  /** Appends one entry; resolves to its stream id. */
  async append(input: AuditInput): Promise<string> {
    const id = await this.redis.xadd(
      this.keys.auditLog(),
      'MAXLEN',
      '~',
      String(AUDIT_MAX_ENTRIES),
      '*',
      'entry',
      encodeAuditEntry(input),
    );
    return id ?? '';
  }

  /** Queues the append on a MULTI or pipeline, so it commits with the change it records. */
  appendTo(batch: ChainableCommander, input: AuditInput): ChainableCommander {
    return batch.xadd(
      this.keys.auditLog(),
      'MAXLEN',
      '~',
      String(AUDIT_MAX_ENTRIES),
      '*',
      'entry',
      encodeAuditEntry(input),
    );
  }

  /**
   * Newest first, at most `limit`, strictly older than the stream id `before` when given (the next
   * page starts before the last id of this one). An unreadable entry comes back with its problem.
   */
  async list(options: { limit: number; before?: string }): Promise<AuditRecord[]> {
    const end = options.before === undefined ? '+' : `(${options.before}`;
    const rows = await this.redis.xrevrange(this.keys.auditLog(), end, '-', 'COUNT', options.limit);
    return rows.map(([id, fields]) => {
      const raw = fieldValue(fields, 'entry');
      const decoded = decodePayload('auditEntry', `${this.keys.auditLog()} ${id}`, raw ?? '');
      return decoded.ok ? { id, entry: decoded.value } : { id, error: decoded.error };
    });
  }
}

function fieldValue(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
