/**
 * Upper bounds (seconds) of the latency histogram's buckets: from a millisecond, where an idle
 * node's events land, to 10 s, where a stalled one's do.
 */
export const LATENCY_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/** Every latency observed since start, as Prometheus counts a histogram. */
export interface LatencyHistogram {
  /** Cumulative: observations at or under each bound of `LATENCY_BUCKETS_SECONDS`. */
  buckets: number[];
  count: number;
  sumSeconds: number;
}

/**
 * The last `size` latency samples and their percentiles (for the state and the page), and every
 * sample since start in histogram buckets (for Prometheus: `histogram_quantile()` over any window,
 * and aggregation across portfolios, which percentiles cannot give).
 */
export class LatencyWindow {
  private readonly samples: number[] = [];
  private next = 0;
  private readonly counts: number[] = LATENCY_BUCKETS_SECONDS.map(() => 0);
  private count = 0;
  private sumSeconds = 0;

  constructor(private readonly size = 1_024) {}

  add(ms: number): void {
    const seconds = ms / 1_000;
    this.count += 1;
    this.sumSeconds += seconds;
    const bucket = LATENCY_BUCKETS_SECONDS.findIndex((bound) => seconds <= bound);
    if (bucket >= 0) this.counts[bucket] = (this.counts[bucket] ?? 0) + 1;
    if (this.samples.length < this.size) this.samples.push(ms);
    else this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.size;
  }

  /** The histogram of every sample since start (cumulative buckets). */
  histogram(): LatencyHistogram {
    let running = 0;
    return {
      buckets: this.counts.map((c) => (running += c)),
      count: this.count,
      sumSeconds: this.sumSeconds,
    };
  }

  /** p50 and p99 in ms (nearest rank), or null before the first sample. */
  percentiles(): { p50: number; p99: number } | null {
    if (this.samples.length === 0) return null;
    const sorted = [...this.samples].sort((a, b) => a - b);
    const rank = (q: number): number =>
      sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
    return { p50: rank(0.5), p99: rank(0.99) };
  }
}
