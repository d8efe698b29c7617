import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createStateKeys } from '@ginkgo-live/state-keys';
import {
  CONDITIONS,
  dedupeSubject,
  KINDS,
  kindsOf,
  raisedText,
  resolvedText,
  type ConditionName,
  type KindName,
} from './catalogue.ts';
import type { Notifier } from './notifier.ts';

describe('the catalogue: the text and details every sink receives', () => {
  // Each expectation is what the caller wrote before the catalogue, so the wire did not change.
  it('node_lost and its resolved notice', () => {
    expect(
      raisedText('node_lost', { nodeId: 'n1' }, { last_seen: '2026-12-01T00:00:00.000Z' }),
    ).toEqual({
      title: 'Node n1 lost',
      message: 'No heartbeat from n1; its portfolios are moved to other nodes.',
      details: { node_id: 'n1', last_seen: '2026-12-01T00:00:00.000Z' },
    });
    expect(resolvedText('node_lost', { nodeId: 'n1' }, {})).toEqual({
      title: 'Node n1 back',
      message: 'n1 is beating again.',
      details: { node_id: 'n1' },
    });
  });

  it('portfolio_orphaned and its resolved notice', () => {
    const since = '2026-12-01T00:00:00.000Z';
    expect(
      raisedText(
        'portfolio_orphaned',
        { portfolioId: 'p1' },
        { reason: null, orphaned_since: since },
      ),
    ).toEqual({
      title: 'Portfolio p1 has no node',
      message: 'p1 runs nowhere: no reason.',
      details: { portfolio_id: 'p1', reason: null, orphaned_since: since },
    });
    expect(resolvedText('portfolio_orphaned', { portfolioId: 'p1' }, { node_id: 'n2' })).toEqual({
      title: 'Portfolio p1 placed',
      message: 'p1 runs on n2 again.',
      details: { portfolio_id: 'p1', node_id: 'n2' },
    });
  });

  it('catalog_missing: whether the file is reloaded is said, not sent', () => {
    expect(
      raisedText('catalog_missing', {}, { plan_portfolios: 8, reload_from_file: true }),
    ).toEqual({
      title: 'Portfolio catalog missing',
      message:
        'The catalog is gone from Redis (the plan holds 8 portfolios); nothing was unassigned. Reloading the catalog file.',
      details: { plan_portfolios: 8 },
    });
    expect(
      raisedText('catalog_missing', {}, { plan_portfolios: 8, reload_from_file: false }).message,
    ).toBe(
      'The catalog is gone from Redis (the plan holds 8 portfolios); nothing was unassigned. No catalog file was given: reload it.',
    );
    expect(resolvedText('catalog_missing', {}, { portfolios: 8 })).toEqual({
      title: 'Portfolio catalog back',
      message: 'The catalog is in Redis again (8 portfolios); planning goes on.',
      details: { portfolios: 8 },
    });
  });

  it('halt_missing: what the node keeps, and that an operator must halt and resume again', () => {
    expect(raisedText('halt_missing', { nodeId: 'n1' }, { halt_id: 'h1', paused: [] })).toEqual({
      title: 'Halt kept by n1 is gone from Redis',
      message:
        'n1 keeps the trading halt h1, which Redis no longer shows. It stays held until an operator halts (or pauses) and resumes again.',
      details: { node_id: 'n1', halt_id: 'h1', paused: [] },
    });
    expect(
      raisedText('halt_missing', { nodeId: 'n1' }, { halt_id: 'h1', paused: ['p1', 'p2'] }).message,
    ).toBe(
      'n1 keeps the trading halt h1 and the pauses of p1, p2, which Redis no longer shows. It stays held until an operator halts (or pauses) and resumes again.',
    );
    expect(resolvedText('halt_missing', { nodeId: 'n1' }, {}).title).toBe('Holds of n1 settled');
  });

  it('fleet_halted: who halted and why, and the resolved notice', () => {
    const at = '2026-12-01T00:00:00.000Z';
    expect(
      raisedText('fleet_halted', {}, { halted_at: at, by: 'desk-lead', reason: 'exchange outage' }),
    ).toEqual({
      title: 'Trading halted',
      message:
        'desk-lead halted trading for the whole fleet: exchange outage. No portfolio applies events until the halt is lifted; queues keep what arrives until full.',
      details: { halted_at: at, by: 'desk-lead', reason: 'exchange outage' },
    });
    expect(
      raisedText('fleet_halted', {}, { halted_at: at, by: 'ginkgo-ctl:ops', reason: null }).message,
    ).toBe(
      'ginkgo-ctl:ops halted trading for the whole fleet. No portfolio applies events until the halt is lifted; queues keep what arrives until full.',
    );
    expect(resolvedText('fleet_halted', {}, {})).toEqual({
      title: 'Trading resumed',
      message: 'The trading halt was lifted; portfolios go on in queue order.',
      details: {},
    });
  });

  const sample = {
    node_id: 'n1',
    depth: 705,
    capacity: 1_000,
    usage: 0.705,
    refused_since_last_notice: 0,
  };

  it('the queue as the node samples it: the node first in the details, as it always sent them', () => {
    const high = raisedText('queue_usage_high', { portfolioId: 'p1' }, sample);
    expect(high).toEqual({
      title: 'Queue of p1 at 71 %',
      message: '705/1000 events (71 %) waiting for p1.',
      details: {
        node_id: 'n1',
        portfolio_id: 'p1',
        depth: 705,
        capacity: 1_000,
        usage: 0.705,
        refused_since_last_notice: 0,
      },
    });
    expect(Object.keys(high.details)).toEqual([
      'node_id',
      'portfolio_id',
      'depth',
      'capacity',
      'usage',
      'refused_since_last_notice',
    ]);
    const full = { ...sample, depth: 1_000, usage: 1 };
    expect(raisedText('queue_full', { portfolioId: 'p1' }, full)).toMatchObject({
      title: 'Queue of p1 is full',
      message: '1000/1000 events: new events for p1 are refused.',
    });
    const back = resolvedText(
      'queue',
      { portfolioId: 'p1' },
      { ...sample, depth: 300, usage: 0.3, resolve_below: 0.6 },
    );
    expect(back).toEqual({
      title: 'Queue of p1 back to normal',
      message: '300/1000 events (30 %), below 60 %.',
      details: {
        node_id: 'n1',
        portfolio_id: 'p1',
        depth: 300,
        capacity: 1_000,
        usage: 0.3,
        refused_since_last_notice: 0,
      },
    });
  });

  it('the queue as its producer sees it', () => {
    expect(
      raisedText(
        'queue_full',
        { portfolioId: 'p1' },
        { depth: 20, capacity: 20, seen_by: 'feed:1' },
      ),
    ).toEqual({
      title: 'Queue of p1 is full',
      message: "20/20 events: the producer's new events for p1 are refused.",
      details: { portfolio_id: 'p1', depth: 20, capacity: 20, seen_by: 'feed:1' },
    });
    expect(
      resolvedText(
        'queue',
        { portfolioId: 'p1' },
        { depth: 3, capacity: 20, seen_by: 'feed:1', refused_since_raise: 4 },
      ),
    ).toEqual({
      title: 'Queue of p1 back to normal',
      message: '3/20 events: p1 accepts events again.',
      details: {
        portfolio_id: 'p1',
        depth: 3,
        capacity: 20,
        seen_by: 'feed:1',
        refused_since_raise: 4,
      },
    });
  });

  it('scheduler_leader_missing: how long is said, when it began is sent', () => {
    expect(
      raisedText(
        'scheduler_leader_missing',
        {},
        { missing_since: '2026-12-01T00:00:00.000Z', missing_for_ms: 31_400 },
      ),
    ).toEqual({
      title: 'No scheduler leader',
      message:
        'No scheduler has held the leader lock for 31 s: portfolios keep running where they are, but nothing is placed or moved (dead or draining nodes, control requests) until a scheduler leads again.',
      details: { missing_since: '2026-12-01T00:00:00.000Z' },
    });
    expect(resolvedText('scheduler_leader_missing', {}, { leader: 's2' })).toEqual({
      title: 'Scheduler leader back',
      message: 's2 leads the plan again.',
      details: { leader: 's2' },
    });
  });

  it('redis_unavailable, told by the reporter or late', () => {
    const since = '2026-12-01T00:00:00.000Z';
    const until = '2026-12-01T00:00:12.000Z';
    expect(
      raisedText(
        'redis_unavailable',
        {},
        { app: 'execution-node', since, seconds: 12, held: ['x'], dropped: 0 },
      ),
    ).toEqual({
      title: 'Redis unavailable',
      message:
        'execution-node cannot reach Redis for 12 s; notifications are held until it is back.',
      details: { since, held: ['x'], dropped: 0 },
    });
    expect(resolvedText('redis_unavailable', {}, { seconds: 13, held: 1, dropped: 0 })).toEqual({
      title: 'Redis available again',
      message: 'Redis is back after 13 s.',
      details: { held: 1, dropped: 0 },
    });
    const late = { since, until, seconds: 12, late: true } as const;
    expect(raisedText('redis_unavailable', {}, late)).toEqual({
      title: 'Redis unavailable',
      message:
        'Redis could not be reached for 12 s (told late: the process that watches for outages was not running).',
      details: { since, until, late: true },
    });
    expect(resolvedText('redis_unavailable', {}, late)).toEqual({
      title: 'Redis available again',
      message: 'Redis is back after 12 s.',
      details: { since, until, late: true },
    });
  });
});

describe('the catalogue and the Redis keys of the release before it', () => {
  // A fleet upgraded in the middle of an incident must find the conditions the old release raised.
  it('keeps every dedupe group and the kinds each clears', () => {
    const groups = Object.fromEntries(
      (Object.keys(CONDITIONS) as ConditionName[]).map((c) => [c, CONDITIONS[c].group]),
    );
    expect(groups).toEqual({
      node_lost: 'node',
      portfolio_orphaned: 'orphan',
      catalog_missing: 'catalog_missing',
      fleet_halted: 'fleet_halted',
      halt_missing: 'halt_missing',
      queue: 'queue',
      scheduler_leader_missing: 'scheduler_leader',
      redis_unavailable: 'redis_unavailable',
    });
    expect(kindsOf('queue')).toEqual([
      { kind: 'queue_usage_high', level: 'warning' },
      { kind: 'queue_usage_high', level: 'critical' },
      { kind: 'queue_full', level: 'critical' },
    ]);
    expect(kindsOf('node_lost')).toEqual([{ kind: 'node_lost', level: 'critical' }]);
    expect(kindsOf('portfolio_orphaned')).toEqual([
      { kind: 'portfolio_orphaned', level: 'critical' },
    ]);
  });

  it('spells the same keys for the same subject', () => {
    const keys = createStateKeys();
    expect(
      keys.notificationActive(CONDITIONS.node_lost.group, dedupeSubject({ nodeId: 'n1' })),
    ).toBe('notify:active:node:{n1:-}');
    expect(
      keys.notificationActive(CONDITIONS.queue.group, dedupeSubject({ portfolioId: 'p1' })),
    ).toBe('notify:active:queue:{-:p1}');
    expect(
      keys.notificationCooldown('queue_full', dedupeSubject({ portfolioId: 'p1' }), 'critical'),
    ).toBe('notify:cooldown:queue_full:{-:p1}:critical');
    expect(
      keys.notificationActive(CONDITIONS.scheduler_leader_missing.group, dedupeSubject({})),
    ).toBe('notify:active:scheduler_leader:{-:-}');
  });

  it('names each kind and condition as state-keys accepts them, and gives every kind a level', () => {
    for (const kind of Object.keys(KINDS) as KindName[]) {
      expect(kind).toMatch(/^[a-z][a-z0-9_]{0,63}$/);
      expect(KINDS[kind].levels.length).toBeGreaterThan(0);
      expect(CONDITIONS[KINDS[kind].condition].subject).toBe(KINDS[kind].subject);
    }
  });
});

describe('raising by name is checked by the compiler', () => {
  it('refuses an unknown kind, a missing or wrong subject, a level the kind lacks, and wrong details', () => {
    const calls: unknown[][] = [];
    const notifier = {
      raise: (...args: unknown[]) => calls.push(args),
      resolve: (...args: unknown[]) => calls.push(args),
    } as unknown as Pick<Notifier, 'raise' | 'resolve'>;
    const sample = {
      node_id: 'n1',
      depth: 1,
      capacity: 2,
      usage: 0.5,
      refused_since_last_notice: 0,
    };
    // @ts-expect-error not a kind of the catalogue
    notifier.raise('node_gone', { nodeId: 'n1' }, { last_seen: null });
    // @ts-expect-error node_lost is about a node: the subject needs its id
    notifier.raise('node_lost', {}, { last_seen: null });
    // @ts-expect-error node_lost is about a node, not a portfolio
    notifier.raise('node_lost', { portfolioId: 'p1' }, { last_seen: null });
    // @ts-expect-error queue_usage_high has two levels: the caller says which
    notifier.raise('queue_usage_high', { portfolioId: 'p1' }, sample);
    // @ts-expect-error queue_full is only critical
    notifier.raise('queue_full', { portfolioId: 'p1' }, sample, 'warning');
    // @ts-expect-error the details of node_lost are not those of a queue
    notifier.raise('node_lost', { nodeId: 'n1' }, sample);
    // @ts-expect-error redis_unavailable is told straight to the webhooks, never queued
    notifier.raise('redis_unavailable', {}, { since: '', until: '', seconds: 1, late: true });
    // @ts-expect-error queue_full resolves with its condition, `queue`
    notifier.resolve('queue_full', { portfolioId: 'p1' }, {});
    notifier.raise('queue_usage_high', { portfolioId: 'p1' }, sample, 'warning');
    notifier.resolve('node_lost', { nodeId: 'n1' }, {});
    expect(calls).toHaveLength(10);
  });
});

const README = new URL('../README.md', import.meta.url);
const START =
  '<!-- catalogue: generated from src/catalogue.ts, checked by src/catalogue.test.ts -->';
const END = '<!-- /catalogue -->';

/** The README's table of the catalogue: one row per kind. */
function catalogueRows(): string[][] {
  const header = [
    'kind',
    'levels',
    'subject',
    'fault',
    'raised by',
    'resolved by (group)',
    'checked in',
  ];
  const rows = (Object.keys(KINDS) as KindName[]).map((kind) => {
    const spec = KINDS[kind];
    const condition = CONDITIONS[spec.condition];
    return [
      `\`${kind}\``,
      spec.levels.join(', '),
      spec.subject,
      spec.fault,
      spec.raisedBy,
      `${condition.resolvedBy} (\`${condition.group}\`)`,
      spec.checkedIn.map((f) => `\`${f}\``).join(', '),
    ];
  });
  return [header, ...rows];
}

function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
}

describe("the README's table of who raises what", () => {
  it('is the catalogue (UPDATE_README=1 writes it)', () => {
    const text = readFileSync(README, 'utf8');
    const start = text.indexOf(START);
    const end = text.indexOf(END);
    expect(start, `README.md lacks the marker ${START}`).toBeGreaterThanOrEqual(0);
    expect(end).toBeGreaterThan(start);
    const expected = catalogueRows();
    if (process.env['UPDATE_README'] === '1') {
      const [header = [], ...rows] = expected;
      const table = [header, header.map(() => '---'), ...rows]
        .map((row) => `| ${row.join(' | ')} |`)
        .join('\n');
      writeFileSync(
        README,
        `${text.slice(0, start + START.length)}\n\n${table}\n\n${text.slice(end)}`,
      );
      return;
    }
    const lines = text
      .slice(start + START.length, end)
      .split('\n')
      .filter((l) => l.trim().startsWith('|'));
    const table = lines.filter((_, i) => i !== 1).map(cells);
    expect(table).toEqual(expected);
  });
});
