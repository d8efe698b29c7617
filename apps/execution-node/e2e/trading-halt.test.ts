import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TradingControls, type TradingActor } from '@ginkgo-live/fleet';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { appliedSeqs, SEQ_CHECKSUM_MODULUS, type Notification } from '@ginkgo-live/state-keys';
import {
  logEntries,
  type RedisServer,
  StackFixture,
  tick,
  waitFor,
  WebhookReceiver,
} from '@ginkgo-live/testing';

/**
 * The trading desk's kill switch, end to end on real processes: a halt stops every portfolio
 * applying events within a measured bound, queues keep what arrives until full (the producer's
 * refusals counted, none lost silently), a node and a scheduler restarted while halted apply
 * nothing, the scheduler leader says `fleet_halted` while it lasts, and the resume applies every
 * accepted event exactly once, in order. A pause stops only its portfolio.
 */
let fx: StackFixture;
let server: RedisServer;

beforeEach(async () => {
  fx = await StackFixture.start();
  server = fx.server;
});
afterEach(() => fx.close());

const PRODUCER = 'desk-feed';
const CAPACITY = 150;
const desk: TradingActor = { name: 'desk-lead', via: 'api-gateway', address: '127.0.0.1' };

/** A numbered feed to every portfolio, recording the seqs accepted and the adds refused (full). */
function feed(portfolioIds: readonly string[], producerId = PRODUCER) {
  const queues = new PortfolioQueues({
    connection: fx.redis,
    keys: fx.keys,
    producerId,
    capacity: CAPACITY,
  });
  fx.track(queues);
  const accepted = new Map<string, number[]>(portfolioIds.map((id) => [id, []]));
  const refused = new Map<string, number>(portfolioIds.map((id) => [id, 0]));
  const control = { stopped: false };
  let n = 0;
  const running = (async () => {
    while (!control.stopped) {
      for (const id of portfolioIds) {
        const result = await queues.add(id, tick(n++));
        if (result.ok) accepted.get(id)?.push(result.seq);
        else if (result.reason === 'full') refused.set(id, (refused.get(id) ?? 0) + 1);
        else throw new Error(result.problem);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    accepted,
    refused,
    total: () => [...accepted.values()].reduce((sum, seqs) => sum + seqs.length, 0),
    stop: async () => {
      control.stopped = true;
      await running;
    },
  };
}

const applied = async (portfolioId: string, producer = PRODUCER): Promise<number> =>
  (await fx.book(portfolioId))?.applied?.producers[producer]?.count ?? 0;
const queued = (portfolioId: string) =>
  fx.redis.llen(`${fx.keys.queuePrefix()}:${fx.keys.portfolioQueue(portfolioId)}:wait`);

/** Waits until the queue is empty and the book applied `count` events. */
async function settled(portfolioId: string, count: number, producer = PRODUCER): Promise<void> {
  await waitFor(
    async () =>
      (await queued(portfolioId)) === 0 && (await applied(portfolioId, producer)) === count,
    {
      timeoutMs: 15_000,
      intervalMs: 100,
      description: `${portfolioId}: ${count} events in the book`,
    },
  );
}

/** The book applied exactly the accepted seqs: each once, in increasing order. */
async function expectExactlyOnce(
  portfolioId: string,
  accepted: readonly number[],
  producer = PRODUCER,
): Promise<void> {
  const book = await fx.book(portfolioId);
  const range = book?.applied?.producers[producer];
  if (range === undefined) throw new Error(`${portfolioId}: nothing applied`);
  const { seqs, complete } = appliedSeqs(range);
  expect(complete).toBe(true);
  expect(seqs).toEqual(accepted);
  expect(range.count).toBe(accepted.length);
  expect(range.checksum).toBe(
    accepted.reduce((h, seq) => (h * 31 + seq) % SEQ_CHECKSUM_MODULUS, 0),
  );
  if (producer === PRODUCER) expect(book?.processed_count).toBe(accepted.length);
}

const statuses = async (ids: readonly string[]) =>
  Promise.all(ids.map(async (id) => (await fx.state(id))?.status));

describe('trading halt and pause', () => {
  it(
    'halt: every portfolio stops within the bound, queues fill up to capacity, restarts apply nothing, resume applies each accepted event once, in order',
    { timeout: 60_000 },
    async ({ annotate }) => {
      const ids = ['p1', 'p2', 'p3'];
      const receiver = new WebhookReceiver<Notification>();
      const url = await receiver.start();
      fx.onClose(() => receiver.stop());
      const notify = { NOTIFY_WEBHOOK_URL: url };
      const capacity = { PORTFOLIO_QUEUE_CAPACITY: String(CAPACITY) };
      for (const id of ids) await fx.addToCatalog(id);
      const schedulerEnv = { ...notify, SCHEDULER_SETTLE_MS: '0' };
      const [, firstScheduler, firstNode] = await Promise.all([
        fx.startNotificationWorker(notify),
        fx.startScheduler('s1', schedulerEnv),
        fx.startNode('a', { ...notify, ...capacity }),
      ]);
      await waitFor(async () => (await statuses(ids)).every((s) => s === 'running'), {
        timeoutMs: 10_000,
        description: 'every portfolio running',
      });
      const producer = feed(ids);
      await waitFor(() => producer.total() >= 150, { timeoutMs: 10_000 });

      // Halt. The latency: from just before the write to the last commit that applied an event.
      const controls = new TradingControls(fx.redis, fx.keys);
      const haltSentAt = Date.now();
      expect(await controls.halt(desk, 'drill')).toMatchObject({ ok: true });
      const atHalt = await Promise.all(ids.map((id) => applied(id)));
      await waitFor(async () => (await statuses(ids)).every((s) => s === 'paused'), {
        timeoutMs: 3_000,
        description: 'every portfolio paused',
      });
      // The queues fill up while nothing is applied; the producer is refused beyond capacity.
      await waitFor(() => [...producer.refused.values()].every((n) => n >= 20), {
        timeoutMs: 10_000,
        description: 'every queue full and refusing',
      });
      const stopped = await Promise.all(ids.map((id) => applied(id)));
      const lastCommits = await Promise.all(
        ids.map(async (id) => Date.parse((await fx.book(id))?.updated_at ?? '')),
      );
      const latencyMs = Math.max(0, ...lastCommits.map((t) => t - haltSentAt));
      // The node polls every 100 ms (FAST); the batch in hand commits: well under a second.
      expect(latencyMs).toBeLessThan(1_000);
      for (const id of ids) expect(await queued(id)).toBe(CAPACITY);
      // Refusals are counted where operators see them, as many as the producer was told.
      const refusals = await fx.redis.hgetall(fx.keys.queueRefusals());
      for (const id of ids) expect(Number(refusals[id])).toBe(producer.refused.get(id));

      // Restart the node (graceful) and the scheduler (killed) while halted: still nothing applied.
      await firstScheduler.stop('SIGKILL');
      await firstNode.stop('SIGTERM');
      expect(firstNode.exit?.code).toBe(0);
      const [node] = await Promise.all([
        fx.startNode('a', { ...notify, ...capacity }),
        fx.startScheduler('s1', schedulerEnv),
      ]);
      await waitFor(() => logEntries(node, 'Portfolio loaded').length === ids.length, {
        timeoutMs: 10_000,
        description: 'the restarted node loaded every portfolio',
      });
      expect(logEntries(node, 'Portfolio loaded').map((e) => e['held'])).toEqual([
        'halt',
        'halt',
        'halt',
      ]);
      await waitFor(async () => (await statuses(ids)).every((s) => s === 'paused'), {
        timeoutMs: 5_000,
      });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(await Promise.all(ids.map((id) => applied(id)))).toEqual(stopped);
      for (const id of ids) expect(await queued(id)).toBe(CAPACITY);
      // The scheduler leader told it, once; it is still firing after the restarts.
      await waitFor(() => receiver.received.some((r) => r.body.kind === 'fleet_halted'), {
        timeoutMs: 5_000,
        description: 'fleet_halted at the webhook',
      });
      const halted = receiver.received.filter((r) => r.body.kind === 'fleet_halted');
      expect(halted.map((r) => [r.body.status, r.body.level, r.body.source.app])).toEqual([
        ['firing', 'warning', 'livecore-scheduler'],
      ]);
      expect(halted[0]?.body.details).toMatchObject({ by: 'desk-lead', reason: 'drill' });
      expect(
        await fx.redis.hlen(
          fx.keys.notificationActive('fleet_halted', { nodeId: null, portfolioId: null }),
        ),
      ).toBe(1);

      // Resume: every accepted event, the ones queued during the halt included, once and in order.
      expect(await controls.unhalt(desk)).toMatchObject({ ok: true });
      const resumedAt = producer.total();
      await waitFor(() => producer.total() >= resumedAt + 150, { timeoutMs: 10_000 });
      await producer.stop();
      for (const id of ids) {
        const accepted = producer.accepted.get(id) ?? [];
        await settled(id, accepted.length);
        await expectExactlyOnce(id, accepted);
      }
      await waitFor(
        () =>
          receiver.received.some(
            (r) => r.body.kind === 'fleet_halted' && r.body.status === 'resolved',
          ),
        { timeoutMs: 5_000, description: 'fleet_halted resolved' },
      );
      expect(await statuses(ids)).toEqual(['running', 'running', 'running']);
      await annotate(
        `halt latency (write → last commit that applied events): ${latencyMs} ms; committed after the write: ${stopped.map((n, i) => n - (atHalt[i] ?? 0)).join('/')} events; refused while halted: ${[...producer.refused.values()].join('/')}; accepted in all: ${producer.total()}`,
      );
    },
  );

  it('pause of one portfolio: only it stops; resumed, it applies what it queued once, in order', async () => {
    const ids = ['p1', 'p2'];
    for (const id of ids) await fx.addToCatalog(id);
    await fx.startNode('a', { PORTFOLIO_QUEUE_CAPACITY: String(CAPACITY) });
    await fx.assign('a', ids);
    await waitFor(async () => (await statuses(ids)).every((s) => s === 'running'), {
      timeoutMs: 10_000,
    });
    const producer = feed(ids);
    await waitFor(() => producer.total() >= 100, { timeoutMs: 10_000 });
    const controls = new TradingControls(fx.redis, fx.keys);
    expect(await controls.pause('p1', desk, null)).toMatchObject({ ok: true });
    await waitFor(async () => (await statuses(ids)).join() === 'paused,running', {
      timeoutMs: 3_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const held = await applied('p1');
    const other = await applied('p2');
    await waitFor(async () => (await applied('p2')) >= other + 100, {
      timeoutMs: 10_000,
      description: 'p2 goes on',
    });
    expect(await applied('p1')).toBe(held);
    expect(await queued('p1')).toBeGreaterThan(0);

    // Redis unreadable for a while (frozen past the command timeout, several polls fail): the
    // node keeps what it last read, so p1 stays paused and applies nothing once Redis is back.
    server.freeze();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    server.thaw();
    const afterFreeze = await applied('p2');
    await waitFor(async () => (await applied('p2')) >= afterFreeze + 50, {
      timeoutMs: 10_000,
      description: 'p2 goes on after the freeze',
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await applied('p1')).toBe(held);
    expect((await fx.state('p1'))?.status).toBe('paused');

    expect(await controls.resume('p1', desk)).toMatchObject({ ok: true });
    await waitFor(async () => (await statuses(ids)).join() === 'running,running', {
      timeoutMs: 3_000,
    });
    await producer.stop();
    for (const id of ids) {
      const accepted = producer.accepted.get(id) ?? [];
      await settled(id, accepted.length);
      await expectExactlyOnce(id, accepted);
    }
  });
  it(
    'a halt Redis loses (restarted empty) holds: nothing is applied, the node says halt_missing; halt and resume again, and trading goes on exactly once',
    { timeout: 60_000 },
    async () => {
      const ids = ['p1', 'p2'];
      const receiver = new WebhookReceiver<Notification>();
      const url = await receiver.start();
      fx.onClose(() => receiver.stop());
      const notify = { NOTIFY_WEBHOOK_URL: url };
      for (const id of ids) await fx.addToCatalog(id);
      const [, node] = await Promise.all([
        fx.startNotificationWorker(notify),
        fx.startNode('a', { ...notify, PORTFOLIO_QUEUE_CAPACITY: String(CAPACITY) }),
      ]);
      await fx.assign('a', ids);
      await waitFor(async () => (await statuses(ids)).every((s) => s === 'running'), {
        timeoutMs: 10_000,
      });
      const first = feed(ids);
      await waitFor(() => first.total() >= 60, { timeoutMs: 10_000 });
      const controls = new TradingControls(fx.redis, fx.keys);
      expect(await controls.halt(desk, 'drill')).toMatchObject({ ok: true });
      await waitFor(async () => (await statuses(ids)).every((s) => s === 'paused'), {
        timeoutMs: 3_000,
      });
      await first.stop();
      const before = await Promise.all(ids.map((id) => applied(id)));

      // Redis restarts with nothing: no halt key, no queue, no book. The node must not read the
      // missing key as a lift.
      await server.restart();
      const missing = () =>
        receiver.received.filter((r) => r.body.kind === 'halt_missing').map((r) => r.body);
      await waitFor(() => missing().length > 0, {
        timeoutMs: 10_000,
        description: 'halt_missing at the webhook',
      });
      expect(missing().map((n) => [n.status, n.level, n.subject.node_id, n.source.app])).toEqual([
        ['firing', 'critical', 'a', 'execution-node'],
      ]);
      expect(
        logEntries(
          node,
          'Redis no longer shows a halt or pause this node holds; it stays held until an operator halts (or pauses) and resumes again',
        ),
      ).toHaveLength(1);
      // A new producer (the old one's numbering went with Redis) feeds the new queues.
      const second = feed(ids, 'desk-feed-2');
      await waitFor(() => second.total() >= 60, { timeoutMs: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      // The books were written back from the node's memory (its lease taken back), nothing new.
      await waitFor(async () => (await Promise.all(ids.map((id) => fx.book(id)))).every(Boolean), {
        timeoutMs: 5_000,
        description: 'the books written back',
      });
      expect(await Promise.all(ids.map((id) => applied(id, 'desk-feed-2')))).toEqual([0, 0]);
      expect(await Promise.all(ids.map((id) => applied(id)))).toEqual(before);
      expect(await statuses(ids)).toEqual(['paused', 'paused']);
      expect(logEntries(node, 'Trading halt lifted; portfolios go on in queue order')).toEqual([]);

      // The operator halts and resumes again: the node settles (halt_missing resolved), then trades.
      expect(await controls.halt(desk, 'settle')).toMatchObject({ ok: true });
      await waitFor(() => missing().some((n) => n.status === 'resolved'), {
        timeoutMs: 10_000,
        description: 'halt_missing resolved',
      });
      expect(await statuses(ids)).toEqual(['paused', 'paused']);
      expect(await controls.unhalt(desk)).toMatchObject({ ok: true });
      await waitFor(async () => (await statuses(ids)).every((s) => s === 'running'), {
        timeoutMs: 3_000,
      });
      await waitFor(() => second.total() >= 200, { timeoutMs: 10_000 });
      await second.stop();
      for (const id of ids) {
        const accepted = second.accepted.get(id) ?? [];
        await settled(id, accepted.length, 'desk-feed-2');
        await expectExactlyOnce(id, accepted, 'desk-feed-2');
      }
      expect(await Promise.all(ids.map((id) => applied(id)))).toEqual(before);
    },
  );
  it('a node whose unload is stuck (its final commit finds the lease gone) still holds on a halt within the poll bound, and the unload ends at the next beat', async () => {
    const ids = ['p1', 'p2'];
    for (const id of ids) await fx.addToCatalog(id);
    // Their books first written by a node with short beats: with beats 6 s apart, a portfolio with
    // no book would wait for Redis to be up a lease TTL and two beats (32 s) before it starts.
    const seed = await fx.startNode('seed');
    await fx.assign('seed', ids);
    await waitFor(async () => (await statuses(ids)).every((s) => s === 'running'), {
      timeoutMs: 10_000,
    });
    expect((await seed.stop()).code).toBe(0);
    // Beats 6 s apart: the final commit of an unload waits for the beat to take its lease back.
    const node = await fx.startNode('a', {
      HEARTBEAT_INTERVAL_MS: '6000',
      HEARTBEAT_TTL_MS: '20000',
      NODE_INFO_TTL_MS: '30000',
      PORTFOLIO_STATE_TTL_MS: '30000',
    });
    await fx.assign('a', ids);
    await waitFor(async () => (await statuses(ids)).every((s) => s === 'running'), {
      timeoutMs: 10_000,
    });
    // Just after a beat (its heartbeat TTL renewed), p1's lease vanishes and p1 is unassigned.
    await waitFor(async () => (await fx.redis.pttl(fx.keys.heartbeat('a'))) > 19_600, {
      timeoutMs: 10_000,
      intervalMs: 20,
      description: 'a beat',
    });
    await fx.redis.del(fx.keys.portfolioLease('p1'));
    await fx.assign('a', ['p2']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const controls = new TradingControls(fx.redis, fx.keys);
    const haltAt = Date.now();
    expect(await controls.halt(desk, 'drill')).toMatchObject({ ok: true });
    await waitFor(async () => (await fx.state('p2'))?.status === 'paused', {
      timeoutMs: 1_500,
      intervalMs: 20,
      description: 'p2 paused',
    });
    const heldAfterMs = Date.now() - haltAt;
    // The unload was still waiting when the halt held: the halt did not wait for it.
    expect(logEntries(node, 'Portfolio unloaded')).toEqual([]);
    await waitFor(() => logEntries(node, 'Portfolio unloaded').length === 1, {
      timeoutMs: 10_000,
      description: 'p1 unloaded',
    });
    expect(logEntries(node, 'Portfolio unloaded')[0]).toMatchObject({
      portfolioId: 'p1',
      released: true,
    });
    expect(await fx.redis.exists(fx.keys.portfolioLease('p1'))).toBe(0);
    expect(heldAfterMs).toBeLessThan(1_500);
  });
});
