import { describe, expect, it } from 'vitest';
import { defaultNodeId, loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('gives the documented defaults (docs/architecture.md)', () => {
    const result = loadConfig({});
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value).toMatchObject({
      nodeId: defaultNodeId(),
      capacity: 5,
      heartbeatIntervalMs: 5_000,
      heartbeatTtlMs: 15_000,
      nodeInfoTtlMs: 45_000,
      portfolioStateTtlMs: 45_000,
      heartbeatRetryAttempts: 5,
      queueCapacity: 1_000,
      stopTimeoutMs: 10_000,
      eventBatchMax: 100,
      push: true,
      assignmentPollMs: 250,
    });
    expect(result.value.redis.commandTimeoutMs).toBe(2_000);
  });

  it('makes a valid id of host and pid', () => {
    expect(defaultNodeId()).toMatch(/^[A-Za-z0-9_.-]+-\d+$/);
  });

  it('refuses a heartbeat TTL that does not exceed the interval', () => {
    expect(
      loadConfig({
        HEARTBEAT_INTERVAL_MS: '5000',
        HEARTBEAT_TTL_MS: '5000',
        STOP_TIMEOUT_MS: '1000',
      }),
    ).toMatchObject({
      ok: false,
      issues: [
        {
          variable: 'HEARTBEAT_TTL_MS',
          message: expect.stringContaining('must exceed HEARTBEAT_INTERVAL_MS (5000)') as unknown,
        },
      ],
    });
  });

  it('refuses a stop budget that is not below the heartbeat TTL', () => {
    expect(loadConfig({ HEARTBEAT_TTL_MS: '15000', STOP_TIMEOUT_MS: '15000' })).toMatchObject({
      ok: false,
      issues: [
        {
          variable: 'STOP_TIMEOUT_MS',
          message: expect.stringContaining('must be below HEARTBEAT_TTL_MS (15000)') as unknown,
        },
      ],
    });
  });

  it('refuses an assignment poll longer than half a lease TTL and a beat (the fresh-start wait counts tries two polls apart)', () => {
    expect(loadConfig({ ASSIGNMENT_POLL_MS: '12000' })).toMatchObject({
      ok: false,
      issues: [
        {
          variable: 'ASSIGNMENT_POLL_MS',
          message: expect.stringContaining(
            'must be at most half of HEARTBEAT_TTL_MS + HEARTBEAT_INTERVAL_MS (10000)',
          ) as unknown,
        },
      ],
    });
    expect(loadConfig({ ASSIGNMENT_POLL_MS: '12000', HEARTBEAT_TTL_MS: '18999' }).ok).toBe(false);
    expect(loadConfig({ ASSIGNMENT_POLL_MS: '12000', HEARTBEAT_TTL_MS: '19000' }).ok).toBe(true);
  });

  it('refuses an invalid NODE_ID and names every bad variable of every part', () => {
    const result = loadConfig({ NODE_ID: 'node:1', REDIS_TLS: 'maybe', LOG_LEVEL: 'loud' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map((i) => i.variable)).toEqual(['NODE_ID', 'REDIS_TLS', 'LOG_LEVEL']);
  });

  it('takes ASSIGNMENT_PUSH on or off, and refuses anything else naming it', () => {
    expect(loadConfig({ ASSIGNMENT_PUSH: 'off' })).toMatchObject({
      ok: true,
      value: { push: false },
    });
    expect(loadConfig({ ASSIGNMENT_PUSH: 'yes' })).toMatchObject({
      ok: false,
      issues: [{ variable: 'ASSIGNMENT_PUSH', message: 'must be one of on, off, got "yes"' }],
    });
  });
});
