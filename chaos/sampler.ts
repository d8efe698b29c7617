/**
 * Samples every portfolio every ~250 ms: its book (applied count, last applied seq), its state
 * (node, status) and its queue depth, in one round of reads. The samples draw the timeline, measure
 * how long a portfolio applied nothing while events waited, and follow each book so a duplicate or
 * a reordering is charged to the fault during which it first showed.
 */
import type { Redis } from 'ioredis';
import type { StateKeys } from '@ginkgo-live/state-keys';
import { BookWatcher, readBook } from './checker.ts';
import type { ChaosFeed } from './feed.ts';
import type { BookView, Detection, PortfolioSample, Rollback, Sample } from './model.ts';

export interface SamplerOptions {
  redis: Redis;
  keys: StateKeys;
  feed: ChaosFeed;
  producerId: string;
  portfolios: readonly string[];
  intervalMs: number;
  clock: () => number;
}

/** What one read of every book said. */
export type BookRead = Map<string, BookView>;

export class Sampler {
  readonly samples: Sample[] = [];
  readonly detections: Detection[] = [];
  /** Per portfolio, the last applied seq seen in its book and when. */
  readonly lastApplied = new Map<string, { atMs: number; last: number }>();
  private readonly watchers: Map<string, BookWatcher>;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: SamplerOptions) {
    this.watchers = new Map(options.portfolios.map((p) => [p, new BookWatcher(p)]));
  }

  start(): void {
    const loop = (): void => {
      if (this.stopped) return;
      this.running = this.sampleOnce().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.timer = setTimeout(loop, this.options.intervalMs);
      });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Every time a sampled book went back (reset, rolled back, vanished). */
  rollbacks(): Rollback[] {
    return [...this.watchers.values()].flatMap((w) => w.rollbacks).sort((a, b) => a.atMs - b.atMs);
  }

  /** The latest sample that could read Redis. */
  latest(): Sample | undefined {
    for (let i = this.samples.length - 1; i >= 0; i--) {
      const s = this.samples[i];
      if (s?.ok === true) return s;
    }
    return undefined;
  }

  /** Reads every book once (rejects when Redis fails). */
  async readBooks(): Promise<BookRead> {
    const { redis, keys, portfolios, producerId } = this.options;
    const raws = await redis.mget(...portfolios.map((p) => keys.portfolioBook(p)));
    return new Map(portfolios.map((p, i) => [p, readBook(raws[i] ?? null, producerId)]));
  }

  /**
   * Per portfolio, the last seq its book in Redis says was applied, read now (right before a
   * Redis kill); where the read fails, the last one the samples saw.
   */
  async appliedNow(): Promise<{ applied: Record<string, number>; fresh: boolean }> {
    try {
      const books = await this.readBooks();
      return {
        applied: Object.fromEntries(
          [...books].map(([p, b]) => [p, b.applied?.last ?? this.lastApplied.get(p)?.last ?? 0]),
        ),
        fresh: true,
      };
    } catch {
      return {
        applied: Object.fromEntries(
          this.options.portfolios.map((p) => [p, this.lastApplied.get(p)?.last ?? 0]),
        ),
        fresh: false,
      };
    }
  }

  private async sampleOnce(): Promise<void> {
    const { redis, keys, portfolios, feed, clock } = this.options;
    const atMs = clock();
    const accepted = new Map(portfolios.map((p) => [p, feed.acceptedOf(p)]));
    try {
      const [books, states, depths] = await Promise.all([
        this.readBooks(),
        redis.mget(...portfolios.map((p) => keys.portfolioState(p))),
        feed.depths(portfolios),
      ]);
      const out: Record<string, PortfolioSample> = {};
      portfolios.forEach((p, i) => {
        const book = books.get(p);
        const state = parseState(states[i] ?? null);
        const range = book?.applied ?? null;
        if (range !== null) this.lastApplied.set(p, { atMs, last: range.last });
        this.detections.push(...(this.watchers.get(p)?.observe(atMs, range) ?? []));
        out[p] = {
          progress: range?.count ?? book?.processedCount ?? state.processed,
          depth: depths.get(p) ?? null,
          accepted: accepted.get(p) ?? 0,
          node: state.node,
          status: state.status,
        };
      });
      this.samples.push({ atMs, ok: true, portfolios: out });
    } catch {
      this.samples.push({ atMs, ok: false, portfolios: {} });
    }
  }
}

function parseState(raw: string | null): {
  node: string | null;
  status: string | null;
  processed: number | null;
} {
  if (raw === null) return { node: null, status: null, processed: null };
  try {
    const s = JSON.parse(raw) as { node_id?: unknown; status?: unknown; processed_count?: unknown };
    return {
      node: typeof s.node_id === 'string' ? s.node_id : null,
      status: typeof s.status === 'string' ? s.status : null,
      processed: typeof s.processed_count === 'number' ? s.processed_count : null,
    };
  } catch {
    return { node: null, status: null, processed: null };
  }
}
