import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureWritableDir, listen, StartupError, type ListenTarget } from './startup-error.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The gateway's settings for a listen on `port` (0: a free one) at `host`. */
function gateway(port: number, host = '127.0.0.1'): ListenTarget {
  return { port, host, portSetting: 'GATEWAY_PORT', hostSetting: 'GATEWAY_HOST' };
}

/** Listens (closed when the test ends) and resolves with the port bound. */
async function listening(server: net.Server, target: ListenTarget): Promise<number> {
  const port = await listen(server, target);
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return port;
}

describe('listen', () => {
  it('resolves with the port bound (0 picks one)', async () => {
    const server = http.createServer();
    const port = await listening(server, gateway(0));
    expect(port).toBe((server.address() as net.AddressInfo).port);
    expect(port).toBeGreaterThan(0);
  });

  it('an error after listening (an accept failing) goes to onLaterError; the server goes on', async () => {
    const server = http.createServer((_req, res) => res.end('ok'));
    const later: Error[] = [];
    const port = await listen(server, gateway(0), (err) => later.push(err));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    // What net.Server does when accept() fails (EMFILE): it emits 'error' and keeps listening.
    // With no listener left, emit throws — in a real server, an uncaught exception.
    const emfile = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' });
    expect(() => server.emit('error', emfile)).not.toThrow();
    expect(later).toEqual([emfile]);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('ok');
  });

  it('a port in use is a StartupError naming the setting to change', async () => {
    // A real listener holds the port until the test ends.
    const port = await listening(net.createServer(), gateway(0));
    const failed = listen(http.createServer(), gateway(port));
    await expect(failed).rejects.toThrow(StartupError);
    await expect(failed).rejects.toThrow(
      `GATEWAY_PORT=${port} is in use; set GATEWAY_PORT to a free port (0 picks one)`,
    );
  });

  it('a host that is not this machine is a StartupError naming the host setting', async () => {
    // 192.0.2.0/24 is reserved for documentation (RFC 5737): never an address of this machine.
    const failed = listen(http.createServer(), gateway(0, '192.0.2.1'));
    await expect(failed).rejects.toThrow(
      'GATEWAY_HOST=192.0.2.1 is not an address of this machine; set GATEWAY_HOST to one (0.0.0.0: every interface)',
    );
  });
});

describe('ensureWritableDir', () => {
  it('creates a missing folder and accepts it', () => {
    const base = mkdtempSync(path.join(tmpdir(), 'ginkgo-writable-'));
    cleanups.push(() => rmSync(base, { recursive: true, force: true }));
    expect(() => ensureWritableDir(path.join(base, 'a', 'b'), 'DATA_DIR')).not.toThrow();
  });

  it('refuses a folder below a file, naming the setting', () => {
    const base = mkdtempSync(path.join(tmpdir(), 'ginkgo-writable-'));
    cleanups.push(() => rmSync(base, { recursive: true, force: true }));
    const file = path.join(base, 'file');
    writeFileSync(file, '');
    expect(() => ensureWritableDir(path.join(file, 'data'), 'DATA_DIR')).toThrow(
      `DATA_DIR: cannot write in ${path.join(file, 'data')} (ENOTDIR); set DATA_DIR to a folder this user can write`,
    );
  });

  it('refuses a folder nobody can write in', () => {
    // A read-only folder stops every user but root; sysfs's top folder stops root too.
    let dir = '/sys';
    if (process.getuid?.() !== 0) {
      dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-readonly-'));
      chmodSync(dir, 0o555);
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    }
    expect(() => ensureWritableDir(dir, 'GINKGO_STACK_DIR')).toThrow(
      new RegExp(
        `^GINKGO_STACK_DIR: cannot write in ${dir} \\((EACCES|EPERM)\\); set GINKGO_STACK_DIR to a folder this user can write$`,
      ),
    );
  });
});
