import { describe, expect, it } from 'vitest';
import { isProcessRunning } from './is-process-running.ts';
import { ManagedProcess } from './managed-process.ts';

function node(name: string, script: string): ManagedProcess {
  return ManagedProcess.start({ name, command: process.execPath, args: ['-e', script] });
}

describe('ManagedProcess', () => {
  it('waits for a line, also one printed before the wait began', async () => {
    const child = node('lines', "console.log('one'); setTimeout(() => console.log('two'), 100)");
    await expect(child.waitForLine('two')).resolves.toBe('two');
    await expect(child.waitForLine(/^on/)).resolves.toBe('one');
    expect((await child.waitForExit()).code).toBe(0);
  });

  it('fails a wait at once when the process exits without the line', async () => {
    const child = node('quitter', "console.error('bad config'); process.exit(2)");
    await expect(child.waitForLine('ready', 5_000)).rejects.toThrow(
      /quitter exited[\s\S]*bad config/,
    );
    expect(child.exit).toEqual({ code: 2, signal: null });
  });

  it('escalates to SIGKILL when a process ignores the signal', async () => {
    const child = node(
      'stubborn',
      "process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000)",
    );
    await child.waitForLine('up');
    const exit = await child.stop('SIGTERM', 300);
    expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('stops the whole process group, grandchildren included', async () => {
    const child = node(
      'parent',
      "const c = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); console.log('grandchild=' + c.pid); setInterval(() => {}, 1000)",
    );
    const line = await child.waitForLine(/^grandchild=\d+$/);
    const grandchild = Number(line.split('=')[1]);
    expect(isProcessRunning(grandchild)).toBe(true);
    await child.stop();
    await expect.poll(() => isProcessRunning(grandchild)).toBe(false);
  });
});
