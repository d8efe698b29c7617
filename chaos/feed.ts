/**
 * The campaign's producer: one loop per portfolio offering a deterministic, numbered sequence of
 * ticks through the real `PortfolioQueues` with a producer id, recording for every seq what it was
 * told (accepted, or unknown when Redis failed) and when.
 *
 * The contract: `add` numbers each event of a portfolio 1, 2, 3… for this producer and returns the
 * seq when accepted; a full queue refuses without using the seq (the next add takes it); a
 * rejection (Redis failed) may have used it — the event may or may not be applied, at most once.
 * The seqs an accepted add skips are the ones the failed adds before it used: recorded as unknown.
 * A seq returned twice or skipped without a failure is an anomaly, and fails the run.
 */
import {
  PortfolioQueues,
  type AddResult,
  type PortfolioQueuesOptions,
  type TickInput,
} from '@ginkgo-live/portfolio-queue';
import type { FeedRecord } from './model.ts';

export interface FeedPortfolio {
  id: string;
  /** The symbol its ticks carry (the first its spec follows). */
  symbol: string;
}

export interface FeedOptions {
  connection: PortfolioQueuesOptions['connection'];
  keys: PortfolioQueuesOptions['keys'];
  producerId: string;
  portfolios: readonly FeedPortfolio[];
  /** Events offered per portfolio per second. */
  ratePerSecond: number;
  /** ms since the campaign started. */
  clock: () => number;
}

/** The seq `add` says it gave the event, when it says one. */
export function seqOf(result: AddResult): number | undefined {
  if (!result.ok || !('seq' in result)) return undefined;
  const seq: unknown = result.seq;
  return typeof seq === 'number' && Number.isSafeInteger(seq) ? seq : undefined;
}

const START_PRICES: Record<string, number> = {
  BTCUSDT: 60_000,
  ETHUSDT: 3_000,
  SOLUSDT: 150,
  BNBUSDT: 550,
  XRPUSDT: 0.6,
};

/** The tick numbered `seq` of a symbol: the same every run. */
export function tickFor(symbol: string, seq: number): TickInput {
  const base = START_PRICES[symbol] ?? 100;
  const wave = 1 + 0.02 * Math.sin(seq / 9) + 0.01 * Math.sin(seq / 31);
  return {
    symbol,
    price: Math.round(base * wave * 1e6) / 1e6,
    volume: 1 + (seq % 7),
    event_time: new Date(Date.UTC(2026, 0, 1) + seq * 1_000).toISOString(),
  };
}

export class ChaosFeed {
  readonly records = new Map<string, FeedRecord>();
  private readonly queues: PortfolioQueues;
  private readonly accepted = new Map<string, number>();
  private stopped = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly options: FeedOptions) {
    // Typed so the producer id passes whether or not this build's options declare it yet.
    const queueOptions: PortfolioQueuesOptions & { producerId: string } = {
      connection: options.connection,
      keys: options.keys,
      producerId: options.producerId,
    };
    this.queues = new PortfolioQueues(queueOptions);
    for (const p of options.portfolios) {
      this.records.set(p.id, { portfolioId: p.id, seqs: new Map(), refused: 0, anomalies: [] });
      this.accepted.set(p.id, 0);
    }
  }

  start(): void {
    this.loops = this.options.portfolios.map((p) => this.run(p));
  }

  /** Stops offering and waits for the adds in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    await this.queues.close();
  }

  /** Queue depths (waiting + in hand) of the portfolios, one round trip. */
  async depths(portfolioIds: readonly string[]): Promise<Map<string, number>> {
    const depths = await this.queues.readDepths(portfolioIds);
    return new Map([...depths].map(([id, d]) => [id, d.depth]));
  }

  /** Events accepted so far for a portfolio. */
  acceptedOf(portfolioId: string): number {
    return this.accepted.get(portfolioId) ?? 0;
  }

  totals(): { accepted: number; unknown: number; refused: number } {
    let accepted = 0;
    let unknown = 0;
    let refused = 0;
    for (const r of this.records.values()) {
      refused += r.refused;
      for (const s of r.seqs.values()) {
        if (s.outcome === 'accepted') accepted += 1;
        else unknown += 1;
      }
    }
    return { accepted, unknown, refused };
  }

  private async run(p: FeedPortfolio): Promise<void> {
    const record = this.records.get(p.id);
    if (record === undefined) return;
    const intervalMs = 1_000 / this.options.ratePerSecond;
    const at = (ms: number): string => `${(ms / 1_000).toFixed(1)} s`;
    const unknown = (seq: number, atMs: number): void => {
      if (!record.seqs.has(seq)) record.seqs.set(seq, { outcome: 'unknown', atMs });
    };
    /** The last seq known to be used. */
    let last = 0;
    /** When each add failed since then. */
    let failures: number[] = [];
    let due = performance.now();
    while (!this.stopped) {
      try {
        const result = await this.queues.add(p.id, tickFor(p.symbol, last + 1));
        const now = this.options.clock();
        if (result.ok) {
          const told = seqOf(result);
          let seq: number;
          if (told === undefined) {
            // A producer that does not number its events: count here, each failure using one.
            for (const failedAt of failures) unknown(++last, failedAt);
            seq = last + 1;
          } else if (told <= last) {
            record.anomalies.push(
              `add returned seq ${told} again (at ${at(now)}; ${last} was used)`,
            );
            seq = told;
          } else {
            // A failed add may or may not have used its seq (it may have failed before it took
            // one): the seqs skipped belong to the latest failures.
            const skipped = told - last - 1;
            if (skipped > failures.length)
              record.anomalies.push(
                `add skipped seqs ${last + 1}–${told - 1} with ${failures.length} failed adds before (at ${at(now)})`,
              );
            const used = failures.slice(Math.max(0, failures.length - skipped));
            for (let s = last + 1; s < told; s++) unknown(s, used[s - last - 1] ?? now);
            seq = told;
          }
          failures = [];
          if (record.seqs.has(seq)) {
            record.anomalies.push(`seq ${seq} accepted twice (at ${at(now)})`);
          } else {
            record.seqs.set(seq, { outcome: 'accepted', atMs: now });
            this.accepted.set(p.id, (this.accepted.get(p.id) ?? 0) + 1);
          }
          last = Math.max(last, seq);
        } else if (result.reason === 'full') {
          record.refused += 1;
        } else {
          record.anomalies.push(`add refused a tick: ${JSON.stringify(result)}`);
          this.stopped = true;
        }
      } catch {
        // Redis failed: the outcome is unknown; whether the add used a seq shows at the next one.
        failures.push(this.options.clock());
      }
      due += intervalMs;
      const now = performance.now();
      // Behind by more than a few events (an outage): start again from now, no burst.
      if (due < now - 5 * intervalMs) due = now;
      if (due > now) await new Promise((resolve) => setTimeout(resolve, due - now));
    }
    // Failures after the last accepted add: each may have used a seq (recorded as unknown, which
    // is never a loss; if one was not used, nothing is applied under it).
    for (const failedAt of failures) unknown(++last, failedAt);
  }
}
