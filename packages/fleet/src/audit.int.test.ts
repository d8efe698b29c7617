import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { RedisServer } from '@ginkgo-live/testing';
import { AUDIT_MAX_ENTRIES, AuditLog, type AuditInput } from './index.ts';

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

const drain = (n: number): AuditInput => ({
  actor: 'desk-lead',
  via: 'api-gateway',
  action: 'drain',
  target: { node_id: `node-${n}`, portfolio_id: null, target_node_id: null },
  outcome: 'queued',
  reason: null,
  request_id: `req-${n}`,
  address: '127.0.0.1',
});

describe('AuditLog', () => {
  it('lists newest first, pages with before, and reports an unreadable entry beside the rest', async () => {
    const keys = createStateKeys('audit-page:');
    const log = new AuditLog(redis, keys);
    for (let n = 1; n <= 5; n += 1) await log.append(drain(n));
    await redis.xadd(keys.auditLog(), '*', 'entry', '{"not":"an entry"}');

    const first = await log.list({ limit: 3 });
    expect(first.map((r) => ('entry' in r ? r.entry.request_id : 'error'))).toEqual([
      'error',
      'req-5',
      'req-4',
    ]);
    const next = await log.list({ limit: 3, before: first[2]?.id });
    expect(next.map((r) => ('entry' in r ? r.entry.request_id : 'error'))).toEqual([
      'req-3',
      'req-2',
      'req-1',
    ]);
  });

  it('commits an entry with the change it records, in one MULTI', async () => {
    const keys = createStateKeys('audit-multi:');
    const log = new AuditLog(redis, keys);
    const multi = redis.multi().set(keys.tradingHalt(), 'x');
    log.appendTo(multi, { ...drain(1), action: 'halt', outcome: 'accepted' });
    await multi.exec();
    const [record] = await log.list({ limit: 10 });
    expect(record !== undefined && 'entry' in record ? record.entry.action : null).toBe('halt');
  });

  it('refuses an entry that breaks the schema before it reaches Redis', async () => {
    const keys = createStateKeys('audit-bad:');
    const log = new AuditLog(redis, keys);
    await expect(log.append({ ...drain(1), actor: '' })).rejects.toThrow(/actor/);
    expect(await redis.exists(keys.auditLog())).toBe(0);
  });

  it('stays capped near AUDIT_MAX_ENTRIES', async () => {
    const keys = createStateKeys('audit-cap:');
    const log = new AuditLog(redis, keys);
    const pipeline = redis.pipeline();
    for (let n = 0; n < AUDIT_MAX_ENTRIES + 500; n += 1) log.appendTo(pipeline, drain(n));
    await pipeline.exec();
    const length = await redis.xlen(keys.auditLog());
    // MAXLEN ~ trims whole stream nodes (100 entries each by default): never more than one node over.
    expect(length).toBeGreaterThanOrEqual(AUDIT_MAX_ENTRIES);
    expect(length).toBeLessThanOrEqual(AUDIT_MAX_ENTRIES + 100);
  });
});
