/** One column: its heading, and whether it may be shortened to fit the terminal. */
export interface Column {
  heading: string;
  /** The column that gives way first (the widest free text: a title, a reason). */
  shrinks?: boolean;
  /** Numbers align right. */
  right?: boolean;
}

/**
 * A table as plain text that fits `width` characters: columns two spaces apart, the shrinkable
 * column cut (with `…`) when the whole does not fit, other columns never.
 */
export function table(columns: Column[], rows: string[][], width: number): string {
  const widths = columns.map((c, i) =>
    Math.max(c.heading.length, ...rows.map((r) => (r[i] ?? '').length)),
  );
  const gap = 2;
  const total = widths.reduce((a, b) => a + b, 0) + gap * (columns.length - 1);
  const shrink = columns.findIndex((c) => c.shrinks === true);
  if (total > width && shrink >= 0) {
    const over = total - width;
    widths[shrink] = Math.max(columns[shrink]?.heading.length ?? 4, (widths[shrink] ?? 0) - over);
  }
  const cell = (text: string, i: number): string => {
    const w = widths[i] ?? 0;
    const fitted = text.length > w ? `${text.slice(0, Math.max(0, w - 1))}…` : text;
    return columns[i]?.right === true ? fitted.padStart(w) : fitted.padEnd(w);
  };
  const line = (cells: string[]): string => cells.map(cell).join(' '.repeat(gap)).trimEnd();
  return [line(columns.map((c) => c.heading)), ...rows.map(line)].join('\n');
}

/** A duration in ms as people read it: `850ms`, `12s`, `3m`, `2h`, `4d`. */
export function ago(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  const s = ms / 1_000;
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3_600) return `${Math.round(s / 60)}m`;
  if (s < 86_400) return `${Math.round(s / 3_600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/** A fraction as a percentage, or `-`. */
export function percent(value: number | null | undefined): string {
  return value === null || value === undefined ? '-' : `${Math.round(value * 100)}%`;
}
