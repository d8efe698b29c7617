import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  decodePayload,
  encodePayload,
  PayloadEncodeError,
  type ControlRequest,
  type ControlResult,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { AppError } from './http/errors.ts';

/** A request's fate as the requester sees it. */
export type ControlOutcome =
  | { status: 'pending' }
  | { status: 'accepted' | 'refused'; result: ControlResult }
  | { status: 'unknown' };

/**
 * Writes operator requests for the scheduler on `{scheduler}:control` and reads their answers. The
 * gateway holds no business rule: whether a drain or a migration is possible is the scheduler's
 * call, read back by request id.
 */
export class ControlQueue {
  constructor(
    private readonly redis: Redis,
    private readonly keys: StateKeys,
  ) {}

  /** Queues a request; resolves to its id. */
  async submit(
    body: Omit<ControlRequest, '_v' | 'id' | 'requested_at' | 'requested_by'>,
    requestedBy: string,
  ): Promise<string> {
    const id = randomUUID();
    let payload: string;
    try {
      payload = encodePayload('controlRequest', {
        _v: 1,
        id,
        ...body,
        requested_by: requestedBy,
        requested_at: new Date().toISOString(),
      });
    } catch (err) {
      if (err instanceof PayloadEncodeError)
        throw new AppError(
          'INVALID_PARAMETER',
          err.message.replace(/^Invalid controlRequest payload: /, ''),
          { parameter: 'body' },
        );
      throw err;
    }
    await this.guard(() => this.redis.rpush(this.keys.controlRequests(), payload));
    return id;
  }

  /** The outcome of a request: answered, still queued, or unknown (never sent, or expired). */
  async outcome(id: string): Promise<ControlOutcome> {
    const [raw, queued] = await this.guard(() =>
      Promise.all([
        this.redis.hget(this.keys.controlResults(), id),
        this.redis.lrange(this.keys.controlRequests(), 0, 999),
      ]),
    );
    if (raw !== null) {
      const decoded = decodePayload('controlResult', this.keys.controlResults(), raw);
      if (!decoded.ok)
        throw new AppError('INTERNAL_ERROR', 'Malformed control result', {
          problem: decoded.error.problem,
        });
      return { status: decoded.value.ok ? 'accepted' : 'refused', result: decoded.value };
    }
    return queued.some((entry) => entry.includes(`"id":"${id}"`))
      ? { status: 'pending' }
      : { status: 'unknown' };
  }

  private async guard<T>(call: () => Promise<T>): Promise<T> {
    if (this.redis.status !== 'ready')
      throw new AppError('REDIS_UNAVAILABLE', 'Redis is unavailable', {
        connection: this.redis.status,
      });
    try {
      return await call();
    } catch (err) {
      throw new AppError(
        'REDIS_UNAVAILABLE',
        'Redis is unavailable',
        { reason: (err as Error).message },
        { cause: err },
      );
    }
  }
}
