import type { Request, Response } from 'express';
import { ipKeyGenerator } from 'express-rate-limit';
import { AppError, errorBody } from './errors.ts';

/**
 * What a request costs against a limit. A read of the whole fleet (every node's and portfolio's
 * record: tens of MB at 5,000 nodes) costs the gateway and Redis far more than one node's.
 */
export const WEIGHTS = {
  /** One item, the plan, notifications, a control request or outcome, health, the page's files. */
  item: 1,
  /** A page of a list (`?limit=` given, no `?status=`): the index, then the page's items only. */
  page: 2,
  /** The whole fleet: `/api/metrics`, `/metrics`, `/api/overview` (and its stream), unpaged lists, `?status=`. */
  fleet: 10,
  /** Added to the client address's count for a key that matches none: guessing costs more. */
  failedKey: 10,
} as const;

/** How much a request weighs (see `WEIGHTS`). */
export function requestWeight(req: Request): number {
  if (req.method !== 'GET' && req.method !== 'HEAD') return WEIGHTS.item;
  // Routing ignores case (`/API/METRICS` is `/api/metrics`): so must the weighing.
  const path = req.path.toLowerCase().replace(/\/+$/, '');
  if (path === '/metrics' || path === '/api/metrics' || path.startsWith('/api/overview'))
    return WEIGHTS.fleet;
  if (path === '/api/nodes' || path === '/api/portfolios') {
    const query = req.query as Record<string, unknown>;
    if (query['status'] !== undefined) return WEIGHTS.fleet;
    return query['limit'] === undefined ? WEIGHTS.fleet : WEIGHTS.page;
  }
  return WEIGHTS.item;
}

/** The client's address as a limit's key: IPv6 by its /56, which one subscriber usually holds whole. */
export function clientAddress(req: Request): string {
  return ipKeyGenerator(req.ip ?? req.socket.remoteAddress ?? 'unknown');
}

interface Window {
  startedAt: number;
  used: number;
}

export interface LimitResult {
  ok: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the window starts over. */
  resetSeconds: number;
}

/**
 * Fixed one-minute windows per client, in a map of at most `maxEntries`: when it is full, ended
 * windows are dropped, and if every window is still running, a newcomer shares one overflow window
 * with the other newcomers (it never resets someone else's count, and the map does not grow).
 * In-process: behind several gateways each counts its own share.
 */
export class RateLimiter {
  private readonly windows = new Map<string, Window>();
  private readonly overflow: Window = { startedAt: 0, used: 0 };

  constructor(
    private readonly options: {
      limit: number;
      windowMs?: number;
      maxEntries?: number;
      now?: () => number;
    },
  ) {}

  /** How many clients it holds a window for (bounded by `maxEntries`). */
  get size(): number {
    return this.windows.size;
  }

  /** Counts `weight` for `client` (even past the limit: a client that keeps going stays refused). */
  take(client: string, weight: number): LimitResult {
    const now = (this.options.now ?? Date.now)();
    const windowMs = this.options.windowMs ?? 60_000;
    let window = this.windows.get(client);
    if (window === undefined) {
      if (this.windows.size >= (this.options.maxEntries ?? 10_000)) this.sweep(now, windowMs);
      if (this.windows.size >= (this.options.maxEntries ?? 10_000)) window = this.overflow;
      else {
        window = { startedAt: now, used: 0 };
        this.windows.set(client, window);
      }
    }
    if (now - window.startedAt >= windowMs) {
      window.startedAt = now;
      window.used = 0;
    }
    window.used += weight;
    const { limit } = this.options;
    return {
      ok: window.used <= limit,
      limit,
      remaining: Math.max(0, limit - window.used),
      resetSeconds: Math.max(1, Math.ceil((window.startedAt + windowMs - now) / 1_000)),
    };
  }

  private sweep(now: number, windowMs: number): void {
    for (const [client, window] of this.windows)
      if (now - window.startedAt >= windowMs) this.windows.delete(client);
  }
}

/**
 * Sets `X-RateLimit-Limit`, `-Remaining`, `-Reset` from the tighter of the limits that counted this
 * request; when `result` is over, answers 429 with `Retry-After` and returns false.
 */
export function applyLimit(res: Response, result: LimitResult, message: string): boolean {
  const shown = Number(res.getHeader('x-ratelimit-remaining') ?? Infinity);
  if (result.remaining <= shown || !result.ok) {
    res.set({
      'X-RateLimit-Limit': String(result.limit),
      'X-RateLimit-Remaining': String(result.remaining),
      'X-RateLimit-Reset': String(result.resetSeconds),
    });
  }
  if (result.ok) return true;
  res
    .status(429)
    .set('Retry-After', String(result.resetSeconds))
    .json(
      errorBody(
        new AppError('RATE_LIMITED', message, { retry_after_seconds: result.resetSeconds }),
      ),
    );
  return false;
}
