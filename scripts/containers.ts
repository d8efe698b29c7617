/**
 * Builds docker/Dockerfile's images with podman on a machine that reaches no container registry
 * (docker/README.md, "Containers under podman"):
 *
 *   localhost/ginkgo-live/debian:bookworm   debootstrap's minbase root filesystem, `podman import`ed
 *   localhost/ginkgo-live/node:20-local     + this machine's Node and npm, a `node` user
 *                                           (docker/node.Containerfile): the Dockerfile's NODE_IMAGE
 *   localhost/ginkgo-live/redis:7.0-local   + Debian's redis-server (docker/redis.Containerfile),
 *                                           for compose's redis:7.0-bookworm
 *   localhost/ginkgo-live/<app>:local       docker/Dockerfile with APP=<app>, FROM the node image
 *
 *   pnpm containers [--apps execution-node,api-gateway] [--base-only]
 *
 * Base images that exist are kept (delete one with `podman rmi` to make it again); app images are
 * built every time, podman's layer cache skipping what did not change. Every podman command runs
 * with CONTAINERS_CONF=docker/containers.conf. Root only (podman's storage and netavark).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO = fileURLToPath(new URL('..', import.meta.url));
export const CONTAINERS_CONF = path.join(REPO, 'docker/containers.conf');
export const DEBIAN_IMAGE = 'localhost/ginkgo-live/debian:bookworm';
export const NODE_IMAGE = 'localhost/ginkgo-live/node:20-local';
export const REDIS_IMAGE = 'localhost/ginkgo-live/redis:7.0-local';
export const APPS = [
  'livecore-scheduler',
  'execution-node',
  'api-gateway',
  'notification-worker',
  'market-feed',
] as const;
export type App = (typeof APPS)[number];

export function appImage(app: App): string {
  return `localhost/ginkgo-live/${app}:local`;
}

/** Where debootstrap's root filesystem is kept between runs (it is the slow part to make). */
const CACHE = process.env['GINKGO_CONTAINERS_CACHE'] ?? '/var/tmp/ginkgo-containers';
/** The certificates npm in the build stage trusts: the host's (docker/node.Containerfile). */
const HOST_CA_BUNDLE = process.env['GINKGO_CA_BUNDLE'] ?? '/etc/ssl/certs/ca-certificates.crt';
const MIRROR = process.env['GINKGO_DEBIAN_MIRROR'] ?? 'http://deb.debian.org/debian';

export const podmanEnv = { ...process.env, CONTAINERS_CONF };

/**
 * Runs podman with the repo's containers.conf and returns its output; `show` sends all of it
 * (a build's steps) to this process's stderr instead, `quiet` keeps its stderr for the error.
 */
export function podman(
  args: string[],
  options: { input?: Buffer; quiet?: boolean; show?: boolean } = {},
): string {
  const result = spawnSync('podman', args, {
    env: podmanEnv,
    input: options.input,
    stdio: [
      'pipe',
      options.show === true ? 2 : 'pipe',
      options.quiet === true ? 'pipe' : 'inherit',
    ],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw new Error(`podman ${args[0] ?? ''}: ${result.error.message}`);
  if (result.status !== 0) {
    const stderr = options.quiet === true ? ` ${String(result.stderr).trim()}` : '';
    throw new Error(
      `podman ${args.join(' ')} exited with ${result.status ?? 'a signal'}:${stderr}`,
    );
  }
  return String(result.stdout);
}

function imageExists(image: string): boolean {
  return spawnSync('podman', ['image', 'exists', image], { env: podmanEnv }).status === 0;
}

function say(line: string): void {
  process.stderr.write(`containers: ${line}\n`);
}

/** debootstrap's minbase bookworm, made once into the cache (renamed into place when complete). */
function debianRootfs(): string {
  const rootfs = path.join(CACHE, 'rootfs');
  if (existsSync(path.join(rootfs, 'etc/debian_version'))) {
    if (!existsSync(path.join(rootfs, 'debootstrap'))) return rootfs;
    rmSync(rootfs, { recursive: true, force: true });
  }
  mkdirSync(CACHE, { recursive: true });
  const partial = `${rootfs}.partial`;
  rmSync(partial, { recursive: true, force: true });
  say(`debootstrap --variant=minbase bookworm ${partial} ${MIRROR}`);
  execFileSync('debootstrap', ['--variant=minbase', 'bookworm', partial, MIRROR], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  renameSync(partial, rootfs);
  return rootfs;
}

function debianImage(): void {
  if (imageExists(DEBIAN_IMAGE)) {
    say(`${DEBIAN_IMAGE}: kept`);
    return;
  }
  const rootfs = debianRootfs();
  const tar = execFileSync('tar', ['-C', rootfs, '--numeric-owner', '-c', '.'], {
    maxBuffer: 1024 * 1024 * 1024,
  });
  podman(['import', '--change', 'CMD ["bash"]', '-', DEBIAN_IMAGE], { input: tar, quiet: true });
  say(`${DEBIAN_IMAGE}: imported from ${rootfs}`);
}

function nodeImage(): void {
  if (imageExists(NODE_IMAGE)) {
    say(`${NODE_IMAGE}: kept`);
    return;
  }
  // The context holds only Node and npm: this process's own binary and the npm beside it.
  const context = mkdtempSync(path.join(tmpdir(), 'ginkgo-node-image-'));
  try {
    cpSync(process.execPath, path.join(context, 'node'));
    const npm = path.join(path.dirname(process.execPath), '../lib/node_modules/npm');
    if (!existsSync(path.join(npm, 'bin/npm-cli.js')))
      throw new Error(`no npm beside ${process.execPath} (looked in ${npm})`);
    cpSync(npm, path.join(context, 'npm'), { recursive: true });
    if (!existsSync(HOST_CA_BUNDLE))
      throw new Error(`no CA bundle at ${HOST_CA_BUNDLE} (set GINKGO_CA_BUNDLE to this host's)`);
    cpSync(HOST_CA_BUNDLE, path.join(context, 'ca-certificates.crt'));
    podman(
      [
        'build',
        '--build-arg',
        `DEBIAN_IMAGE=${DEBIAN_IMAGE}`,
        '-f',
        path.join(REPO, 'docker/node.Containerfile'),
        '-t',
        NODE_IMAGE,
        context,
      ],
      { show: true },
    );
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  say(`${NODE_IMAGE}: built with Node ${process.version}`);
}

function redisImage(): void {
  if (imageExists(REDIS_IMAGE)) {
    say(`${REDIS_IMAGE}: kept`);
    return;
  }
  podman(
    [
      'build',
      '--build-arg',
      `DEBIAN_IMAGE=${DEBIAN_IMAGE}`,
      '-f',
      path.join(REPO, 'docker/redis.Containerfile'),
      '-t',
      REDIS_IMAGE,
      path.join(REPO, 'docker'),
    ],
    { show: true },
  );
  say(`${REDIS_IMAGE}: built`);
}

/** The base images (Debian, Node, Redis), each made only when missing. */
export function prepareBaseImages(): void {
  debianImage();
  nodeImage();
  redisImage();
}

/** docker/Dockerfile for one app, FROM the local node image; podman's layer cache skips what did not change. */
export function buildApp(app: App): void {
  const started = Date.now();
  podman(
    [
      'build',
      '--layers',
      '--build-arg',
      `APP=${app}`,
      '--build-arg',
      `NODE_IMAGE=${NODE_IMAGE}`,
      '--ignorefile',
      path.join(REPO, 'docker/Dockerfile.dockerignore'),
      '-f',
      path.join(REPO, 'docker/Dockerfile'),
      '-t',
      appImage(app),
      REPO,
    ],
    { show: true },
  );
  say(`${appImage(app)}: built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

function fail(message: string): never {
  process.stderr.write(`containers: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): { apps: App[]; baseOnly: boolean } {
  let apps: App[] = [...APPS];
  let baseOnly = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--base-only') baseOnly = true;
    else if (flag === '--apps') {
      const value = argv[++i];
      if (value === undefined || value === '')
        fail('--apps needs a value, e.g. --apps api-gateway');
      const names = value.split(',');
      const unknown = names.filter((n) => !(APPS as readonly string[]).includes(n));
      if (unknown.length > 0)
        fail(`--apps: unknown app ${unknown.join(', ')} (one of ${APPS.join(', ')})`);
      apps = names as App[];
    } else fail(`unknown argument ${flag ?? ''} (--apps, --base-only)`);
  }
  return { apps, baseOnly };
}

function main(): void {
  const { apps, baseOnly } = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) fail('run as root (podman with netavark and runc, as set up here)');
  if (spawnSync('podman', ['--version']).status !== 0)
    fail('podman not found (apt-get install -y podman runc netavark aardvark-dns debootstrap)');
  try {
    prepareBaseImages();
    if (!baseOnly) for (const app of apps) buildApp(app);
  } catch (err) {
    fail((err as Error).message);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  main();
