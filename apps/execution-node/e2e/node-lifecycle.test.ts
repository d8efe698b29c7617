import { Queue } from 'bullmq';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { decodePayload } from '@ginkgo-live/state-keys';
import {
  FRESH_START_MS,
  logEntries,
  parsePrometheus,
  metricsPortOf,
  StackFixture,
  tick,
  waitFor,
} from '@ginkgo-live/testing';

let fx: StackFixture;

beforeEach(async () => {
  fx = await StackFixture.start();
});
afterEach(() => fx.close());

function producer(capacity = 1_000): PortfolioQueues {
  return fx.track(new PortfolioQueues({ connection: fx.redis, keys: fx.keys, capacity }));
}

describe('execution node process', () => {
  it('writes heartbeat and node info at start and refreshes them, within their TTLs', async () => {
    await fx.startNode('n1');
    const heartbeatKey = fx.keys.heartbeat('n1');
    const pttl = await fx.redis.pttl(heartbeatKey);
    expect(pttl).toBeGreaterThan(1_000);
    expect(pttl).toBeLessThanOrEqual(2_000);
    const first = decodePayload(
      'heartbeat',
      heartbeatKey,
      (await fx.redis.get(heartbeatKey)) ?? '',
    );
    expect(first.ok).toBe(true);
    const info = await fx.info('n1');
    expect(info).toMatchObject({
      node_id: 'n1',
      status: 'running',
      capacity: 5,
      pid: expect.any(Number) as unknown,
    });
    const infoTtl = await fx.redis.pttl(fx.keys.nodeInfo('n1'));
    expect(infoTtl).toBeGreaterThan(4_000);
    expect(infoTtl).toBeLessThanOrEqual(6_000);
    expect(await fx.redis.zscore(fx.keys.nodeRegistry(), 'n1')).not.toBeNull();
    await waitFor(
      async () => {
        const raw = await fx.redis.get(heartbeatKey);
        const beat = raw === null ? undefined : decodePayload('heartbeat', heartbeatKey, raw);
        return beat?.ok === true && first.ok && beat.value.seq >= first.value.seq + 2;
      },
      { timeoutMs: 3_000, description: 'two more beats' },
    );
  });

  it('starts a new portfolio after the fresh-start wait, loads one with a book within 1 s, consumes its queue, and releases it when unassigned', async () => {
    await fx.addToCatalog('p1');
    const node = await fx.startNode('n1');
    // Redis has no book of p1: the node waits FRESH_START_MS from its first try before it starts
    // it fresh (a node that holds the only copy in memory may be about to write it back).
    const firstAssignedAt = Date.now();
    await fx.assign('n1', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running', {
      timeoutMs: FRESH_START_MS + 3_000,
    });
    expect(Date.now() - firstAssignedAt).toBeGreaterThanOrEqual(FRESH_START_MS);
    expect(logEntries(node, 'Portfolio loaded')).toHaveLength(1);
    await fx.assign('n1', []);
    await waitFor(async () => (await fx.state('p1'))?.status === 'stopped', { timeoutMs: 1_000 });

    // Now it has a book: assigned again, it runs within 1 s.
    const assignedAt = Date.now();
    await fx.assign('n1', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running', { timeoutMs: 1_000 });
    expect(Date.now() - assignedAt).toBeLessThan(1_000);
    expect(await fx.redis.get(fx.keys.portfolioLease('p1'))).toMatch(/^n1\/[a-z0-9]+\/\d+$/);

    const queues = producer();
    for (let i = 0; i < 30; i++) expect((await queues.add('p1', tick(i))).ok).toBe(true);
    await waitFor(async () => (await fx.state('p1'))?.processed_count === 30, { timeoutMs: 3_000 });
    const state = await fx.state('p1');
    expect(state).toMatchObject({ node_id: 'n1', failed_count: 0, queue_capacity: 1_000 });
    expect(state?.latency_ms?.p99).toBeGreaterThanOrEqual(0);
    expect(state?.last_event_time).toBe(tick(29).event_time);
    await waitFor(async () => (await fx.info('n1'))?.portfolio_ids.join() === 'p1', {
      timeoutMs: 2_000,
      description: 'the next beat to list p1 in the node info',
    });

    const unassignedAt = Date.now();
    await fx.assign('n1', []);
    await waitFor(async () => (await fx.state('p1'))?.status === 'stopped', { timeoutMs: 1_000 });
    expect(Date.now() - unassignedAt).toBeLessThan(1_000);
    expect(await fx.redis.get(fx.keys.portfolioLease('p1'))).toBeNull();
    const book = decodePayload(
      'portfolioBook',
      'book',
      (await fx.redis.get(fx.keys.portfolioBook('p1'))) ?? '',
    );
    expect(book.ok && book.value.processed_count).toBe(30);
  });

  it('never runs more portfolios than its capacity', async () => {
    for (const id of ['a', 'b', 'c']) await fx.addToCatalog(id);
    const node = await fx.startNode('n1', { NODE_CAPACITY: '2' });
    await fx.assign('n1', ['a', 'b', 'c']);
    await waitFor(async () => (await fx.info('n1'))?.portfolio_count === 2, {
      timeoutMs: FRESH_START_MS + 2_000,
    });
    expect(await fx.state('c')).toBeNull();
    expect(logEntries(node, 'Assignment exceeds capacity; running the first ones')).toHaveLength(1);
    // Connections: one shared request connection, the push subscriber, the blocking connections'
    // template, and one blocking connection for the waits of every running portfolio's reader.
    const names = String(await fx.redis.client('LIST'))
      .split('\n')
      .map((line) => /name=(\S*)/.exec(line)?.[1] ?? '')
      .filter((name) => name.includes('n1'))
      .sort();
    expect(names).toEqual(
      [
        'ginkgo:execution-node:n1:main',
        'ginkgo:execution-node:n1:push',
        'ginkgo:execution-node:n1:workers',
        'ginkgo:execution-node:n1:queues',
      ].sort(),
    );
  });

  it('fails a malformed event with its reason, counts it, and keeps running', async () => {
    await fx.addToCatalog('p1');
    await fx.startNode('n1');
    await fx.assign('n1', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');
    const raw = new Queue(fx.keys.portfolioQueue('p1'), {
      connection: fx.redis,
      prefix: fx.keys.queuePrefix(),
    });
    fx.track(raw);
    await raw.add('tick', { _v: 1, symbol: 'BTCUSDT', price: 'a lot' });
    await producer().add('p1', tick(1));
    await waitFor(
      async () => {
        const s = await fx.state('p1');
        return s?.failed_count === 1 && s.processed_count === 1;
      },
      { timeoutMs: 3_000 },
    );
    const state = await fx.state('p1');
    expect(state?.status).toBe('running');
    expect(state?.last_error).toMatch(/^Malformed event: price: /);
    const [failed] = await raw.getFailed();
    expect(failed?.failedReason).toMatch(/^Malformed event: /);
  });

  it('refuses events at a full queue and shows the refusals in the portfolio state', async () => {
    await fx.addToCatalog('p1');
    await fx.startNode('n1', { PORTFOLIO_QUEUE_CAPACITY: '10' });
    const queues = producer(10);
    const results = [];
    for (let i = 0; i < 15; i++) results.push(await queues.add('p1', tick(i)));
    const refused = results.filter((r) => !r.ok).length;
    expect(refused).toBe(5);
    expect(results.at(-1)).toEqual({ ok: false, reason: 'full', depth: 10, capacity: 10 });
    await fx.assign('n1', ['p1']);
    await waitFor(
      async () => {
        const s = await fx.state('p1');
        return s?.refused_count === refused && s.processed_count === 15 - refused;
      },
      { timeoutMs: FRESH_START_MS + 3_000 },
    );
  });

  it('refuses to start with the id of a live node, with a clear message', async () => {
    await fx.startNode('n1');
    const second = await fx.startNode('n1', {}, false);
    const exit = await second.waitForExit(20_000);
    expect(exit.code).toBe(1);
    expect(second.output).toContain('node id n1 is held by a live node');
    expect(await fx.redis.exists(fx.keys.heartbeat('n1'))).toBe(1); // the first one is untouched
  });

  it('exits 2 naming a bad variable, before connecting', async () => {
    const node = await fx.startNode('n1', { REDIS_PORT: 'abc', NODE_CAPACITY: 'many' }, false);
    const exit = await node.waitForExit(20_000);
    expect(exit.code).toBe(2);
    expect(node.output).toContain('NODE_CAPACITY: must be an integer, got "many"');
    expect(node.output).toContain('REDIS_PORT: must be an integer, got "abc"');
    expect(await fx.redis.exists(fx.keys.heartbeat('n1'))).toBe(0);
  });

  it('drains on SIGTERM: final state stopped, lease released, heartbeat and info deleted, exit 0', async () => {
    await fx.addToCatalog('p1');
    const node = await fx.startNode('n1');
    await fx.assign('n1', ['p1']);
    await waitFor(async () => (await fx.state('p1'))?.status === 'running');
    const exit = await node.stop('SIGTERM', 10_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(await fx.redis.exists(fx.keys.heartbeat('n1'), fx.keys.nodeInfo('n1'))).toBe(0);
    expect(await fx.redis.zscore(fx.keys.nodeRegistry(), 'n1')).toBeNull();
    expect(await fx.redis.get(fx.keys.portfolioLease('p1'))).toBeNull();
    expect((await fx.state('p1'))?.status).toBe('stopped');
    expect(logEntries(node, 'Execution node stopped')[0]).toMatchObject({ clean: true });
  });

  it('serves its metrics as Prometheus text, with the same numbers as its state', async () => {
    await fx.addToCatalog('p1');
    const node = await fx.startNode('n1');
    const port = await metricsPortOf(node);
    await fx.assign('n1', ['p1']);
    const queues = producer();
    for (let i = 0; i < 12; i++) await queues.add('p1', tick(i));
    await waitFor(async () => (await fx.state('p1'))?.processed_count === 12, {
      timeoutMs: FRESH_START_MS + 3_000,
    });
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const samples = parsePrometheus(text);
    expect(samples.get('ginkgo_portfolio_events_processed_total{portfolio_id="p1"}')).toBe(12);
    expect(samples.get('ginkgo_portfolio_queue_capacity{portfolio_id="p1"}')).toBe(1_000);
    expect(samples.get('ginkgo_node_portfolios')).toBe(1);
    expect(samples.get('ginkgo_node_redis_healthy')).toBe(1);
    expect(samples.get('ginkgo_node_heartbeat_failures_total')).toBe(0);
    expect(samples.has('ginkgo_node_process_resident_memory_bytes')).toBe(true);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'running', node_id: 'n1', portfolios: 1 });
  });
});
