import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '@ginkgo-live/testing';
import type { Notification } from '@ginkgo-live/state-keys';
import { parseRoutes, sinksFor, type Routing } from './routes.ts';

const SINKS = ['webhook', 'slack', 'email', 'log'];

const n = (over: Partial<Notification> & { node?: string; portfolio?: string }): Notification => ({
  _v: 1,
  id: 'n1',
  kind: over.kind ?? 'node_lost',
  level: over.level ?? 'critical',
  status: over.status ?? 'firing',
  title: 't',
  message: 'm',
  details: {},
  subject: { node_id: over.node ?? null, portfolio_id: over.portfolio ?? null },
  source: { app: 'test', node_id: null },
  created_at: '2026-12-02T08:00:00.000Z',
});

function routing(text: string): Routing {
  const parsed = parseRoutes(text, 'routes.yaml', SINKS);
  if ('problem' in parsed) throw new Error(`line ${parsed.line}: ${parsed.problem}`);
  return parsed;
}

const FILE = `# critical to e-mail and the pager; node-3 is noisy
routes:
  - match: { node: 'node-3*', level: [warning, info] }
    sinks: []
  - match: { level: critical }
    sinks: [email, webhook]
  - match: { kind: [queue_usage_high, queue_full], status: resolved }
    sinks: [slack, log]
default: [slack]
`;

describe('routes', () => {
  it('sends each notification by the first route that matches every field it names, else by default', () => {
    const r = routing(FILE);
    expect(sinksFor(r, n({ level: 'critical', kind: 'node_lost', node: 'node-1' }))).toEqual([
      'email',
      'webhook',
    ]);
    // node-3's warnings are recorded only; its critical ones still page.
    expect(sinksFor(r, n({ level: 'warning', kind: 'queue_usage_high', node: 'node-3b' }))).toEqual(
      [],
    );
    expect(sinksFor(r, n({ level: 'critical', node: 'node-3' }))).toEqual(['email', 'webhook']);
    expect(
      sinksFor(
        r,
        n({ level: 'warning', kind: 'queue_usage_high', status: 'resolved', portfolio: 'p1' }),
      ),
    ).toEqual(['slack', 'log']);
    // A field the notification lacks (no node) never matches a route that names it.
    expect(sinksFor(r, n({ level: 'warning', kind: 'queue_usage_high', portfolio: 'p1' }))).toEqual(
      ['slack'],
    );
    expect(r.routes.map((route) => route.line)).toEqual([3, 5, 7]);
  });

  it.each([
    ['default: [slack]\nroutes: [\n', 3, /Flow sequence/],
    ['routes: []\n', 1, /needs `default`/],
    ['default: [slack]\nroutes:\n  - match: { level: critical }\n', 3, /needs `sinks`/],
    [
      'default: [slack]\nroutes:\n  - match: { level: urgent }\n    sinks: [email]\n',
      3,
      /no level "urgent"/,
    ],
    [
      'default: [slack]\nroutes:\n  - match: { kind: node_gone }\n    sinks: [email]\n',
      3,
      /no kind "node_gone"/,
    ],
    [
      'default: [slack]\nroutes:\n  - match: { host: a }\n    sinks: [email]\n',
      3,
      /cannot match on "host"/,
    ],
    [
      'default: [slack]\nroutes:\n  - match: { level: critical }\n    sinks: [pager]\n',
      4,
      /no sink "pager" is configured here \(configured: webhook, slack, email, log\)/,
    ],
    ['default: [discord]\n', 1, /no sink "discord"/],
    ['default: [slack]\nroute:\n  - {}\n', 2, /unknown key "route"/],
    [
      'default: [slack]\nroutes:\n  - match: { level: critical }\n    sinks: [email]\n    continue: true\n',
      5,
      /not "continue"/,
    ],
  ])('refuses %j at line %i', (text, line, problem) => {
    const parsed = parseRoutes(text, 'routes.yaml', SINKS);
    expect(parsed).toMatchObject({ line, problem: expect.stringMatching(problem) as unknown });
  });
});

describe('config/notification-routes.example.yaml', () => {
  it('is a routes file that works with e-mail, a webhook, Slack and the log configured', () => {
    const file = `${REPO_ROOT}config/notification-routes.example.yaml`;
    const r = routing(readFileSync(file, 'utf8'));
    expect(sinksFor(r, n({ level: 'critical' }))).toEqual(['email', 'webhook', 'log']);
    expect(sinksFor(r, n({ kind: 'queue_usage_high', level: 'warning', portfolio: 'p1' }))).toEqual(
      ['slack', 'log'],
    );
    expect(sinksFor(r, n({ kind: 'fleet_halted', level: 'warning' }))).toEqual(['slack', 'log']);
  });
});
