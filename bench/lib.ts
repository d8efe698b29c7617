import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { encodePayload, type StateKeys } from '@ginkgo-live/state-keys';

/** One line of a benchmark's table: a figure, its baseline from the same run, and the target. */
export interface Row {
  metric: string;
  value: number;
  unit: string;
  /** What the figure is compared with, measured in the same run. */
  baseline?: { label: string; value: number };
  /** The target, as text (e.g. "≤ 1.5× floor"), and whether it was met. */
  target?: { text: string; met: boolean };
}

export interface BenchResult {
  id: string;
  title: string;
  rows: Row[];
  notes: string[];
  /** Raw Markdown lines after the notes (a table of how a figure grows, say). */
  extra?: string[];
}

export interface BenchContext {
  quick: boolean;
  /** Soak length in minutes. */
  soakMinutes: number;
  /** Fleet sizes for section 9 (`--fleet-sizes`); unset: the section's own. */
  fleetSizes?: number[];
  log: (message: string) => void;
}

export type Bench = (ctx: BenchContext) => Promise<BenchResult>;

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

/** Runs `call` `count` times in a row and returns each duration in ms. */
export async function timeEach(count: number, call: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await call();
    out.push(performance.now() - started);
  }
  return out;
}

/** Calls per second with `concurrency` callers for `durationMs`. */
export async function throughput(
  durationMs: number,
  concurrency: number,
  call: () => Promise<unknown>,
): Promise<number> {
  const until = performance.now() + durationMs;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        await call();
        done += 1;
      }
    }),
  );
  return done / ((performance.now() - started) / 1_000);
}

export const round = (value: number, digits = 1): number => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};

/** Seconds of CPU (user + system) the Redis server has used since it started. */
export async function redisCpuSeconds(redis: Redis): Promise<number> {
  const text = await redis.info('cpu');
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(text)?.[1]);
  const user = Number(/used_cpu_user:([\d.]+)/.exec(text)?.[1]);
  return sys + user;
}

/** Commands the Redis server has processed since it started. */
export async function commandsProcessed(redis: Redis): Promise<number> {
  return Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))?.[1]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The machine, for the report. */
export function machine(redisVersion: string): Record<string, string> {
  const cpu = cpus();
  let os = 'unknown';
  try {
    os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os;
  } catch {
    // not Linux
  }
  let kernel = '';
  try {
    kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  } catch {
    // no uname
  }
  return {
    cores: `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown'}`,
    memory: `${round(totalmem() / 1024 ** 3, 1)} GiB`,
    os: `${os}${kernel === '' ? '' : ` (kernel ${kernel})`}`,
    node: process.version,
    redis: redisVersion,
  };
}

function format(value: number, unit: string): string {
  if (!Number.isFinite(value)) return 'n/a';
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toLocaleString('en-US', { maximumFractionDigits: digits })}${unit === '' ? '' : ` ${unit}`}`;
}

export function ratioText(row: Row): string {
  if (row.baseline === undefined || row.baseline.value === 0) return '';
  return `${round(row.value / row.baseline.value, 2)}×`;
}

/** The result tables as Markdown. */
export function toMarkdown(results: BenchResult[]): string {
  const out: string[] = [];
  for (const result of results) {
    out.push(`### ${result.title}`, '');
    out.push('| metric | value | baseline (same run) | ratio | target | met |');
    out.push('| --- | ---: | --- | ---: | --- | :-: |');
    for (const row of result.rows) {
      const baseline =
        row.baseline === undefined
          ? ''
          : `${row.baseline.label}: ${format(row.baseline.value, row.unit)}`;
      out.push(
        `| ${row.metric} | ${format(row.value, row.unit)} | ${baseline} | ${ratioText(row)} | ${row.target?.text ?? ''} | ${
          row.target === undefined ? '' : row.target.met ? 'yes' : '**no**'
        } |`,
      );
    }
    if (result.notes.length > 0) out.push('', ...result.notes.map((n) => `- ${n}`));
    if (result.extra !== undefined) out.push('', ...result.extra);
    out.push('');
  }
  return out.join('\n');
}

/** The result tables for a terminal. */
export function toText(results: BenchResult[]): string {
  const lines: string[] = [];
  for (const result of results) {
    lines.push('', result.title);
    for (const row of result.rows) {
      const base =
        row.baseline === undefined
          ? ''
          : `  vs ${row.baseline.label} ${format(row.baseline.value, row.unit)} (${ratioText(row)})`;
      const target =
        row.target === undefined
          ? ''
          : `  target ${row.target.text}: ${row.target.met ? 'met' : 'MISSED'}`;
      lines.push(
        `  ${row.metric.padEnd(44)} ${format(row.value, row.unit).padStart(14)}${base}${target}`,
      );
    }
    for (const note of result.notes) lines.push(`  · ${note}`);
    for (const line of result.extra ?? []) lines.push(`    ${line}`);
  }
  return lines.join('\n');
}

/** A catalog of `portfolios` entries `fp-<n>`, written in pipelines of 5,000. */
export async function loadCatalog(
  redis: Redis,
  keys: StateKeys,
  portfolios: number,
): Promise<void> {
  // The catalog is one hash in the `{scheduler}` slot: one pipeline is one master on a cluster.
  for (let start = 0; start < portfolios; start += 5_000) {
    const pipeline = redis.pipeline();
    for (let i = start; i < Math.min(portfolios, start + 5_000); i++) {
      pipeline.hset(
        keys.portfolioCatalog(),
        `fp-${i}`,
        encodePayload('portfolioSpec', {
          _v: 1,
          portfolio_id: `fp-${i}`,
          symbols: ['BTCUSDT'],
          strategy: { name: 'ma-crossover', params: {} },
          starting_cash: 1_000,
        }),
      );
    }
    await pipeline.exec();
  }
}
