import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStateKeys, type StateKeys } from '@ginkgo-live/state-keys';
import { RedisServer } from '@ginkgo-live/testing';
import { CONDITIONS, dedupeSubject, kindsOf } from './catalogue.ts';
import { SharedDedupe } from './dedupe.ts';

let server: RedisServer;
let redis: Redis;
let keys: StateKeys;
const config = { infoCooldownMs: 300_000, warningCooldownMs: 300_000, criticalCooldownMs: 60_000 };

beforeEach(async () => {
  server = await RedisServer.start();
  redis = new Redis({ host: server.host, port: server.port, maxRetriesPerRequest: 1 });
  keys = createStateKeys('dd:');
});
afterEach(async () => {
  redis.disconnect();
  await server.cleanup();
});

const p1 = dedupeSubject({ portfolioId: 'p1' });
const queue = { group: CONDITIONS.queue.group, subject: p1, kinds: kindsOf('queue') };

describe('SharedDedupe on a real Redis', () => {
  it('lets one claim of an occurrence through per cooldown, whichever process makes it, and a higher level at once', async () => {
    const a = new SharedDedupe(redis, keys, config);
    const b = new SharedDedupe(redis, keys, config);
    const full = { kind: 'queue_full', level: 'critical' as const, group: 'queue', subject: p1 };
    expect([await a.claim(full), await b.claim(full), await a.claim(full)]).toEqual([
      true,
      false,
      false,
    ]);
    const warning = { ...full, kind: 'queue_usage_high', level: 'warning' as const };
    expect(await b.claim(warning)).toBe(true);
    expect(
      await redis.pttl(keys.notificationCooldown('queue_full', p1, 'critical')),
    ).toBeGreaterThan(59_000);
  });

  it('gives the resolved notice to the one process that clears the condition, and frees its cooldowns', async () => {
    const a = new SharedDedupe(redis, keys, config);
    const b = new SharedDedupe(redis, keys, config);
    const full = { kind: 'queue_full', level: 'critical' as const, group: 'queue', subject: p1 };
    await a.claim(full);
    expect(await b.clear(queue)).toEqual(['queue_full|critical']);
    expect(await a.clear(queue)).toEqual([]);
    expect(await a.claim(full)).toBe(true);
  });

  it('takes over what the release before the catalogue left in Redis mid-incident: no second notice, one resolved notice', async () => {
    // The keys and fields as that release wrote them for node n1 lost and p1's queue at 96 %.
    await redis.set('dd:notify:cooldown:node_lost:{n1:-}:critical', '1', 'PX', 60_000);
    await redis.hset('dd:notify:active:node:{n1:-}', 'node_lost|critical', '1764547200000');
    await redis.set('dd:notify:cooldown:queue_usage_high:{-:p1}:critical', '1', 'PX', 60_000);
    await redis.hset('dd:notify:active:queue:{-:p1}', 'queue_usage_high|critical', '1764547200000');
    const dedupe = new SharedDedupe(redis, keys, config);
    const n1 = dedupeSubject({ nodeId: 'n1' });
    const lost = {
      kind: 'node_lost',
      level: 'critical' as const,
      group: CONDITIONS.node_lost.group,
    };
    expect(await dedupe.claim({ ...lost, subject: n1 })).toBe(false);
    expect(
      await dedupe.claim({
        kind: 'queue_usage_high',
        level: 'critical',
        group: 'queue',
        subject: p1,
      }),
    ).toBe(false);
    expect(
      await dedupe.clear({ group: lost.group, subject: n1, kinds: kindsOf('node_lost') }),
    ).toEqual(['node_lost|critical']);
    expect(await dedupe.clear(queue)).toEqual(['queue_usage_high|critical']);
    expect(await redis.keys('dd:notify:*')).toEqual([]);
  });
});
