import { describe, expect, it } from 'vitest';
import type { FaultRecord, Sample } from './model.ts';
import { drawTimeline, escapeXml, niceStep, ratesOf, type TimelineInput } from './svg.ts';

/** Samples every 250 ms for `seconds`, each portfolio applying `perSample(p, i)` more. */
function samples(
  portfolios: readonly string[],
  seconds: number,
  perSample: (p: string, i: number) => number,
): Sample[] {
  const progress = new Map(portfolios.map((p) => [p, 0]));
  const out: Sample[] = [];
  for (let i = 0; i <= seconds * 4; i++) {
    const sample: Sample = { atMs: i * 250, ok: true, portfolios: {} };
    for (const p of portfolios) {
      const next = (progress.get(p) ?? 0) + (i === 0 ? 0 : perSample(p, i));
      progress.set(p, next);
      sample.portfolios[p] = { progress: next, depth: 0, accepted: next, node: null, status: null };
    }
    out.push(sample);
  }
  return out;
}

const fault = (
  id: number,
  kind: FaultRecord['kind'],
  startMs: number,
  endMs: number,
  target = 'node-1',
): FaultRecord => ({ id, kind, target, startMs, endMs, notes: [] });

const at = (atMs: number, progress: number | null, ok = true): Sample => ({
  atMs,
  ok,
  portfolios: ok ? { a: { progress, depth: 0, accepted: 0, node: null, status: null } } : {},
});

describe('rates', () => {
  it('are the progress per bin, per second', () => {
    const s = samples(['a'], 4, () => 5); // 5 per 250 ms: 20/s
    expect(ratesOf(s, 'a', 1_000, 4_000)).toEqual([
      [0, 15], // the first second holds three increments (250, 500, 750 ms)
      [1_000, 20],
      [2_000, 20],
      [3_000, 20],
    ]);
    expect(ratesOf(s, 'a', 2_000, 4_000)).toEqual([
      [0, 17.5],
      [2_000, 20],
    ]);
  });

  it('count a rollback as no progress, and skip unreadable samples', () => {
    const s = [at(0, 10), at(500, null, false), at(1_200, 4), at(1_700, 9)];
    expect(ratesOf(s, 'a', 1_000, 2_000)).toEqual([
      [0, 0],
      [1_000, 5],
    ]);
  });
});

describe('the timeline picture', () => {
  const input: TimelineInput = {
    title: 'Fault campaign: seed 7 & <friends>',
    subtitle: '2 portfolios',
    durationMs: 60_000,
    portfolios: ['btc-fast', 'eth-slow'],
    samples: samples(['btc-fast', 'eth-slow'], 60, (p, i) =>
      i > 80 && i < 100 && p === 'btc-fast' ? 0 : 5,
    ),
    faults: [
      fault(1, 'node-kill', 20_000, 25_000),
      fault(2, 'redis-empty', 40_000, 42_000, 'redis "main"'),
    ],
    marks: [
      { atMs: 21_000, what: 'lost', label: 'btc-fast: seqs 400–420 lost' },
      { atMs: 40_000, what: 'window', label: 'eth-slow: seqs 800–803 lost in a declared window' },
      { atMs: 30_000, what: 'exit', label: 'node node-2 exited (code 1)' },
    ],
    feedStoppedMs: 50_000,
  };

  it('draws one line per portfolio, one shaded window per fault and one mark per finding', () => {
    const svg = drawTimeline(input);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg).toContain('data-portfolio="btc-fast"');
    expect(svg.match(/<rect data-fault="/g)).toHaveLength(2);
    // A lane per fault kind, each fault in its lane.
    expect(svg.match(/<rect data-lane="/g)).toHaveLength(2);
    expect(svg).toContain('font-size="9">node-kill</text>');
    expect(svg).toContain('font-size="9">redis-empty</text>');
    expect(svg).toContain('#1 kill node-1');
    expect(svg).toContain('#2 redis empty redis &quot;main&quot;');
    expect(svg).toContain('Fault campaign: seed 7 &amp; &lt;friends&gt;');
    expect(svg.match(/<title>btc-fast: seqs 400–420 lost<\/title><\/line>/g)).toHaveLength(1);
    expect(svg).toContain('← feed stopped: drain');
    expect(svg.match(/<title>node node-2 exited \(code 1\)<\/title><\/path>/g)).toHaveLength(1);
    // Balanced groups, no bare ampersand.
    expect(svg.match(/<g[ >]/g)?.length).toBe(svg.match(/<\/g>/g)?.length);
    expect(svg.replace(/&(amp|lt|gt|quot);/g, '')).not.toMatch(/&/);
  });

  it('places the windows on the time axis and the stall in the line', () => {
    const svg = drawTimeline(input);
    // The plot starts at x = 64 and is 946 px wide for 60 s: the kill runs from 20 s to 25 s.
    const rect = /<rect data-fault="1" x="([\d.]+)" y="\d+" width="([\d.]+)"/.exec(svg);
    expect(Number(rect?.[1])).toBeCloseTo(64 + (946 * 20) / 60, 0);
    expect(Number(rect?.[2])).toBeCloseTo((946 * 5) / 60, 0);
    // btc-fast applied nothing from 20.25 s to 24.75 s: its bins there sit on the zero line (y 384).
    const points = /data-portfolio="btc-fast" stroke="[^"]+" points="([^"]+)"/.exec(svg)?.[1] ?? '';
    const ys = points.split(' ').map((pt) => Number(pt.split(',')[1]));
    expect(ys.slice(21, 24)).toEqual([384, 384, 384]);
    expect(ys[10]).toBeLessThan(384);
  });

  it('labels a window only where there is room: every one keeps its tooltip and lane', () => {
    const dense = Array.from({ length: 100 }, (_, i) =>
      fault(i + 1, i % 2 === 0 ? 'node-kill' : 'redis-freeze', i * 600, i * 600 + 300),
    );
    const svg = drawTimeline({ ...input, faults: dense });
    expect(svg.match(/<rect data-fault="/g)).toHaveLength(100);
    expect(svg.match(/<rect data-lane="/g)).toHaveLength(100);
    // 946 px for 60 s: windows 9.5 px apart, a label at most every 12 px.
    const labels = svg.match(/transform="rotate\(90 /g)?.length ?? 0;
    expect(labels).toBe(50);
  });

  it('is the same picture for the same input', () => {
    expect(drawTimeline(input)).toBe(drawTimeline(input));
  });

  it('escapes text and picks round steps', () => {
    expect(escapeXml('a < b & "c" > d')).toBe('a &lt; b &amp; &quot;c&quot; &gt; d');
    expect(niceStep(60, 10)).toBe(10);
    expect(niceStep(1_800, 10)).toBe(200);
    expect(niceStep(23, 5)).toBe(5);
  });
});
