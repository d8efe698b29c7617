import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import { MemoryTransport } from '@ginkgo-live/testing';
import type { FleetSnapshot } from './fleet-view.ts';
import { OverviewFeed, type OverviewDelta, type OverviewMessage } from './overview-feed.ts';

/** A source of an empty fleet that counts its reads; `fail` makes them throw like a lost Redis. */
function fakeReader() {
  const counts = { reads: 0, fail: false };
  const reader = {
    refresh: (): Promise<FleetSnapshot> => {
      counts.reads += 1;
      return counts.fail
        ? Promise.reject(new Error('connection lost'))
        : Promise.resolve({
            nodes: [],
            portfolios: [],
            plan: { version: 3, leader: 's1' },
            notifications: [],
            trading: { halted: null, paused: [], problems: [] },
          });
    },
  };
  return { reader, counts };
}

const sleep = (ms: number) => vi.advanceTimersByTimeAsync(ms);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('OverviewFeed', () => {
  it('reads on its loop only while a page watches, and stops with the last page', async () => {
    const { reader, counts } = fakeReader();
    const transport = new MemoryTransport();
    const feed = new OverviewFeed({
      source: reader,
      logger: createLogger({ app: 'test', transports: [transport] }),
      intervalMs: 20,
    });
    await sleep(60);
    expect(counts.reads).toBe(0);

    const messages: OverviewMessage[] = [];
    const unsubscribe = feed.subscribe((u) =>
      messages.push(JSON.parse(u.fullJson()) as OverviewMessage),
    );
    // One read at once for the new page, then one every 20 ms after the previous one ended.
    await sleep(100);
    expect(counts.reads).toBe(6);
    expect(messages.at(-1)).toMatchObject({
      stale: false,
      queue_thresholds: { warning: 0.7, critical: 0.95, full: 1 },
      summary: { plan_version: 3, leader: 's1', nodes_total: 0, nodes_lost: 0 },
    });

    unsubscribe();
    await sleep(1_000);
    expect(counts.reads).toBe(6);
  });

  it('keeps the last data flagged stale while the fleet cannot be read, warning once, then says when it is back', async () => {
    const { reader, counts } = fakeReader();
    const transport = new MemoryTransport();
    const feed = new OverviewFeed({
      source: reader,
      logger: createLogger({ app: 'test', transports: [transport] }),
      intervalMs: 10,
    });
    const messages: OverviewDelta[] = [];
    const unsubscribe = feed.subscribe((u) =>
      messages.push(JSON.parse(u.deltaJson()) as OverviewDelta),
    );
    await sleep(40);
    counts.fail = true;
    await sleep(80);
    const down = messages.at(-1);
    expect(down).toMatchObject({ stale: true, redis: { status: 'down' } });
    expect(down?.data_as_of).not.toBeNull();
    counts.fail = false;
    await sleep(40);
    unsubscribe();
    expect(messages.at(-1)).toMatchObject({ stale: false, redis: { status: 'up' } });
    const lines = transport.entries.map((e) => e.message);
    expect(lines.filter((m) => m === 'Operations feed: cannot read the fleet')).toHaveLength(1);
    expect(lines.filter((m) => m === 'Operations feed: Redis readable again')).toHaveLength(1);
  });

  it('after an /api/overview request goes on for demandMs without a stream, then reads nothing', async () => {
    const { reader, counts } = fakeReader();
    const feed = new OverviewFeed({
      source: reader,
      logger: createLogger({ app: 'test', transports: [new MemoryTransport()] }),
      intervalMs: 100,
      demandMs: 1_000,
    });
    await sleep(5_000);
    expect(counts.reads).toBe(0);
    await feed.read();
    expect(counts.reads).toBe(1);
    // One every 100 ms after the previous one while the request is recent (the first at 100 ms)…
    await sleep(950);
    expect(counts.reads).toBe(10);
    // …then none: the run at 1,000 ms finds nobody watching and stops the loop.
    await sleep(5_000);
    expect(counts.reads).toBe(10);
    feed.stop();
  });
});
