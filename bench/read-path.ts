import { Redis } from 'ioredis';
import { RedisServer, seedFleet, StackFixture } from '@ginkgo-live/testing';
import { percentile, round, throughput, timeEach, type Bench, type Row } from './lib.ts';

const NODES = 1_000;
const PER_NODE = 5;

/**
 * 1. The read path: `GET /api/nodes` and `GET /api/portfolios` (1,000 nodes × 5 portfolios) from the
 * real gateway process, against (a) the floor — one raw ioredis pipeline reading the same keys, in
 * this process, no HTTP and no decoding — and (b) the original system's way: `KEYS` then one
 * round trip per key.
 */
export const readPath: Bench = async ({ quick, log }) => {
  const server = await RedisServer.start();
  const fx = new StackFixture(server, { bundled: true });
  const redis = new Redis({ host: server.host, port: server.port });
  try {
    await seedFleet(fx, NODES, PER_NODE, { withReports: true, ttlMs: 3_600_000 });
    const gateway = await fx.startGateway({
      LOG_LEVEL: 'info',
      GATEWAY_RATE_LIMIT_PER_MINUTE: '1000000',
      GATEWAY_ADDRESS_RATE_LIMIT_PER_MINUTE: '1000000',
    });
    const k = fx.keys;
    const n = quick ? 40 : 300;
    const naiveN = quick ? 5 : 30;

    const http = (path: string) => async () => {
      const response = await fetch(`${gateway.url}${path}`);
      if (response.status !== 200) throw new Error(`${path}: HTTP ${response.status}`);
      return response.text();
    };
    const nodesFloor = async () => {
      const [ids] = await Promise.all([
        redis.zrange(k.nodeRegistry(), 0, -1),
        redis.hgetall(k.executionNodes()),
      ]);
      const pipeline = redis.pipeline();
      for (const id of ids) pipeline.get(k.heartbeat(id)).pttl(k.heartbeat(id)).get(k.nodeInfo(id));
      return pipeline.exec();
    };
    const nodesNaive = async () => {
      // KEYS on purpose: this is the original system's way, measured as the baseline to beat.
      const found = await redis.keys(`${k.prefix}heartbeat:node:*`);
      for (const key of found) {
        await redis.get(key);
        // heartbeat:node:{<id>}: the id is the key's hash tag.
        await redis.get(k.nodeInfo(key.slice(`${k.prefix}heartbeat:node:{`.length, -1)));
      }
    };
    // The least a page of 1,000 needs: every id and where the plan puts it, then the page's states.
    const portfoliosFloor = async () => {
      const [catalog] = await Promise.all([
        redis.hkeys(k.portfolioCatalog()),
        redis.hgetall(k.portfolioAssignments()),
      ]);
      const page = catalog.sort().slice(0, 1_000);
      return redis.mget(...page.map((id) => k.portfolioState(id)));
    };
    const portfoliosNaive = async () => {
      // KEYS on purpose, as above: the original's way, never the product's.
      const found = await redis.keys(`${k.prefix}portfolio:*:state`);
      for (const key of found) await redis.get(key);
    };

    // Every node info and portfolio state rewritten (a counter bumped) before each request: the
    // gateway then has nothing it decoded before — the worst case, as right after every node beat.
    const nodeIds = Array.from({ length: NODES }, (_, i) => `node-${i}`);
    const portfolioIds = nodeIds.flatMap((_, n) =>
      Array.from({ length: PER_NODE }, (_, i) => `p-${n}-${i}`),
    );
    const infoRaws = await redis.mget(...nodeIds.map((id) => k.nodeInfo(id)));
    const stateRaws = await redis.mget(...portfolioIds.map((id) => k.portfolioState(id)));
    let generation = 0;
    const churn = async (which: 'nodes' | 'portfolios') => {
      generation += 1;
      const pipeline = redis.pipeline();
      if (which === 'nodes')
        nodeIds.forEach((id, i) =>
          pipeline.set(
            k.nodeInfo(id),
            (infoRaws[i] ?? '').replace(
              '"uptime_seconds":600',
              `"uptime_seconds":${600 + generation}`,
            ),
            'PX',
            3_600_000,
          ),
        );
      else
        portfolioIds.forEach((id, i) =>
          pipeline.set(
            k.portfolioState(id),
            (stateRaws[i] ?? '').replace(
              '"processed_count":12345',
              `"processed_count":${12_345 + generation}`,
            ),
            'PX',
            3_600_000,
          ),
        );
      await pipeline.exec();
    };
    const cold = async (which: 'nodes' | 'portfolios', path: string, count: number) => {
      const out: number[] = [];
      for (let i = 0; i < count; i++) {
        await churn(which);
        out.push(...(await timeEach(1, http(path))));
      }
      return out;
    };

    const rows: Row[] = [];
    for (const [name, path, floor, naive] of [
      ['/api/nodes', '/api/nodes?limit=1000', nodesFloor, nodesNaive],
      ['/api/portfolios', '/api/portfolios?limit=1000', portfoliosFloor, portfoliosNaive],
    ] as const) {
      log(`read path: ${name}`);
      await timeEach(10, http(path)); // warm-up: JIT, connections
      await timeEach(10, floor);
      const viaGateway = await timeEach(n, http(path));
      const viaFloor = await timeEach(n, floor);
      const viaNaive = await timeEach(naiveN, naive);
      const viaGatewayCold = await cold(
        name === '/api/nodes' ? 'nodes' : 'portfolios',
        path,
        quick ? 10 : 60,
      );
      const rps = await throughput(quick ? 1_500 : 5_000, 4, http(path));
      const p50 = percentile(viaGateway, 50);
      const floor50 = percentile(viaFloor, 50);
      rows.push(
        {
          metric: `${name} p50`,
          value: p50,
          unit: 'ms',
          baseline: { label: 'floor p50', value: floor50 },
          target: { text: '≤ 1.5× floor', met: p50 <= 1.5 * floor50 },
        },
        {
          metric: `${name} p99`,
          value: percentile(viaGateway, 99),
          unit: 'ms',
          baseline: { label: 'floor p99', value: percentile(viaFloor, 99) },
        },
        {
          metric: `${name} p50, every payload changed since the last request`,
          value: percentile(viaGatewayCold, 50),
          unit: 'ms',
          baseline: { label: 'floor p50', value: floor50 },
        },
        {
          metric: `${name} p50, the original's way (KEYS + a round trip per key)`,
          value: percentile(viaNaive, 50),
          unit: 'ms',
          baseline: { label: 'gateway p50', value: p50 },
        },
        {
          metric: `${name} requests/s (4 concurrent clients)`,
          value: round(rps, 0),
          unit: 'req/s',
        },
      );
    }
    return {
      id: 'read-path',
      title: `1. Read path — ${NODES.toLocaleString('en-US')} nodes × ${PER_NODE} portfolios`,
      rows,
      notes: [
        `${n} sequential requests per endpoint (${naiveN} for the KEYS way) after 10 warm-up ones; the gateway is its production bundle, a separate process on the same machine; each answer is ${NODES} nodes or 1,000 of ${NODES * PER_NODE} portfolios (one page).`,
        'The floor reads what the answer needs with the fewest round trips — for /api/nodes every node’s heartbeat and info; for a page of portfolios every id and its place in the plan, then the page’s states — but decodes nothing, validates nothing and sends no HTTP: what remains above it is JSON parsing, schema validation of every payload, shaping and serialising the answer.',
        'The gateway decodes each distinct payload once (PayloadDecoder): in the steady rows the fleet is unchanged between requests, as between two beats; the "every payload changed" row rewrites every node info (or portfolio state) before each request, so each is decoded and validated afresh — the worst case, right after the whole fleet beat.',
      ],
    };
  } finally {
    redis.disconnect();
    await fx.close();
    await server.cleanup();
  }
};
