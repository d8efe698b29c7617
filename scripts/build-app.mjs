#!/usr/bin/env node
// Bundles one app for production: its own code and every workspace package (whose entry points are
// TypeScript sources) into dist/main.js; npm dependencies stay external and are installed in the
// image with `pnpm deploy --prod`. Run from the app's folder: `node ../../scripts/build-app.mjs`.
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const app = process.cwd();
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
  process.stderr.write(
    `${manifest.name}: add to its dependencies (the bundle imports them): ${missing.join(', ')}\n`,
  );
  process.exit(1);
}
// An app whose start time counts may take its npm dependencies into the bundle as well
// ("ginkgo": { "inlineDependencies": true } in its package.json): Node then compiles one file
// instead of resolving and loading hundreds — the scheduler reaches its first log line in about
// half the time. They stay installed beside it, for whatever a dependency requires at run time.
const inline = manifest.ginkgo?.inlineDependencies === true;
await build({
  entryPoints: [path.join(app, 'src/main.ts')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: path.join(app, 'dist/main.js'),
  external: inline ? [] : external,
  sourcemap: true,
  // ESM output still meets CommonJS dependencies that call require().
  banner: {
    js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
// Static files an app serves (the gateway's operations page) travel with the bundle.
const publicDir = path.join(app, 'public');
rmSync(path.join(app, 'dist/public'), { recursive: true, force: true });
if (existsSync(publicDir)) cpSync(publicDir, path.join(app, 'dist/public'), { recursive: true });
process.stdout.write(
  `built ${manifest.name} → dist/main.js (${inline ? 'dependencies inlined' : `external: ${external.sort().join(', ')}`})\n`,
);
