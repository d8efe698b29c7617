import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Server } from 'node:net';
import { CONFIG_EXIT_CODE } from './env.ts';

/**
 * A reason a process cannot start that the operator fixes, not the code: a port in use, a folder
 * it cannot write, a program that is not installed. Its message is the one line the operator
 * reads — what is wrong and which setting to change — and the process exits with `exitCode`
 * (2, as for a bad setting) without a stack trace.
 */
export class StartupError extends Error {
  override readonly name = 'StartupError';

  constructor(
    message: string,
    readonly exitCode: number = CONFIG_EXIT_CODE,
  ) {
    super(message);
  }
}

export interface ListenTarget {
  port: number;
  host: string;
  /** The settings an operator changes: `GATEWAY_PORT`, `METRICS_PORT`, ... */
  portSetting: string;
  hostSetting: string;
}

/**
 * Turns a failure to listen into the line that names the setting to change; other errors are
 * returned as they are.
 */
export function listenError(err: Error, target: ListenTarget): Error {
  const code = (err as { code?: unknown } | null)?.code;
  const { port, host, portSetting, hostSetting } = target;
  if (code === 'EADDRINUSE') {
    return new StartupError(
      `${portSetting}=${port} is in use; set ${portSetting} to a free port (0 picks one)`,
    );
  }
  if (code === 'EACCES') {
    return new StartupError(
      `${portSetting}=${port} needs privileges this process does not have; set ${portSetting} to a port above 1023`,
    );
  }
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
    return new StartupError(
      `${hostSetting}=${host} is not an address of this machine; set ${hostSetting} to one (0.0.0.0: every interface)`,
    );
  }
  return err;
}

/**
 * Listens on the target; resolves with the bound port, rejects with a `StartupError` naming the
 * setting. Once listening, a later server error (an accept failing with EMFILE) goes to
 * `onLaterError`: without a listener it would be an uncaught exception that stops the process —
 * a trading node must not stop because its metrics endpoint ran out of file descriptors.
 */
export function listen(
  server: Server,
  target: ListenTarget,
  onLaterError?: (err: Error) => void,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(listenError(err, target));
    server.once('error', onError);
    server.listen(target.port, target.host, () => {
      server.off('error', onError);
      if (onLaterError !== undefined) server.on('error', onLaterError);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : target.port);
    });
  });
}

/**
 * Creates `dir` if needed and checks this process can write in it; throws a `StartupError` naming
 * the setting otherwise (before anything is started that would fail later and less clearly).
 */
export function ensureWritableDir(dir: string, setting: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    // Writing is the only test that holds for root and for read-only mounts alike.
    const probe = path.join(dir, `.write-probe-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new StartupError(
      `${setting}: cannot write in ${dir}${typeof code === 'string' ? ` (${code})` : ''}; set ${setting} to a folder this user can write`,
    );
  }
}
