import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStateKeys, encodePayload, type StateKeys } from '@ginkgo-live/state-keys';
import { RedisServer } from '@ginkgo-live/testing';
import { AuditLog, TradingControls, UNREADABLE_BY, type TradingActor } from './index.ts';

let server: RedisServer;
let redis: Redis;

beforeAll(async () => {
  server = await RedisServer.start();
  redis = new Redis({ host: server.host, port: server.port });
});
afterAll(async () => {
  redis.disconnect();
  await server.cleanup();
});

const desk: TradingActor = { name: 'desk-lead', via: 'api-gateway', address: '10.0.0.7' };

async function setup(prefix: string): Promise<{ keys: StateKeys; controls: TradingControls }> {
  const keys = createStateKeys(prefix);
  for (const id of ['p1', 'p2'])
    await redis.hset(
      keys.portfolioCatalog(),
      id,
      encodePayload('portfolioSpec', {
        _v: 1,
        portfolio_id: id,
        symbols: ['BTCUSDT'],
        strategy: { name: 'ma-crossover', params: {} },
        starting_cash: 1_000,
      }),
    );
  return { keys, controls: new TradingControls(redis, keys) };
}

/** The audit trail oldest first, as (action, target, outcome, reason). */
async function trail(keys: StateKeys) {
  const records = await new AuditLog(redis, keys).list({ limit: 100 });
  return records.reverse().map((r) => {
    if (!('entry' in r)) throw new Error(r.error.problem);
    const e = r.entry;
    return [e.action, e.target.portfolio_id, e.outcome, e.reason, e.actor, e.via, e.address];
  });
}

describe('TradingControls', () => {
  it('halts and lifts the halt, each with its audit entry; a halt of a halted fleet changes nothing', async () => {
    const { keys, controls } = await setup('tc-halt:');
    expect(await controls.read()).toEqual({ halted: null, paused: [], problems: [] });

    expect(await controls.halt(desk, 'exchange outage')).toEqual({ ok: true });
    const halted = (await controls.read()).halted;
    expect(halted).toMatchObject({ by: 'desk-lead', reason: 'exchange outage' });
    expect(await redis.pttl(keys.tradingHalt())).toBe(-1);

    const second = await controls.halt({ ...desk, name: 'other' }, 'again');
    expect(second).toEqual({ ok: false, code: 'no_change', reason: 'already halted' });
    // The first halt stands as it was written.
    expect((await controls.read()).halted).toEqual(halted);

    expect(await controls.unhalt(desk)).toEqual({ ok: true });
    expect((await controls.read()).halted).toBeNull();
    expect(await controls.unhalt(desk)).toEqual({
      ok: false,
      code: 'no_change',
      reason: 'not halted',
    });

    expect(await trail(keys)).toEqual([
      ['halt', null, 'accepted', 'exchange outage', 'desk-lead', 'api-gateway', '10.0.0.7'],
      ['halt', null, 'refused', 'already halted', 'other', 'api-gateway', '10.0.0.7'],
      ['unhalt', null, 'accepted', null, 'desk-lead', 'api-gateway', '10.0.0.7'],
      ['unhalt', null, 'refused', 'not halted', 'desk-lead', 'api-gateway', '10.0.0.7'],
    ]);
  });

  it('pauses and resumes one catalogued portfolio; unknown portfolios and no-ops are refused', async () => {
    const { keys, controls } = await setup('tc-pause:');
    const ctl: TradingActor = { name: 'ginkgo-ctl:ops', via: 'ginkgo-ctl', address: null };
    expect(await controls.pause('p1', ctl, null)).toEqual({ ok: true });
    expect(await controls.pause('p1', ctl, 'twice')).toEqual({
      ok: false,
      code: 'no_change',
      reason: 'already paused',
    });
    expect(await controls.pause('nope', ctl, null)).toEqual({
      ok: false,
      code: 'unknown_portfolio',
      reason: 'unknown portfolio nope',
    });
    const reading = await controls.read();
    expect(reading.halted).toBeNull();
    expect(reading.paused).toEqual([
      expect.objectContaining({ portfolio_id: 'p1', by: 'ginkgo-ctl:ops', reason: null }),
    ]);
    expect(await redis.hkeys(keys.pausedPortfolios())).toEqual(['p1']);

    expect(await controls.resume('p2', ctl)).toEqual({
      ok: false,
      code: 'no_change',
      reason: 'not paused',
    });
    expect(await controls.resume('p1', ctl)).toEqual({ ok: true });
    expect(await controls.resume('ghost', ctl)).toMatchObject({ code: 'unknown_portfolio' });
    expect((await controls.read()).paused).toEqual([]);

    // Removed from the catalog while paused: it can still be resumed.
    await controls.pause('p2', ctl, null);
    await redis.hdel(keys.portfolioCatalog(), 'p2');
    expect(await controls.resume('p2', ctl)).toEqual({ ok: true });

    expect((await trail(keys)).map((row) => row.slice(0, 4))).toEqual([
      ['pause', 'p1', 'accepted', null],
      ['pause', 'p1', 'refused', 'already paused'],
      ['pause', 'nope', 'refused', 'unknown portfolio nope'],
      ['resume', 'p2', 'refused', 'not paused'],
      ['resume', 'p1', 'accepted', null],
      ['resume', 'ghost', 'refused', 'unknown portfolio ghost'],
      ['pause', 'p2', 'accepted', null],
      ['resume', 'p2', 'accepted', null],
    ]);
  });

  it('a failed change writes neither the change nor its entry', async () => {
    const { keys, controls } = await setup('tc-fail:');
    // The audit key holds a string: the entry cannot be appended, so the halt must not land either.
    await redis.set(keys.auditLog(), 'not a stream');
    await expect(controls.halt(desk, null)).rejects.toThrow(/WRONGTYPE/);
    expect(await redis.exists(keys.tradingHalt())).toBe(0);
  });

  it('works for a user that may write the switches and the audit trail but only read the catalog', async () => {
    const { keys } = await setup('tc-acl:');
    // As the gateway's and ginkgo-ctl's ACL users are (packages/redis-client/src/acl.ts).
    await redis.acl(
      'SETUSER',
      'desk',
      'on',
      '>desk-password',
      'resetkeys',
      `%R~${keys.prefix}*`,
      `~${keys.tradingHalt()}`,
      `~${keys.pausedPortfolios()}`,
      `~${keys.auditLog()}`,
      '+@all',
    );
    const user = new Redis({
      host: server.host,
      port: server.port,
      username: 'desk',
      password: 'desk-password',
    });
    try {
      const controls = new TradingControls(user, keys);
      expect(await controls.pause('p1', desk, null)).toEqual({ ok: true });
      expect(await controls.pause('nope', desk, null)).toMatchObject({
        code: 'unknown_portfolio',
      });
      expect(await controls.resume('p1', desk)).toEqual({ ok: true });
      expect(await controls.halt(desk, null)).toEqual({ ok: true });
      expect(await controls.unhalt(desk)).toEqual({ ok: true });
      await expect(user.hdel(keys.portfolioCatalog(), 'p1')).rejects.toThrow(/NOPERM/);
    } finally {
      user.disconnect();
    }
  });

  it('an unreadable halt or pause still halts or pauses, and says why', async () => {
    const { keys, controls } = await setup('tc-bad:');
    await redis.set(keys.tradingHalt(), '{"oops":1}');
    await redis.hset(keys.pausedPortfolios(), 'p1', 'garbage');
    const reading = await controls.read();
    expect(reading.halted?.by).toBe(UNREADABLE_BY);
    expect(reading.paused.map((p) => [p.portfolio_id, p.by])).toEqual([['p1', UNREADABLE_BY]]);
    expect(reading.problems).toHaveLength(2);
  });
});
