/**
 * The campaign's timeline as an SVG, drawn by the run itself (Jepsen-style): events applied per
 * second per portfolio over time, each fault's window shaded and labelled, and a lane below for
 * what went wrong (durable losses, losses in a declared window, unexpected exits). Pure: a string
 * from the samples and the fault timeline, the same input giving the same picture.
 */
import type { FaultKind, FaultRecord, Sample } from './model.ts';

export interface TimelineMark {
  atMs: number;
  what: 'lost' | 'window' | 'exit';
  label: string;
}

export interface TimelineInput {
  title: string;
  subtitle: string;
  /** Length of the x axis, in ms since the campaign start. */
  durationMs: number;
  portfolios: readonly string[];
  samples: readonly Sample[];
  faults: readonly FaultRecord[];
  marks: readonly TimelineMark[];
  /** When the feed stopped (the drain follows), drawn as a dashed line. */
  feedStoppedMs?: number;
}

/** One bin of a portfolio's rate: [bin start in ms, events applied per second]. */
export type RatePoint = [number, number];

/**
 * Events applied per second of one portfolio, in bins of `binMs`: each increase of its progress
 * between two readable samples is put in the bin of the later one (none past `durationMs`). A
 * decrease (a book rolled back or reset) counts as no progress, not as negative.
 */
export function ratesOf(
  samples: readonly Sample[],
  portfolioId: string,
  binMs: number,
  durationMs: number,
): RatePoint[] {
  const bins = Math.max(1, Math.ceil(durationMs / binMs));
  const sums = new Array<number>(bins).fill(0);
  let prev: number | undefined;
  for (const s of samples) {
    const progress = s.ok ? s.portfolios[portfolioId]?.progress : undefined;
    if (progress === undefined || progress === null) continue;
    const bin = Math.max(0, Math.floor(s.atMs / binMs));
    if (prev !== undefined && progress > prev && bin < bins)
      sums[bin] = (sums[bin] ?? 0) + (progress - prev);
    prev = progress;
  }
  return sums.map((sum, i) => [i * binMs, sum / (binMs / 1_000)]);
}

/** Colours of the fault kinds' windows (by what fails: node, Redis, scheduler, operator). */
export const FAULT_COLORS: Record<FaultKind, string> = {
  'node-kill': '#d62728',
  'node-pause': '#ff7f0e',
  'node-term': '#bcbd22',
  'drain-migrate': '#2ca02c',
  'redis-kill': '#9467bd',
  'redis-empty': '#8c564b',
  'redis-freeze': '#e377c2',
  'leader-kill': '#17becf',
};

/** Short labels drawn on the windows. */
export const FAULT_SHORT: Record<FaultKind, string> = {
  'node-kill': 'kill',
  'node-pause': 'pause',
  'node-term': 'term',
  'drain-migrate': 'drain',
  'redis-kill': 'redis kill',
  'redis-empty': 'redis empty',
  'redis-freeze': 'redis freeze',
  'leader-kill': 'leader kill',
};

const LINE_COLORS = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** A round step for about `target` ticks over `span`. */
export function niceStep(span: number, target: number): number {
  const raw = span / Math.max(1, target);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (raw <= m * magnitude) return m * magnitude;
  return 10 * magnitude;
}

const fmt = (n: number): string => String(Math.round(n * 10) / 10);

/** The timeline picture. */
export function drawTimeline(input: TimelineInput): string {
  const width = 1200;
  const left = 64;
  const right = 190;
  const top = 64;
  const plotH = 320;
  const laneH = 34;
  const plotW = width - left - right;
  // One lane per fault kind present (Jepsen's nemesis lanes), below the marks.
  const kinds = [...new Set(input.faults.map((f) => f.kind))];
  const kindRowH = 11;
  const kindsTop = top + plotH + 14 + laneH + 6;
  const kindsH = kinds.length * kindRowH;
  const axisY = kindsTop + kindsH + 16;
  const height = axisY + 30;
  const duration = Math.max(1, input.durationMs);
  // About 600 bins across, never below a second.
  const binMs = Math.max(1_000, Math.ceil(duration / 600 / 1_000) * 1_000);
  const series = input.portfolios.map((p) => ({
    id: p,
    points: ratesOf(input.samples, p, binMs, duration),
  }));
  const maxRate = Math.max(1, ...series.flatMap((s) => s.points.map(([, r]) => r)));
  const yStep = niceStep(maxRate, 5);
  const yMax = Math.ceil((maxRate * 1.05) / yStep) * yStep;
  const x = (ms: number): number => left + (Math.min(Math.max(ms, 0), duration) / duration) * plotW;
  const y = (rate: number): number => top + plotH - (rate / yMax) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${escapeXml(input.title)}</text>`,
    `<text x="${left}" y="40" fill="#555">${escapeXml(input.subtitle)}</text>`,
  );
  // Fault windows, behind everything, labelled at the top where there is room (every window has
  // its tooltip, and its kind's lane below).
  out.push('<g class="faults">');
  let lastLabelX = -Infinity;
  const tooltip = (f: FaultRecord): string =>
    `<title>${escapeXml(`#${f.id} ${f.kind} ${f.target}: ${fmt(f.startMs / 1_000)} s → ${fmt(f.endMs / 1_000)} s${f.notes.length > 0 ? ` (${f.notes.join('; ')})` : ''}`)}</title>`;
  for (const f of input.faults) {
    const x0 = x(f.startMs);
    const w = Math.max(2, x(f.endMs) - x0);
    const color = FAULT_COLORS[f.kind];
    out.push(
      `<rect data-fault="${f.id}" x="${fmt(x0)}" y="${top}" width="${fmt(w)}" height="${plotH}" fill="${color}" fill-opacity="0.16" stroke="${color}" stroke-opacity="0.45">${tooltip(f)}</rect>`,
    );
    if (x0 - lastLabelX >= 12) {
      lastLabelX = x0;
      out.push(
        `<text x="${fmt(x0 + 3)}" y="${top + 4}" transform="rotate(90 ${fmt(x0 + 3)} ${top + 4})" font-size="9" fill="${color}">${escapeXml(`#${f.id} ${FAULT_SHORT[f.kind]} ${f.target}`)}</text>`,
      );
    }
  }
  out.push('</g>');
  out.push('<g class="fault-lanes">');
  kinds.forEach((kind, row) => {
    const ly = kindsTop + row * kindRowH;
    const color = FAULT_COLORS[kind];
    out.push(
      `<rect x="${left}" y="${ly}" width="${plotW}" height="${kindRowH - 1}" fill="${row % 2 === 0 ? '#fafafa' : '#f2f2f2'}"/>`,
      `<text x="${left - 6}" y="${ly + kindRowH - 3}" text-anchor="end" font-size="9">${escapeXml(kind)}</text>`,
    );
    for (const f of input.faults.filter((g) => g.kind === kind)) {
      const x0 = x(f.startMs);
      out.push(
        `<rect data-lane="${f.id}" x="${fmt(x0)}" y="${ly}" width="${fmt(Math.max(1.5, x(f.endMs) - x0))}" height="${kindRowH - 1}" fill="${color}">${tooltip(f)}</rect>`,
      );
    }
  });
  out.push('</g>');
  // Axes and grid.
  out.push('<g class="axes" stroke="#ccc">');
  for (let r = 0; r <= yMax + 1e-9; r += yStep) {
    out.push(
      `<line x1="${left}" y1="${fmt(y(r))}" x2="${left + plotW}" y2="${fmt(y(r))}" stroke-dasharray="2,3"/>`,
    );
  }
  out.push(
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333"/>`,
    '</g>',
  );
  out.push('<g class="ticks" fill="#333">');
  for (let r = 0; r <= yMax + 1e-9; r += yStep) {
    out.push(`<text x="${left - 6}" y="${fmt(y(r) + 4)}" text-anchor="end">${fmt(r)}</text>`);
  }
  const xStepS = niceStep(duration / 1_000, 10);
  for (let s = 0; s * 1_000 <= duration; s += xStepS) {
    out.push(`<text x="${fmt(x(s * 1_000))}" y="${axisY}" text-anchor="middle">${fmt(s)}</text>`);
  }
  out.push(
    `<text x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle">seconds since the campaign started</text>`,
    `<text x="16" y="${top + plotH / 2}" transform="rotate(-90 16 ${top + plotH / 2})" text-anchor="middle">events applied per second (bins of ${binMs / 1_000} s)</text>`,
    '</g>',
  );
  if (input.feedStoppedMs !== undefined) {
    const fx = fmt(x(input.feedStoppedMs));
    out.push(
      `<g class="feed-stopped"><line x1="${fx}" y1="${top}" x2="${fx}" y2="${top + plotH}" stroke="#555" stroke-dasharray="6,4"/>`,
      x(input.feedStoppedMs) > left + plotW - 120
        ? `<text x="${fmt(x(input.feedStoppedMs) - 4)}" y="${top + plotH - 6}" fill="#555" text-anchor="end">feed stopped: drain →</text></g>`
        : `<text x="${fmt(x(input.feedStoppedMs) + 4)}" y="${top + plotH - 6}" fill="#555">← feed stopped: drain</text></g>`,
    );
  }
  // One line per portfolio.
  out.push('<g class="series" fill="none" stroke-width="1.3">');
  series.forEach((s, i) => {
    const color = LINE_COLORS[i % LINE_COLORS.length] ?? '#000';
    const points = s.points.map(([t, r]) => `${fmt(x(t + binMs / 2))},${fmt(y(r))}`).join(' ');
    out.push(
      `<polyline data-portfolio="${escapeXml(s.id)}" stroke="${color}" points="${points}"/>`,
    );
  });
  out.push('</g>');
  // The lane of what went wrong.
  const laneTop = top + plotH + 14;
  out.push(
    '<g class="marks">',
    `<rect x="${left}" y="${laneTop}" width="${plotW}" height="${laneH}" fill="#f7f7f7" stroke="#ddd"/>`,
    `<text x="${left - 6}" y="${laneTop + laneH / 2 + 4}" text-anchor="end" font-size="9">lost / exits</text>`,
  );
  const markColor = { lost: '#d62728', window: '#ff9f1c', exit: '#000000' } as const;
  for (const m of input.marks) {
    const mx = fmt(x(m.atMs));
    const color = markColor[m.what];
    const shape =
      m.what === 'exit'
        ? `<path d="M ${mx} ${laneTop + 4} l 5 9 l -10 0 z" fill="${color}">`
        : `<line x1="${mx}" y1="${laneTop + (m.what === 'lost' ? 16 : 3)}" x2="${mx}" y2="${laneTop + (m.what === 'lost' ? laneH - 3 : 16)}" stroke="${color}" stroke-width="1.5">`;
    out.push(
      `${shape}<title>${escapeXml(m.label)}</title>${m.what === 'exit' ? '</path>' : '</line>'}`,
    );
  }
  out.push('</g>');
  // Legend: portfolios, then fault kinds present, then marks.
  const lx = left + plotW + 16;
  let ly = top + 4;
  out.push('<g class="legend">');
  series.forEach((s, i) => {
    const color = LINE_COLORS[i % LINE_COLORS.length] ?? '#000';
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 18}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${lx + 24}" y="${ly + 4}">${escapeXml(s.id)}</text>`,
    );
    ly += 15;
  });
  ly += 8;
  for (const kind of kinds) {
    out.push(
      `<rect x="${lx}" y="${ly - 6}" width="18" height="11" fill="${FAULT_COLORS[kind]}" fill-opacity="0.3" stroke="${FAULT_COLORS[kind]}"/>`,
      `<text x="${lx + 24}" y="${ly + 4}">${escapeXml(kind)}</text>`,
    );
    ly += 15;
  }
  ly += 8;
  for (const [what, text] of [
    ['lost', 'lost (durable)'],
    ['window', 'lost (declared window)'],
    ['exit', 'unexpected exit'],
  ] as const) {
    out.push(
      `<rect x="${lx + 7}" y="${ly - 6}" width="4" height="11" fill="${markColor[what]}"/>`,
      `<text x="${lx + 24}" y="${ly + 4}">${text}</text>`,
    );
    ly += 15;
  }
  out.push('</g>', '</svg>');
  return `${out.join('\n')}\n`;
}
