/**
 * The command line of `pnpm chaos` and what a run writes: results.md, timeline.svg,
 * campaign.ndjson and logs/ in the output folder, and with `--write-docs` docs/reliability.md and
 * docs/reliability-timeline.svg.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { format, resolveConfig } from 'prettier';
import { REPO_ROOT } from '@ginkgo-live/testing';
import { machine } from '../bench/lib.ts';
import { DEFAULTS, type CampaignOptions, type CampaignResult } from './campaign.ts';
import { checkCampaign, toRanges, type CampaignInput } from './checker.ts';
import {
  FAULT_KINDS,
  type BookView,
  type Detection,
  type ExitRecord,
  type FaultKind,
  type FaultRecord,
  type FeedRecord,
  type NoticeRecord,
  type Rollback,
  type Sample,
} from './model.ts';
import { failureHistory, resultMarkdown } from './report.ts';
import { drawTimeline, type TimelineMark } from './svg.ts';

export interface RunArgs {
  options: Omit<CampaignOptions, 'log'>;
  out: string;
  writeDocs: boolean;
  seedGiven: boolean;
  /** A run's history to check again instead of running a campaign. */
  recheck: string | undefined;
}

/** Parses the command line; throws with a message on anything unknown. */
export function parseArgs(argv: readonly string[], randomSeed: () => number): RunArgs {
  const options = { ...DEFAULTS };
  let out = '.chaos';
  let writeDocs = false;
  let recheck: string | undefined;
  let seed: number | undefined;
  const value = (i: number, name: string): string => {
    const v = argv[i];
    if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
    return v;
  };
  const positive = (text: string, name: string): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} takes a positive number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    switch (arg) {
      case '--':
        break; // what `pnpm chaos -- …` may pass on
      case '--seed': {
        const n = Number(value(++i, arg));
        if (!Number.isSafeInteger(n) || n < 0) throw new Error('--seed takes an integer ≥ 0');
        seed = n;
        break;
      }
      case '--minutes':
        options.minutes = positive(value(++i, arg), arg);
        break;
      case '--rate':
        options.ratePerSecond = positive(value(++i, arg), arg);
        break;
      case '--nodes':
        options.nodes = Math.round(positive(value(++i, arg), arg));
        break;
      case '--min-faults':
        options.minFaults = Math.round(positive(value(++i, arg), arg));
        break;
      case '--drain-timeout':
        options.drainTimeoutMs = positive(value(++i, arg), arg) * 1_000;
        break;
      case '--kinds': {
        const kinds = value(++i, arg)
          .split(',')
          .filter((k) => k !== '');
        for (const k of kinds)
          if (!(FAULT_KINDS as readonly string[]).includes(k))
            throw new Error(`unknown fault kind "${k}"; known: ${FAULT_KINDS.join(', ')}`);
        if (kinds.length === 0) throw new Error('--kinds needs at least one kind');
        options.kinds = kinds as FaultKind[];
        break;
      }
      case '--out':
        out = value(++i, arg);
        break;
      case '--write-docs':
        writeDocs = true;
        break;
      case '--recheck':
        recheck = value(++i, arg);
        break;
      case '--bundled':
        options.bundled = true;
        break;
      default:
        throw new Error(`unknown argument ${arg}`);
    }
  }
  options.seed = seed ?? randomSeed();
  return { options, out, writeDocs, seedGiven: seed !== undefined, recheck };
}

/** The command that reproduces a run. */
export function commandOf(args: RunArgs): string {
  const o = args.options;
  const parts = [`pnpm chaos -- --seed ${o.seed} --minutes ${o.minutes}`];
  if (o.ratePerSecond !== DEFAULTS.ratePerSecond) parts.push(`--rate ${o.ratePerSecond}`);
  if (o.nodes !== DEFAULTS.nodes) parts.push(`--nodes ${o.nodes}`);
  if (o.kinds.length !== FAULT_KINDS.length) parts.push(`--kinds ${o.kinds.join(',')}`);
  if (o.minFaults !== DEFAULTS.minFaults) parts.push(`--min-faults ${o.minFaults}`);
  if (o.bundled) parts.push('--bundled');
  return parts.join(' ');
}

const READING_NOTES = [
  'An event is charged to the fault it lived through first: the one under way when the producer was told it was accepted, else the next one. Duplicates and reorderings are charged to the fault under way (else the last one) when a sampled book first showed them; exits and stalls likewise. "outside any fault": after the last fault (the drain).',
  '**lost (durable)**: accepted, not in the book, outside any declared window — a failure. **lost (declared window)**: accepted within the fsync window (2 s, appendfsync everysec) before a Redis SIGKILL, or accepted before a kill that restarted Redis empty while still queued (above the last seq its book in Redis said it had applied right before the kill): what Redis itself never kept; counted, never silent.',
  "The applied set is rebuilt from the book (first..last minus the gaps); the book's count and checksum, recomputed over that set in increasing order, prove no duplicate (count) and no reordering (checksum). **?**: the books keep no applied record (the exactly-once bookkeeping is not there), so only the per-portfolio lower bounds from processed_count are known.",
  '**unknown**: adds that failed with Redis (outcome unknown, the seq consumed); each may be applied, at most once. **phantoms**: applied seqs the producer never sent. **refused**: adds a full queue refused (no seq consumed).',
  '**longest stall**: the longest time a portfolio applied nothing while events waited for it (its queue not empty, or new events accepted) or Redis could not be read; sampled every 250 ms.',
  "**notified / resolved**: faults whose expected notification (firing, then resolved) reached the campaign's webhook (every app delivers there) before the next fault; reported, not yet a failure. None is expected for a graceful stop, a drain or a migrate, nor for a leader kill (the standby takes the lock within the leader TTL, before the gateway would call the leader missing).",
  'Left out of this campaign: Sentinel failover (it needs a replica and three sentinels; `e2e/live/sentinel-failover.test.ts` covers it on its own).',
];

/** Writes results.md, timeline.svg, campaign.ndjson and logs/ into `out`; returns the Markdown. */
export async function writeOutputs(
  args: RunArgs,
  result: CampaignResult,
  out: string,
  docs: boolean,
): Promise<{ markdown: string; history: string[] }> {
  const { verdict, input } = result;
  const o = args.options;
  const dir = path.resolve(REPO_ROOT, out);
  mkdirSync(dir, { recursive: true });
  // The folder ignores itself, so a run leaves git status clean.
  if (out === '.chaos') writeFileSync(path.join(dir, '.gitignore'), '*\n');
  const host = machine(result.redisVersion);
  const title = `Fault campaign: seed ${o.seed}, ${o.minutes} min`;
  const marks: TimelineMark[] = [];
  for (const v of verdict.portfolios) {
    const feed = input.feeds.get(v.portfolioId);
    for (const [from, to] of toRanges(v.lostDurable))
      marks.push({
        atMs: feed?.seqs.get(from)?.atMs ?? 0,
        what: 'lost',
        label: `${v.portfolioId}: seqs ${from}–${to} lost`,
      });
    for (const [from, to] of toRanges(v.lostWindow.map((l) => l.seq)))
      marks.push({
        atMs: feed?.seqs.get(from)?.atMs ?? 0,
        what: 'window',
        label: `${v.portfolioId}: seqs ${from}–${to} lost in a declared window`,
      });
  }
  for (const e of input.exits)
    marks.push({ atMs: e.atMs, what: 'exit', label: `${e.name} exited (code ${e.code ?? '-'})` });
  const svg = drawTimeline({
    title,
    subtitle: `${o.nodes} nodes, 2 schedulers, ${input.portfolios.length} portfolios at ${o.ratePerSecond} events/s each; ${input.faults.length} faults; ${verdict.ok ? 'passed' : `FAILED (${verdict.failures.length} findings)`}; ${host['cores'] ?? ''}`,
    durationMs: input.endMs,
    portfolios: input.portfolios,
    samples: input.samples,
    faults: input.faults,
    marks,
    feedStoppedMs: result.faultPhaseEndMs,
  });
  const history = failureHistory(verdict, input);
  const settings = {
    seed: String(o.seed),
    minutes: `${o.minutes} of faults, then the drain (${(result.drainMs / 1_000).toFixed(1)} s)`,
    stack: `redis-server ${result.redisVersion} (appendonly yes, appendfsync everysec), 2 livecore-schedulers, ${o.nodes} execution nodes, api-gateway, notification worker — ${o.bundled ? 'production bundles' : 'from source (tsx)'}`,
    timings: 'heartbeat 500 ms, lease/heartbeat TTL 2 s, scheduler tick 500 ms, leader TTL 2 s',
    feed: `${input.portfolios.length} portfolios × ${o.ratePerSecond} events/s, producer \`chaos-feed\`, numbered per portfolio`,
    faults: `${o.kinds.join(', ')}; one at a time, ${o.gapMs[0] / 1_000}–${o.gapMs[1] / 1_000} s apart`,
  };
  const prettierOptions = {
    ...(await resolveConfig(path.join(REPO_ROOT, 'README.md'))),
    parser: 'markdown',
  };
  const render = async (svgPath: string): Promise<string> =>
    format(
      resultMarkdown({
        title: docs ? 'Reliability: the fault campaign' : title,
        command: commandOf(args),
        recheckedAt: args.recheck === undefined ? undefined : new Date(),
        startedAt: result.startedAt,
        machine: host,
        settings,
        verdict,
        faults: input.faults,
        svg: svgPath,
        notes: READING_NOTES,
        history,
      }),
      prettierOptions,
    );
  const markdown = await render('timeline.svg');
  writeFileSync(path.join(dir, 'results.md'), markdown);
  writeFileSync(path.join(dir, 'timeline.svg'), svg);
  writeFileSync(path.join(dir, 'campaign.ndjson'), historyLines(args, result).join('\n') + '\n');
  result.logsOf(path.join(dir, 'logs'));
  if (docs) {
    writeFileSync(path.join(REPO_ROOT, 'docs', 'reliability-timeline.svg'), svg);
    writeFileSync(
      path.join(REPO_ROOT, 'docs', 'reliability.md'),
      await render('reliability-timeline.svg'),
    );
  }
  return { markdown, history };
}

/**
 * The run's history, one JSON object a line: what the campaign was (`meta`), the faults, every
 * seq's outcome, the final books, the samples, and what the samples, the watch on the processes
 * and the webhook saw. `--recheck` runs the checker on it again.
 */
export function historyLines(args: RunArgs, result: CampaignResult): string[] {
  const { input } = result;
  const lines: string[] = [
    JSON.stringify({
      type: 'meta',
      version: 1,
      options: args.options,
      startedAt: result.startedAt.toISOString(),
      portfolios: input.portfolios,
      endMs: input.endMs,
      faultPhaseMs: result.faultPhaseMs,
      faultPhaseEndMs: result.faultPhaseEndMs,
      drainMs: result.drainMs,
      redisVersion: result.redisVersion,
      fsyncWindowMs: input.fsyncWindowMs,
      problems: input.problems ?? [],
    }),
  ];
  for (const f of input.faults) lines.push(JSON.stringify({ type: 'fault', ...f }));
  for (const [p, feed] of input.feeds) {
    const seqs = [...feed.seqs.entries()].sort((a, b) => a[0] - b[0]);
    lines.push(
      JSON.stringify({
        type: 'feed',
        portfolio: p,
        refused: feed.refused,
        anomalies: feed.anomalies,
        // [seq, outcome (a accepted, u unknown), ms since start]
        seqs: seqs.map(([s, r]) => [s, r.outcome === 'accepted' ? 'a' : 'u', r.atMs]),
      }),
    );
  }
  for (const [p, b] of input.books)
    lines.push(JSON.stringify({ type: 'book', portfolio: p, ...b }));
  for (const s of input.samples) lines.push(JSON.stringify({ type: 'sample', ...s }));
  for (const d of input.detections) lines.push(JSON.stringify({ type: 'detection', ...d }));
  for (const e of input.exits) lines.push(JSON.stringify({ type: 'exit', ...e }));
  for (const n of input.notices) lines.push(JSON.stringify({ type: 'notice', ...n }));
  for (const r of input.rollbacks ?? []) lines.push(JSON.stringify({ type: 'rollback', ...r }));
  return lines;
}

/** A run read back from its history (`campaign.ndjson`), checked again with this checker. */
export function readHistory(text: string): { args: RunArgs; result: CampaignResult } {
  type Line = Record<string, unknown> & { type?: string };
  const lines = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Line);
  const strip = (line: Line): Record<string, unknown> => {
    const { type: _type, ...rest } = line;
    return rest;
  };
  const meta = lines.find((l) => l.type === 'meta') as
    | (Line & {
        options: RunArgs['options'];
        startedAt: string;
        portfolios: string[];
        endMs: number;
        faultPhaseMs: number;
        faultPhaseEndMs: number;
        drainMs: number;
        redisVersion: string;
        fsyncWindowMs: number;
        problems: string[];
      })
    | undefined;
  if (meta === undefined) throw new Error('no meta line: not a campaign history');
  const of = (type: string): Line[] => lines.filter((l) => l.type === type);
  const feeds = new Map<string, FeedRecord>();
  for (const l of of('feed')) {
    const f = l as Line & {
      portfolio: string;
      refused: number;
      anomalies: string[];
      seqs: [number, 'a' | 'u', number][];
    };
    feeds.set(f.portfolio, {
      portfolioId: f.portfolio,
      refused: f.refused,
      anomalies: f.anomalies,
      seqs: new Map(
        f.seqs.map(([seq, o, atMs]) => [
          seq,
          { outcome: o === 'a' ? 'accepted' : 'unknown', atMs },
        ]),
      ),
    });
  }
  const books = new Map<string, BookView>();
  for (const l of of('book')) {
    const { portfolio, ...book } = strip(l) as unknown as BookView & { portfolio: string };
    books.set(portfolio, book);
  }
  const input: CampaignInput = {
    portfolios: meta.portfolios,
    feeds,
    books,
    faults: of('fault').map((l) => strip(l) as unknown as FaultRecord),
    samples: of('sample').map((l) => strip(l) as unknown as Sample),
    detections: of('detection').map((l) => strip(l) as unknown as Detection),
    rollbacks: of('rollback').map((l) => strip(l) as unknown as Rollback),
    exits: of('exit').map((l) => strip(l) as unknown as ExitRecord),
    notices: of('notice').map((l) => strip(l) as unknown as NoticeRecord),
    endMs: meta.endMs,
    fsyncWindowMs: meta.fsyncWindowMs,
    problems: meta.problems,
  };
  return {
    args: {
      options: meta.options,
      out: '.chaos',
      writeDocs: false,
      seedGiven: true,
      recheck: undefined,
    },
    result: {
      verdict: checkCampaign(input),
      input,
      startedAt: new Date(meta.startedAt),
      faultPhaseMs: meta.faultPhaseMs,
      faultPhaseEndMs: meta.faultPhaseEndMs,
      drainMs: meta.drainMs,
      redisVersion: meta.redisVersion,
      logsOf: () => undefined, // the run's logs stay where it wrote them
    },
  };
}
