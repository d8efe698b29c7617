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

/** One series of a histogram the app keeps: cumulative counts per bucket bound, count, sum. */
export interface HistogramSample {
  labels: Record<string, string>;
  /** Observations at or under each of the metric's `buckets` (cumulative, same order). */
  buckets: readonly number[];
  count: number;
  sum: number;
}

/** A histogram whose buckets the app counts itself, read at scrape time. */
export interface HistogramMetric {
  name: string;
  help: string;
  labelNames: readonly string[];
  /** Upper bounds, ascending; `+Inf` is added. */
  buckets: readonly number[];
  samples: () => Awaitable<Iterable<HistogramSample>>;
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
 * metrics (CPU, memory, event loop) come with it under the app's prefix, but for three gauges whose
 * `_total` names break Prometheus's conventions.
 */
export class MetricsRegistry extends Registry {
  private readonly scrapeSnapshots: (() => void)[] = [];

  constructor(options: { prefix: string }) {
    super();
    collectDefaultMetrics({ register: this, prefix: options.prefix });
    // prom-client's totals of the active handles, requests and resources are gauges named like
    // counters, which Prometheus's conventions (and `promtool check metrics`) refuse; the same
    // numbers are the sum of its per-type gauges (`nodejs_active_handles{type}`, …).
    for (const name of ['handles', 'requests', 'resources'])
      this.removeSingleMetric(`${options.prefix}nodejs_active_${name}_total`);
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
    new Gauge({
      ...definition(metric),
      registers: [this],
      collect: collector(metric, (gauge: Gauge, s) => gauge.set(s.labels, s.value)),
    });
  }

  /** A counter whose total the app keeps (events processed since start, ...), read at scrape time. */
  counter(metric: ValueMetric | LabelledMetric): void {
    new Counter({
      ...definition(metric),
      registers: [this],
      collect: collector(metric, (counter: Counter, s) => counter.inc(s.labels, s.value)),
    });
  }

  /**
   * A histogram whose counts the app keeps (its own buckets, since start), read at scrape time:
   * `_bucket{le}` for each bound and `+Inf`, `_sum`, `_count`, as prom-client writes its own.
   */
  histogram(metric: HistogramMetric): void {
    const { name, help } = metric;
    const get = async () => {
      const values: {
        metricName: string;
        labels: Record<string, string | number>;
        value: number;
      }[] = [];
      for (const s of await metric.samples()) {
        metric.buckets.forEach((le, i) =>
          values.push({
            metricName: `${name}_bucket`,
            labels: { le, ...s.labels },
            value: s.buckets[i] ?? s.count,
          }),
        );
        values.push({
          metricName: `${name}_bucket`,
          labels: { le: '+Inf', ...s.labels },
          value: s.count,
        });
        values.push({ metricName: `${name}_sum`, labels: s.labels, value: s.sum });
        values.push({ metricName: `${name}_count`, labels: s.labels, value: s.count });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    };
    // prom-client serialises any registered object with this shape as it does its own metrics.
    this.registerMetric({ name, help, type: 'histogram', aggregator: 'sum', get } as never);
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

function definition(metric: ValueMetric | LabelledMetric): {
  name: string;
  help: string;
  labelNames: readonly string[];
} {
  return {
    name: metric.name,
    help: metric.help,
    labelNames: 'labelNames' in metric ? metric.labelNames : [],
  };
}

/**
 * A `collect` that replaces every series with those read now (a series gone from the app is gone
 * from the scrape; a counter reports the app's total, it does not add to it).
 */
function collector<M extends Gauge | Counter>(
  metric: ValueMetric | LabelledMetric,
  write: (target: M, sample: MetricSample) => void,
): (this: M) => Promise<void> {
  const read = async (): Promise<Iterable<MetricSample>> =>
    'samples' in metric ? metric.samples() : [{ labels: {}, value: await metric.value() }];
  return async function (this: M): Promise<void> {
    const series = await read();
    this.reset();
    for (const sample of series) write(this, sample);
  };
}
