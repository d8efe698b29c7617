import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, type ManagedProcessOptions } from './managed-process.ts';

/**
 * The apps' production bundles (`apps/<app>/dist/main.js`, `scripts/build-app.mjs`) kept current
 * for the tests that run them: a bundle older than any file it was built from is built again, so
 * a test never runs yesterday's code. `npm test` builds them just before (nothing to do then); a
 * single test file run after an edit rebuilds what the edit touched, in about a second.
 */

/** The apps that have a production bundle: a `build` script in their package.json. */
export function bundledApps(): string[] {
  const apps = path.join(REPO_ROOT, 'apps');
  return readdirSync(apps).filter((app) => {
    const manifest = path.join(apps, app, 'package.json');
    if (!existsSync(manifest)) return false;
    const { scripts } = JSON.parse(readFileSync(manifest, 'utf8')) as {
      scripts?: Record<string, string>;
    };
    return scripts?.['build'] !== undefined;
  });
}

function mtimeMs(file: string): number | undefined {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

function filesBelow(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name));
}

/**
 * Why `apps/<app>/dist/main.js` is out of date, or undefined when it is current: missing, or older
 * than one of the files its source maps (its own and its chunks') list (every module esbuild read, workspace packages and
 * inlined dependencies included), its package.json, the build script or a static file it ships.
 * A new module shows as a change of the module that imports it.
 */
export function staleBundle(app: string): string | undefined {
  const appDir = path.join(REPO_ROOT, 'apps', app);
  const bundle = path.join(appDir, 'dist', 'main.js');
  const built = mtimeMs(bundle);
  if (built === undefined) return 'not built';
  // The bundle and the chunks it imports at run time (`dist/chunks/`), each with its source map.
  const maps = [
    `${bundle}.map`,
    ...filesBelow(path.join(appDir, 'dist', 'chunks')).filter((f) => f.endsWith('.js.map')),
  ];
  const sources: string[] = [];
  for (const map of maps) {
    try {
      const { sources: listed } = JSON.parse(readFileSync(map, 'utf8')) as { sources?: string[] };
      sources.push(...(listed ?? []).map((source) => path.resolve(path.dirname(map), source)));
    } catch {
      return `no source map ${path.relative(REPO_ROOT, map)}`;
    }
  }
  const inputs = [
    ...sources,
    path.join(appDir, 'package.json'),
    path.join(REPO_ROOT, 'scripts', 'build-app.mjs'),
    ...filesBelow(path.join(appDir, 'public')),
  ];
  for (const input of inputs) {
    const changed = mtimeMs(input);
    // An inlined dependency's own source map may name sources its package does not ship.
    if (changed === undefined && input.includes(`${path.sep}node_modules${path.sep}`)) continue;
    if (changed === undefined) return `${path.relative(REPO_ROOT, input)} is gone`;
    if (changed > built) return `${path.relative(REPO_ROOT, input)} changed`;
  }
  return undefined;
}

function build(app: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'scripts', 'build-app.mjs')], {
      cwd: path.join(REPO_ROOT, 'apps', app),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`Building apps/${app} failed (exit ${String(code)}):\n${output}`));
    });
  });
}

/**
 * Builds every out-of-date bundle (in parallel); resolves with what it built and why, and what
 * failed to build. A bundle that failed is removed, never left to run as yesterday's code: the
 * tests that start that app then fail saying so (`appEntry`), the others run.
 */
export async function ensureBundles(): Promise<{ built: string[]; failed: string[] }> {
  const stale = bundledApps()
    .map((app) => ({ app, why: staleBundle(app) }))
    .filter((s): s is { app: string; why: string } => s.why !== undefined);
  const results = await Promise.allSettled(stale.map(({ app }) => build(app)));
  const built: string[] = [];
  const failed: string[] = [];
  results.forEach((result, i) => {
    const { app, why } = stale[i] ?? { app: '', why: '' };
    if (result.status === 'fulfilled') {
      built.push(`${app} (${why})`);
      return;
    }
    rmSync(path.join(REPO_ROOT, 'apps', app, 'dist', 'main.js'), { force: true });
    failed.push(result.reason instanceof Error ? result.reason.message : String(result.reason));
  });
  return { built, failed };
}

/**
 * Command-line entry points a test runs many times (ginkgo-ctl and the scheduler's ctl, dozens of
 * runs each): bundled whole, their npm dependencies included, by the integration tests' global
 * setup (`buildCliBundles`) from the sources as they are, so that each run starts one file instead
 * of having tsx compile and load a few hundred.
 */
export const CLI_ENTRIES = ['apps/ginkgo-ctl/src/main.ts', 'apps/livecore-scheduler/src/ctl.ts'];

/** Where the bundle of a `CLI_ENTRIES` file is (ignored by git, under node_modules). */
export function cliBundlePath(file: string): string {
  const name = file.replace(/\.ts$/, '').replace(/[/\\]/g, '__');
  return path.join(REPO_ROOT, 'node_modules', '.cache', 'ginkgo-test', `${name}.mjs`);
}

/**
 * Options to run a `CLI_ENTRIES` file from its bundle. A test run without the global setup (no
 * bundle) is an error that says so, never a run of an old bundle's code.
 */
export function cliEntry(
  name: string,
  file: string,
  env: Record<string, string | undefined> = {},
): ManagedProcessOptions {
  if (!CLI_ENTRIES.includes(file)) throw new Error(`${file} is not one of CLI_ENTRIES`);
  const bundle = cliBundlePath(file);
  if (!existsSync(bundle))
    throw new Error(`${bundle} is missing: the integration project's global setup builds it`);
  return { name, command: process.execPath, args: [bundle], env };
}
