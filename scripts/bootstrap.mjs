#!/usr/bin/env node
// Fresh-machine entry of `npm start` and `npm test`. Needs only Node 20+ and npm; installs the
// pinned pnpm (into .tools/, never globally), the workspace packages and, when absent, redis-server
// (apt-get, as root). Running it twice is harmless: each step checks before it acts.
//
//   node scripts/bootstrap.mjs start [stack options]   the local stack on an embedded Redis
//   node scripts/bootstrap.mjs dev                     turbo dev (watch mode) on the same Redis
//   node scripts/bootstrap.mjs bench [--quick]         build the bundles, run the benchmarks
//   node scripts/bootstrap.mjs chaos [--seed N …]      the fault campaign (apps from source;
//                                                      --bundled builds and runs the bundles)
//   node scripts/bootstrap.mjs test  [vitest filters]  format check, lint, typecheck, every test
import { spawnSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const EXIT_SETUP = 2;
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1', TURBO_NO_UPDATE_NOTIFIER: '1' };

function say(message) {
  process.stderr.write(`[bootstrap] ${message}\n`);
}

function fail(message) {
  say(message);
  process.exit(EXIT_SETUP);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: ROOT, stdio: 'inherit', env, ...options });
  if (result.error) fail(`Cannot run ${command}: ${result.error.message}`);
  return result.status ?? 1;
}

function output(command, args) {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', env });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

function checkNode() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 20 || (major === 20 && minor < 19)) {
    fail(`Node ${process.versions.node} is too old: ginkgo-live needs Node 20.19 or newer.`);
  }
}

/** The pinned pnpm, installed locally under .tools/ when the one on PATH is another version. */
function ensurePnpm() {
  const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const wanted = String(manifest.packageManager).replace(/^pnpm@/, '');
  if (output('pnpm', ['--version']) === wanted) return 'pnpm';
  const binDir = path.join(ROOT, '.tools', 'pnpm', 'node_modules', '.bin');
  const local = path.join(binDir, 'pnpm');
  // turbo and pnpm's own scripts look pnpm up on PATH: put the local one first.
  env.PATH = `${binDir}${path.delimiter}${env.PATH ?? ''}`;
  if (existsSync(local) && output(local, ['--version']) === wanted) return local;
  say(`Installing pnpm ${wanted} into .tools/pnpm`);
  const status = run('npm', [
    'install',
    '--prefix',
    path.join(ROOT, '.tools', 'pnpm'),
    '--no-save',
    '--no-package-lock',
    '--no-audit',
    '--no-fund',
    `pnpm@${wanted}`,
  ]);
  if (status !== 0 || output(local, ['--version']) !== wanted) {
    fail(`Could not install pnpm ${wanted}. Try: npm install --prefix .tools/pnpm pnpm@${wanted}`);
  }
  return local;
}

function ensurePackages(pnpm) {
  if (run(pnpm, ['install', '--frozen-lockfile', '--reporter=append-only']) !== 0) {
    fail('pnpm install failed (see above).');
  }
}

let aptUpdated = false;

/**
 * A Debian package, when `isPresent()` says it is missing: apt-get as root, else exit 2 with one
 * line saying what to run (or, with `instead`, what else to do).
 */
function ensureDebianPackage(pkg, what, isPresent, instead) {
  if (isPresent()) return;
  const install = `apt-get update && apt-get install -y ${pkg}`;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || output('apt-get', ['--version']) === undefined) {
    fail(
      `${what} is not installed and this shell cannot install it (not root with apt-get); ` +
        `run sudo sh -c '${install}'${instead === undefined ? '' : `, or ${instead}`}, then this command again`,
    );
  }
  say(`Installing ${what} with apt-get`);
  const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated && run('apt-get', ['update', '-qq'], { env: aptEnv }) !== 0) {
    fail(`apt-get update failed. Try by hand: ${install}`);
  }
  aptUpdated = true;
  if (
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], { env: aptEnv }) !==
      0 ||
    !isPresent()
  ) {
    fail(`Installing ${what} failed. Try by hand: ${install}`);
  }
}

/**
 * redis-server from Debian's packages when it is not on PATH. `npm start` and `pnpm dev` need it
 * only for their embedded Redis: not when REDIS_URL or REDIS_HOST names one.
 */
function ensureRedis(task) {
  const local = task === 'start' || task === 'dev';
  if (local && ((env.REDIS_URL ?? '') !== '' || (env.REDIS_HOST ?? '') !== '')) return;
  ensureDebianPackage(
    'redis-server',
    'redis-server',
    () => output('redis-server', ['--version']) !== undefined,
    local ? 'set REDIS_URL to a running Redis' : undefined,
  );
}

/** Debian's openssl, with which the TLS tests make their certificate authority and certificates. */
function ensureOpenssl() {
  ensureDebianPackage('openssl', 'openssl', () => output('openssl', ['version']) !== undefined);
}

/** Debian's redis-sentinel, which the Sentinel failover tests run (three of them per test). */
function ensureSentinel() {
  ensureDebianPackage(
    'redis-sentinel',
    'redis-sentinel',
    () => output('redis-sentinel', ['--version']) !== undefined,
  );
}

/** Debian's Prometheus (and its promtool), which checks the shipped rules and every app's metrics. */
function ensurePrometheus() {
  ensureDebianPackage(
    'prometheus',
    'prometheus (with promtool)',
    () => output('promtool', ['--version']) !== undefined,
  );
}

/** Debian's Alertmanager, which the Alertmanager sink's tests post to. */
function ensureAlertmanager() {
  ensureDebianPackage(
    'prometheus-alertmanager',
    'prometheus-alertmanager',
    () => output('prometheus-alertmanager', ['--version']) !== undefined,
  );
}

/** Debian's Chromium for the operations page's browser tests (never a downloaded browser). */
function ensureChromium() {
  ensureDebianPackage('chromium', 'Chromium (/usr/bin/chromium)', () =>
    existsSync('/usr/bin/chromium'),
  );
}

/** Runs a long-lived child, forwarding Ctrl-C and SIGTERM, and exits with its code. */
function runForeground(command, args) {
  const child = spawn(command, args, { cwd: ROOT, stdio: 'inherit', env });
  // Signals sent to us are passed on. From a terminal the child also gets Ctrl-C itself; it takes a
  // repeat within a second as the same Ctrl-C.
  process.on('SIGINT', () => child.kill('SIGINT'));
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128 + 2)));
}

function main() {
  const [task, ...rest] = process.argv.slice(2);
  if (!['start', 'test', 'dev', 'bench', 'chaos'].includes(task))
    fail('usage: bootstrap.mjs <start|dev|test|bench|chaos> [options]');
  checkNode();
  const pnpm = ensurePnpm();
  ensurePackages(pnpm);
  ensureRedis(task);
  if (task === 'start' || task === 'dev') {
    // Straight to node (not through pnpm exec, which would forward Ctrl-C once more).
    const script = task === 'start' ? 'scripts/stack.ts' : 'scripts/dev.ts';
    runForeground(process.execPath, ['--import', 'tsx', script, ...rest]);
    return;
  }
  if (task === 'bench') {
    say('Build (the benchmarks run the production bundles)');
    if (run(pnpm, ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only']) !== 0)
      process.exit(1);
    runForeground(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...rest]);
    return;
  }
  if (task === 'chaos') {
    // The apps run from source (as `npm start` runs them): nothing to build, and never a
    // stale bundle. With --bundled they run their production bundles, built first.
    if (rest.includes('--bundled')) {
      say('Build (--bundled: the campaign runs the production bundles)');
      if (run(pnpm, ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only']) !== 0)
        process.exit(1);
    }
    runForeground(process.execPath, ['--import', 'tsx', 'chaos/run.ts', ...rest]);
    return;
  }
  ensureSentinel();
  ensureOpenssl();
  ensureChromium();
  ensureAlertmanager();
  ensurePrometheus();
  say('Format check');
  if (run(pnpm, ['exec', 'prettier', '--check', '--log-level', 'warn', '.']) !== 0) process.exit(1);
  say('Lint and typecheck');
  if (
    run(pnpm, [
      'exec',
      'turbo',
      'run',
      'lint',
      'typecheck',
      'lint:root',
      'typecheck:root',
      '--output-logs=errors-only',
    ]) !== 0
  ) {
    process.exit(1);
  }
  say('Build (production bundles of the apps)');
  if (run(pnpm, ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only']) !== 0)
    process.exit(1);
  say('Tests: unit, integration and end-to-end');
  process.exit(run(pnpm, ['exec', 'vitest', 'run', ...rest]));
}

main();
