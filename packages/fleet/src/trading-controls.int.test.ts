import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createStateKeys,
  decodePayload,
  encodePayload,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import { RedisServer, waitFor } from '@ginkgo-live/testing';
import {
  AuditLog,
  haltRecordState,
  TradingControls,
  UNREADABLE_BY,
  UNREADABLE_ID,
  type TradingActor,
} from './index.ts';

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
/** A change that landed on a Redis without replicas. */
const DONE = { ok: true, repeated: false, replication: { replicas: 0, acknowledged: 0 } };

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

    expect(await controls.halt(desk, 'exchange outage')).toEqual(DONE);
    const halted = (await controls.read()).halted;
    expect(halted).toMatchObject({ by: 'desk-lead', reason: 'exchange outage' });
    expect(await redis.pttl(keys.tradingHalt())).toBe(-1);

    const second = await controls.halt({ ...desk, name: 'other' }, 'again');
    expect(second).toEqual({ ok: false, code: 'no_change', reason: 'already halted' });
    // The first halt stands as it was written.
    expect((await controls.read()).halted).toEqual(halted);

    expect(await controls.unhalt(desk)).toEqual(DONE);
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
    expect(await controls.pause('p1', ctl, null)).toEqual(DONE);
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
    expect(await controls.resume('p1', ctl)).toEqual(DONE);
    expect(await controls.resume('ghost', ctl)).toMatchObject({ code: 'unknown_portfolio' });
    expect((await controls.read()).paused).toEqual([]);

    // Removed from the catalog while paused: it can still be resumed.
    await controls.pause('p2', ctl, null);
    await redis.hdel(keys.portfolioCatalog(), 'p2');
    expect(await controls.resume('p2', ctl)).toEqual(DONE);

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

  it('pushes every change to the nodes on the trading channel, a refusal or a repeat not', async () => {
    const { keys, controls } = await setup('tc-push:');
    const sub = redis.duplicate();
    const got: string[] = [];
    try {
      sub.on('smessage', (channel: string, message: string) => got.push(`${channel} ${message}`));
      await sub.ssubscribe(keys.tradingChannel());
      const ch = keys.tradingChannel();
      await controls.halt(desk, null, { requestId: 'h1' });
      await controls.halt(desk, null, { requestId: 'h1' }); // the same request again: a repeat
      await controls.halt(desk, null, { requestId: 'h2' }); // refused: already halted
      await controls.pause('p1', desk, null, { requestId: 'p1-pause' });
      await controls.pause('nope', desk, null); // refused: unknown portfolio
      await controls.resume('p1', desk, { requestId: 'p1-resume' });
      await controls.unhalt(desk, { requestId: 'u1' });
      // A message sent after the others: once it is here, every earlier one is too.
      await redis.spublish(ch, 'end');
      await waitFor(() => got.at(-1) === `${ch} end`);
      expect(got).toEqual([
        `${ch} halt:h1`,
        `${ch} pause:p1-pause`,
        `${ch} resume:p1-resume`,
        `${ch} unhalt:u1`,
        `${ch} end`,
      ]);
    } finally {
      sub.disconnect();
    }
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
      // Channels are off for a new user (acl-pubsub-default resetchannels): the push needs its own.
      `&${keys.tradingChannel()}`,
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
      expect(await controls.pause('p1', desk, null)).toEqual(DONE);
      expect(await controls.pause('nope', desk, null)).toMatchObject({
        code: 'unknown_portfolio',
      });
      expect(await controls.resume('p1', desk)).toEqual(DONE);
      expect(await controls.halt(desk, null)).toEqual(DONE);
      expect(await controls.unhalt(desk)).toEqual(DONE);
      await expect(user.hdel(keys.portfolioCatalog(), 'p1')).rejects.toThrow(/NOPERM/);
      // An ACL from before the push (no channel): the kill switch still works, unannounced.
      await redis.acl('SETUSER', 'desk', 'resetchannels');
      expect(await controls.halt(desk, null)).toEqual(DONE);
      expect((await controls.read()).halted).not.toBeNull();
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
    expect(reading.halted?.id).toBe(UNREADABLE_ID);
    expect(reading.paused.map((p) => [p.portfolio_id, p.by])).toEqual([['p1', UNREADABLE_BY]]);
    expect(reading.problems).toHaveLength(2);
  });
  it('a lift is a record naming the halt it lifts, never a deleted key; a resume likewise', async () => {
    const { keys, controls } = await setup('tc-lift:');
    expect(haltRecordState(await redis.get(keys.tradingHalt()))).toBe('missing');
    expect(await controls.halt(desk, 'drill', { requestId: 'req-halt-1' })).toEqual(DONE);
    const halt = decodePayload('tradingHalt', 'halt', (await redis.get(keys.tradingHalt())) ?? '');
    expect(halt.ok && halt.value).toMatchObject({
      id: 'req-halt-1',
      state: 'halted',
      by: 'desk-lead',
    });
    expect(await controls.unhalt({ ...desk, name: 'lead-2' }, { requestId: 'req-lift-1' })).toEqual(
      DONE,
    );
    const raw = await redis.get(keys.tradingHalt());
    expect(haltRecordState(raw)).toBe('lifted');
    const lift = decodePayload('tradingHalt', 'halt', raw ?? '');
    expect(lift.ok && lift.value).toMatchObject({
      id: 'req-halt-1',
      state: 'lifted',
      by: 'desk-lead',
      reason: 'drill',
      lifted_by: 'lead-2',
      lift_request_id: 'req-lift-1',
    });
    // A lifted halt can be halted again, under the new request's id.
    expect(await controls.halt(desk, null, { requestId: 'req-halt-2' })).toEqual(DONE);
    expect((await controls.read()).halted).toMatchObject({ id: 'req-halt-2', state: 'halted' });

    expect(await controls.pause('p1', desk, null, { requestId: 'req-pause-1' })).toEqual(DONE);
    expect(await controls.resume('p1', desk, { requestId: 'req-resume-1' })).toEqual(DONE);
    const entry = decodePayload(
      'portfolioPause',
      'pause',
      (await redis.hget(keys.pausedPortfolios(), 'p1')) ?? '',
    );
    expect(entry.ok && entry.value).toMatchObject({
      id: 'req-pause-1',
      state: 'resumed',
      portfolio_id: 'p1',
      resumed_by: 'desk-lead',
      resume_request_id: 'req-resume-1',
    });
    expect((await controls.read()).paused).toEqual([]);
    // Resumed, it can be paused again, and a resumed portfolio is "not paused".
    expect(await controls.resume('p1', desk)).toMatchObject({ reason: 'not paused' });
    expect(await controls.pause('p1', desk, null)).toEqual(DONE);
  });

  it('the same request run twice (a resend after a timeout) answers ok and changes nothing more', async () => {
    const { keys, controls } = await setup('tc-repeat:');
    const repeat = { ...DONE, repeated: true };
    expect(await controls.halt(desk, 'drill', { requestId: 'h1' })).toEqual(DONE);
    expect(await controls.halt(desk, 'drill', { requestId: 'h1' })).toEqual(repeat);
    expect(await controls.unhalt(desk, { requestId: 'u1' })).toEqual(DONE);
    expect(await controls.unhalt(desk, { requestId: 'u1' })).toEqual(repeat);
    // The halt's own resend, arriving after its lift, does not halt again.
    expect(await controls.halt(desk, 'drill', { requestId: 'h1' })).toEqual(repeat);
    expect((await controls.read()).halted).toBeNull();
    expect(await controls.pause('p1', desk, null, { requestId: 'p1' })).toEqual(DONE);
    expect(await controls.pause('p1', desk, null, { requestId: 'p1' })).toEqual(repeat);
    expect(await controls.resume('p1', desk, { requestId: 'r1' })).toEqual(DONE);
    expect(await controls.resume('p1', desk, { requestId: 'r1' })).toEqual(repeat);
    // An id the script and the nodes could measure differently is refused before anything is sent.
    await expect(controls.halt(desk, null, { requestId: 'ü'.repeat(40) })).rejects.toThrow(
      'requestId must be 1-64 characters of [A-Za-z0-9_.:-]',
    );
    // Another request for the same change is still a no-op, as before.
    expect(await controls.unhalt(desk, { requestId: 'u2' })).toMatchObject({
      reason: 'not halted',
    });
    // One accepted entry per change, none for the repeats.
    expect((await trail(keys)).map((row) => row.slice(0, 3))).toEqual([
      ['halt', null, 'accepted'],
      ['unhalt', null, 'accepted'],
      ['pause', 'p1', 'accepted'],
      ['resume', 'p1', 'accepted'],
      ['unhalt', null, 'refused'],
    ]);
  });

  it('an unreadable halt can be lifted: the lift names the unreadable id and decodes', async () => {
    const { keys, controls } = await setup('tc-bad-lift:');
    await redis.set(keys.tradingHalt(), 'garbage');
    expect((await controls.read()).halted?.id).toBe(UNREADABLE_ID);
    expect(await controls.unhalt(desk)).toEqual(DONE);
    const lift = decodePayload('tradingHalt', 'halt', (await redis.get(keys.tradingHalt())) ?? '');
    expect(lift.ok && lift.value).toMatchObject({
      id: UNREADABLE_ID,
      state: 'lifted',
      by: UNREADABLE_BY,
      reason: null,
    });
  });

  it('waits for a replica to acknowledge a change, and says when none did', async () => {
    // The first sync at once, not after the default 5 s a diskless sync waits for more replicas.
    await redis.config('SET', 'repl-diskless-sync-delay', '0');
    const replica = await RedisServer.start({
      args: ['--replicaof', server.host, String(server.port)],
    });
    try {
      const { keys, controls } = await setup('tc-replica:');
      await waitFor(async () => /slave0:.*state=online/.test(await redis.info('replication')), {
        timeoutMs: 10_000,
        description: 'the replica in sync',
      });
      expect(await controls.halt(desk, null)).toEqual({
        ...DONE,
        replication: { replicas: 1, acknowledged: 1 },
      });
      // The replica frozen: the wait ends at its bound with nobody acknowledging.
      replica.freeze();
      const started = Date.now();
      expect(await controls.unhalt(desk)).toEqual({
        ...DONE,
        replication: { replicas: 1, acknowledged: 0 },
      });
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      replica.thaw();
      expect(haltRecordState(await redis.get(keys.tradingHalt()))).toBe('lifted');
    } finally {
      await replica.cleanup();
    }
  });
});
