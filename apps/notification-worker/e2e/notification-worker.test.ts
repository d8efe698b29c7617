import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appEntry, ManagedProcess } from '@ginkgo-live/testing';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('the notification worker process', () => {
  it('exits 2 with one line naming the routes file and the line that cannot work', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-worker-routes-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const routes = path.join(dir, 'routes.yaml');
    writeFileSync(
      routes,
      [
        'routes:',
        '  - match: { level: critical }',
        '    sinks: [email, pager]',
        'default: [log]',
        '',
      ].join('\n'),
    );
    const worker = ManagedProcess.start(
      appEntry('notification-worker', 'notification-worker', {
        NOTIFY_ROUTES_FILE: routes,
        LOG_FORMAT: 'json',
      }),
    );
    cleanups.push(() => worker.stop('SIGKILL'));
    expect((await worker.waitForExit(20_000)).code).toBe(2);
    expect(worker.output).toContain(
      `NOTIFY_ROUTES_FILE: ${routes} line 3: \`sinks\`: no sink "email" is configured here (configured: log)`,
    );
    expect(worker.output).not.toMatch(/\n\s+at /);
  });
});
