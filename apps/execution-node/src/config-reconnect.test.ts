import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';

describe('execution node config: the Redis reconnect against the fresh-start window', () => {
  it('refuses a reconnect cap above the lease TTL, naming both variables; takes it at the TTL', () => {
    expect(
      loadConfig({ HEARTBEAT_TTL_MS: '15000', REDIS_RECONNECT_MAX_DELAY_MS: '15001' }),
    ).toEqual({
      ok: false,
      issues: [
        {
          variable: 'REDIS_RECONNECT_MAX_DELAY_MS',
          message:
            'must be at most HEARTBEAT_TTL_MS (15000): after Redis restarts empty, a node holding a portfolio must reconnect and beat within HEARTBEAT_TTL_MS + 2 × HEARTBEAT_INTERVAL_MS, or another node starts the portfolio fresh over its book',
        },
      ],
    });
    expect(
      loadConfig({ HEARTBEAT_TTL_MS: '15000', REDIS_RECONNECT_MAX_DELAY_MS: '15000' }).ok,
    ).toBe(true);
    // The defaults (TTL 15 s, reconnect cap 5 s) pass.
    expect(loadConfig({}).ok).toBe(true);
  });
});
