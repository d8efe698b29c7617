/**
 * The fleet-growth figures of each `pnpm bench` run, kept in docs/fleet-growth.json, and drawn as
 * one SVG chart per measure with a line per run: the run being made beside the runs it is compared
 * with (the newest few), so a change that flattens a curve — or puts a cliff in it — is seen.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { lineChartSvg, type LineChart } from './charts.ts';

/** One fleet size of one run: the measures the charts draw. */
export interface GrowthPoint {
  nodes: number;
  tickP50Ms: number;
  redisCpuPct: number;
  opsPerNode: number;
  apiP99Ms: number;
}

export interface GrowthRun {
  /** What this run was (date, commit, what changed): the legend of its line. */
  label: string;
  at: string;
  points: GrowthPoint[];
}

/** How many runs a chart compares: the newest ones. */
export const RUNS_COMPARED = 3;

export function readGrowthHistory(file: string): GrowthRun[] {
  if (!existsSync(file)) return [];
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  if (!Array.isArray(parsed)) throw new Error(`${file}: expected a list of runs`);
  return parsed as GrowthRun[];
}

/** The history with `run` added (replacing a run of the same label), newest last, trimmed. */
export function addRun(history: readonly GrowthRun[], run: GrowthRun, keep = 10): GrowthRun[] {
  return [...history.filter((r) => r.label !== run.label), run].slice(-keep);
}

/** The charts of the newest `RUNS_COMPARED` runs, by file name. */
export function growthCharts(history: readonly GrowthRun[]): Map<string, string> {
  const runs = history.slice(-RUNS_COMPARED);
  const chart = (
    title: string,
    yLabel: string,
    value: (p: GrowthPoint) => number,
    target?: LineChart['target'],
  ): string =>
    lineChartSvg({
      title,
      xLabel: 'nodes (5 portfolios each)',
      yLabel,
      series: runs.map((run) => ({
        label: run.label,
        points: run.points.map((p) => ({ x: p.nodes, y: value(p) })),
      })),
      ...(target === undefined ? {} : { target }),
    });
  return new Map([
    [
      'fleet-tick.svg',
      chart('Scheduler tick p50', 'ms', (p) => p.tickP50Ms, {
        y: 200,
        label: 'target at 5,000: 200 ms',
      }),
    ],
    ['fleet-redis-cpu.svg', chart('Redis CPU', '% of a core', (p) => p.redisCpuPct)],
    [
      'fleet-ops-per-node.svg',
      chart('Redis commands/s per node', 'ops/s', (p) => p.opsPerNode, {
        y: 3,
        label: 'target: 3',
      }),
    ],
    [
      'fleet-api-latency.svg',
      chart('/api/nodes?limit=100 p99', 'ms', (p) => p.apiP99Ms, {
        y: 100,
        label: 'target at 5,000: 100 ms',
      }),
    ],
  ]);
}

/**
 * Adds `run` to the history in `dir`/fleet-growth.json and rewrites the charts there; returns the
 * Markdown that shows them.
 */
export function recordGrowth(dir: string, run: GrowthRun): string[] {
  const file = path.join(dir, 'fleet-growth.json');
  const history = addRun(readGrowthHistory(file), run);
  writeFileSync(file, `${JSON.stringify(history, null, 2)}\n`);
  const charts = growthCharts(history);
  for (const [name, svg] of charts) writeFileSync(path.join(dir, name), svg);
  return [
    '',
    `Growth charts: one line per run, the newest ${Math.min(RUNS_COMPARED, history.length)} of docs/fleet-growth.json.`,
    '',
    [...charts.keys()].map((name) => `![${name.replace(/\.svg$/, '')}](${name})`).join(' '),
  ];
}
