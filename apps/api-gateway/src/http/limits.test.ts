import type { Request } from 'express';
import { describe, expect, it } from 'vitest';
import { RateLimiter, requestWeight, WEIGHTS } from './limits.ts';

describe('RateLimiter', () => {
  it('counts weight in a one-minute window, keeps counting past the limit, and starts over after it', () => {
    let now = 1_000_000;
    const limiter = new RateLimiter({ limit: 10, now: () => now });
    expect(limiter.take('a', 4)).toEqual({ ok: true, limit: 10, remaining: 6, resetSeconds: 60 });
    expect(limiter.take('a', 6).ok).toBe(true);
    expect(limiter.take('a', 1)).toMatchObject({ ok: false, remaining: 0 });
    now += 30_000;
    // Refused requests count too: a client that keeps going stays refused.
    expect(limiter.take('a', 1)).toMatchObject({ ok: false, resetSeconds: 30 });
    expect(limiter.take('b', 10).ok).toBe(true);
    now += 30_000;
    expect(limiter.take('a', 10)).toMatchObject({ ok: true, remaining: 0, resetSeconds: 60 });
  });

  it('holds at most maxEntries windows: ended ones are dropped, then newcomers share one window', () => {
    let now = 0;
    const limiter = new RateLimiter({ limit: 5, maxEntries: 3, now: () => now });
    for (const client of ['a', 'b', 'c']) limiter.take(client, 5);
    expect(limiter.size).toBe(3);
    // Full, every window running: d and e share the overflow window, a keeps its own count.
    expect(limiter.take('d', 3).ok).toBe(true);
    expect(limiter.take('e', 3).ok).toBe(false);
    expect(limiter.take('a', 1).ok).toBe(false);
    expect(limiter.size).toBe(3);
    // A minute on, the ended windows make room.
    now += 60_000;
    expect(limiter.take('f', 5).ok).toBe(true);
    expect(limiter.size).toBe(1);
  });
});

describe('requestWeight', () => {
  const req = (method: string, path: string, query: Record<string, string> = {}) =>
    ({ method, path, query }) as unknown as Request;

  it('weighs a read of the whole fleet more than a page, and a page more than one item', () => {
    for (const path of ['/metrics', '/api/metrics', '/api/overview', '/api/overview/stream'])
      expect(requestWeight(req('GET', path)), path).toBe(WEIGHTS.fleet);
    expect(requestWeight(req('GET', '/api/nodes'))).toBe(WEIGHTS.fleet);
    expect(requestWeight(req('GET', '/api/portfolios', { limit: '50' }))).toBe(WEIGHTS.page);
    expect(requestWeight(req('GET', '/api/portfolios', { limit: '50', status: 'running' }))).toBe(
      WEIGHTS.fleet,
    );
    expect(requestWeight(req('GET', '/api/nodes/', { status: 'online' }))).toBe(WEIGHTS.fleet);
    for (const path of ['/api/nodes/n1', '/api/schedule/plan', '/api/health', '/ui/app.js'])
      expect(requestWeight(req('GET', path)), path).toBe(WEIGHTS.item);
    expect(requestWeight(req('POST', '/api/nodes/n1/drain'))).toBe(WEIGHTS.item);
  });
});
