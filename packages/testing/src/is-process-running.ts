import { readFileSync } from 'node:fs';

/**
 * True while `pid` is a running (not zombie) process. A process whose parent died is reparented and
 * may stay a zombie when PID 1 does not reap (containers), so `kill(pid, 0)` alone would lie.
 */
export function isProcessRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the parenthesised command name, which may itself hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
