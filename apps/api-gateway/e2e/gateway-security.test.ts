import { readFileSync } from 'node:fs';
import net from 'node:net';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createStateKeys } from '@ginkgo-live/state-keys';
import {
  appEntry,
  ManagedProcess,
  parsePrometheus,
  RedisServer,
  seedFleet,
  waitFor,
} from '@ginkgo-live/testing';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function gateway(env: Record<string, string>): ManagedProcess {
  const app = ManagedProcess.start(
    appEntry('api-gateway', 'api-gateway', {
      LOG_FORMAT: 'json',
      GATEWAY_PORT: '0',
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: '1',
      ...env,
    }),
  );
  cleanups.push(() => app.stop('SIGKILL'));
  return app;
}

/** Lines that are not JSON log lines: what the operator reads on stderr. */
const plainLines = (app: ManagedProcess): string[] =>
  app.lines.filter((line) => !line.startsWith('{'));

const logEntry = (app: ManagedProcess, message: string): Record<string, unknown> =>
  JSON.parse(app.lines.find((l) => l.includes(`"message":"${message}"`)) ?? '{}') as Record<
    string,
    unknown
  >;

const SECRET = 'desk-secret-0123456789';

describe('gateway start: safe defaults', () => {
  it('a non-loopback host without keys: exit 2, one line naming GATEWAY_API_KEYS and GATEWAY_AUTH=off', async () => {
    const app = gateway({ GATEWAY_HOST: '0.0.0.0' });
    expect((await app.waitForExit(20_000)).code).toBe(2);
    expect(plainLines(app)).toEqual([
      'api-gateway: invalid configuration',
      'GATEWAY_HOST: 0.0.0.0 is reachable from other machines and no API keys are set; set GATEWAY_API_KEYS (or GATEWAY_API_KEYS_FILE), or GATEWAY_AUTH=off to serve anyone who reaches it',
    ]);
  });

  it('a key of the old format: exit 2, the new format said, the secret never printed', async () => {
    const app = gateway({ GATEWAY_API_KEYS: SECRET });
    expect((await app.waitForExit(20_000)).code).toBe(2);
    expect(plainLines(app)[1]).toMatch(/^GATEWAY_API_KEYS: entry 1 is not name:scope:secret/);
    expect(app.output).not.toContain(SECRET);
  });

  it('without keys on loopback: it starts and warns that anyone on this machine may control the fleet', async () => {
    const app = gateway({});
    await app.waitForLine('Gateway listening', 20_000);
    await app.waitForLine('no API keys: open to anyone on this machine; control included', 5_000);
    const config = logEntry(app, 'Configuration')['config'] as Record<string, unknown>;
    expect(config['host']).toBe('127.0.0.1');
    expect(config['security']).toMatchObject({ keys: 'none (this machine only)', auth: 'on' });
    expect(JSON.stringify(config['security'])).not.toContain('[redacted]');
  });

  it('with keys: the start log names them by scope, never a secret; GATEWAY_AUTH=off is an error-level line', async () => {
    const keyed = gateway({
      GATEWAY_HOST: '0.0.0.0',
      GATEWAY_API_KEYS: `desk:operate:${SECRET},prom:metrics:metrics-secret-0123456789`,
    });
    await keyed.waitForLine('Gateway listening', 20_000);
    const config = logEntry(keyed, 'Configuration')['config'] as Record<string, unknown>;
    expect((config['security'] as Record<string, unknown>)['keys']).toEqual({
      metrics: ['prom'],
      operate: ['desk'],
    });
    expect(keyed.output).not.toContain(SECRET);
    expect(keyed.output).not.toContain('no API keys');

    const off = gateway({ GATEWAY_HOST: '0.0.0.0', GATEWAY_AUTH: 'off' });
    const line = await off.waitForLine('GATEWAY_AUTH=off: no API keys', 20_000);
    expect(JSON.parse(line)).toMatchObject({ level: 'error' });
    expect(line).toContain('anyone who reaches port');
  });
});

/** The gateway process's resident memory, from /proc. */
function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN) * 1_024;
}

/** Opens `/api/overview/stream` on a raw socket and resolves with the status; it never reads after. */
function openStream(port: number, sockets: net.Socket[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    sockets.push(socket);
    socket.write(`GET /api/overview/stream HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n')) return;
      socket.off('data', onData);
      socket.pause();
      resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]));
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

/** Reads overview frames from a stream until one shows the seeded fleet; resolves with its size. */
async function frameSize(port: number, nodes: number): Promise<number> {
  const controller = new AbortController();
  const response = await fetch(`http://127.0.0.1:${port}/api/overview/stream`, {
    signal: controller.signal,
  });
  let text = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, end + 2);
        text = text.slice(end + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (data === undefined) continue;
        const summary = (JSON.parse(data) as { summary: { nodes_total: number } }).summary;
        if (summary.nodes_total === nodes) return Buffer.byteLength(block);
      }
    }
  } finally {
    controller.abort();
  }
  throw new Error('the stream ended before a frame with the fleet');
}

describe('1,000 event stream attempts', () => {
  it('leave the gateway memory bounded: 300 streams held without reading, 700 refused with 503', async () => {
    const redisServer = await RedisServer.start();
    cleanups.push(() => redisServer.cleanup());
    const redis = new Redis(redisServer.port, redisServer.host);
    cleanups.push(() => redis.disconnect());
    // A fleet whose overview is a frame of about 250 kB.
    await seedFleet({ redis, keys: createStateKeys('sse:') }, 150, 5, { withReports: true });

    const OPEN = 300;
    const app = gateway({
      ...redisServer.env,
      REDIS_KEY_PREFIX: 'sse:',
      GATEWAY_OVERVIEW_INTERVAL_MS: '200',
      GATEWAY_SSE_MAX_TOTAL: String(OPEN),
      GATEWAY_SSE_MAX_PER_CLIENT: '1000',
      GATEWAY_ADDRESS_RATE_LIMIT_PER_MINUTE: '1000000',
      GATEWAY_RATE_LIMIT_PER_MINUTE: '1000000',
    });
    const port = (
      JSON.parse(await app.waitForLine('Gateway listening', 20_000)) as { port: number }
    ).port;
    const pid = app.pid ?? 0;
    const frame = await frameSize(port, 150);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const before = rssBytes(pid);

    const sockets: net.Socket[] = [];
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
    });
    const statuses: number[] = [];
    for (let i = 0; i < 1_000; i++) {
      statuses.push(await openStream(port, sockets));
      // The refused ones are done; the open ones stay, unread.
      if (statuses[i] !== 200) sockets.pop()?.destroy();
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(OPEN);
    expect(statuses.filter((s) => s === 503)).toHaveLength(1_000 - OPEN);

    // Then 70 updates (14 s) while nobody reads. The kernel takes about 7 MB a socket on loopback
    // (its send and receive buffers): the whole overview and every delta after it.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const held = rssBytes(pid);
    const updates = 70;
    await new Promise((resolve) => setTimeout(resolve, updates * 200));
    const after = rssBytes(pid);
    const samples = parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    const buffered = samples.get('ginkgo_gateway_sse_buffered_bytes') ?? NaN;
    const skipped = samples.get('ginkgo_gateway_sse_updates_skipped_total') ?? NaN;
    process.stdout.write(
      `SSE memory: frame ${frame} B; RSS before ${before} B, with ${OPEN} streams held ${held} B, ${updates} updates later ${after} B; buffered ${buffered} B, updates skipped ${skipped}; bound ${OPEN * (frame + 64 * 1_024) + 96 * 1_024 * 1_024} B\n`,
    );
    expect(samples.get('ginkgo_gateway_sse_streams')).toBe(OPEN);
    // After the whole overview each update is a delta of a few hundred bytes, which the held
    // sockets' kernel buffers take without the gateway keeping any: nothing needs skipping here
    // (a client whose socket is full is sse.int.test.ts's case).
    expect(skipped).toBe(0);
    // In memory, per stream: its socket and HTTP objects (well under 64 kB) and the one frame
    // waiting (its unsent rest, copied by the write in flight); 96 MB for the rest (the heap's
    // growth between collections, the updates being read and serialised).
    const bound = OPEN * (frame + 64 * 1_024) + 96 * 1_024 * 1_024;
    expect(after - before).toBeLessThan(bound);

    // The gateway still answers, and the total cap is said.
    expect((await fetch(`http://127.0.0.1:${port}/api/health`)).status).toBe(200);
    const refused = await fetch(`http://127.0.0.1:${port}/api/overview/stream`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('10');

    // Streams closed by their clients free their slots.
    for (const s of sockets.splice(0)) s.destroy();
    await waitFor(async () => (await openStream(port, sockets)) === 200, {
      timeoutMs: 10_000,
      intervalMs: 200,
    });
    // At most one frame (and its chunk framing) waited in each stream's socket buffer: the one it
    // was taking when it stopped; the updates after it were skipped. (Frames grow a little as the
    // charts' history does: compared with one sent now.)
    const lastFrame = await frameSize(port, 150);
    expect(buffered).toBeLessThanOrEqual(OPEN * (lastFrame + 16));
  }, 120_000);
});
