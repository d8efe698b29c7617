import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ManagedProcess, tsEntry } from '@ginkgo-live/testing';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function fixture(env: Record<string, string>): ManagedProcess {
  const app = ManagedProcess.start(
    tsEntry('fixture', 'packages/runtime/src/run-app.fixture.ts', { LOG_FORMAT: 'json', ...env }),
  );
  cleanups.push(() => app.stop('SIGKILL'));
  return app;
}

/** Lines that are not JSON log lines: what the operator reads on stderr. */
function plainLines(app: ManagedProcess): string[] {
  return app.lines.filter((line) => !line.startsWith('{'));
}

async function metricsPort(app: ManagedProcess): Promise<number> {
  const line = await app.waitForLine('Metrics listening', 20_000);
  return (JSON.parse(line) as { port: number }).port;
}

describe('runApp', () => {
  it('starts: the config logged with secrets redacted, /metrics and /health served; SIGTERM stops it with 0', async () => {
    const app = fixture({ FIXTURE_SECRET_TOKEN: 'hunter2hunter2' });
    const port = await metricsPort(app);
    await app.waitForLine('Fixture running', 20_000);
    const config = JSON.parse(app.lines.find((l) => l.includes('"Configuration"')) ?? '{}') as {
      config: Record<string, unknown>;
    };
    expect(config.config).toMatchObject({ mode: 'ok', token: '[redacted]' });
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toContain('\nfixture_started 1\n');
    expect(metrics).toContain('# TYPE fixture_process_cpu_user_seconds_total counter');
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ mode: 'ok' });
    expect(await app.stop('SIGTERM', 10_000)).toEqual({ code: 0, signal: null });
    expect(app.output).toContain('Fixture stopped');
  });

  it('a bad setting: one line per setting, exit 2, nothing started', async () => {
    const app = fixture({ FIXTURE_MODE: 'sideways', METRICS_PORT: 'x' });
    expect((await app.waitForExit(20_000)).code).toBe(2);
    expect(plainLines(app)).toEqual([
      'fixture: invalid configuration',
      'FIXTURE_MODE: must be one of ok, refuse, throw, crash-later, unclean-stop, hung-stop, got "sideways"',
      'METRICS_PORT: must be an integer, got "x"',
    ]);
    expect(app.output).not.toContain('Configuration');
  });

  it('a metrics port in use: one line naming METRICS_PORT, exit 2, no stack trace', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => holder.close(resolve)));
    const port = (holder.address() as net.AddressInfo).port;
    const app = fixture({ METRICS_PORT: String(port) });
    expect((await app.waitForExit(20_000)).code).toBe(2);
    expect(plainLines(app)).toEqual([
      `fixture: METRICS_PORT=${port} is in use; set METRICS_PORT to a free port (0 picks one)`,
    ]);
    expect(app.output).not.toContain('Fixture running');
    expect(app.output).not.toMatch(/\n\s+at /);
  });

  it('a StartupError from start: its line and its exit code', async () => {
    const app = fixture({ FIXTURE_MODE: 'refuse' });
    expect((await app.waitForExit(20_000)).code).toBe(3);
    expect(plainLines(app)).toEqual(['fixture: FIXTURE_MODE=refuse; set it to ok']);
  });

  it('any other error at start or later: logged, one line, exit 1', async () => {
    const atStart = fixture({ FIXTURE_MODE: 'throw' });
    const later = fixture({ FIXTURE_MODE: 'crash-later' });
    expect((await atStart.waitForExit(20_000)).code).toBe(1);
    expect(plainLines(atStart)).toEqual(['fixture: stopped by an unexpected error: boom at start']);
    expect((await later.waitForExit(20_000)).code).toBe(1);
    expect(plainLines(later)).toEqual(['fixture: stopped by an unexpected error: boom later']);
    const logged = JSON.parse(
      later.lines.find((l) => l.includes('Stopped by an unexpected error')) ?? '{}',
    ) as { level?: string; err?: { message?: string } };
    expect(logged).toMatchObject({ level: 'error', err: { message: 'boom later' } });
  });

  it('a stop that is not clean exits 1; a stop that hangs is cut by the backstop with 1', async () => {
    const unclean = fixture({ FIXTURE_MODE: 'unclean-stop' });
    const hung = fixture({ FIXTURE_MODE: 'hung-stop' });
    await unclean.waitForLine('Fixture running', 20_000);
    await hung.waitForLine('Fixture running', 20_000);
    expect(await unclean.stop('SIGTERM', 10_000)).toEqual({ code: 1, signal: null });
    const stoppedAt = Date.now();
    expect(await hung.stop('SIGTERM', 10_000)).toEqual({ code: 1, signal: null });
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(1_000);
    expect(hung.output).toContain('Stop did not finish in time; exiting anyway');
  });
});
