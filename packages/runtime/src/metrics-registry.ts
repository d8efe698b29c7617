import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

type Awaitable<T> = T | Promise<T>;

/** One series of a labelled metric: its labels and its value at this scrape. */
export interface MetricSample {
  labels: Record<string, string>;
  value: number;
}

/** A metric without labels, its value read at every scrape. */
export interface ValueMetric {
  name: string;
  help: string;
  value: () => Awaitable<number>;
}

/** A metric with labels: the series it has at this scrape (none is fine: the metric is empty). */
export interface LabelledMetric {
  name: string;
  help: string;
  labelNames: readonly string[];
  samples: () => Awaitable<Iterable<MetricSample>>;
}

/**
 * The Prometheus registry of one app, and the one way its metrics are declared: every value is
 * read at scrape time from the app's own state (`gauge`, `counter`), never pushed into a metric as
 * things happen, so `/metrics` says the same as the app's other reports. The process's default
 * metrics (CPU, memory, event loop) come with it under the app's prefix.
 */
export class MetricsRegistry extends Registry {
  private readonly scrapeSnapshots: (() => void)[] = [];

  constructor(options: { prefix: string }) {
    super();
    collectDefaultMetrics({ register: this, prefix: options.prefix });
  }

  /**
   * A value taken once per scrape and shared by every metric that reads it (a snapshot of the
   * app's state, a read of the fleet from Redis), so one scrape is consistent and costs one read.
   * A promise is shared as it is: a failed read is the same failure for every metric of the scrape.
   */
  perScrape<T>(take: () => T): () => T {
    let current: { value: T } | undefined;
    this.scrapeSnapshots.push(() => {
      current = undefined;
    });
    return () => (current ??= { value: take() }).value;
  }

  /** A gauge read at scrape time. */
  gauge(metric: ValueMetric | LabelledMetric): void {
    if ('samples' in metric) {
      const { samples } = metric;
      new Gauge({
        name: metric.name,
        help: metric.help,
        labelNames: metric.labelNames,
        registers: [this],
        async collect() {
          const series = await samples();
          this.reset();
          for (const s of series) this.set(s.labels, s.value);
        },
      });
      return;
    }
    const { value } = metric;
    new Gauge({
      name: metric.name,
      help: metric.help,
      registers: [this],
      async collect() {
        this.set(await value());
      },
    });
  }

  /** A counter whose total the app keeps (events processed since start, ...), read at scrape time. */
  counter(metric: ValueMetric | LabelledMetric): void {
    if ('samples' in metric) {
      const { samples } = metric;
      new Counter({
        name: metric.name,
        help: metric.help,
        labelNames: metric.labelNames,
        registers: [this],
        async collect() {
          const series = await samples();
          this.reset();
          for (const s of series) this.inc(s.labels, s.value);
        },
      });
      return;
    }
    const { value } = metric;
    new Counter({
      name: metric.name,
      help: metric.help,
      registers: [this],
      async collect() {
        const total = await value();
        this.reset();
        this.inc(total);
      },
    });
  }

  /** The Prometheus text of every metric; the per-scrape snapshots are taken anew each time. */
  override async metrics(): Promise<string> {
    for (const clear of this.scrapeSnapshots) clear();
    try {
      return await super.metrics();
    } finally {
      // Nothing of a scrape is kept until the next one (a fleet read can be large).
      for (const clear of this.scrapeSnapshots) clear();
    }
  }
}
