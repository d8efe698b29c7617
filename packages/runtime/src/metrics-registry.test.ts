import { describe, expect, it } from 'vitest';
import { MetricsRegistry } from './metrics-registry.ts';

/** `name{labels} value` lines of the scrape, without the process's default metrics. */
async function samples(registry: MetricsRegistry, prefix = 'app_'): Promise<string[]> {
  return (await registry.metrics())
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#') && !line.startsWith(prefix));
}

describe('MetricsRegistry', () => {
  it('serves the process metrics under the app prefix', async () => {
    const registry = new MetricsRegistry({ prefix: 'app_' });
    const text = await registry.metrics();
    expect(text).toContain('# TYPE app_process_cpu_user_seconds_total counter');
    expect(text).toContain('# TYPE app_nodejs_eventloop_lag_seconds gauge');
  });

  it("names no gauge like a counter: prom-client's active-handle totals are left out, their per-type gauges kept", async () => {
    const text = await new MetricsRegistry({ prefix: 'app_' }).metrics();
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]);
    expect(types.filter(([name, type]) => type !== 'counter' && name?.endsWith('_total'))).toEqual(
      [],
    );
    expect(text).toContain('# TYPE app_nodejs_active_handles gauge');
  });

  it('reads gauges and counters at scrape time, with and without labels', async () => {
    const registry = new MetricsRegistry({ prefix: 'app_' });
    let depth = 3;
    let series = [
      { labels: { portfolio_id: 'a' }, value: 1 },
      { labels: { portfolio_id: 'b' }, value: 2 },
    ];
    registry.gauge({ name: 'x_depth', help: 'Depth', value: () => depth });
    registry.counter({ name: 'x_events_total', help: 'Events', value: () => depth * 10 });
    registry.gauge({
      name: 'x_queue',
      help: 'Per portfolio',
      labelNames: ['portfolio_id'],
      samples: () => series,
    });
    registry.counter({
      name: 'x_processed_total',
      help: 'Per portfolio',
      labelNames: ['portfolio_id'],
      samples: () => Promise.resolve(series),
    });
    expect(await samples(registry)).toEqual([
      'x_depth 3',
      'x_events_total 30',
      'x_queue{portfolio_id="a"} 1',
      'x_queue{portfolio_id="b"} 2',
      'x_processed_total{portfolio_id="a"} 1',
      'x_processed_total{portfolio_id="b"} 2',
    ]);
    // A series that is gone is gone from the next scrape; counters report the total, not a sum.
    depth = 4;
    series = [{ labels: { portfolio_id: 'b' }, value: 5 }];
    expect(await samples(registry)).toEqual([
      'x_depth 4',
      'x_events_total 40',
      'x_queue{portfolio_id="b"} 5',
      'x_processed_total{portfolio_id="b"} 5',
    ]);
  });

  it('takes a per-scrape snapshot once per scrape, shared by every metric', async () => {
    const registry = new MetricsRegistry({ prefix: 'app_' });
    let taken = 0;
    const snapshot = registry.perScrape(() => {
      taken += 1;
      return { a: taken, b: taken * 2 };
    });
    registry.gauge({ name: 'x_a', help: 'A', value: () => snapshot().a });
    registry.gauge({ name: 'x_b', help: 'B', value: () => snapshot().b });
    expect(await samples(registry)).toEqual(['x_a 1', 'x_b 2']);
    expect(taken).toBe(1);
    expect(await samples(registry)).toEqual(['x_a 2', 'x_b 4']);
    expect(taken).toBe(2);
  });

  it('shares a failed asynchronous snapshot as one failure of the scrape', async () => {
    const registry = new MetricsRegistry({ prefix: 'app_' });
    let reads = 0;
    const snapshot = registry.perScrape(async () => {
      reads += 1;
      await Promise.resolve();
      return reads === 1 ? null : 7;
    });
    registry.gauge({
      name: 'x_up',
      help: 'Up',
      value: async () => ((await snapshot()) === null ? 0 : 1),
    });
    registry.gauge({
      name: 'x_value',
      help: 'Value',
      labelNames: ['k'],
      samples: async () => {
        const v = await snapshot();
        return v === null ? [] : [{ labels: { k: 'v' }, value: v }];
      },
    });
    expect(await samples(registry)).toEqual(['x_up 0']);
    expect(await samples(registry)).toEqual(['x_up 1', 'x_value{k="v"} 7']);
    expect(reads).toBe(2);
  });
});
