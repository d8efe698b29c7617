import { RedisUnavailableError } from '../redis-unavailable.ts';

/** Error codes of the API, with their HTTP status: the one table. */
export const ERROR_STATUS = {
  INVALID_PARAMETER: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  /** The target is already in the state asked for (a halt of a halted fleet): nothing changed. */
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  REDIS_UNAVAILABLE: 503,
  /** The gateway's own capacity is used up (every event stream slot taken): try again later. */
  OVERLOADED: 503,
  INTERNAL_ERROR: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** The one error of the API; the error middleware turns it into `{error, code, message, details, timestamp}`. */
export class AppError extends Error {
  override readonly name = 'AppError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

/**
 * Anything thrown, as an AppError — the one mapping: Redis failures become the 503
 * `REDIS_UNAVAILABLE` (the client library's text stays in the log: it can hold addresses and
 * credentials' errors), unknown errors `INTERNAL_ERROR` (their text stays in the log too).
 */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof RedisUnavailableError)
    return new AppError('REDIS_UNAVAILABLE', 'Redis is unavailable', {}, { cause: err });
  // express's body parser marks its errors with a type.
  const type = (err as { type?: unknown }).type;
  if (type === 'entity.too.large')
    return new AppError('PAYLOAD_TOO_LARGE', 'Request body too large', {}, { cause: err });
  if (type === 'entity.parse.failed') {
    return new AppError(
      'INVALID_PARAMETER',
      'Request body is not valid JSON',
      { parameter: 'body' },
      { cause: err },
    );
  }
  return new AppError('INTERNAL_ERROR', 'Internal error', {}, { cause: err });
}

/** The response body of an error. No stack traces. */
export function errorBody(err: AppError): Record<string, unknown> {
  return {
    error: true,
    code: err.code,
    message: err.message,
    details: err.details,
    timestamp: new Date().toISOString(),
  };
}
