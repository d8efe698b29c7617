/**
 * The images of docker/Dockerfile, built and run for real by podman (docker/README.md, "Containers
 * under podman"): Redis and the apps as containers on one network, each service's settings taken
 * from docker/compose.yaml (environment, secrets, mounts, command, healthcheck, stop grace period).
 * Slow (image builds): not part of `npm test`; run it with `pnpm test:containers` as root.
 * GINKGO_CONTAINERS_REUSE=1 keeps app images that exist instead of building them again.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '@ginkgo-live/testing';
import {
  type App,
  appImage,
  buildApp,
  podman,
  podmanEnv,
  prepareBaseImages,
  REDIS_IMAGE,
  REPO,
} from '../scripts/containers.ts';

interface Service {
  image?: string;
  build?: { args: { APP: App } };
  command?: string[];
  environment?: Record<string, string>;
  secrets?: { source: string; target: string }[];
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
  restart?: string;
}
interface Compose {
  services: Record<string, Service>;
  secrets: Record<string, { file: string }>;
}

const compose = parse(readFileSync(path.join(REPO, 'docker/compose.yaml'), 'utf8')) as Compose;
const APP_SERVICES = [
  'livecore-scheduler',
  'execution-node',
  'api-gateway',
  'notification-worker',
] as const;

/** Names this run's containers, network and volumes, so that two runs never meet. */
const run = `ginkgo-ct-${process.pid}`;
const container = (service: string): string => `${run}-${service}`;
const network = run;
/** Stands in for docker/: the Redis users (pnpm redis-acl) and the gateway's keys, written here. */
const work = mkdtempSync(path.join(tmpdir(), 'ginkgo-containers-'));
const gatewayKey = randomBytes(24).toString('hex');
let gatewayPort = 0;

/** A compose path (relative to docker/) on this host: ./ under the stand-in folder, ../ in the repo. */
function hostPath(file: string): string {
  return file.startsWith('./') ? path.join(work, file) : path.resolve(REPO, 'docker', file);
}

/** `podman run` for a compose service, on this run's network under its service name. */
function runService(name: string, ports: Record<string, number> = {}): void {
  const service = compose.services[name];
  if (service === undefined) throw new Error(`docker/compose.yaml has no service ${name}`);
  const image = service.build === undefined ? REDIS_IMAGE : appImage(service.build.args.APP);
  const args = ['run', '--detach', '--name', container(name), '--network', network];
  args.push('--network-alias', name);
  for (const [key, value] of Object.entries(service.environment ?? {}))
    args.push('--env', `${key}=${value}`);
  for (const { source, target } of service.secrets ?? []) {
    const file = compose.secrets[source]?.file;
    if (file === undefined) throw new Error(`compose secret ${source} has no file`);
    args.push('--volume', `${hostPath(file)}:/run/secrets/${target}:ro`);
  }
  for (const volume of service.volumes ?? []) {
    const [source = '', ...rest] = volume.split(':');
    const named = !source.startsWith('.');
    args.push('--volume', [named ? `${run}-${source}` : hostPath(source), ...rest].join(':'));
  }
  for (const port of service.ports ?? []) {
    const [, , inside = ''] = port.split(':');
    const published = ports[inside];
    if (published === undefined) throw new Error(`no host port given for ${name}'s ${inside}`);
    args.push('--publish', `127.0.0.1:${published}:${inside}`);
  }
  const test = service.healthcheck?.test;
  if (test?.[0] !== 'CMD') throw new Error(`${name}'s healthcheck is not a CMD list`);
  // No systemd here to time the checks: podman logs that and the test runs them itself.
  args.push('--health-cmd', JSON.stringify(test.slice(1)));
  if (service.stop_grace_period !== undefined)
    args.push('--stop-timeout', String(Number.parseInt(service.stop_grace_period, 10)));
  if (service.restart !== undefined) args.push('--restart', service.restart);
  podman([...args, image, ...(service.command ?? [])], { quiet: true });
}

function inspect(name: string, format: string): string {
  return podman(['inspect', '--format', format, container(name)], { quiet: true }).trim();
}

/** The service's compose healthcheck, run by podman inside its container: true when it passes. */
function healthcheck(name: string): boolean {
  return (
    spawnSync('podman', ['healthcheck', 'run', container(name)], { env: podmanEnv }).status === 0
  );
}

async function waitHealthy(name: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(() => healthcheck(name), { timeoutMs, intervalMs: 1_000 }).catch((err: unknown) => {
    throw new Error(
      `${name} never healthy: ${(err as Error).message}\n${logs(name).slice(-2_000)}`,
    );
  });
  expect(inspect(name, '{{.State.Health.Status}}')).toBe('healthy');
}

function logs(name: string): string {
  const result = spawnSync('podman', ['logs', container(name)], { env: podmanEnv });
  return `${String(result.stdout)}${String(result.stderr)}`;
}

function logLines(name: string): Record<string, unknown>[] {
  return logs(name)
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function nodes(): Promise<{ status: number; body: Record<string, unknown> }> {
  // A page (limit) weighs less than the whole list against the key's rate limit, polled as it is here.
  const response = await fetch(`http://127.0.0.1:${gatewayPort}/api/nodes?limit=50`, {
    headers: { 'X-API-Key': gatewayKey },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

beforeAll(() => {
  const started = Date.now();
  prepareBaseImages();
  const reuse = process.env['GINKGO_CONTAINERS_REUSE'] === '1';
  for (const service of APP_SERVICES) {
    const app = compose.services[service]?.build?.args.APP;
    if (app === undefined) throw new Error(`compose service ${service} builds no app`);
    const exists =
      spawnSync('podman', ['image', 'exists', appImage(app)], { env: podmanEnv }).status === 0;
    if (!(reuse && exists)) buildApp(app);
  }
  process.stderr.write(
    `containers: images ready in ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
  );

  // As docker/README.md says to before the first `up`: the Redis users and the gateway's keys.
  execFileSync(
    process.execPath,
    ['--import', 'tsx', 'scripts/redis-acl.ts', '--dir', path.join(work, 'redis')],
    { cwd: REPO, stdio: 'pipe' },
  );
  mkdirSync(path.join(work, 'secrets'), { mode: 0o700 });
  writeFileSync(path.join(work, 'secrets/gateway-keys'), `test:read:${gatewayKey}\n`);
  chmodSync(path.join(work, 'secrets/gateway-keys'), 0o644);
  podman(['network', 'create', network], { quiet: true });
}, 1_800_000);

afterAll(() => {
  for (const name of ['redis', ...APP_SERVICES])
    spawnSync('podman', ['rm', '--force', '--time', '0', container(name)], { env: podmanEnv });
  spawnSync('podman', ['volume', 'rm', '--force', `${run}-redis-data`], { env: podmanEnv });
  spawnSync('podman', ['network', 'rm', '--force', network], { env: podmanEnv });
  rmSync(work, { recursive: true, force: true });
});

describe('the stack as podman containers on one network (REDIS_HOST=redis)', () => {
  let nodeId = '';

  it('runs Redis with its ACL users, then every app, each passing its compose healthcheck', async () => {
    runService('redis');
    await waitHealthy('redis', 30_000);
    gatewayPort = await freePort();
    for (const service of APP_SERVICES)
      runService(service, service === 'api-gateway' ? { '8000': gatewayPort } : {});
    for (const service of APP_SERVICES) await waitHealthy(service);

    const running = logLines('execution-node').find(
      (l) => l['message'] === 'Execution node running',
    );
    nodeId = String(running?.['nodeId']);
    // The node id defaults to <host>-<pid>: the container's own host name, its pid 1.
    expect(nodeId).toBe(`${inspect('execution-node', '{{.Config.Hostname}}')}-1`);
  }, 180_000);

  it('serves /api/nodes from the gateway, through its published loopback port, with a key', async () => {
    const refused = await fetch(`http://127.0.0.1:${gatewayPort}/api/nodes`);
    expect(refused.status).toBe(401);
    // The scheduler gives the one node as many of the sample catalog's 8 portfolios as it holds
    // (its heartbeat names them; none runs without the market feed, which compose leaves out).
    let last: unknown;
    const node = await waitFor(
      async () => {
        const { status, body } = await nodes();
        last = body;
        const listed = (body['nodes'] as Record<string, unknown>[] | undefined)?.[0];
        const held = (listed?.['portfolio_ids'] as string[] | undefined)?.length;
        return status === 200 && held === listed?.['capacity'] && body;
      },
      { timeoutMs: 30_000, intervalMs: 1_000 },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; last /api/nodes: ${JSON.stringify(last)}`);
    });
    expect(node).toMatchObject({ total_count: 1, online_count: 1 });
    expect((node['nodes'] as Record<string, unknown>[])[0]).toMatchObject({
      node_id: nodeId,
      is_online: true,
      status: 'online',
      capacity: 5,
    });
    expect(
      ((node['nodes'] as Record<string, unknown>[])[0]?.['portfolio_ids'] as string[]).length,
    ).toBe(5);
  }, 60_000);

  it('restarts the gateway container, which comes back healthy and serves again', async () => {
    const before = inspect('api-gateway', '{{.State.StartedAt}}');
    podman(['restart', container('api-gateway')], { quiet: true });
    expect(inspect('api-gateway', '{{.State.StartedAt}}')).not.toBe(before);
    await waitHealthy('api-gateway');
    const listening = logLines('api-gateway').filter((l) => l['message'] === 'Gateway listening');
    expect(listening.length).toBe(2);
    await waitFor(async () => (await nodes()).status === 200, { intervalMs: 1_000 });
    expect((await nodes()).body).toMatchObject({ total_count: 1, online_count: 1 });
    expect(healthcheck('execution-node')).toBe(true);
  }, 90_000);

  it('restarts the Redis container: every app reconnects by name and passes its healthcheck again', async () => {
    podman(['restart', container('redis')], { quiet: true });
    await waitHealthy('redis', 30_000);
    for (const service of APP_SERVICES) await waitHealthy(service);
    // The node's heartbeat reached the restarted Redis (append-only file on its volume).
    const restartedAt = Date.parse(inspect('redis', '{{.State.StartedAt}}'));
    await waitFor(
      async () => {
        const listed = (
          (await nodes()).body['nodes'] as Record<string, unknown>[] | undefined
        )?.[0];
        return Date.parse(String(listed?.['last_heartbeat'])) > restartedAt;
      },
      { timeoutMs: 30_000, intervalMs: 1_000 },
    );
    expect((await nodes()).body).toMatchObject({ total_count: 1, online_count: 1 });
  }, 120_000);

  it('stops a node container cleanly: exit 0 after it drained its portfolios, and it leaves the fleet', async () => {
    podman(['stop', container('execution-node')], { quiet: true });
    expect(inspect('execution-node', '{{.State.ExitCode}}')).toBe('0');
    const lines = logLines('execution-node').map((l) => l['message']);
    // From the signal to the node's last word (its Redis connections may log their close after).
    const stop = lines.slice(
      lines.indexOf('Shutting down'),
      lines.indexOf('Execution node stopped') + 1,
    );
    expect(stop).toEqual([
      'Shutting down',
      'Draining',
      ...Array<string>(5).fill('Portfolio unloaded'),
      'Execution node stopped',
    ]);
    expect(
      logLines('execution-node').find((l) => l['message'] === 'Execution node stopped'),
    ).toMatchObject({ clean: true });
    await waitFor(async () => (await nodes()).body['online_count'] === 0, {
      timeoutMs: 15_000,
      intervalMs: 1_000,
    });
  }, 60_000);
});
