/**
 * The campaign's result as Markdown (the table that goes into docs/reliability.md) and the history
 * of every failure (a portfolio's seq outcomes around a gap, the faults near it). Pure.
 */
import {
  faultBefore,
  holds,
  REDIS_RECOVERY_MS,
  rollbackOf,
  toRanges,
  type CampaignInput,
  type CampaignVerdict,
  type KindRow,
  type PortfolioVerdict,
} from './checker.ts';
import { EXPECTED_NOTICES, FAULT_TITLES, type FaultRecord } from './model.ts';

export const seconds = (ms: number): string => `${(ms / 1_000).toFixed(1)} s`;
const num = (n: number | null): string => (n === null ? '?' : n.toLocaleString('en-US'));
const ratio = (r: [number, number] | null): string => (r === null ? '—' : `${r[0]}/${r[1]}`);

function kindLine(r: KindRow): string {
  return `| ${r.label} | ${r.faults} | ${num(r.accepted)} | ${num(r.applied)} | ${num(r.lostDurable)} | ${num(r.lostWindow)} | ${num(r.duplicates)} | ${num(r.outOfOrder)} | ${r.exits} | ${seconds(r.longestStallMs)} | ${ratio(r.notified)} | ${ratio(r.resolved)} |`;
}

/** The per-fault-kind table. */
export function kindTable(verdict: CampaignVerdict): string[] {
  return [
    '| fault | injected | accepted | applied | lost (durable) | lost (declared window) | duplicates | out of order | unexpected exits | longest stall | notified | resolved |',
    '| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | :-: | :-: |',
    ...verdict.kinds.map(kindLine),
    kindLine(verdict.total).replace('| total |', '| **total** |'),
  ];
}

function portfolioLine(v: PortfolioVerdict): string {
  const lb = v.lowerBound;
  const lost = lb === null ? num(v.lostDurable.length) : `≥ ${lb.lost}`;
  const window = lb === null ? num(v.lostWindow.length) : '?';
  const dup = lb === null ? num(v.duplicates) : `≥ ${lb.duplicates}`;
  const order = v.mode === 'exact' ? (v.outOfOrder ? '**yes**' : 'no') : '?';
  return `| ${v.portfolioId} | ${v.mode} | ${num(v.accepted)} | ${num(v.unknown)} (${num(v.unknownApplied)}) | ${num(v.refused)} | ${num(v.applied)} | ${num(v.bookCount)} | ${lost} | ${window} | ${dup} | ${order} | ${num(v.phantom.length)} |`;
}

/** The per-portfolio table. */
export function portfolioTable(verdict: CampaignVerdict): string[] {
  return [
    '| portfolio | check | accepted | unknown (applied) | refused (full) | applied | book count | lost (durable) | lost (declared window) | duplicates | out of order | phantoms |',
    '| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | :-: | --: |',
    ...verdict.portfolios.map(portfolioLine),
  ];
}

/** The fault timeline table. */
export function faultTable(faults: readonly FaultRecord[], verdict: CampaignVerdict): string[] {
  const notices = new Map(verdict.notices.map((n) => [n.faultId, n]));
  return [
    '| # | at | fault | target | lasted | notices (firing / resolved) | notes |',
    '| --: | --: | --- | --- | --: | --- | --- |',
    ...faults.map((f) => {
      const n = notices.get(f.id);
      const notice =
        n === undefined || n.expected.length === 0
          ? '— (none expected)'
          : `${n.firing} / ${n.resolved} (${n.expected.join(' or ')})`;
      return `| ${f.id} | ${seconds(f.startMs)} | ${f.kind} | ${f.target} | ${seconds(f.endMs - f.startMs)} | ${notice} | ${f.notes.join('; ').replace(/\|/g, '/')} |`;
    }),
  ];
}

export interface ReportInput {
  title: string;
  /** The command that reproduces the run. */
  command: string;
  /** Set when the run's history was checked again (`--recheck`): when. */
  recheckedAt?: Date;
  startedAt: Date;
  machine: Record<string, string>;
  settings: Record<string, string>;
  verdict: CampaignVerdict;
  faults: readonly FaultRecord[];
  /** Relative path of the timeline picture, when there is one. */
  svg?: string;
  /** Said under the tables: what the run left out, how to read it. */
  notes: readonly string[];
  history: readonly string[];
}

/** The whole result document. */
export function resultMarkdown(input: ReportInput): string {
  const v = input.verdict;
  const lines: string[] = [
    `# ${input.title}`,
    '',
    `Written by \`${input.command}\` on ${input.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC${
      input.recheckedAt === undefined
        ? ''
        : `; its history checked again and drawn anew with \`--recheck\` on ${input.recheckedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`
    }.`,
    '',
    v.ok
      ? '**Verdict: passed** — no accepted event lost outside a declared window, none applied twice, none out of order, no process exited unexpectedly.'
      : `**Verdict: FAILED** — ${v.failures.length} finding${v.failures.length === 1 ? '' : 's'} (below).`,
    '',
    '| machine | |',
    '| --- | --- |',
    ...Object.entries(input.machine).map(([k, value]) => `| ${k} | ${value} |`),
    '',
    '| setting | |',
    '| --- | --- |',
    ...Object.entries(input.settings).map(([k, value]) => `| ${k} | ${value} |`),
    '',
    '## Per fault kind',
    '',
    ...kindTable(v),
    '',
    ...(v.blindMs > 0
      ? [
          `The campaign's own Redis clients could not read Redis for ${seconds(v.blindMs)} in all outside the Redis faults (and the ${seconds(REDIS_RECOVERY_MS)} after each): no stall is measured then.`,
          '',
        ]
      : []),
    '## Per portfolio',
    '',
    ...portfolioTable(v),
    '',
  ];
  if (input.svg !== undefined)
    lines.push('## Timeline', '', `![events applied per second, faults shaded](${input.svg})`, '');
  lines.push('## How to read it', '', ...input.notes.map((n) => `- ${n}`), '');
  lines.push(
    '## Fault kinds',
    '',
    '| fault | what the nemesis does | notification expected |',
    '| --- | --- | --- |',
    ...Object.entries(FAULT_TITLES).map(
      ([kind, title]) =>
        `| ${kind} | ${title} | ${EXPECTED_NOTICES[kind as keyof typeof EXPECTED_NOTICES].join(' or ') || '—'} |`,
    ),
    '',
    '## Faults',
    '',
    ...faultTable(input.faults, v),
    '',
  );
  if (!v.ok) {
    lines.push('## Findings', '', ...v.failures.map((f) => `- ${f}`), '');
    if (input.history.length > 0)
      lines.push('### History', '', '```text', ...input.history, '```', '');
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

/** Near a moment: the faults from 15 s before to 30 s after. */
function faultsNear(faults: readonly FaultRecord[], atMs: number): string[] {
  return faults
    .filter((f) => f.endMs >= atMs - 15_000 && f.startMs <= atMs + 30_000)
    .map(
      (f) =>
        `    fault #${f.id} ${f.kind} ${f.target}: ${seconds(f.startMs)} → ${seconds(f.endMs)}${f.notes.length > 0 ? ` (${f.notes.join('; ')})` : ''}`,
    );
}

/**
 * The history of each failing portfolio: every lost range with the seq outcomes around it (and
 * what became of each), the rollback that took it away if a sample saw it applied first, and the
 * faults near it; duplicates and reorderings with the fault before the sample that first saw them.
 */
export function failureHistory(
  verdict: CampaignVerdict,
  input: CampaignInput,
  maxRanges = 5,
): string[] {
  const { faults } = input;
  const out: string[] = [];
  for (const v of verdict.portfolios) {
    const feed = input.feeds.get(v.portfolioId);
    const bad =
      v.lostDurable.length > 0 ||
      v.duplicates > 0 ||
      v.outOfOrder ||
      v.phantom.length > 0 ||
      v.inconsistent !== null ||
      v.mode !== 'exact';
    if (!bad || feed === undefined) continue;
    const range = input.books.get(v.portfolioId)?.applied ?? null;
    out.push(
      `${v.portfolioId}: ${v.mode}; accepted ${v.accepted}, applied ${v.applied}, book count ${v.bookCount ?? '-'}${range === null ? '' : `, book range ${range.first}..${range.last} with ${range.gaps.length} gaps`}`,
    );
    for (const note of v.notes) out.push(`  note: ${note}`);
    const lost = new Set(v.lostDurable);
    const window = new Map(v.lostWindow.map((l) => [l.seq, l.faultId]));
    const fate = (s: number): string => {
      if (range !== null && holds(range, s)) return 'applied';
      if (lost.has(s)) return 'LOST';
      const f = window.get(s);
      if (f !== undefined) return `lost in the declared window of fault #${f}`;
      return 'not applied';
    };
    const ranges = toRanges(v.lostDurable);
    for (const [from, to] of ranges.slice(0, maxRanges)) {
      const first = feed.seqs.get(from);
      const last = feed.seqs.get(to);
      out.push(
        `  lost seqs ${from}–${to} (${to - from + 1}), accepted ${seconds(first?.atMs ?? 0)} → ${seconds(last?.atMs ?? 0)}:`,
      );
      for (let s = Math.max(1, from - 3); s <= to + 3; s++) {
        if (s > from + 2 && s < to - 2) {
          if (s === from + 3) out.push('      …');
          continue;
        }
        const r = feed.seqs.get(s);
        out.push(
          `      seq ${s}: ${r === undefined ? 'never sent' : `${r.outcome} at ${seconds(r.atMs)}`}, ${fate(s)}`,
        );
      }
      const back = rollbackOf(input.rollbacks ?? [], v.portfolioId, from, first?.atMs ?? 0);
      if (back !== undefined) {
        const f = faultBefore(faults, back.atMs);
        out.push(
          `    seen applied, then the book went back at ${seconds(back.atMs)}: ${back.before.first}..${back.before.last} → ${back.after === null ? 'gone' : `${back.after.first}..${back.after.last}`}${f === undefined ? '' : ` (after fault #${f.id} ${f.kind} ${f.target})`}`,
        );
      }
      out.push(...faultsNear(faults, first?.atMs ?? 0));
    }
    if (ranges.length > maxRanges)
      out.push(`  … and ${ranges.length - maxRanges} more lost ranges`);
    if (v.phantom.length > 0)
      out.push(
        `  phantoms (applied, never sent): ${toRanges(v.phantom)
          .slice(0, 10)
          .map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`))
          .join(', ')}`,
      );
    for (const d of input.detections.filter((x) => x.portfolioId === v.portfolioId)) {
      const f = faultBefore(faults, d.atMs);
      out.push(
        `  ${d.what} (${d.amount}) first seen at ${seconds(d.atMs)}${f === undefined ? '' : `, after fault #${f.id} ${f.kind} ${f.target}`}`,
      );
    }
  }
  return out;
}
