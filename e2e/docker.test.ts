import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { ManagedProcess, RedisServer, REPO_ROOT, waitFor } from '@ginkgo-live/testing';

/** No container engine runs here: the compose file and the image recipe are checked as files. */
const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker/compose.yaml'), 'utf8'), {
  merge: true,
}) as {
  services: Record<string, Record<string, unknown>>;
  volumes: Record<string, unknown>;
  secrets: Record<string, { file: string }>;
};
const dockerfile = readFileSync(path.join(REPO_ROOT, 'docker/Dockerfile'), 'utf8');
const APPS: Record<string, { healthPort: string; path: string }> = {
  'livecore-scheduler': { healthPort: '9465', path: '/health' },
  'execution-node': { healthPort: '9464', path: '/health' },
  'api-gateway': { healthPort: '8000', path: '/api/health' },
  'notification-worker': { healthPort: '9466', path: '/health' },
};
const SECRET = /PASSWORD|SECRET|TOKEN|API_KEYS?|WEBHOOK/;

describe('docker/compose.yaml', () => {
  it('runs redis and one service per app by default', () => {
    const byDefault = Object.entries(compose.services)
      .filter(([, service]) => service['profiles'] === undefined)
      .map(([name]) => name);
    expect(byDefault.sort()).toEqual(['redis', ...Object.keys(APPS)].sort());
  });

  it('has a "sentinel" profile: a replica of redis and three sentinels (quorum 2) that the apps find through .env', () => {
    const profiled = Object.entries(compose.services).filter(
      ([, service]) => (service['profiles'] as string[] | undefined)?.includes('sentinel') === true,
    );
    expect(profiled.map(([name]) => name).sort()).toEqual([
      'redis-replica',
      'sentinel-1',
      'sentinel-2',
      'sentinel-3',
    ]);
    for (const [, service] of profiled) expect(service['profiles']).toEqual(['sentinel']);
    const redis = compose.services['redis'] ?? {};
    const replica = compose.services['redis-replica'] ?? {};
    const args = (service: Record<string, unknown>): string =>
      (service['command'] as string[]).join(' ');
    expect(args(redis)).toContain('--replica-announce-ip redis');
    expect(args(replica)).toContain('--replicaof redis 6379');
    expect(args(replica)).toContain('--replica-announce-ip redis-replica');
    expect(args(replica)).toContain('--appendonly yes');
    expect(replica['volumes']).toEqual([
      'redis-replica-data:/data',
      './redis/users.acl:/etc/redis/users.acl:ro',
      './redis/replication.conf:/etc/redis/replication.conf:ro',
    ]);

    const sentinels = profiled.filter(([name]) => name.startsWith('sentinel-'));
    for (const [name, service] of sentinels) {
      const script = (service['command'] as string[]).join(' ');
      expect(script).toContain("'sentinel monitor mymaster redis 6379 2'");
      expect(script).toContain("'sentinel resolve-hostnames yes'");
      expect(script).toContain("'port 26379'");
      // Written once: Sentinel keeps what it learns (replicas, failovers) in that file.
      expect(script).toMatch(/\[ -f \/data\/sentinel\.conf \] \|\|/);
      expect(script).toContain('exec redis-sentinel /data/sentinel.conf');
      expect(service['environment']).toEqual({ SENTINEL_NAME: name });
      expect(service['volumes']).toEqual([`${name}-data:/data`]);
      expect(compose.volumes).toHaveProperty(`${name}-data`);
      expect(service['healthcheck']).toMatchObject({
        test: ['CMD', 'redis-cli', '-p', '26379', 'ping'],
      });
    }

    // .env.example names exactly these sentinels, for the master the apps ask for by default.
    const example = readFileSync(path.join(REPO_ROOT, 'docker/.env.example'), 'utf8');
    const listed = /^# REDIS_SENTINELS=(\S+)$/m.exec(example)?.[1] ?? '';
    expect(listed.split(',')).toEqual(sentinels.map(([name]) => `${name}:26379`));
    expect(example).toMatch(/^# REDIS_SENTINEL_MASTER=mymaster$/m);
  });

  it('has an "observability" profile: Prometheus, Alertmanager and Grafana, configured from deploy/, on loopback only', () => {
    const profiled = Object.entries(compose.services).filter(
      ([, service]) =>
        (service['profiles'] as string[] | undefined)?.includes('observability') === true,
    );
    expect(profiled.map(([name]) => name).sort()).toEqual([
      'alertmanager',
      'grafana',
      'prometheus',
    ]);
    for (const [name, service] of profiled) {
      expect(service['profiles'], name).toEqual(['observability']);
      // Published on the host's loopback only, like the gateway.
      for (const port of service['ports'] as string[]) expect(port, name).toMatch(/^127\.0\.0\.1:/);
    }
    const mounts = (name: string) => compose.services[name]?.['volumes'] as string[];
    expect(mounts('prometheus')).toContain('../deploy/prometheus:/etc/prometheus:ro');
    // The scrape of the gateway reads its key where prometheus.yml's credentials_file points.
    const prometheusYml = readFileSync(
      path.join(REPO_ROOT, 'deploy/prometheus/prometheus.yml'),
      'utf8',
    );
    const keyFile = /credentials_file: (\S+)/.exec(prometheusYml)?.[1] ?? '';
    expect(mounts('prometheus')).toContain(
      `./secrets/gateway-metrics-key:/etc/prometheus/${keyFile}:ro`,
    );
    // It scrapes every app service compose runs, by its name and metrics port.
    for (const [app, { healthPort }] of Object.entries(APPS))
      expect(prometheusYml, app).toContain(
        app === 'execution-node' ? `names: ['${app}']` : `'${app}:${healthPort}'`,
      );
    expect(prometheusYml).toContain("targets: ['alertmanager:9093']");
    expect(mounts('alertmanager')).toContain('../deploy/alertmanager:/etc/alertmanager:ro');
    expect(mounts('grafana')).toEqual(
      expect.arrayContaining([
        '../deploy/grafana/provisioning:/etc/grafana/provisioning:ro',
        '../deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro',
      ]),
    );
    const datasource = readFileSync(
      path.join(REPO_ROOT, 'deploy/grafana/provisioning/datasources/prometheus.yml'),
      'utf8',
    );
    expect(datasource).toContain('url: http://prometheus:9090');
    // Grafana's password is a Docker secret, never in the file.
    expect(compose.services['grafana']?.['environment']).toMatchObject({
      GF_SECURITY_ADMIN_PASSWORD__FILE: '/run/secrets/grafana-admin',
    });
    expect(compose.secrets['grafana-admin']).toEqual({ file: './secrets/grafana-admin' });
    // amtool (Debian's prometheus-alertmanager) accepts the shipped Alertmanager configuration.
    const check = execFileSync('amtool', ['check-config', 'deploy/alertmanager/alertmanager.yml'], {
      cwd: REPO_ROOT,
    }).toString();
    expect(check).toContain('SUCCESS');
  });

  it('gives redis a healthcheck, append-only persistence and a volume', () => {
    const redis = compose.services['redis'] ?? {};
    // The default user is off (ACL users, e2e/redis-acl.test.ts): the check logs in as healthcheck.
    expect(redis['healthcheck']).toMatchObject({
      test: [
        'CMD',
        'redis-cli',
        '--user',
        'healthcheck',
        '--pass',
        '-',
        '--no-auth-warning',
        'ping',
      ],
    });
    expect(redis['command']).toEqual(expect.arrayContaining(['--appendonly', 'yes']));
    expect(redis['volumes']).toEqual([
      'redis-data:/data',
      './redis/users.acl:/etc/redis/users.acl:ro',
      './redis/replication.conf:/etc/redis/replication.conf:ro',
    ]);
    expect(compose.volumes).toHaveProperty('redis-data');
  });

  it.each(Object.entries(APPS))(
    'gives %s REDIS_HOST=redis, its own healthcheck, a restart policy and a healthy Redis first',
    (name, app) => {
      const service = compose.services[name] ?? {};
      const env = service['environment'] as Record<string, string>;
      expect(env['REDIS_HOST']).toBe('redis');
      expect(service['restart']).toBe('unless-stopped');
      expect(service['depends_on']).toEqual({ redis: { condition: 'service_healthy' } });
      const test = (service['healthcheck'] as { test: string[] }).test.join(' ');
      expect(test).toContain(`http://127.0.0.1:${app.healthPort}${app.path}`);
      const port = env['METRICS_PORT'] ?? env['GATEWAY_PORT'];
      expect(port).toBe(app.healthPort);
      expect(service['build']).toMatchObject({
        dockerfile: 'docker/Dockerfile',
        args: { APP: name },
      });
    },
  );

  it('bakes in no secret: secrets come from the .env file or a Docker secret', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [key, value] of Object.entries(
        (service['environment'] as Record<string, string> | undefined) ?? {},
      )) {
        // A *_FILE setting names a mounted secret, not the secret itself.
        const isSecretFile = key.endsWith('_FILE') && value.startsWith('/run/secrets/');
        expect(SECRET.test(key) && !isSecretFile, `${name}: ${key}`).toBe(false);
      }
    }
    expect(compose.services['api-gateway']?.['ports']).toEqual(['127.0.0.1:8000:8000']);
  });

  it("gives the gateway's API keys to the api-gateway alone, as a Docker secret from a folder git ignores", () => {
    const gateway = compose.services['api-gateway'] ?? {};
    expect(gateway['secrets']).toContainEqual({ source: 'gateway-keys', target: 'gateway-keys' });
    expect((gateway['environment'] as Record<string, string>)['GATEWAY_API_KEYS_FILE']).toBe(
      '/run/secrets/gateway-keys',
    );
    expect(compose.secrets['gateway-keys']).toEqual({ file: './secrets/gateway-keys' });
    for (const [name, service] of Object.entries(compose.services)) {
      if (name === 'api-gateway') continue;
      const secrets = (service['secrets'] as { source: string }[] | undefined) ?? [];
      expect(
        secrets.map((s) => s.source),
        name,
      ).not.toContain('gateway-keys');
      const env = Object.keys((service['environment'] as Record<string, string> | undefined) ?? {});
      expect(
        env.filter((k) => k.startsWith('GATEWAY_API_KEYS')),
        name,
      ).toEqual([]);
    }
    // docker/.env reaches every app: its example sets no key, not even commented out as a value.
    const example = readFileSync(path.join(REPO_ROOT, 'docker/.env.example'), 'utf8');
    expect(example).not.toMatch(/^GATEWAY_API_KEYS/m);
    expect(example).not.toMatch(/^# ?GATEWAY_API_KEYS=\S/m);
    expect(example).toMatch(/^# GATEWAY_API_KEYS=\s+never in this file/m);
    // The file itself is never committed.
    const ignored = execFileSync('git', ['check-ignore', 'docker/secrets/gateway-keys'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(ignored.trim()).toBe('docker/secrets/gateway-keys');
  });

  it('lets /metrics answer to its service name and loopback only (DNS rebinding); healthchecks dial 127.0.0.1', () => {
    for (const [name, app] of Object.entries(APPS)) {
      if (name === 'api-gateway') continue;
      const service = compose.services[name] ?? {};
      const env = service['environment'] as Record<string, string>;
      expect(env['METRICS_ALLOWED_HOSTS']?.split(','), name).toEqual([
        'localhost',
        '127.0.0.1',
        '::1',
        name,
      ]);
      const test = (service['healthcheck'] as { test: string[] }).test.join(' ');
      expect(test).toContain(`http://127.0.0.1:${app.healthPort}/health`);
    }
  });

  it('has a .env.example listing every setting any app reads', () => {
    const example = readFileSync(path.join(REPO_ROOT, 'docker/.env.example'), 'utf8');
    const sources = ['apps', 'packages'].flatMap((dir) =>
      readdirSync(path.join(REPO_ROOT, dir)).flatMap((pkg) => {
        const src = path.join(REPO_ROOT, dir, pkg, 'src');
        try {
          return (
            readdirSync(src)
              // Settings apps read: not those of tests, their support files or fixture apps.
              .filter((f) => f.endsWith('.ts') && !/\.(test|test-support|fixture)\./.test(f))
              .map((f) => path.join(src, f))
          );
        } catch {
          return []; // a folder without src/ (a README)
        }
      }),
    );
    const variables = new Set<string>();
    for (const file of sources) {
      for (const match of readFileSync(file, 'utf8').matchAll(
        /^\s+([A-Z][A-Z0-9_]{2,}): (?:env(?:Int|Bool|String|Enum|DurationMs)|url)\(/gm,
      )) {
        variables.add(match[1] ?? '');
      }
    }
    expect(variables.size).toBeGreaterThan(50);
    const missing = [...variables].filter((v) => !new RegExp(`^#? ?${v}=`, 'm').test(example));
    expect(missing).toEqual([]);
  });
});

describe('docker/Dockerfile', () => {
  it('builds in one stage and runs, as a non-root user, only the bundle and production dependencies', () => {
    const stages = [...dockerfile.matchAll(/^FROM \S+ AS (\w+)$/gm)].map((m) => m[1]);
    expect(stages).toEqual(['build', 'runtime']);
    const runtime = dockerfile.slice(dockerfile.indexOf('AS runtime'));
    expect(runtime).toMatch(/^USER node$/m);
    expect(runtime).toMatch(/^CMD \["node", "dist\/main.js"\]$/m);
    expect([...runtime.matchAll(/^COPY --from=build \S+ (\S+)/gm)].map((m) => m[1])).toEqual([
      '/out/package.json',
      '/out/node_modules',
      '/out/dist',
    ]);
    expect(dockerfile).toMatch(/deploy --prod \/out/);
    expect(dockerfile).not.toMatch(/^ENV .*(PASSWORD|SECRET|TOKEN|API_KEY)/m);
  });
});

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('the image build stage, run without a container engine', () => {
  it('bundles an app, deploys it with production dependencies only, and the result serves', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'ginkgo-deploy-'));
    cleanups.push(() => rmSync(out, { recursive: true, force: true }));
    const app = path.join(REPO_ROOT, 'apps/api-gateway');
    execFileSync(process.execPath, ['../../scripts/build-app.mjs'], { cwd: app, stdio: 'pipe' });
    execFileSync('pnpm', ['--filter', '@ginkgo-live/api-gateway', 'deploy', '--prod', out], {
      cwd: REPO_ROOT,
      stdio: 'pipe',
    });
    const modules = readdirSync(path.join(out, 'node_modules'));
    expect(modules).toContain('express');
    expect(modules).not.toContain('vitest');
    expect(modules).not.toContain('tsx');

    // The runtime stage keeps package.json, node_modules and dist only: so does this copy.
    const runtime = mkdtempSync(path.join(tmpdir(), 'ginkgo-runtime-'));
    cleanups.push(() => rmSync(runtime, { recursive: true, force: true }));
    for (const entry of ['package.json', 'node_modules', 'dist'])
      cpSync(path.join(out, entry), path.join(runtime, entry), { recursive: true });

    const redis = await RedisServer.start();
    cleanups.push(() => redis.cleanup());
    const gateway = ManagedProcess.start({
      name: 'bundled gateway',
      command: process.execPath,
      args: ['dist/main.js'],
      cwd: runtime,
      env: { ...redis.env, GATEWAY_PORT: '0', LOG_FORMAT: 'json' },
    });
    cleanups.push(() => gateway.stop());
    const line = await gateway.waitForLine('Gateway listening', 15_000);
    const port = (JSON.parse(line) as { port: number }).port;
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/api/nodes`)).status === 200, {
      timeoutMs: 5_000,
    });
    // The operations page travels inside dist/ with the bundle.
    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/ui/app.js');
    expect((await fetch(`http://127.0.0.1:${port}/ui/app.js`)).status).toBe(200);
  }, 60_000);
});
