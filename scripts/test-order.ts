import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The order in which `npm test` starts its test files: the longest first, so that its two workers
 * run out of files at about the same time. Vitest's own order on a fresh clone is the largest file
 * first, and a small file can be a long one (e2e/live/chaos.test.ts runs its minute of faults in
 * 2 kB): started late, it ran alone on one worker for a minute and a half while the other had
 * nothing left.
 *
 * How long a file takes is what this machine's last run measured (vitest's cache, which vitest
 * itself orders by), else what `.ci/test-durations.json` says (a fresh clone: CI), else unknown;
 * an unknown file goes first, as vitest puts it. Refresh the table after a full run with
 * `node --import tsx scripts/test-order.ts`. A stale table only costs time: every file still
 * runs, whatever the order.
 */
const TABLE = path.join('.ci', 'test-durations.json');
/** Where vitest keeps its results cache (`cacheDir` unset: `node_modules/.vite`). */
const VITEST_CACHE = path.join('node_modules', '.vite', 'vitest');

/** `project:path/from/the/root.test.ts` → milliseconds, as vitest's cache keys them. */
type Durations = Record<string, number>;

function readTable(root: string): Durations {
  try {
    return JSON.parse(readFileSync(path.join(root, TABLE), 'utf8')) as Durations;
  } catch {
    return {};
  }
}

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root;
    const table = readTable(root);
    const expected = (spec: TestSpecification): number => {
      const key = `${spec.project.name}:${path.relative(root, spec.moduleId)}`;
      return (
        this.ctx.cache.getFileTestResults(key)?.duration ?? table[key] ?? Number.POSITIVE_INFINITY
      );
    };
    // Among equal (unknown) durations, vitest's own order: larger files first.
    const base = await super.sort(files);
    const ms = new Map(base.map((spec) => [spec, expected(spec)]));
    return base
      .map((spec, rank) => ({ spec, rank, ms: ms.get(spec) ?? Number.POSITIVE_INFINITY }))
      .sort((a, b) => (a.ms === b.ms ? a.rank - b.rank : b.ms - a.ms))
      .map(({ spec }) => spec);
  }
}

/** Writes the table from vitest's cache of the last run here (whole seconds suffice). */
function refreshTable(root: string): void {
  const durations: Durations = {};
  const cacheDir = path.join(root, VITEST_CACHE);
  for (const dir of readdirSync(cacheDir)) {
    let cached: { results?: [string, { duration?: number }][] };
    try {
      cached = JSON.parse(readFileSync(path.join(cacheDir, dir, 'results.json'), 'utf8')) as {
        results?: [string, { duration?: number }][];
      };
    } catch {
      continue;
    }
    for (const [key, { duration }] of cached.results ?? []) {
      if (duration !== undefined) durations[key] = Math.round(duration / 1000) * 1000;
    }
  }
  const sorted = Object.fromEntries(Object.entries(durations).sort(([a], [b]) => (a < b ? -1 : 1)));
  writeFileSync(path.join(root, TABLE), `${JSON.stringify(sorted, null, 2)}\n`);
  process.stdout.write(`${TABLE}: ${String(Object.keys(sorted).length)} files\n`);
}

if (
  process.argv[1] !== undefined &&
  path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)
) {
  refreshTable(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'));
}
