#!/usr/bin/env node
// Bundles one app for production: its own code and every workspace package (whose entry points are
// TypeScript sources) into dist/main.js; npm dependencies stay external and are installed in the
// image with `pnpm deploy --prod`. Run from the app's folder: `node ../../scripts/build-app.mjs`.
import { cpSync, existsSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

/**
 * Builds the app in `app` into `outdir` (its `dist` by default) and returns esbuild's metafile.
 * Code reached only through `import()` (BullMQ, loaded at an app's first notification; nodemailer,
 * at its first e-mail) goes to files of its own under `chunks/`, read when first imported: an app
 * that never gets there neither parses nor evaluates it at its start.
 */
export async function buildApp(app, outdir = path.join(app, 'dist')) {
  const manifest = JSON.parse(readFileSync(path.join(app, 'package.json'), 'utf8'));
  const external = Object.entries(manifest.dependencies ?? {})
    .filter(([, version]) => !String(version).startsWith('workspace:'))
    .map(([name]) => name);
  // Workspace packages bring their own npm dependencies: keep those external too.
  for (const [name, version] of Object.entries(manifest.dependencies ?? {})) {
    if (!String(version).startsWith('workspace:')) continue;
    const pkg = JSON.parse(
      readFileSync(path.join(app, 'node_modules', name, 'package.json'), 'utf8'),
    );
    for (const [dep, v] of Object.entries(pkg.dependencies ?? {})) {
      if (!String(v).startsWith('workspace:') && !external.includes(dep)) external.push(dep);
    }
  }
  // The image installs the app's own dependencies only: everything external must be one of them.
  const missing = external.filter((dep) => manifest.dependencies?.[dep] === undefined);
  if (missing.length > 0) {
    throw new Error(
      `${manifest.name}: add to its dependencies (the bundle imports them): ${missing.join(', ')}`,
    );
  }
  // An app whose start time counts may take its npm dependencies into the bundle as well
  // ("ginkgo": { "inlineDependencies": true } in its package.json): Node then compiles one file
  // instead of resolving and loading hundreds — the scheduler reaches its first log line in about
  // half the time. They stay installed beside it, for whatever a dependency requires at run time.
  const inline = manifest.ginkgo?.inlineDependencies === true;
  // Chunks of an earlier build are left in place: they are named by their content, and a process
  // started from that build (a test's, beside a rebuild) may still import one of them.
  const result = await build({
    entryPoints: { main: path.join(app, 'src/main.ts') },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outdir,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    external: inline ? [] : external,
    sourcemap: true,
    metafile: true,
    // ESM output still meets CommonJS dependencies that call require().
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  // Static files an app serves (the gateway's operations page) travel with the bundle.
  const publicDir = path.join(app, 'public');
  rmSync(path.join(outdir, 'public'), { recursive: true, force: true });
  if (existsSync(publicDir)) cpSync(publicDir, path.join(outdir, 'public'), { recursive: true });
  return {
    name: manifest.name,
    metafile: result.metafile,
    summary: inline ? 'dependencies inlined' : `external: ${external.sort().join(', ')}`,
  };
}

// Run as a script (not imported by a test).
if (
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href
) {
  try {
    const built = await buildApp(process.cwd());
    process.stdout.write(`built ${built.name} → dist/main.js (${built.summary})\n`);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
