import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { killGroup, track } from './process-registry.ts';

/** The repository root, where `node --import tsx` finds tsx. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface ManagedProcessOptions {
  /** Shown in failure messages. */
  name: string;
  command: string;
  args?: string[];
  /** Added to (and overriding) the test process's environment. */
  env?: Record<string, string | undefined>;
  /** Default the repository root. */
  cwd?: string;
  /** Called with every line the process prints (stdout and stderr), e.g. to echo it tagged. */
  onLine?: (line: string) => void;
}

/** How a process ended. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Options to run a TypeScript entry point (`apps/x/src/main.ts`) with tsx. */
export function tsEntry(
  name: string,
  file: string,
  env: Record<string, string | undefined> = {},
): ManagedProcessOptions {
  return { name, command: process.execPath, args: ['--import', 'tsx', file], env };
}

/**
 * Options to run an app (`apps/<app>`): its production bundle `dist/main.js`, as the image runs it
 * (built by `turbo build`; the integration tests' global setup rebuilds one older than its
 * sources), or — `bundled` false — its TypeScript source with tsx, as `npm start` runs it.
 */
export function appEntry(
  name: string,
  app: string,
  env: Record<string, string | undefined> = {},
  bundled = true,
): ManagedProcessOptions {
  if (!bundled) return tsEntry(name, `apps/${app}/src/main.ts`, env);
  const bundle = path.join(REPO_ROOT, 'apps', app, 'dist', 'main.js');
  if (!existsSync(bundle))
    throw new Error(
      `${bundle} is missing: build it (turbo build), or see why the integration tests' global setup could not`,
    );
  return { name, command: process.execPath, args: [bundle], env };
}

/**
 * A child process under test: its output kept line by line, waits on a line or on exit, and a stop
 * that escalates from a signal to SIGKILL. Started as a process-group leader, so stopping it stops
 * whatever it started too; killed when the test process exits, even after a failure.
 */
export class ManagedProcess {
  readonly lines: string[] = [];
  private readonly waiters = new Set<() => void>();
  private exitInfo: ProcessExit | undefined;
  private readonly exitPromise: Promise<ProcessExit>;

  private constructor(
    private readonly child: ChildProcess,
    readonly name: string,
    private readonly onLine: ((line: string) => void) | undefined,
  ) {
    track(child);
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        this.addLines(parts);
      });
      stream?.on('end', () => {
        if (partial !== '') this.addLines([partial]);
        partial = '';
      });
    }
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        this.notify();
        resolve(this.exitInfo);
      });
      child.once('error', (err) => {
        this.addLines([`spawn error: ${err.message}`]);
        this.exitInfo = { code: null, signal: null };
        this.notify();
        resolve(this.exitInfo);
      });
    });
  }

  /** Starts a process. */
  static start(options: ManagedProcessOptions): ManagedProcess {
    const child = spawn(options.command, options.args ?? [], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...options.env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new ManagedProcess(child, options.name, options.onLine);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Set once the process has exited. */
  get exit(): ProcessExit | undefined {
    return this.exitInfo;
  }

  /** Everything the process printed so far. */
  get output(): string {
    return this.lines.join('\n');
  }

  /** Resolves with the first line (already printed or to come) that matches `pattern`. */
  waitForLine(pattern: RegExp | string, timeoutMs = 10_000): Promise<string> {
    const matches = (line: string): boolean =>
      typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line);
    return this.waitUntil(
      () => this.lines.find(matches),
      timeoutMs,
      `a line matching ${String(pattern)}`,
    );
  }

  /** Resolves when the process exits, or rejects after `timeoutMs`. */
  waitForExit(timeoutMs = 10_000): Promise<ProcessExit> {
    return this.waitUntil(() => this.exitInfo, timeoutMs, 'exit');
  }

  /** Resolves when the process exits, however long that takes. */
  get exited(): Promise<ProcessExit> {
    return this.exitPromise;
  }

  /** Sends a signal to the process group. */
  signal(signal: NodeJS.Signals): void {
    killGroup(this.child, signal);
  }

  /** Sends `signal` (default SIGTERM) and waits; SIGKILLs the group after `timeoutMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<ProcessExit> {
    if (this.exitInfo !== undefined) return this.exitInfo;
    this.signal(signal);
    const timer = setTimeout(() => this.signal('SIGKILL'), timeoutMs);
    try {
      return await this.exitPromise;
    } finally {
      clearTimeout(timer);
    }
  }

  private addLines(lines: string[]): void {
    this.lines.push(...lines);
    if (this.onLine !== undefined) for (const line of lines) this.onLine(line);
    this.notify();
  }

  private notify(): void {
    for (const wake of this.waiters) wake();
  }

  private waitUntil<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const attempt = (): void => {
        const value = check();
        if (value !== undefined) {
          done();
          resolve(value);
        } else if (this.exitInfo !== undefined && what !== 'exit') {
          done();
          reject(
            new Error(
              `${this.name} exited (${JSON.stringify(this.exitInfo)}) before ${what}:\n${this.output}`,
            ),
          );
        }
      };
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(attempt);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`${this.name}: no ${what} within ${timeoutMs} ms. Output:\n${this.output}`),
        );
      }, timeoutMs);
      this.waiters.add(attempt);
      attempt();
    });
  }
}
