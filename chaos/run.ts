/**
 * `pnpm chaos`: a Jepsen-style fault campaign on real processes. The stack (Redis with its AOF, two
 * schedulers, four execution nodes, the gateway, the notification worker) runs under a numbered
 * feed while a seeded nemesis injects faults one at a time; then the feed stops, the queues drain
 * and a checker reads every book: lost, applied twice, out of order, per fault kind.
 *
 *   pnpm chaos                         5 minutes, a random seed (printed)
 *   pnpm chaos -- --seed 7 --minutes 30
 *   pnpm chaos -- --kinds node-kill,redis-empty --rate 40
 *   pnpm chaos -- --minutes 30 --write-docs   also docs/reliability.md and its timeline SVG
 *   pnpm chaos -- --recheck .chaos/campaign.ndjson --out .chaos   a run's history checked again
 *
 * Writes `<out>/results.md`, `<out>/timeline.svg`, `<out>/campaign.ndjson` (every seq's outcome,
 * the faults, the samples) and `<out>/logs/` (every process's output). Exit code 0 when nothing was
 * lost outside a declared window, nothing applied twice or out of order and no process exited
 * unexpectedly; 1 otherwise; 2 on bad arguments.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runCampaign, type CampaignResult } from './campaign.ts';
import { parseArgs, readHistory, writeOutputs, type RunArgs } from './cli.ts';
import { kindTable } from './report.ts';

async function main(): Promise<void> {
  let args: RunArgs;
  try {
    args = parseArgs(process.argv.slice(2), () => Math.floor(Math.random() * 1_000_000));
  } catch (err) {
    process.stderr.write(`chaos: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const log = (message: string): void => {
    process.stderr.write(`[chaos] ${message}\n`);
  };
  let result: CampaignResult;
  if (args.recheck === undefined) {
    log(`seed ${args.options.seed}${args.seedGiven ? '' : ' (random; replay with --seed)'}`);
    result = await runCampaign({ ...args.options, log });
  } else {
    // A run's history checked again (by this checker), its outputs written anew.
    const saved = readHistory(readFileSync(args.recheck, 'utf8'));
    args = { ...saved.args, out: args.out, writeDocs: args.writeDocs, recheck: args.recheck };
    result = saved.result;
    log(`rechecked ${args.recheck} (seed ${args.options.seed}, ${args.options.minutes} min)`);
  }
  const { markdown, history } = await writeOutputs(args, result, args.out, args.writeDocs);
  const v = result.verdict;
  process.stdout.write(`\n${kindTable(v).join('\n')}\n\n`);
  if (!v.ok) {
    process.stdout.write(`FAILED:\n${v.failures.map((f) => `  - ${f}`).join('\n')}\n`);
    if (history.length > 0) process.stdout.write(`\nHistory:\n${history.join('\n')}\n`);
  } else process.stdout.write('passed\n');
  log(
    `written ${path.join(args.out, 'results.md')} (${markdown.length} bytes), timeline.svg, campaign.ndjson, logs/`,
  );
  if (args.writeDocs) log('written docs/reliability.md and docs/reliability-timeline.svg');
  process.exit(v.ok ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `chaos: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
