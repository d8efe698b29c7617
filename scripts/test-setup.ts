import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { CLI_ENTRIES, cliBundlePath, ensureBundles, REPO_ROOT } from '@ginkgo-live/testing';

/**
 * Global setup of the integration project. The end-to-end tests start hundreds of processes, and
 * tsx takes a second or two of CPU to compile and load an app from source where node starts a
 * bundle in a fraction of that: so the tests run the apps' production bundles, each first brought
 * up to date with its sources (`ensureBundles`), and the command-line tools they run dozens of
 * times from bundles made here, now, from the sources as they are (`cliEntry`). `npm start` and
 * `pnpm dev` still run from source, and e2e/stack.test.ts and e2e/dev.test.ts run them so.
 *
 * What fails to build is said here and has no bundle: the tests that start it fail naming the
 * missing file, the others run.
 */
export default async function setup(): Promise<void> {
  const [apps, ...clis] = await Promise.all([ensureBundles(), ...CLI_ENTRIES.map(bundleCli)]);
  const say = (line: string) => process.stderr.write(`[test setup] ${line}\n`);
  if (apps.built.length > 0) say(`built ${apps.built.join(', ')}`);
  for (const failure of [...apps.failed, ...clis.filter((c) => c !== undefined)]) say(failure);
}

/** Bundles one of `CLI_ENTRIES`; resolves with why it could not, if it could not. */
async function bundleCli(file: string): Promise<string | undefined> {
  const out = cliBundlePath(file);
  try {
    const result = await build({
      entryPoints: [path.join(REPO_ROOT, file)],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      write: false,
      // CommonJS dependencies in an ESM bundle still call require().
      banner: {
        js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
      logLevel: 'silent',
    });
    mkdirSync(path.dirname(out), { recursive: true });
    // Written aside and renamed: a test of another run starting this tool never reads half a file.
    const partial = `${out}.${String(process.pid)}`;
    writeFileSync(partial, result.outputFiles[0]?.contents ?? '');
    renameSync(partial, out);
    return undefined;
  } catch (err) {
    // Never yesterday's bundle in its place.
    rmSync(out, { force: true });
    return `Bundling ${file} failed: ${err instanceof Error ? err.message : String(err)}`;
  }
}
