import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, unwrapConfig } from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import {
  createStateKeys,
  decodePayload,
  type Notification,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import {
  MemoryTransport,
  RedisServer,
  SmtpRelay,
  TlsCertificates,
  waitFor,
  WebhookReceiver,
} from '@ginkgo-live/testing';
import {
  createSinks,
  loadNotificationConfig,
  NotificationDeliveryWorker,
  Notifier,
  SilenceError,
  Silences,
  type NotificationConfig,
} from './index.ts';

let server: RedisServer;
let receiver: WebhookReceiver<Notification>;
let url: string;
let keys: StateKeys;
const logs = new MemoryTransport();
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  server = await RedisServer.start();
  receiver = new WebhookReceiver<Notification>();
  url = await receiver.start();
  keys = createStateKeys(`nt${Date.now()}:`);
  logs.entries.length = 0;
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await receiver.stop();
  await server.cleanup();
});

function config(overrides: Record<string, string> = {}): NotificationConfig {
  return unwrapConfig(
    loadNotificationConfig({
      NOTIFY_WEBHOOK_URL: url,
      NOTIFY_DELIVERY_TIMEOUT_MS: '300',
      NOTIFY_DELIVERY_BACKOFF_MS: '50',
      NOTIFY_DELIVERY_ATTEMPTS: '5',
      NOTIFY_REDIS_DOWN_AFTER_MS: '300',
      ...overrides,
    }),
  );
}

async function connections(name: string) {
  const logger = createLogger({ app: name, level: 'debug', transports: [logs] });
  const conns = new RedisConnections({
    config: unwrapConfig(loadRedisConfig({ ...server.env, REDIS_RECONNECT_MAX_DELAY_MS: '100' })),
    app: name,
    instanceId: 'i',
    logger,
  });
  cleanups.push(() => conns.close(300));
  await conns.waitUntilReady(5_000);
  return { conns, logger };
}

async function notifier(name: string, cfg = config()) {
  const { conns, logger } = await connections(name);
  const n = new Notifier({
    redis: conns.main,
    keys,
    source: { app: name, nodeId: name },
    config: cfg,
    logger,
    directSinks: createSinks(cfg),
  });
  cleanups.push(() => n.close());
  return n;
}

async function deliveryWorker(
  cfg = config(),
  silencesOf?: (redis: Redis) => Pick<Silences, 'silencing'>,
) {
  const { conns, logger } = await connections('delivery');
  const worker = new NotificationDeliveryWorker({
    connection: conns.connection('worker', 'blocking'),
    redis: conns.main,
    keys,
    sinks: createSinks(cfg),
    routing: cfg.routing,
    silences: silencesOf?.(conns.main) as Silences | undefined,
    backoffMs: cfg.deliveryBackoffMs,
    historySize: cfg.historySize,
    logger,
  });
  worker.start();
  cleanups.push(() => worker.stop());
  return { worker, redis: conns.main };
}

async function jobCount(redis: Redis): Promise<number> {
  const counts = await queueOf(redis).getJobCounts(
    'waiting',
    'active',
    'completed',
    'failed',
    'delayed',
  );
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

function queueOf(redis: Redis): Queue {
  const queue = new Queue(keys.notificationsQueue(), {
    connection: redis,
    prefix: keys.queuePrefix(),
  });
  cleanups.push(() => queue.close());
  return queue;
}

/** The notifications on the queue (but the outage's own), oldest first, as `kind:status:portfolio`. */
async function queued(redis: Redis): Promise<string[]> {
  const jobs = await queueOf(redis).getJobs([
    'waiting',
    'active',
    'completed',
    'failed',
    'delayed',
  ]);
  return jobs
    .map((job) => job.data as Notification)
    .filter((n) => n.kind !== 'redis_unavailable')
    .sort((x, y) => x.created_at.localeCompare(y.created_at))
    .map((n) => `${n.kind}:${n.status}:${n.subject.portfolio_id ?? '-'}`);
}

/** Entries logged with this message, by every notifier of the test. */
function said(message: string): number {
  return logs.entries.filter((e) => e.message === message).length;
}

/** What the producer sees of p1 when its add is refused, and later accepted. */
const refusal = { depth: 20, capacity: 20, seen_by: 'feed' };
const accepted = { depth: 3, capacity: 20, seen_by: 'feed', refused_since_raise: 1 };
const sample = {
  node_id: 'node-a',
  depth: 960,
  capacity: 1_000,
  usage: 0.96,
  refused_since_last_notice: 0,
};
const p1 = { portfolioId: 'p1' };

describe('Notifier and delivery worker on real Redis and a real webhook', () => {
  it('delivers a notification within 1 s and suppresses repeats within the cooldown', async () => {
    const { redis } = await deliveryWorker();
    const n = await notifier('node-a');
    const started = Date.now();
    n.raise('queue_full', p1, refusal);
    await waitFor(() => receiver.received.length === 1, { timeoutMs: 1_000 });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(receiver.received[0]?.body).toMatchObject({
      kind: 'queue_full',
      level: 'critical',
      status: 'firing',
      subject: { node_id: null, portfolio_id: 'p1' },
      source: { app: 'node-a', node_id: 'node-a' },
    });
    n.raise('queue_full', p1, refusal);
    n.raise('queue_full', p1, refusal);
    await n.settle();
    expect(await jobCount(redis)).toBe(1);
    const ttl = await redis.pttl(
      keys.notificationCooldown('queue_full', { nodeId: null, portfolioId: 'p1' }, 'critical'),
    );
    expect(ttl).toBeGreaterThan(55_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('dedupes across processes: two notifiers raising the same condition send one', async () => {
    const { redis } = await deliveryWorker();
    const [a, b] = await Promise.all([notifier('node-a'), notifier('node-b')]);
    a.raise('queue_full', p1, refusal);
    b.raise('queue_full', p1, refusal);
    await Promise.all([a.settle(), b.settle()]);
    expect(await jobCount(redis)).toBe(1);
    await waitFor(() => receiver.received.length === 1);
  });

  it('sends a new level, and sends one resolved notice that clears the cooldowns', async () => {
    await deliveryWorker();
    const n = await notifier('node-a');
    n.raise('queue_usage_high', p1, sample, 'warning');
    n.raise('queue_usage_high', p1, sample, 'critical');
    await waitFor(() => receiver.received.length === 2);
    expect(receiver.received.map((r) => r.body.level).sort()).toEqual(['critical', 'warning']);
    const back = { ...sample, depth: 100, usage: 0.1, resolve_below: 0.6 };
    n.resolve('queue', p1, back);
    n.resolve('queue', p1, back);
    await waitFor(() => receiver.received.length === 3);
    await n.settle();
    expect(receiver.received[2]?.body).toMatchObject({
      status: 'resolved',
      kind: 'queue_usage_high',
      level: 'critical',
      title: 'Queue of p1 back to normal',
      message: '100/1000 events (10 %), below 60 %.',
      details: { node_id: 'node-a', portfolio_id: 'p1', resolved: expect.any(Array) as unknown },
    });
    n.raise('queue_usage_high', p1, sample, 'warning');
    await waitFor(() => receiver.received.length === 4);
    expect(receiver.received[3]?.body).toMatchObject({ status: 'firing', level: 'warning' });
  });

  it('never throws into a caller the compiler cannot see: a level the kind lacks or broken details are logged as a bug and not sent', async () => {
    const { redis } = await deliveryWorker();
    const n = await notifier('node-a');
    const untyped = n as unknown as { raise: (...args: unknown[]) => void };
    expect(() => untyped.raise('queue_full', p1, refusal, 'warning')).not.toThrow();
    expect(() => untyped.raise('portfolio_orphaned', p1, undefined)).not.toThrow();
    await n.settle();
    expect(said('Notification lost to a bug')).toBe(2);
    expect(await jobCount(redis)).toBe(0);
  });

  it('retries a receiver that fails twice, and records the delivery in the history', async () => {
    const { redis, worker } = await deliveryWorker();
    receiver.answers = [500, 500, 200];
    const n = await notifier('node-a');
    n.raise('queue_full', p1, refusal);
    await waitFor(() => receiver.received.length === 3, { timeoutMs: 5_000 });
    await waitFor(async () => (await redis.llen(keys.notificationHistory())) === 1);
    const raw = await redis.lindex(keys.notificationHistory(), 0);
    const record = decodePayload('notificationRecord', 'history', raw ?? '');
    expect(record.ok && record.value.delivery).toMatchObject({
      status: 'delivered',
      attempts: 3,
      sinks: { webhook: 'delivered' },
    });
    // What /metrics counts: every failed attempt, the delivery, the outcome.
    expect(worker.stats.sinks.get('webhook')).toEqual({ delivered: 1, failed: 2 });
    expect([...worker.stats.outcomes]).toEqual([['delivered', 1]]);
  });

  it('e-mails beside the webhook: a relay that refuses once (451) gets it on the retry, the webhook only once, one delivery record', async () => {
    const certs = TlsCertificates.make('ginkgo-notify-smtp');
    const relay = await new SmtpRelay({
      tls: 'starttls',
      certs,
      users: { ginkgo: 'pw-smtp' },
    }).start();
    cleanups.push(async () => {
      await relay.stop();
      certs.cleanup();
    });
    relay.answers = [451];
    const cfg = config({
      NOTIFY_EMAIL_TO: 'oncall@desk.example',
      NOTIFY_EMAIL_FROM: 'ginkgo@desk.example',
      NOTIFY_SMTP_HOST: '127.0.0.1',
      NOTIFY_SMTP_PORT: String(relay.port),
      NOTIFY_SMTP_USERNAME: 'ginkgo',
      NOTIFY_SMTP_PASSWORD: 'pw-smtp',
      NOTIFY_SMTP_CA_FILE: certs.caFile,
      NOTIFY_DELIVERY_TIMEOUT_MS: '2000',
    });
    const { redis } = await deliveryWorker(cfg);
    const n = await notifier('node-a', cfg);
    n.raise('queue_full', p1, refusal);
    await waitFor(async () => (await redis.llen(keys.notificationHistory())) === 1, {
      timeoutMs: 10_000,
    });
    expect(relay.received.map((m) => [m.subject, m.to, m.secure])).toEqual([
      ['[CRITICAL] Queue of p1 is full', ['oncall@desk.example'], true],
    ]);
    expect(receiver.received).toHaveLength(1);
    const raw = await redis.lindex(keys.notificationHistory(), 0);
    const record = decodePayload('notificationRecord', 'history', raw ?? '');
    expect(record.ok && record.value.delivery).toMatchObject({
      status: 'delivered',
      attempts: 2,
      sinks: { webhook: 'delivered', email: 'delivered' },
    });
  });

  it('routes: a critical notification to the webhook only, a warning to Slack only, each record naming its route', async () => {
    const slack = new WebhookReceiver();
    const slackUrl = await slack.start();
    const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-routes-'));
    cleanups.push(async () => {
      await slack.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const routes = path.join(dir, 'routes.yaml');
    writeFileSync(
      routes,
      [
        'routes:',
        '  - match: { level: critical }',
        '    sinks: [webhook]',
        'default: [slack]',
        '',
      ].join('\n'),
    );
    const cfg = config({ NOTIFY_SLACK_WEBHOOK_URL: slackUrl, NOTIFY_ROUTES_FILE: routes });
    const { redis } = await deliveryWorker(cfg);
    const n = await notifier('node-a', cfg);
    n.raise('queue_full', p1, refusal);
    n.raise('queue_usage_high', { portfolioId: 'p2' }, { ...sample, usage: 0.75 }, 'warning');
    await waitFor(async () => (await redis.llen(keys.notificationHistory())) === 2, {
      timeoutMs: 5_000,
    });
    expect(receiver.received.map((r) => r.body.kind)).toEqual(['queue_full']);
    expect(slack.received).toHaveLength(1);
    const records = (await redis.lrange(keys.notificationHistory(), 0, -1)).map((raw) => {
      const record = decodePayload('notificationRecord', 'history', raw);
      if (!record.ok) throw new Error(record.error.problem);
      return [record.value.kind, record.value.delivery.sinks, record.value.delivery.route];
    });
    expect(records.sort()).toEqual([
      ['queue_full', { webhook: 'delivered' }, `${routes}:2`],
      ['queue_usage_high', { slack: 'delivered' }, 'default'],
    ]);
  });

  it('silences: a silenced notification is recorded as silenced and sent nowhere; others go on; an expired silence no longer holds', async () => {
    const { redis } = await deliveryWorker(config(), (r) => new Silences(r, keys));
    const silences = new Silences(redis, keys);
    const silence = await silences.create({
      matchers: { node: ['node-3'], kind: ['node_lost'] },
      durationMs: 60_000,
      createdBy: 'ops',
      comment: 'node-3 in maintenance',
    });
    const n = await notifier('scheduler');
    n.raise('node_lost', { nodeId: 'node-3' }, { last_seen: null });
    n.raise('node_lost', { nodeId: 'node-1' }, { last_seen: null });
    await waitFor(async () => (await redis.llen(keys.notificationHistory())) === 2);
    expect(receiver.received.map((r) => r.body.subject.node_id)).toEqual(['node-1']);
    const records = async () =>
      (await redis.lrange(keys.notificationHistory(), 0, -1)).map((raw) => {
        const record = decodePayload('notificationRecord', 'history', raw);
        if (!record.ok) throw new Error(record.error.problem);
        const { status, silenced_by, sinks } = record.value.delivery;
        return [
          record.value.subject.node_id,
          record.value.status,
          status,
          silenced_by ?? null,
          sinks,
        ];
      });
    expect((await records()).sort()).toEqual([
      ['node-1', 'firing', 'delivered', null, { webhook: 'delivered' }],
      ['node-3', 'firing', 'silenced', silence.id, {}],
    ]);

    // Ended early: node-3's resolved notice is sent.
    expect((await silences.expire(silence.id, 'ops'))?.expired_by).toBe('ops');
    expect(await silences.expire(silence.id, 'ops')).toBeUndefined();
    n.resolve('node_lost', { nodeId: 'node-3' }, {});
    await waitFor(() => receiver.received.length === 2);
    expect(receiver.received.map((r) => [r.body.subject.node_id, r.body.status])).toEqual([
      ['node-1', 'firing'],
      ['node-3', 'resolved'],
    ]);
    const listed = await silences.list();
    expect(listed.active).toEqual([]);
    expect(listed.ended.map((s) => s.id)).toEqual([silence.id]);
  });

  it('silences refuse what cannot work, naming the field', async () => {
    const silences = new Silences((await connections('ops')).conns.main, keys);
    const ask = (over: Partial<Parameters<Silences['create']>[0]>) =>
      silences
        .create({
          matchers: { node: ['n1'] },
          durationMs: 60_000,
          createdBy: 'ops',
          comment: '',
          ...over,
        })
        .catch((err: unknown) => err);
    expect(await ask({ matchers: {} })).toMatchObject({ field: 'matchers' });
    expect(await ask({ matchers: { kind: ['node_gone'] } })).toMatchObject({
      field: 'matchers.kind',
      message: expect.stringContaining('no kind "node_gone"') as unknown,
    });
    expect(await ask({ durationMs: 10 })).toBeInstanceOf(SilenceError);
    expect(await ask({ durationMs: 90 * 86_400_000 })).toMatchObject({ field: 'duration' });
    expect((await silences.list()).active).toEqual([]);
  });

  it('retries a notification whose silences could not be read, and never sends it meanwhile', async () => {
    let reads = 0;
    const { redis } = await deliveryWorker(config(), () => ({
      silencing: () => {
        reads += 1;
        return reads === 1
          ? Promise.reject(new Error('Connection is closed.'))
          : Promise.resolve(undefined);
      },
    }));
    const n = await notifier('node-a');
    n.raise('queue_full', p1, refusal);
    await waitFor(async () => (await redis.llen(keys.notificationHistory())) === 1);
    expect(reads).toBe(2);
    expect(receiver.received).toHaveLength(1);
    const record = decodePayload(
      'notificationRecord',
      'history',
      (await redis.lindex(keys.notificationHistory(), 0)) ?? '',
    );
    expect(record.ok && record.value.delivery).toMatchObject({ status: 'delivered', attempts: 2 });
  });

  it('waits at least as long as a 429 Retry-After says', async () => {
    await deliveryWorker();
    receiver.answers = [{ status: 429, retryAfter: '1' }, 200];
    const n = await notifier('node-a');
    n.raise('queue_full', p1, refusal);
    await waitFor(() => receiver.received.length === 2, { timeoutMs: 5_000 });
    const [first, second] = receiver.received;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(1_000);
  });

  it('leaves a delivery that never gets an answer in the failed set with its reason, and never logs the URL', async () => {
    const { redis } = await deliveryWorker();
    receiver.answers = ['hang', 'hang', 'hang', 'hang', 'hang'];
    const n = await notifier('node-a');
    n.raise('queue_full', p1, refusal);
    const queue = queueOf(redis);
    await waitFor(async () => (await queue.getFailedCount()) === 1, { timeoutMs: 10_000 });
    const [failed] = await queue.getFailed();
    expect(failed?.failedReason).toBe(
      'Delivery failed after 5 attempt(s): webhook: no answer within 300 ms',
    );
    expect(failed?.attemptsMade).toBe(5);
    const record = decodePayload(
      'notificationRecord',
      'h',
      (await redis.lindex(keys.notificationHistory(), 0)) ?? '',
    );
    expect(record.ok && record.value.delivery.status).toBe('failed');
    const everything = JSON.stringify(logs.entries);
    expect(everything).toContain('no answer within 300 ms');
    expect(everything).not.toContain('SECRET-TOKEN-123');
  });

  it('keeps the history newest first and capped', async () => {
    const cfg = config({ NOTIFY_HISTORY_SIZE: '3' });
    const { redis } = await deliveryWorker(cfg);
    const n = await notifier('node-a', cfg);
    for (let i = 1; i <= 5; i++) {
      n.raise('queue_full', { portfolioId: `p${i}` }, refusal);
      await waitFor(async () =>
        (await redis.lrange(keys.notificationHistory(), 0, 0)).some((r) => r.includes(`"p${i}"`)),
      );
    }
    const history = await redis.lrange(keys.notificationHistory(), 0, -1);
    expect(history.map((r) => (JSON.parse(r) as Notification).subject.portfolio_id)).toEqual([
      'p5',
      'p4',
      'p3',
    ]);
  });

  it('with Redis away: holds notifications, tells the webhook directly once, and says when Redis is back', async () => {
    await deliveryWorker();
    const n = await notifier('node-a');
    await waitFor(() => n.isOutageReporter, { description: 'the outage reporter lease' });
    await server.kill();
    n.raise('queue_full', p1, refusal);
    n.raise('queue_full', { portfolioId: 'p2' }, refusal);
    await n.settle();
    expect(n.buffered).toBe(2);
    await waitFor(() => receiver.received.length === 1, { timeoutMs: 3_000 });
    expect(receiver.received[0]?.body).toMatchObject({
      kind: 'redis_unavailable',
      status: 'firing',
      details: {
        held: [
          'critical queue_full: Queue of p1 is full',
          'critical queue_full: Queue of p2 is full',
        ],
      },
    });

    await server.restart({ keepData: false });
    await waitFor(() => receiver.received.length === 4, {
      timeoutMs: 10_000,
      description: 'the resolved notice and the held ones',
    }).catch((err: unknown) => {
      throw new Error(
        `${String(err)} got ${JSON.stringify(receiver.received.map((r) => r.body.kind + ':' + r.body.status))} logs ${JSON.stringify(
          logs.entries
            .filter((e) => e.level !== 'debug')
            .map((e) => e.message + ' ' + String(e['app']) + ' ' + JSON.stringify(e['err'] ?? ''))
            .slice(-30),
        )}`,
      );
    });
    const after = receiver.received.slice(1).map((r) => `${r.body.kind}:${r.body.status}`);
    expect(after).toEqual(['redis_unavailable:resolved', 'queue_full:firing', 'queue_full:firing']);
    expect(n.buffered).toBe(0);
  });

  it('tells the webhook of an outage once for the fleet: only the holder of the reporter lease reports it and its end', async () => {
    await deliveryWorker();
    const [a, b] = await Promise.all([notifier('node-a'), notifier('node-b')]);
    await waitFor(() => a.isOutageReporter !== b.isOutageReporter, {
      description: 'one of the two to hold the outage reporter lease',
    });
    await server.kill();
    // Both saw the outage last past the threshold: one told the webhook, the other left it to it.
    await waitFor(
      () =>
        said('Redis unavailable: told the webhooks directly') +
          said('Redis unavailable; the outage reporter tells the webhooks') ===
        2,
      { timeoutMs: 5_000, description: 'both notifiers to decide about the outage' },
    );
    expect(said('Redis unavailable: told the webhooks directly')).toBe(1);
    await server.restart({ keepData: false });
    await waitFor(() => receiver.received.length === 2, { timeoutMs: 10_000 });
    await Promise.all([a.settle(), b.settle()]);
    expect(receiver.received.map((r) => `${r.body.kind}:${r.body.status}`)).toEqual([
      'redis_unavailable:firing',
      'redis_unavailable:resolved',
    ]);
  });

  it('sends what two processes held during an outage once, through the shared dedupe', async () => {
    const { redis } = await deliveryWorker();
    const [a, b] = await Promise.all([notifier('node-a'), notifier('node-b')]);
    await server.kill();
    a.raise('queue_full', p1, refusal);
    b.raise('queue_full', p1, refusal);
    a.raise('queue_full', { portfolioId: 'p2' }, refusal);
    await Promise.all([a.settle(), b.settle()]);
    expect([a.buffered, b.buffered]).toEqual([2, 1]);

    await server.restart({ keepData: false });
    await waitFor(() => a.buffered + b.buffered === 0, { timeoutMs: 10_000 });
    await Promise.all([a.settle(), b.settle()]);
    expect((await queued(redis)).sort()).toEqual(['queue_full:firing:p1', 'queue_full:firing:p2']);
  });

  it('sends a resolve held while Redis was frozen once it answers: the condition gets its resolved notice', async () => {
    const { redis } = await deliveryWorker();
    const n = await notifier('node-a');
    n.raise('queue_full', p1, refusal);
    await n.settle();
    server.freeze();
    n.resolve('queue', p1, accepted);
    await waitFor(() => n.buffered === 1, { timeoutMs: 5_000, description: 'the resolve held' });
    server.thaw();
    await waitFor(() => n.buffered === 0, { timeoutMs: 10_000 });
    await n.settle();
    expect(await queued(redis)).toEqual(['queue_full:firing:p1', 'queue_full:resolved:p1']);
  });
});
