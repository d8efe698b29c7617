/**
 * Small line charts as standalone SVG, for how a cost grows with the fleet: x is the fleet size,
 * one line per run being compared, so the shape of a curve (flat, linear, a cliff) is seen. No
 * dependency and no randomness: the same figures give the same file, so a diff of docs/ shows
 * only what changed.
 */

export interface Series {
  /** The run this line is (e.g. its date and what it measured). */
  label: string;
  points: readonly { x: number; y: number }[];
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** A horizontal line at a target (drawn dashed, labelled). */
  target?: { y: number; label: string };
}

const WIDTH = 480;
const HEIGHT = 280;
const MARGIN = { top: 34, right: 16, bottom: 64, left: 64 };
// Told apart by dash as well as colour (printed, or read by someone who does not see colour).
const STYLES = [
  { colour: '#1f77b4', dash: '' },
  { colour: '#d62728', dash: '6 3' },
  { colour: '#2ca02c', dash: '2 3' },
  { colour: '#9467bd', dash: '8 3 2 3' },
] as const;

/** Ticks at 1, 2 or 5 × a power of ten, from 0 to at least `max`. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let t = 0; t < max + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  if ((ticks.at(-1) ?? 0) < max) ticks.push(Number(((ticks.at(-1) ?? 0) + step).toPrecision(12)));
  return ticks;
}

const escape = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const format = (value: number): string =>
  value >= 1_000 ? value.toLocaleString('en-US') : String(Number(value.toPrecision(3)));

/** The chart as an SVG document. */
export function lineChartSvg(chart: LineChart): string {
  const points = chart.series.flatMap((s) => s.points);
  if (points.length === 0) throw new Error(`chart "${chart.title}" has no points`);
  for (const p of points)
    if (!Number.isFinite(p.x) || !Number.isFinite(p.y))
      throw new Error(`chart "${chart.title}" has a point that is not a number`);
  const xTicks = niceTicks(Math.max(...points.map((p) => p.x)));
  const yTicks = niceTicks(Math.max(...points.map((p) => p.y), chart.target?.y ?? 0));
  const xMax = xTicks.at(-1) ?? 1;
  const yMax = yTicks.at(-1) ?? 1;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (x: number) => MARGIN.left + (x / xMax) * plotW;
  const sy = (y: number) => MARGIN.top + plotH - (y / yMax) * plotH;
  const r = (v: number) => v.toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="11">`,
    `<title>${escape(chart.title)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${WIDTH / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${escape(chart.title)}</text>`,
  ];
  for (const t of yTicks) {
    out.push(
      `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${r(sy(t))}" y2="${r(sy(t))}" stroke="#e5e5e5"/>`,
      `<text x="${MARGIN.left - 6}" y="${r(sy(t) + 4)}" text-anchor="end">${format(t)}</text>`,
    );
  }
  for (const t of xTicks) {
    out.push(
      `<line x1="${r(sx(t))}" x2="${r(sx(t))}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH + 4}" stroke="#333"/>`,
      `<text x="${r(sx(t))}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${format(t)}</text>`,
    );
  }
  out.push(
    `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH}" stroke="#333"/>`,
    `<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#333"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${MARGIN.top + plotH + 32}" text-anchor="middle">${escape(chart.xLabel)}</text>`,
    `<text transform="translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(chart.yLabel)}</text>`,
  );
  if (chart.target !== undefined) {
    const y = r(sy(chart.target.y));
    out.push(
      `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y}" y2="${y}" stroke="#777" stroke-dasharray="3 3"/>`,
      `<text x="${WIDTH - MARGIN.right - 2}" y="${r(sy(chart.target.y) - 4)}" text-anchor="end" fill="#555">${escape(chart.target.label)}</text>`,
    );
  }
  chart.series.forEach((series, i) => {
    const style = STYLES[i % STYLES.length] ?? STYLES[0];
    const sorted = [...series.points].sort((a, b) => a.x - b.x);
    const path = sorted.map((p) => `${r(sx(p.x))},${r(sy(p.y))}`).join(' ');
    out.push(
      `<polyline points="${path}" fill="none" stroke="${style.colour}" stroke-width="2"${style.dash === '' ? '' : ` stroke-dasharray="${style.dash}"`}/>`,
      ...sorted.map(
        (p) =>
          `<circle cx="${r(sx(p.x))}" cy="${r(sy(p.y))}" r="3" fill="${style.colour}"><title>${escape(`${series.label}: ${format(p.x)} → ${format(p.y)}`)}</title></circle>`,
      ),
    );
    const ly = HEIGHT - 14;
    const lx = MARGIN.left + i * Math.floor(plotW / Math.max(1, chart.series.length));
    out.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly - 4}" y2="${ly - 4}" stroke="${style.colour}" stroke-width="2"${style.dash === '' ? '' : ` stroke-dasharray="${style.dash}"`}/>`,
      `<text x="${lx + 26}" y="${ly}">${escape(series.label)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
