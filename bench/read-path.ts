import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import path from 'node:path';
import { FAST, ManagedProcess, RedisServer, seedFleet, StackFixture } from '@ginkgo-live/testing';
import { percentile, round, sleep, timeEach, type Bench, type Row } from './lib.ts';

const PER_NODE = 5;
/** How often a node beats (the default HEARTBEAT_INTERVAL_MS): the churn rewrites each node this often. */
const BEAT_MS = 5_000;
/** Churn rounds per beat interval: each rewrites 1/ROUNDS of the fleet. */
const ROUNDS = 50;

/** Resident memory of a process, from /proc (MB). */
function rssMb(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return round(Number(kb) / 1_024, 0);
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Calls of the commands a fleet read sends (the churn sends only SET and ZADD): `GET`s only with
 * `withGet`, since the gateway's leader watch reads the leader lock with one every few seconds.
 */
async function fleetReads(redis: Redis, withGet = false): Promise<number> {
  const names = ['mget', 'pttl', 'zrange', 'hgetall', 'hkeys', 'hmget', 'zmscore', 'lrange'];
  if (withGet) names.push('get');
  let sum = 0;
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    if (names.includes(m[1] ?? '')) sum += Number(m[2]);
  return sum;
}

/**
 * 1. The read path at a large fleet: 5,000 seeded nodes × 5 portfolios (1,000 with --quick), each
 * node's heartbeat, info, registry score and states rewritten every 5 s as its beat would, beside
 * the real gateway process. A page of `/api/nodes` and of `/api/portfolios` against the floor —
 * one raw ioredis client reading the same keys in the fewest round trips, in this process, no HTTP
 * and no decoding; then the gateway's memory and Redis reads with no operations page open and with
 * one open (an event stream).
 */
export const readPath: Bench = async ({ quick, log }) => {
  const nodes = quick ? 1_000 : 5_000;
  const server = await RedisServer.start();
  const fx = new StackFixture(server, { bundled: true });
  const redis = new Redis({ host: server.host, port: server.port });
  const churnClient = new Redis({ host: server.host, port: server.port });
  const churning = { on: true };
  let churn: Promise<void> = Promise.resolve();
  try {
    await seedFleet(fx, nodes, PER_NODE, { withReports: true, ttlMs: 3_600_000 });
    const k = fx.keys;
    const nodeIds = Array.from({ length: nodes }, (_, i) => `node-${i}`);
    const infoRaws = await redis.mget(...nodeIds.slice(0, 1).map((id) => k.nodeInfo(id)));
    const stateRaw = (await redis.get(k.portfolioState('p-0-0'))) ?? '';
    const heartbeatRaw = (await redis.get(k.heartbeat('node-0'))) ?? '';
    // The fleet beating: every BEAT_MS / ROUNDS ms, the next 1/ROUNDS of the nodes write what a
    // beat writes (heartbeat, info, registry score, their states), each payload changed.
    churn = (async () => {
      let round = 0;
      while (churning.on) {
        const started = Date.now();
        const pipeline = churnClient.pipeline();
        for (let n = round % ROUNDS; n < nodes; n += ROUNDS) {
          const id = `node-${n}`;
          pipeline
            .set(k.heartbeat(id), heartbeatRaw.replaceAll('node-0', id), 'PX', 3_600_000)
            .set(
              k.nodeInfo(id),
              (infoRaws[0] ?? '')
                .replaceAll('node-0', id)
                .replaceAll('p-0-', `p-${n}-`)
                .replace('"uptime_seconds":600', `"uptime_seconds":${600 + round}`),
              'PX',
              3_600_000,
            )
            .zadd(k.nodeRegistry(), started, id);
          for (let p = 0; p < PER_NODE; p++)
            pipeline.set(
              k.portfolioState(`p-${n}-${p}`),
              stateRaw
                .replaceAll('p-0-0', `p-${n}-${p}`)
                .replaceAll('node-0', id)
                .replace('"processed_count":12345', `"processed_count":${12_345 + round}`),
              'PX',
              3_600_000,
            );
        }
        await pipeline.exec();
        round += 1;
        await sleep(Math.max(0, BEAT_MS / ROUNDS - (Date.now() - started)));
      }
    })();

    const gatewayEnv = {
      LOG_LEVEL: 'info',
      // The production default (the fixture's 500 ms is for fast failure tests).
      REDIS_COMMAND_TIMEOUT_MS: '2000',
      GATEWAY_RATE_LIMIT_PER_MINUTE: '1000000',
      GATEWAY_ADDRESS_RATE_LIMIT_PER_MINUTE: '1000000',
    };
    // READ_PATH_BASELINE=<a gateway bundle>: that gateway is measured first, on the same fleet in
    // the same run, its rows marked [before] (a before/after comparison on a noisy machine).
    const baseline = process.env['READ_PATH_BASELINE'];
    const gateways: {
      tag: string;
      start: () => Promise<{ process: ManagedProcess; url: string }>;
    }[] = [];
    if (baseline !== undefined && baseline !== '')
      gateways.push({
        tag: ' [before]',
        start: async () => {
          const started = ManagedProcess.start({
            name: 'api-gateway (baseline)',
            command: process.execPath,
            args: [path.resolve(baseline)],
            env: {
              ...FAST,
              ...server.env,
              REDIS_KEY_PREFIX: k.prefix,
              GATEWAY_PORT: '0',
              ...gatewayEnv,
            },
          });
          fx.processes.push(started);
          const line = await started.waitForLine('Gateway listening', 20_000);
          const { port } = JSON.parse(line) as { port: number };
          return { process: started, url: `http://127.0.0.1:${port}` };
        },
      });
    gateways.push({ tag: '', start: () => fx.startGateway(gatewayEnv) });
    const rows: Row[] = [];
    const failures: string[] = [];
    let requests = 0;
    const n = quick ? 40 : 200;
    const idleMs = quick ? 6_000 : 15_000;
    const openMs = quick ? 10_000 : 30_000;
    for (const { tag, start } of gateways) {
      const gateway = await start();
      const pid = gateway.process.pid;

      log(`read path${tag}: no page open`);
      const idleReads0 = await fleetReads(redis);
      await sleep(idleMs);
      const idleReads = (await fleetReads(redis)) - idleReads0;
      const idleRss = rssMb(pid);

      const http = (path: string) => async () => {
        requests += 1;
        const response = await fetch(`${gateway.url}${path}`);
        const text = await response.text();
        if (response.status !== 200) failures.push(`${path}: HTTP ${response.status} ${text}`);
        return text;
      };
      // The least a page of nodes needs: every id (registry and records) and its liveness (the
      // totals count the online ones), then the page's heartbeats, infos, records and scores.
      const nodesFloor = (offset: number) => async () => {
        const [registry, recorded] = await Promise.all([
          redis.zrange(k.nodeRegistry(), 0, -1),
          redis.hkeys(k.executionNodes()),
        ]);
        const ids = [...new Set([...registry, ...recorded])].sort();
        const page = ids.slice(offset, offset + 100);
        const pipeline = redis.pipeline();
        for (const id of ids) pipeline.pttl(k.heartbeat(id));
        for (const id of page)
          pipeline.get(k.heartbeat(id)).pttl(k.heartbeat(id)).get(k.nodeInfo(id));
        pipeline.hmget(k.executionNodes(), ...page).zmscore(k.nodeRegistry(), ...page);
        return pipeline.exec();
      };
      // The least a page of portfolios needs: every id (catalog and plan), sorted, then the page's
      // catalog entries, places in the plan and states.
      const portfoliosFloor = (offset: number, limit: number) => async () => {
        const [catalog, planned] = await Promise.all([
          redis.hkeys(k.portfolioCatalog()),
          redis.hkeys(k.portfolioAssignments()),
        ]);
        const page = [...new Set([...catalog, ...planned])].sort().slice(offset, offset + limit);
        return redis
          .pipeline()
          .hmget(k.portfolioCatalog(), ...page)
          .hmget(k.portfolioAssignments(), ...page)
          .mget(...page.map((id) => k.portfolioState(id)))
          .exec();
      };
      const lastNodes = nodes - 100;
      const portfolioOffset = Math.floor((nodes * PER_NODE) / 2);
      const pages = [
        [
          '/api/nodes (a page of 100)',
          `/api/nodes?limit=100&offset=${lastNodes}`,
          nodesFloor(lastNodes),
        ],
        [
          '/api/portfolios (a page of 100)',
          `/api/portfolios?limit=100&offset=${portfolioOffset}`,
          portfoliosFloor(portfolioOffset, 100),
        ],
        [
          '/api/portfolios (a page of 1,000)',
          `/api/portfolios?limit=1000&offset=${portfolioOffset}`,
          portfoliosFloor(portfolioOffset, 1_000),
        ],
      ] as const;

      const measure = async (suffix: string) => {
        for (const [name, path, floor] of pages) {
          log(`read path: ${name}${suffix}`);
          await timeEach(10, http(path)); // warm-up: JIT, connections
          await timeEach(10, floor);
          const viaGateway = await timeEach(n, http(path));
          const viaFloor = await timeEach(n, floor);
          const p50 = percentile(viaGateway, 50);
          const floor50 = percentile(viaFloor, 50);
          rows.push(
            {
              metric: `${name} p50${suffix}`,
              value: p50,
              unit: 'ms',
              baseline: { label: 'floor p50', value: floor50 },
              target: { text: '≤ 1.5× floor', met: p50 <= 1.5 * floor50 },
            },
            {
              metric: `${name} p99${suffix}`,
              value: percentile(viaGateway, 99),
              unit: 'ms',
              baseline: { label: 'floor p99', value: percentile(viaFloor, 99) },
              ...(name.startsWith('/api/nodes')
                ? {
                    target: {
                      text: nodes >= 5_000 ? '< 100 ms at 5,000 nodes' : '< 100 ms',
                      met: percentile(viaGateway, 99) < 100,
                    },
                  }
                : {}),
            },
          );
        }
      };
      await measure(tag);
      const pagesRss = rssMb(pid);
      const statusLost = await timeEach(n, http('/api/nodes?status=lost&limit=100'));

      log(`read path${tag}: one operations page open`);
      const controller = new AbortController();
      let frames = 0;
      let frameBytes = 0;
      const stream = (async () => {
        const response = await fetch(`${gateway.url}/api/overview/stream`, {
          signal: controller.signal,
        });
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          frameBytes += chunk.byteLength;
          // The whole overview, then deltas.
          frames +=
            new TextDecoder().decode(chunk).match(/^event: overview(?:-delta)?\n/gm)?.length ?? 0;
        }
      })().catch(() => undefined);
      // The first frame reads the whole fleet; then each reads what changed.
      while (frames === 0) await sleep(100);
      const frames0 = frames;
      const bytes0 = frameBytes;
      const cpu0 = cpuSeconds(pid);
      const reads0 = await fleetReads(redis, true);
      let openRss = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < openMs) {
        await sleep(1_000);
        openRss = Math.max(openRss, rssMb(pid));
      }
      const openSeconds = (performance.now() - t0) / 1_000;
      const openFrames = frames - frames0;
      const openCpuPct = ((cpuSeconds(pid) - cpu0) / openSeconds) * 100;
      const readsPerFrame = ((await fleetReads(redis, true)) - reads0) / Math.max(1, openFrames);
      const frameKb = (frameBytes - bytes0) / Math.max(1, openFrames) / 1_024;
      await measure(`, one page open${tag}`);
      controller.abort();
      await stream;

      rows.push(
        {
          metric: `/api/nodes?status=lost (a page of 100) p50${tag}`,
          value: percentile(statusLost, 50),
          unit: 'ms',
        },
        {
          metric: `gateway fleet reads with no page open (${idleMs / 1_000} s)${tag}`,
          value: idleReads,
          unit: 'commands',
          target: { text: '0', met: idleReads === 0 },
        },
        {
          metric: `gateway RSS, no page open${tag}`,
          value: idleRss,
          unit: 'MB',
          target: { text: '< 150 MB at 5,000 nodes', met: idleRss < 150 },
        },
        {
          metric: `gateway RSS, no page open, after the page requests${tag}`,
          value: pagesRss,
          unit: 'MB',
          target: { text: '< 150 MB at 5,000 nodes', met: pagesRss < 150 },
        },
        {
          metric: `gateway RSS, one page open${tag}`,
          value: openRss,
          unit: 'MB',
          target: { text: '< 250 MB at 5,000 nodes', met: openRss < 250 },
        },
        {
          metric: `gateway CPU, one page open${tag}`,
          value: round(openCpuPct, 0),
          unit: '% of a core',
        },
        {
          metric: `overview frames per second, one page open${tag}`,
          value: round(openFrames / openSeconds, 2),
          unit: 'frames/s',
          target: {
            text: '1 (GATEWAY_OVERVIEW_INTERVAL_MS)',
            met: openFrames / openSeconds >= 0.9,
          },
        },
        {
          metric: `Redis read commands per overview frame${tag}`,
          value: round(readsPerFrame, 0),
          unit: 'commands',
        },
        { metric: `overview frame size${tag}`, value: round(frameKb, 0), unit: 'kB' },
        {
          metric: `page answers other than 200${tag}`,
          value: failures.length,
          unit: `of ${requests}`,
          target: { text: '0', met: failures.length === 0 },
        },
      );
      await gateway.process.stop();
    }
    return {
      id: 'read-path',
      title: `1. Read path — ${nodes.toLocaleString('en-US')} nodes × ${PER_NODE} portfolios, beating`,
      rows,
      notes: [
        `The fleet is seeded, then every node's heartbeat, info, registry score and ${PER_NODE} states are rewritten every ${BEAT_MS / 1_000} s (1/${ROUNDS} of the fleet every ${BEAT_MS / ROUNDS} ms), as their beats would, each payload changed; the gateway is its production bundle, a separate process on the same machine.`,
        `${n} sequential requests per page after 10 warm-up ones: the last page of 100 nodes, and pages of 100 and 1,000 portfolios from the middle of ${(nodes * PER_NODE).toLocaleString('en-US')}.`,
        'The floor reads what the page needs with the fewest round trips but decodes nothing, validates nothing and sends no HTTP — for nodes every id and its heartbeat TTL (the online count, a PTTL per node), then the page’s heartbeats, infos, records and scores; for portfolios every id, sorted, then the page’s catalog entries, places and states. The gateway reuses the sorted portfolio ids while the plan meta and hash lengths say nothing changed, and checks the liveness it saw last with an EXISTS per 250 heartbeats rather than a PTTL each (apps/api-gateway/src/liveness-index.ts), so its page may read less than the floor.',
        `"No page open": after ${idleMs / 1_000} s with no request, and again after the page requests above; fleet reads count MGET, PTTL, ZRANGE, HGETALL, HKEYS, HMGET, ZMSCORE and LRANGE calls in INFO commandstats (the churn sends only SET and ZADD; GET is left out there because the leader watch sends one every few seconds, and counted in the reads per frame). "One page open": one /api/overview/stream read for ${openMs / 1_000} s; RSS is the largest sampled each second, CPU from /proc, reads per frame from commandstats (they include the pages' reads measured afterwards: none ran in that window).`,
        ...(failures.length > 0
          ? [`The first page answer other than 200: ${failures[0] ?? ''}`]
          : []),
      ],
    };
  } finally {
    churning.on = false;
    await churn;
    churnClient.disconnect();
    redis.disconnect();
    await fx.close();
    await server.cleanup();
  }
};
