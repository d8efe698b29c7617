import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { encodePayload } from '@ginkgo-live/state-keys';
import { RedisServer, StackFixture, tick, waitFor } from '@ginkgo-live/testing';
import { round, sleep, type Bench, type Row } from './lib.ts';

const JOB_OPTIONS = { attempts: 1, removeOnComplete: true, removeOnFail: { count: 1_000 } };

/** Fills `ids`' queues with `perQueue` ticks each, as the bounded add writes them (bulk, for speed). */
async function prefill(server: RedisServer, fx: StackFixture, ids: string[], perQueue: number) {
  const connection = new Redis({
    host: server.host,
    port: server.port,
    maxRetriesPerRequest: null,
  });
  for (const id of ids) {
    const queue = new Queue(fx.keys.portfolioQueue(id), {
      connection,
      prefix: fx.keys.queuePrefix(),
    });
    for (let from = 0; from < perQueue; from += 1_000) {
      const count = Math.min(1_000, perQueue - from);
      await queue.addBulk(
        Array.from({ length: count }, (_, i) => ({
          name: 'tick',
          data: JSON.parse(encodePayload('priceTick', { _v: 1, ...tick(from + i) })) as object,
          opts: JOB_OPTIONS,
        })),
      );
    }
    await queue.close();
  }
  connection.disconnect();
}

/** Events/s of bare BullMQ workers (concurrency 1, trivial processor), one per queue, here. */
async function bareRate(server: RedisServer, fx: StackFixture, ids: string[], perQueue: number) {
  await prefill(server, fx, ids, perQueue);
  const total = ids.length * perQueue;
  let done = 0;
  const started = performance.now();
  const workers = ids.map(
    (id) =>
      new Worker(fx.keys.portfolioQueue(id), (job) => Promise.resolve(job.data as unknown), {
        connection: { host: server.host, port: server.port, maxRetriesPerRequest: null },
        prefix: fx.keys.queuePrefix(),
        concurrency: 1,
      }),
  );
  for (const worker of workers) worker.on('completed', () => (done += 1));
  await waitFor(() => done >= total, { timeoutMs: 300_000, intervalMs: 5 });
  const rate = total / ((performance.now() - started) / 1_000);
  await Promise.all(workers.map((w) => w.close()));
  return rate;
}

/** Events/s of one execution node process running `ids`, from the processed counts it reports. */
async function nodeRate(
  fx: StackFixture,
  server: RedisServer,
  nodeId: string,
  ids: string[],
  perQueue: number,
) {
  for (const id of ids) {
    await fx.addToCatalog(id);
    // Held by a previous owner until the queues are full, so the node starts on a full backlog.
    await fx.redis.set(fx.keys.portfolioLease(id), 'previous-owner', 'PX', 600_000);
  }
  await prefill(server, fx, ids, perQueue);
  await fx.startNode(nodeId, {
    LOG_LEVEL: 'info',
    NODE_CAPACITY: String(ids.length),
    PORTFOLIO_QUEUE_CAPACITY: String(perQueue * 2),
    STATE_FLUSH_MS: '50',
  });
  await fx.assign(nodeId, ids);
  await waitFor(
    async () => (await Promise.all(ids.map((id) => fx.state(id)))).every((s) => s !== null),
    {
      timeoutMs: 20_000,
    },
  );
  await fx.redis.del(...ids.map((id) => fx.keys.portfolioLease(id)));
  const processed = async () =>
    (await Promise.all(ids.map((id) => fx.state(id)))).reduce(
      (sum, s) => sum + (s?.processed_count ?? 0),
      0,
    );
  const total = ids.length * perQueue;
  // The clock starts at the first processed event seen, so the lease pick-up is not counted.
  let first = 0;
  let t0 = 0;
  await waitFor(
    async () => {
      first = await processed();
      t0 = performance.now();
      return first > 0;
    },
    { timeoutMs: 30_000, intervalMs: 5 },
  );
  await waitFor(async () => (await processed()) >= total, { timeoutMs: 600_000, intervalMs: 20 });
  return (total - first) / ((performance.now() - t0) / 1_000);
}

/**
 * 4. Events through one execution node (1 and 5 portfolios) against bare BullMQ workers on the same
 * kind of queue in the same run, and the end-to-end latency (enqueue → processed, as the node
 * reports it) at half the measured maximum rate.
 */
export const eventThroughput: Bench = async ({ quick, log }) => {
  const perQueueOne = quick ? 4_000 : 20_000;
  const rows: Row[] = [];
  let maxOne = 0;
  for (const portfolios of [1, 5]) {
    const perQueue = portfolios === 1 ? perQueueOne : Math.round(perQueueOne / 2);
    log(`throughput: ${portfolios} portfolio(s), ${perQueue * portfolios} events`);
    const server = await RedisServer.start();
    const fx = new StackFixture(server, { bundled: true });
    try {
      const bare = await bareRate(
        server,
        fx,
        Array.from({ length: portfolios }, (_, i) => `bare-${i}`),
        perQueue,
      );
      const node = await nodeRate(
        fx,
        server,
        'tp',
        Array.from({ length: portfolios }, (_, i) => `tp-${i}`),
        perQueue,
      );
      if (portfolios === 1) maxOne = node;
      rows.push({
        metric: `events/s through one node, ${portfolios} portfolio${portfolios === 1 ? '' : 's'}`,
        value: round(node, 0),
        unit: 'ev/s',
        baseline: {
          label: `bare BullMQ worker${portfolios === 1 ? '' : 's'}`,
          value: round(bare, 0),
        },
        target: { text: '≥ 0.5× bare', met: node >= 0.5 * bare },
      });
    } finally {
      await fx.close();
      await server.cleanup();
    }
  }

  log(`throughput: latency at half of ${round(maxOne, 0)} ev/s`);
  const server = await RedisServer.start();
  const fx = new StackFixture(server, { bundled: true });
  try {
    await fx.addToCatalog('lat');
    await fx.startNode('lat-node', { LOG_LEVEL: 'info', STATE_FLUSH_MS: '100' });
    await fx.assign('lat-node', ['lat']);
    await waitFor(async () => (await fx.state('lat'))?.status === 'running', { timeoutMs: 20_000 });
    const queues = new PortfolioQueues({ connection: fx.redis, keys: fx.keys });
    const rate = Math.max(10, maxOne / 2);
    const seconds = quick ? 4 : 15;
    const started = performance.now();
    let sent = 0;
    let refused = 0;
    // Paced: every 10 ms, what is due by then; a few adds in flight at once.
    while (performance.now() - started < seconds * 1_000) {
      const due = Math.floor(((performance.now() - started) / 1_000) * rate);
      const batch: Promise<void>[] = [];
      while (sent < due) {
        const n = sent++;
        batch.push(
          queues.add('lat', tick(n)).then((r) => {
            if (!r.ok) refused += 1;
          }),
        );
      }
      await Promise.all(batch);
      await sleep(10);
    }
    const offered = sent / ((performance.now() - started) / 1_000);
    await sleep(500);
    const state = await fx.state('lat');
    await queues.close();
    rows.push(
      {
        metric: 'offered rate (half the 1-portfolio maximum)',
        value: round(offered, 0),
        unit: 'ev/s',
      },
      {
        metric: 'latency p50 at that rate (enqueue → processed)',
        value: state?.latency_ms?.p50 ?? Number.NaN,
        unit: 'ms',
        target: {
          text: '< 100 ms (the original’s goal)',
          met: (state?.latency_ms?.p50 ?? Infinity) < 100,
        },
      },
      {
        metric: 'latency p99 at that rate',
        value: state?.latency_ms?.p99 ?? Number.NaN,
        unit: 'ms',
        target: { text: '< 100 ms', met: (state?.latency_ms?.p99 ?? Infinity) < 100 },
      },
      { metric: 'events refused at that rate', value: refused, unit: '' },
    );
  } finally {
    await fx.close();
    await server.cleanup();
  }
  return {
    id: 'throughput',
    title: '4. Events through one execution node',
    rows,
    notes: [
      'Both sides consume a backlog prefilled in the same shape (BullMQ jobs of the price-tick payload), one consumer per portfolio, events of a portfolio in order. The bare workers (at-least-once: completion and any write of the result are separate commands) run a trivial processor in the benchmark process; the node runs its production bundle: decode and validate each event, the strategy, the book, counters and latency window, and commits exactly once — the book written and the jobs removed in one fenced script per batch of up to EVENT_BATCH_MAX (100) events.',
      'The latency is the node’s own window (enqueue time of the job → processed), read from the portfolio state after a paced feed.',
    ],
  };
};
