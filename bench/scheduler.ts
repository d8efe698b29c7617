import { spawnSync } from 'node:child_process';
import { logEntries, RedisServer, seedFleet, StackFixture, waitFor } from '@ginkgo-live/testing';
import { percentile, round, timeEach, type Bench, type Row } from './lib.ts';

/** Wall time of a bare `node -e` start and exit: what any Node process pays before its code. */
function bareNodeStartMs(): number {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    samples.push(performance.now() - started);
  }
  return percentile(samples, 50);
}

/**
 * 2. Scheduler recovery (process start → plan loaded → first tick done) with 1,000 nodes and 5,000
 * portfolios, and 8. how the tick and `/api/nodes` grow with the fleet (100, 1,000, 5,000 nodes,
 * 5 portfolios each). Seeded as a leader left it; the new scheduler must move nothing.
 */
export const schedulerScale: Bench = async ({ quick, log }) => {
  const sizes = quick ? [100, 1_000] : [100, 1_000, 5_000];
  const bare = bareNodeStartMs();
  const rows: Row[] = [];
  const scale: string[] = [
    '| nodes | portfolios | plan loaded | first tick done | Redis ready → first tick | tick p50 | tick max | /api/nodes p50 (page of 1,000) | /api/nodes p50 per node |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const nodes of sizes) {
    log(`scheduler: ${nodes} nodes`);
    const server = await RedisServer.start();
    const fx = new StackFixture(server, { bundled: true });
    try {
      await seedFleet(fx, nodes, 5, { withReports: true, ttlMs: 3_600_000 });
      const scheduler = await fx.startScheduler('s-bench', {
        SCHEDULER_TICK_MS: '1000',
        SCHEDULER_LEADER_TTL_MS: '30000',
        SCHEDULER_OUTAGE_GRACE_MS: '30000',
      });
      await waitFor(() => logEntries(scheduler, 'Tick done').length >= (quick ? 4 : 8), {
        timeoutMs: 60_000,
        description: 'ticks',
      });
      const [recovered] = logEntries(scheduler, 'Recovered: plan loaded and first tick done');
      // The scheduler's own work, apart from loading its code: Redis ready → first tick done.
      const [ready] = logEntries(scheduler, 'Redis connection ready');
      const ownWork =
        Date.parse(String(recovered?.['timestamp'])) - Date.parse(String(ready?.['timestamp']));
      const placed = logEntries(scheduler, 'Portfolio placed').length;
      // The first tick is the recovery; the steady ones follow.
      const ticks = logEntries(scheduler, 'Tick done')
        .slice(1)
        .map((e) => Number(e['ms']));
      const gateway = await fx.startGateway({
        LOG_LEVEL: 'info',
        GATEWAY_RATE_LIMIT_PER_MINUTE: '1000000',
        GATEWAY_ADDRESS_RATE_LIMIT_PER_MINUTE: '1000000',
      });
      const get = async () => (await fetch(`${gateway.url}/api/nodes?limit=1000`)).text();
      await timeEach(5, get);
      const latencies = await timeEach(quick ? 15 : 40, get);
      const loaded = Number(recovered?.['planLoadedMs']);
      const first = Number(recovered?.['recoveryMs']);
      const api50 = percentile(latencies, 50);
      scale.push(
        `| ${nodes.toLocaleString('en-US')} | ${(nodes * 5).toLocaleString('en-US')} | ${loaded} ms | ${first} ms | ${ownWork} ms | ${percentile(ticks, 50)} ms | ${Math.max(...ticks)} ms | ${round(api50)} ms | ${round((api50 / nodes) * 1_000, 1)} µs |`,
      );
      if (placed > 0)
        scale.push(`| ⚠ ${placed} portfolios moved on restart (expected none) | | | | | | | | |`);
      if (nodes === 1_000) {
        rows.push(
          {
            metric: 'process start → plan loaded (1,000 × 5)',
            value: loaded,
            unit: 'ms',
            baseline: { label: 'bare node start+exit', value: bare },
          },
          {
            metric: 'process start → first tick done (1,000 × 5)',
            value: first,
            unit: 'ms',
            baseline: { label: 'bare node start+exit', value: bare },
            target: { text: '< 500 ms (seed: < 5 s)', met: first < 500 },
          },
          {
            metric: 'Redis ready → first tick done (1,000 × 5): the recovery work itself',
            value: ownWork,
            unit: 'ms',
            target: { text: '< 500 ms', met: ownWork < 500 },
          },
          {
            metric: 'portfolios moved by the restart',
            value: placed,
            unit: '',
            target: { text: '0', met: placed === 0 },
          },
        );
      }
      if (nodes === sizes.at(-1)) {
        rows.push({
          metric: `steady tick p50 at ${nodes.toLocaleString('en-US')} nodes`,
          value: percentile(ticks, 50),
          unit: 'ms',
          target:
            nodes >= 5_000
              ? { text: '< 1 s at 5,000 nodes', met: percentile(ticks, 50) < 1_000 }
              : undefined,
        });
      }
    } finally {
      await fx.close();
      await server.cleanup();
    }
  }
  return {
    id: 'scheduler',
    title: '2 and 8. Scheduler recovery, and cost as the fleet grows',
    rows,
    notes: [
      'Recovery is measured by the scheduler itself from its process time origin (performance.timeOrigin), running its production bundle; the baseline is the median wall time of `node -e 0` started and exited on the same machine, which any Node service pays.',
      'Scale below: each size in a fresh Redis, nodes seeded as beating with their reports, the scheduler ticking every 1 s, `/api/nodes?limit=1000` from the gateway bundle.',
    ],
    extra: scale,
  };
};
