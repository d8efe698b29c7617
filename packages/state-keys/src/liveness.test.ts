import { describe, expect, it } from 'vitest';
import { SAMPLE_PAYLOADS } from './fixtures.test-support.ts';
import { assessLiveness, isNodeAlive } from './liveness.ts';

const key = 'heartbeat:node:node-1';
const raw = JSON.stringify(SAMPLE_PAYLOADS.heartbeat); // sent at 2026-11-28T06:00:00.000Z
const sentMs = Date.parse(SAMPLE_PAYLOADS.heartbeat.sent_at);

describe('the liveness rule', () => {
  it('says alive while the heartbeat key exists with a TTL, with the beat age', () => {
    expect(assessLiveness({ key, raw, pttlMs: 12_000 }, sentMs + 3_000)).toEqual({
      alive: true,
      reason: 'beating',
      lastHeartbeatAt: SAMPLE_PAYLOADS.heartbeat.sent_at,
      heartbeatAgeMs: 3_000,
      problem: null,
    });
  });

  it('says dead when the key expired or never existed', () => {
    expect(assessLiveness({ key, raw: null, pttlMs: -2 }, sentMs)).toMatchObject({
      alive: false,
      reason: 'no heartbeat',
      lastHeartbeatAt: null,
    });
    expect(isNodeAlive({ key, raw: null, pttlMs: -2 })).toBe(false);
  });

  it('does not take a heartbeat without a TTL as a sign of life', () => {
    expect(assessLiveness({ key, raw, pttlMs: -1 }, sentMs)).toMatchObject({
      alive: false,
      reason: 'heartbeat without TTL',
    });
  });

  it('decides by the key alone: a stale sender clock does not kill a beating node', () => {
    const result = assessLiveness({ key, raw, pttlMs: 14_000 }, sentMs + 3_600_000);
    expect(result.alive).toBe(true);
    expect(result.heartbeatAgeMs).toBe(3_600_000);
  });

  it('reports a malformed heartbeat payload without changing the verdict', () => {
    expect(assessLiveness({ key, raw: 'garbage', pttlMs: 5_000 }, sentMs)).toMatchObject({
      alive: true,
      lastHeartbeatAt: null,
      heartbeatAgeMs: null,
      problem: expect.stringMatching(/^not JSON/) as unknown,
    });
  });

  it('takes the key as gone when the value vanished between GET and PTTL', () => {
    expect(assessLiveness({ key, raw, pttlMs: -2 }, sentMs).alive).toBe(false);
  });
});
