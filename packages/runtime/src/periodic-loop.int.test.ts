import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** Runs a process whose only work is a started loop (100 ms interval); its exit, or null after 3 s. */
function loopProcess(unref: boolean): number | null {
  const code = `
    import { PeriodicLoop } from ${JSON.stringify(new URL('./periodic-loop.ts', import.meta.url).pathname)};
    const logger = { info() {}, warn() {}, error() {}, debug() {} };
    new PeriodicLoop({ name: 'probe', intervalMs: 100, logger, run: async () => {}, unref: ${unref} }).start();
  `;
  const child = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', code],
    {
      timeout: 3_000,
      killSignal: 'SIGKILL',
    },
  );
  return child.status;
}

describe('PeriodicLoop unref', () => {
  it('an unref loop lets its process exit; a plain one keeps it alive', () => {
    expect(loopProcess(true)).toBe(0);
    expect(loopProcess(false)).toBeNull(); // killed at the timeout: the loop held it
  }, 15_000);
});
