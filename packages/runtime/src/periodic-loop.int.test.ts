import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * A process whose only work is a started loop (100 ms interval), printing `started` once it runs;
 * resolves with its exit code, or with `held` when it was still running a second after it started
 * (then it is killed). Timed from `started`, so a slow start on a loaded machine changes nothing.
 */
function loopProcess(unref: boolean): Promise<number | 'held'> {
  const code = `
    import { PeriodicLoop } from ${JSON.stringify(new URL('./periodic-loop.ts', import.meta.url).pathname)};
    const logger = { info() {}, warn() {}, error() {}, debug() {} };
    new PeriodicLoop({ name: 'probe', intervalMs: 100, logger, run: async () => {}, unref: ${unref} }).start();
    process.stdout.write('started\\n');
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      if (timer === undefined && chunk.toString().includes('started'))
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve('held');
        }, 1_000);
    });
    child.on('exit', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode ?? -1);
    });
  });
}

describe('PeriodicLoop unref', () => {
  it('an unref loop lets its process exit; a plain one keeps it alive', async () => {
    expect(await loopProcess(true)).toBe(0);
    expect(await loopProcess(false)).toBe('held');
  }, 60_000);
});
