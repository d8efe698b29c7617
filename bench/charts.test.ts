import { describe, expect, it } from 'vitest';
import { lineChartSvg, niceTicks } from './charts.ts';
import { addRun, growthCharts, type GrowthRun } from './growth.ts';

describe('niceTicks', () => {
  it('steps by 1, 2 or 5 times a power of ten, from 0 to at least the largest value', () => {
    expect(niceTicks(10_000)).toEqual([0, 2_000, 4_000, 6_000, 8_000, 10_000]);
    expect(niceTicks(1_064)).toEqual([0, 500, 1_000, 1_500]);
    expect(niceTicks(11.2)).toEqual([0, 5, 10, 15]);
    expect(niceTicks(0.37)).toEqual([0, 0.1, 0.2, 0.3, 0.4]);
    expect(niceTicks(0)).toEqual([0, 1]);
  });
});

describe('lineChartSvg', () => {
  const chart = {
    title: 'Tick <p50>',
    xLabel: 'nodes',
    yLabel: 'ms',
    series: [
      {
        label: 'before',
        points: [
          { x: 5_000, y: 1_000 },
          { x: 500, y: 100 },
        ],
      },
      { label: 'after & push', points: [{ x: 5_000, y: 200 }] },
    ],
    target: { y: 200, label: 'target' },
  };

  it('draws one line per run, its points sorted by fleet size, scaled to the axes', () => {
    const svg = lineChartSvg(chart);
    const lines = [...svg.matchAll(/<polyline points="([^"]+)"/g)].map((m) => m[1]);
    expect(lines).toHaveLength(2);
    // x ticks 0…5,000 over 64…464 px; y ticks 0…1,000 over 216…34 px.
    expect(lines[0]).toBe('104.0,197.8 464.0,34.0');
    expect(lines[1]).toBe('464.0,179.6');
    expect(svg).toContain('>before</text>');
    expect(svg).toContain('Tick &lt;p50&gt;');
    expect(svg).toContain('after &amp; push');
    expect(svg.match(/<circle /g)).toHaveLength(3);
  });

  it('is the same file for the same figures', () => {
    expect(lineChartSvg(chart)).toBe(lineChartSvg(structuredClone(chart)));
  });

  it('refuses a chart with no points or a point that is not a number', () => {
    expect(() => lineChartSvg({ ...chart, series: [] })).toThrow('has no points');
    expect(() =>
      lineChartSvg({ ...chart, series: [{ label: 'x', points: [{ x: 1, y: Number.NaN }] }] }),
    ).toThrow('not a number');
  });
});

describe('growth history', () => {
  const run = (label: string, tick: number): GrowthRun => ({
    label,
    at: '2026-12-02T00:00:00Z',
    points: [{ nodes: 500, tickP50Ms: tick, redisCpuPct: 4, opsPerNode: 11, apiP99Ms: 70 }],
  });

  it('replaces a run of the same label, keeps the newest last, and charts the newest three', () => {
    let history = [run('a', 1), run('b', 2)];
    history = addRun(history, run('a', 3));
    expect(history.map((r) => r.label)).toEqual(['b', 'a']);
    history = addRun(addRun(history, run('c', 4)), run('d', 5));
    const charts = growthCharts(history);
    expect([...charts.keys()]).toEqual([
      'fleet-tick.svg',
      'fleet-redis-cpu.svg',
      'fleet-ops-per-node.svg',
      'fleet-api-latency.svg',
    ]);
    const tick = charts.get('fleet-tick.svg') ?? '';
    expect(tick.match(/<polyline /g)).toHaveLength(3);
    expect(tick).not.toContain('>b</text>');
    expect(tick).toContain('>d</text>');
  });
});
