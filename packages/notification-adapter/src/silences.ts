import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  decodePayload,
  encodePayload,
  type Notification,
  type Silence,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { KINDS } from './catalogue.ts';
import { matchesFields } from './routes.ts';

/** An ended silence is kept this long (for the list), then dropped. */
export const SILENCE_KEPT_MS = 7 * 24 * 60 * 60 * 1_000;

/** The longest a silence may last: a forgotten one must not hide a fleet for ever. */
export const SILENCE_MAX_MS = 30 * 24 * 60 * 60 * 1_000;

/** What an operator asks for. */
export interface SilenceRequest {
  matchers: Silence['matchers'];
  /** How long from now, in ms (1 s to `SILENCE_MAX_MS`). */
  durationMs: number;
  createdBy: string;
  comment: string;
}

/** Why a silence was refused, naming the field. */
export class SilenceError extends Error {
  override readonly name = 'SilenceError';

  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Operators' silences (`notify:silences`): while one is active, a notification matching it is
 * recorded as silenced and sent to no sink (the delivery worker asks `silencing`). Created and
 * listed by the gateway and `ginkgo-ctl`; ended early by `expire` (kept, marked, until it is a week
 * old). Every method rejects when Redis fails: a worker that cannot read the silences retries the
 * notification rather than send what may be silenced, or drop what may not be.
 */
export class Silences {
  constructor(
    private readonly redis: Redis,
    private readonly keys: StateKeys,
  ) {}

  async create(request: SilenceRequest, now = Date.now()): Promise<Silence> {
    const silence = Silences.prepare(request, now);
    await this.save(silence);
    return silence;
  }

  /** Stores a silence `prepare` made. */
  async save(silence: Silence): Promise<void> {
    await this.redis.hset(
      this.keys.notificationSilences(),
      silence.id,
      encodePayload('silence', silence),
    );
  }

  /** The silence a request makes, checked (no Redis): throws a `SilenceError` naming the field. */
  static prepare(request: SilenceRequest, now = Date.now()): Silence {
    const { matchers } = request;
    const kinds = Object.keys(KINDS);
    const unknown = matchers.kind?.find((k) => !k.endsWith('*') && !kinds.includes(k));
    if (unknown !== undefined)
      throw new SilenceError('matchers.kind', `no kind "${unknown}" (one of ${kinds.join(', ')})`);
    if (
      !Number.isInteger(request.durationMs) ||
      request.durationMs < 1_000 ||
      request.durationMs > SILENCE_MAX_MS
    )
      throw new SilenceError(
        'duration',
        `must be between 1 s and ${SILENCE_MAX_MS / 86_400_000} days`,
      );
    const silence: Silence = {
      _v: 1,
      id: randomUUID(),
      matchers,
      starts_at: new Date(now).toISOString(),
      ends_at: new Date(now + request.durationMs).toISOString(),
      created_by: request.createdBy,
      comment: request.comment,
    };
    // encodePayload validates: a silence without a matcher, or a bad level, is refused here.
    try {
      encodePayload('silence', silence);
    } catch (err) {
      throw new SilenceError('matchers', (err as Error).message);
    }
    return silence;
  }

  /** Every silence, active ones first (soonest to end first), then ended ones (newest first). */
  async list(now = Date.now()): Promise<{ active: Silence[]; ended: Silence[] }> {
    const key = this.keys.notificationSilences();
    const all = await this.redis.hgetall(key);
    const active: Silence[] = [];
    const ended: Silence[] = [];
    const stale: string[] = [];
    for (const [id, raw] of Object.entries(all)) {
      const decoded = decodePayload('silence', `${key}:${id}`, raw);
      if (!decoded.ok) continue;
      const s = decoded.value;
      const end = Date.parse(s.ends_at);
      if (end > now) active.push(s);
      else if (now - end > SILENCE_KEPT_MS) stale.push(id);
      else ended.push(s);
    }
    if (stale.length > 0) await this.redis.hdel(key, ...stale);
    active.sort((a, b) => a.ends_at.localeCompare(b.ends_at));
    ended.sort((a, b) => b.ends_at.localeCompare(a.ends_at));
    return { active, ended };
  }

  /** Ends a silence now; undefined when there is none by that id (or it had ended already). */
  async expire(id: string, by: string, now = Date.now()): Promise<Silence | undefined> {
    const key = this.keys.notificationSilences();
    const raw = await this.redis.hget(key, id);
    if (raw === null) return undefined;
    const decoded = decodePayload('silence', `${key}:${id}`, raw);
    if (!decoded.ok || Date.parse(decoded.value.ends_at) <= now) return undefined;
    const ended: Silence = {
      ...decoded.value,
      ends_at: new Date(now).toISOString(),
      expired_by: by,
    };
    await this.redis.hset(key, id, encodePayload('silence', ended));
    return ended;
  }

  /** The active silence a notification falls under (the one that ends last), if any. */
  async silencing(n: Notification, now = Date.now()): Promise<Silence | undefined> {
    const { active } = await this.list(now);
    return active
      .filter((s) => Date.parse(s.starts_at) <= now && matchesFields(s.matchers, n))
      .at(-1);
  }
}
