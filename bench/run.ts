/**
 * `pnpm bench`: every benchmark against a real redis-server and the real app processes (their
 * production bundles), each figure beside a baseline measured in the same run. Prints a table and
 * writes docs/benchmarks.md with the machine it ran on.
 *
 *   pnpm bench                      all, full length (the soak runs 10 minutes)
 *   pnpm bench -- --quick           a smoke run: fewer samples, a 20 s soak
 *   pnpm bench -- --only read-path,failover
 *   pnpm bench -- --soak-minutes 30
 *   pnpm bench -- --only fleet --fleet-sizes 500,10000
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { RedisServer, REPO_ROOT } from '@ginkgo-live/testing';
import { machine, toMarkdown, toText, type Bench, type BenchResult } from './lib.ts';
import { clusterShards } from './cluster.ts';
import { failover } from './failover.ts';
import { fleetScale } from './fleet.ts';
import { heartbeatCost } from './heartbeat.ts';
import { notifyLatency } from './notify.ts';
import { pushLatency } from './push.ts';
import { readPath } from './read-path.ts';
import { schedulerScale } from './scheduler.ts';
import { soak } from './soak.ts';
import { eventThroughput } from './throughput.ts';

const BENCHES: Record<string, Bench> = {
  'read-path': readPath,
  scheduler: schedulerScale,
  failover,
  throughput: eventThroughput,
  heartbeat: heartbeatCost,
  notify: notifyLatency,
  fleet: fleetScale,
  push: pushLatency,
  cluster: clusterShards,
  soak,
};

function parseArgs(argv: string[]) {
  const options = {
    quick: false,
    only: undefined as string[] | undefined,
    soakMinutes: 10,
    fleetSizes: undefined as number[] | undefined,
    out: 'docs/benchmarks.md',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') options.quick = true;
    else if (arg === '--only') options.only = (argv[++i] ?? '').split(',').filter((s) => s !== '');
    else if (arg === '--soak-minutes') options.soakMinutes = Number(argv[++i]);
    else if (arg === '--fleet-sizes') options.fleetSizes = (argv[++i] ?? '').split(',').map(Number);
    else if (arg === '--out') options.out = argv[++i] ?? options.out;
    else throw new Error(`unknown argument ${arg ?? ''}`);
  }
  for (const id of options.only ?? [])
    if (!(id in BENCHES))
      throw new Error(`unknown benchmark "${id}"; known: ${Object.keys(BENCHES).join(', ')}`);
  if (!Number.isFinite(options.soakMinutes) || options.soakMinutes <= 0)
    throw new Error('--soak-minutes takes a positive number');
  if (
    options.fleetSizes !== undefined &&
    (options.fleetSizes.length === 0 ||
      options.fleetSizes.some((size) => !Number.isInteger(size) || size < 100))
  )
    throw new Error('--fleet-sizes takes a comma-separated list of whole numbers of at least 100');
  if (options.quick) options.soakMinutes = Math.min(options.soakMinutes, 1 / 3);
  return options;
}

async function redisVersion(): Promise<string> {
  const server = await RedisServer.start();
  const client = new Redis({ host: server.host, port: server.port });
  try {
    return /redis_version:(\S+)/.exec(await client.info('server'))?.[1] ?? 'unknown';
  } finally {
    client.disconnect();
    await server.cleanup();
  }
}

async function main(): Promise<void> {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);
  const ids = options.only ?? Object.keys(BENCHES);
  const results: BenchResult[] = [];
  const failed: string[] = [];
  const started = new Date();
  const host = machine(await redisVersion());
  const file = path.resolve(REPO_ROOT, options.out);
  // Written after every section: a section that fails (or a run stopped half way) keeps the
  // figures of the sections before it, and the file says which section failed and why.
  const write = () => {
    const header = [
      '# Benchmarks',
      '',
      `Written by \`pnpm bench${options.quick ? ' -- --quick' : ''}\` on ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC${
        options.only === undefined ? '' : ` (only: ${options.only.join(', ')})`
      }. Every figure is measured against a real redis-server and the apps' production bundles running as their own processes, with its baseline from the same run: these machines are noisy, so read the ratios. What the figures mean, where a target is missed and what the profiles showed: [benchmarks-findings.md](benchmarks-findings.md).`,
      '',
      '| machine | |',
      '| --- | --- |',
      ...Object.entries(host).map(([k, v]) => `| ${k} | ${v} |`),
      '',
    ];
    writeFileSync(file, `${[...header, toMarkdown(results)].join('\n').trimEnd()}\n`);
  };
  for (const id of ids) {
    const bench = BENCHES[id];
    if (bench === undefined) continue;
    log(`${id}…`);
    const t0 = performance.now();
    try {
      results.push(
        await bench({
          quick: options.quick,
          soakMinutes: options.soakMinutes,
          fleetSizes: options.fleetSizes,
          log,
        }),
      );
      log(`${id} done in ${Math.round((performance.now() - t0) / 1_000)} s`);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      failed.push(id);
      log(`${id} FAILED after ${Math.round((performance.now() - t0) / 1_000)} s: ${reason}`);
      results.push({
        id,
        title: `${id}: failed`,
        rows: [],
        notes: [`This section failed, so it has no figures: ${reason.split('\n')[0] ?? ''}`],
      });
    }
    write();
  }
  process.stdout.write(`${toText(results)}\n`);
  log(`written ${path.relative(REPO_ROOT, file)}`);
  if (failed.length > 0) {
    process.stderr.write(`bench: failed: ${failed.join(', ')} (see above)\n`);
    process.exit(1);
  }
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
