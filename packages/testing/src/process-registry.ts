import type { ChildProcess } from 'node:child_process';

/**
 * Every child process the harness started and has not seen exit. When the test process exits —
 * also after a failed test or an uncaught error — each is killed with its process group, so no
 * redis-server or app outlives the run.
 */
const live = new Set<ChildProcess>();
let hooked = false;

function killAll(): void {
  for (const child of live) killGroup(child, 'SIGKILL');
  live.clear();
}

/** Sends `signal` to the child's process group (children are started detached, as group leaders). */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already (the child exited between the check and the kill): nothing to do.
  }
}

/** Tracks `child` until it exits. */
export function track(child: ChildProcess): void {
  if (!hooked) {
    hooked = true;
    process.once('exit', killAll);
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}
