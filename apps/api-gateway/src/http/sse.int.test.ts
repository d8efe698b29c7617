import net from 'node:net';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import { MemoryTransport, waitFor } from '@ginkgo-live/testing';
import type { ApiKey } from '../config.ts';
import type { OverviewUpdate } from '../overview-feed.ts';
import { createAccess } from './access.ts';
import { errorHandler } from './error-handler.ts';
import { overviewRoutes } from './routes/overview.ts';
import { EventStreams } from './sse.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A feed that sends what the test says, to whoever subscribed: each message is both the update's
 * delta and, until the next, the whole overview.
 */
class ScriptedFeed {
  readonly listeners = new Set<(update: OverviewUpdate) => void>();
  private latest = '{}';
  private seq = 0;
  read(): Promise<string> {
    return Promise.resolve(this.latest);
  }
  subscribe(listener: (update: OverviewUpdate) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit(message: unknown): void {
    const json = JSON.stringify(message);
    this.latest = json;
    const base = this.seq > 0 ? this.seq : null;
    this.seq += 1;
    const update: OverviewUpdate = {
      seq: this.seq,
      base,
      deltaJson: () => json,
      fullJson: () => this.latest,
    };
    for (const listener of this.listeners) listener(update);
  }
}

/** The overview routes behind the gateway's guard, with their own streams, on a real port. */
async function serve(options: {
  maxPerClient: number;
  maxTotal: number;
  maxPerKey?: number;
  apiKeys?: ApiKey[];
}): Promise<{ port: number; feed: ScriptedFeed; streams: EventStreams }> {
  const { apiKeys = [], ...caps } = options;
  const security = {
    apiKeys,
    publicReads: false,
    corsOrigins: [],
    rateLimitPerMinute: 1_000_000,
    addressRateLimitPerMinute: 1_000_000,
    trustProxy: ['loopback'],
    // The test's clients are other addresses (X-Forwarded-For), which a keyless gateway refuses.
    ...(apiKeys.length === 0 ? { auth: 'off' as const } : {}),
  };
  const access = createAccess(security);
  const feed = new ScriptedFeed();
  const streams = new EventStreams(caps);
  const app = express();
  app.set('trust proxy', ['loopback']);
  app.use(access.guard);
  app.use(overviewRoutes({ access, overview: feed, streams }).router);
  app.use(
    errorHandler({
      logger: createLogger({ app: 'sse-test', transports: [new MemoryTransport()] }),
    } as Parameters<typeof errorHandler>[0]),
  );
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  cleanups.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  );
  return { port: (server.address() as AddressInfo).port, feed, streams };
}

/** Opens the stream on a raw socket; the test decides whether it ever reads. */
function openStream(
  port: number,
  headers: Record<string, string> = {},
): { socket: net.Socket; head: Promise<string> } {
  const socket = net.connect(port, '127.0.0.1');
  cleanups.push(() => socket.destroy());
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.write(`GET /api/overview/stream HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}\r\n`);
  const head = new Promise<string>((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      resolve(text);
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
  return { socket, head };
}

describe('event streams', () => {
  it('caps streams per client address (429) and in all (503), both with Retry-After', async () => {
    const { port, streams } = await serve({ maxPerClient: 2, maxTotal: 3 });
    const a1 = openStream(port, { 'x-forwarded-for': '198.51.100.1' });
    const a2 = openStream(port, { 'x-forwarded-for': '198.51.100.1' });
    expect(await a1.head).toMatch(/^HTTP\/1\.1 200/);
    expect(await a2.head).toMatch(/^HTTP\/1\.1 200/);
    const a3 = openStream(port, { 'x-forwarded-for': '198.51.100.1' });
    const tooMany = await a3.head;
    expect(tooMany).toMatch(/^HTTP\/1\.1 429/);
    expect(tooMany).toMatch(/\r\nRetry-After: 10\r\n/i);

    const b1 = openStream(port, { 'x-forwarded-for': '198.51.100.2' });
    expect(await b1.head).toMatch(/^HTTP\/1\.1 200/);
    const b2 = await fetch(`http://127.0.0.1:${port}/api/overview/stream`, {
      headers: { 'x-forwarded-for': '198.51.100.2' },
    });
    expect(b2.status).toBe(503);
    expect(b2.headers.get('retry-after')).toBe('10');
    expect(await b2.json()).toMatchObject({
      error: true,
      code: 'OVERLOADED',
      message:
        'The gateway serves 3 event streams, the most GATEWAY_SSE_MAX_TOTAL allows; try again later',
      details: { limit: 3, retry_after_seconds: 10 },
    });
    expect(streams.size).toBe(3);

    // A closed stream frees its slot.
    a1.socket.destroy();
    await waitFor(() => streams.size === 2, { timeoutMs: 5_000 });
    const again = openStream(port, { 'x-forwarded-for': '198.51.100.1' });
    expect(await again.head).toMatch(/^HTTP\/1\.1 200/);
  });

  it('caps streams per key name (429), however many addresses the key is used from', async () => {
    const reader: ApiKey = { name: 'wallboard', scope: 'read', secret: 'wallboard-0123456789' };
    const other: ApiKey = { name: 'desk', scope: 'operate', secret: 'desk-secret-0123456789' };
    const { port, streams } = await serve({
      maxPerClient: 10,
      maxPerKey: 2,
      maxTotal: 10,
      apiKeys: [reader, other],
    });
    const as = (key: ApiKey, address: string) =>
      openStream(port, { 'x-api-key': key.secret, 'x-forwarded-for': address });
    expect(await as(reader, '198.51.100.1').head).toMatch(/^HTTP\/1\.1 200/);
    expect(await as(reader, '198.51.100.2').head).toMatch(/^HTTP\/1\.1 200/);
    const third = await fetch(`http://127.0.0.1:${port}/api/overview/stream`, {
      headers: { 'x-api-key': reader.secret, 'x-forwarded-for': '198.51.100.3' },
    });
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('10');
    expect(await third.json()).toMatchObject({
      code: 'RATE_LIMITED',
      message:
        'The key wallboard has 2 event streams open, the most GATEWAY_SSE_MAX_PER_KEY allows; close one',
      details: { limit: 2, retry_after_seconds: 10 },
    });
    // Another key, from the same address as the refused one, still gets a stream.
    expect(await as(other, '198.51.100.3').head).toMatch(/^HTTP\/1\.1 200/);
    expect(streams.snapshot().map((s) => s.key)).toEqual(['wallboard', 'wallboard', 'desk']);
  });

  it('a client that stops reading has at most one frame waiting, the latest, and gets it whole when it reads again', async () => {
    const { port, feed, streams } = await serve({ maxPerClient: 10, maxTotal: 10 });
    const slow = openStream(port);
    expect(await slow.head).toMatch(/^HTTP\/1\.1 200/);
    await waitFor(() => feed.listeners.size === 1, { timeoutMs: 5_000 });

    // 1 MB updates, far more than the socket takes while nobody reads: once the kernel's buffers
    // are full, each would pile up in the gateway's memory without the latest-frame rule.
    const pad = 'x'.repeat(1_000_000);
    const frame = `event: overview-delta\ndata: ${JSON.stringify({ seq: 200, pad })}\n\n`;
    // One frame as HTTP/1.1 sends it: the chunk's hex length and two CRLFs around it.
    const frameBytes = Buffer.byteLength(frame) + frame.length.toString(16).length + 4;
    let seq = 0;
    let maxBuffered = 0;
    let everPending = 0;
    while (seq < 200) {
      feed.emit({ seq: ++seq, pad });
      const [state] = streams.snapshot();
      maxBuffered = Math.max(maxBuffered, state?.bufferedBytes ?? 0);
      if (state?.pending === true) everPending++;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const [state] = streams.snapshot();
    expect(state?.pending).toBe(true);
    expect(state?.dropped).toBeGreaterThan(100);
    expect(everPending).toBeGreaterThan(100);
    // The frame the socket is taking (written whole when it stopped draining), nothing more.
    expect(maxBuffered).toBeLessThanOrEqual(frameBytes);

    // Reading again, it ends with the latest update, and frames in between are skipped. Since
    // deltas were skipped, the latest comes whole (`overview`), not as a delta on a missed one.
    const seen: string[] = [];
    let text = '';
    slow.socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      for (const match of text.matchAll(/event: ([a-z-]+)\r?\ndata: \{"seq":(\d+),/g))
        seen.push(`${match[1]} ${match[2]}`);
      text = text.slice(Math.max(0, text.lastIndexOf('event: ')));
    });
    slow.socket.resume();
    await waitFor(() => seen.some((s) => s.endsWith(' 200')), { timeoutMs: 20_000 });
    expect(new Set(seen).size).toBeLessThan(100);
    expect([...new Set(seen)].filter((s) => s.endsWith(' 200'))).toEqual(['overview 200']);
  });
});
