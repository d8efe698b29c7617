import { describe, expect, it } from 'vitest';
import { encodePayload } from './codec.ts';
import { placementDigest } from './placement.ts';

describe('placementDigest', () => {
  it('is 16 hex digits that change with the capacity, the ids and their order', () => {
    const base = placementDigest(5, ['p1', 'p2']);
    expect(base).toMatch(/^[0-9a-f]{16}$/);
    expect(placementDigest(5, ['p1', 'p2'])).toBe(base);
    const others = [
      placementDigest(6, ['p1', 'p2']),
      placementDigest(5, ['p2', 'p1']),
      placementDigest(5, ['p1']),
      placementDigest(5, ['p1', 'p2', 'p3']),
      placementDigest(5, []),
    ];
    expect(new Set([base, ...others]).size).toBe(others.length + 1);
  });

  it('is written right after _v, where a reader looks for it', () => {
    const now = new Date(0).toISOString();
    const payload = encodePayload('nodeInfo', {
      _v: 1,
      node_id: 'n1',
      host: 'h',
      pid: 1,
      version: '1',
      status: 'running',
      started_at: now,
      uptime_seconds: 0,
      last_heartbeat: now,
      portfolio_ids: ['p1'],
      portfolio_count: 1,
      capacity: 5,
      queue_usage_max: 0,
      queue_usage: {},
      events_per_second: 0,
      cpu_percent: 0,
      memory_rss_bytes: 0,
      heap_used_bytes: 0,
      redis: { healthy: true, consecutive_failures: 0, total_failures: 0, last_success_at: null },
      placement: placementDigest(5, ['p1']),
    });
    expect(payload.startsWith(`{"_v":1,"placement":"${placementDigest(5, ['p1'])}",`)).toBe(true);
  });
});
