import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStateKeys, encodePayload, type PortfolioBook } from '@ginkgo-live/state-keys';
import { RedisServer } from '@ginkgo-live/testing';
import { NodeStore } from './node-store.ts';

let server: RedisServer;
let redis: Redis;
const keys = createStateKeys('ns:');

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.port, server.host);
});
afterEach(async () => {
  redis.disconnect();
  await server.cleanup();
});

const book = (cash: number): PortfolioBook => ({
  _v: 1,
  portfolio_id: 'p1',
  node_id: 'n1',
  cash,
  positions: {},
  last_prices: {},
  strategy_state: {},
  processed_count: 3,
  failed_count: 0,
  updated_at: new Date().toISOString(),
});

describe('NodeStore books written before the hash tags', () => {
  it('reads the old book only when asked for a portfolio without a book; acquire reads the new one', async () => {
    const store = new NodeStore({
      redis,
      keys,
      nodeId: 'n1',
      heartbeatTtlMs: 15_000,
      nodeInfoTtlMs: 45_000,
      portfolioStateTtlMs: 45_000,
    });
    expect(await store.readLegacyBook('p1')).toBeNull();
    await redis.set('ns:portfolio:p1:book', encodePayload('portfolioBook', book(750)));
    expect(await store.readLegacyBook('p1')).toMatchObject({ ok: true, value: { cash: 750 } });
    expect(await store.acquireLease('p1', 'n1/a/1')).toMatchObject({ ok: true, book: null });
    await redis.del(keys.portfolioLease('p1'));
    await redis.set(keys.portfolioBook('p1'), encodePayload('portfolioBook', book(900)));
    expect(await store.acquireLease('p1', 'n1/a/2')).toMatchObject({
      ok: true,
      loaded: null,
      book: { ok: true, value: { cash: 900 } },
    });
    expect(await store.acquireLease('p1', 'n1/a/3')).toEqual({ ok: false, holder: 'n1/a/2' });
  });
});
