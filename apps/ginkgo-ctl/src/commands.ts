import { CtlError, type GatewayClient } from './client.ts';
import { ago, percent, table } from './table.ts';

/** What a command prints and how it ends: 0 healthy, 1 degraded. */
export interface Outcome {
  text: string;
  json: unknown;
  exitCode: 0 | 1;
}

export interface CommandContext {
  client: GatewayClient;
  /** Terminal width the tables fit. */
  width: number;
  options: Record<string, string | undefined>;
}

interface Node {
  node_id: string;
  host: string | null;
  status: 'online' | 'draining' | 'lost';
  heartbeat_age_ms: number | null;
  portfolio_count: number;
  capacity: number | null;
  queue_usage_max: number | null;
  events_per_second: number | null;
  cpu_percent: number | null;
  memory_rss_bytes: number | null;
  redis: { healthy: boolean } | null;
  error?: string;
}
interface NodesPage {
  nodes: Node[];
  total_count: number;
  online_count: number;
}
interface Portfolio {
  portfolio_id: string;
  status: string;
  node_id: string | null;
  assignment: { status: string; node_id: string | null; reason: string | null };
  state: {
    queue_depth: number;
    queue_capacity: number;
    events_per_second?: number;
    processed_count: number;
    last_error?: string | null;
  } | null;
  error?: string;
}
interface PortfoliosPage {
  portfolios: Portfolio[];
  total_count: number;
}
interface NotificationEntry {
  id?: string;
  created_at?: string;
  level?: string;
  kind?: string;
  status?: string;
  title?: string;
  subject?: { node_id: string | null; portfolio_id: string | null };
  delivery?: { status: string; silenced_by?: string };
  error?: string;
}
interface Plan {
  plans: { node_id: string; portfolio_ids: string[]; portfolio_count: number }[];
  total_nodes: number;
  total_portfolios: number;
  orphaned: { portfolio_id: string; reason: string | null }[];
  version: number | null;
  leader: string | null;
}
interface Trading {
  halted: { halted_at: string; by: string; reason: string | null } | null;
  paused: { portfolio_id: string }[];
}
interface Ready {
  status: 'ready' | 'not_ready';
  checks?: { redis?: { status: string; latency_ms?: number } };
}

const PAGE = 1_000;

/** Every item of a paged list (`limit`/`offset`), page by page. */
async function all<T, P extends { total_count: number }>(
  client: GatewayClient,
  path: string,
  items: (page: P) => T[],
): Promise<{ items: T[]; first: P }> {
  const join = path.includes('?') ? '&' : '?';
  const first = await client.get<P>(`${path}${join}limit=${PAGE}&offset=0`);
  const out = [...items(first)];
  for (let offset = PAGE; offset < first.total_count; offset += PAGE)
    out.push(...items(await client.get<P>(`${path}${join}limit=${PAGE}&offset=${offset}`)));
  return { items: out, first };
}

const query = (params: Record<string, string | undefined>): string => {
  const set = Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined);
  return set.length === 0 ? '' : `?${new URLSearchParams(set).toString()}`;
};

const mb = (bytes: number | null): string =>
  bytes === null ? '-' : `${Math.round(bytes / 1_048_576)}MB`;
const num = (value: number | null | undefined, digits = 0): string =>
  value === null || value === undefined ? '-' : value.toFixed(digits);

export async function nodes(ctx: CommandContext): Promise<Outcome> {
  const { items } = await all<Node, NodesPage>(
    ctx.client,
    `/api/nodes${query({ status: ctx.options['status'] })}`,
    (p) => p.nodes,
  );
  const lost = items.filter((n) => n.status === 'lost').length;
  const text = table(
    [
      { heading: 'NODE' },
      { heading: 'STATUS' },
      { heading: 'BEAT', right: true },
      { heading: 'PORTFOLIOS', right: true },
      { heading: 'QUEUE', right: true },
      { heading: 'EV/S', right: true },
      { heading: 'CPU', right: true },
      { heading: 'RSS', right: true },
      { heading: 'REDIS' },
      { heading: 'HOST', shrinks: true },
    ],
    items.map((n) => [
      n.node_id,
      n.status,
      ago(n.heartbeat_age_ms),
      `${n.portfolio_count}/${n.capacity ?? '-'}`,
      percent(n.queue_usage_max),
      num(n.events_per_second, 1),
      n.cpu_percent === null ? '-' : `${Math.round(n.cpu_percent)}%`,
      mb(n.memory_rss_bytes),
      n.redis === null ? '-' : n.redis.healthy ? 'ok' : 'failing',
      n.error ?? n.host ?? '-',
    ]),
    ctx.width,
  );
  return { text, json: { nodes: items }, exitCode: lost > 0 ? 1 : 0 };
}

export async function portfolios(ctx: CommandContext): Promise<Outcome> {
  const { items } = await all<Portfolio, PortfoliosPage>(
    ctx.client,
    `/api/portfolios${query({ status: ctx.options['status'], node_id: ctx.options['node'] })}`,
    (p) => p.portfolios,
  );
  const bad = items.filter((p) => p.status === 'orphaned' || p.status === 'error').length;
  const text = table(
    [
      { heading: 'PORTFOLIO' },
      { heading: 'STATUS' },
      { heading: 'NODE' },
      { heading: 'QUEUE', right: true },
      { heading: 'EV/S', right: true },
      { heading: 'PROCESSED', right: true },
      { heading: 'REASON', shrinks: true },
    ],
    items.map((p) => [
      p.portfolio_id,
      p.status,
      p.node_id ?? p.assignment.node_id ?? '-',
      p.state === null ? '-' : `${p.state.queue_depth}/${p.state.queue_capacity}`,
      num(p.state?.events_per_second, 1),
      p.state === null ? '-' : String(p.state.processed_count),
      p.error ?? p.state?.last_error ?? p.assignment.reason ?? '',
    ]),
    ctx.width,
  );
  return { text, json: { portfolios: items }, exitCode: bad > 0 ? 1 : 0 };
}

export async function notifications(ctx: CommandContext): Promise<Outcome> {
  const answer = await ctx.client.get<{ notifications: NotificationEntry[] }>(
    `/api/notifications${query({
      limit: ctx.options['limit'] ?? '20',
      level: ctx.options['level'],
      kind: ctx.options['kind'],
    })}`,
  );
  const text = table(
    [
      { heading: 'TIME' },
      { heading: 'LEVEL' },
      { heading: 'KIND' },
      { heading: 'STATUS' },
      { heading: 'SUBJECT' },
      { heading: 'DELIVERY' },
      { heading: 'TITLE', shrinks: true },
    ],
    answer.notifications.map((n) =>
      n.error !== undefined
        ? ['-', '-', '-', '-', '-', '-', `unreadable: ${n.error}`]
        : [
            (n.created_at ?? '').replace('T', ' ').slice(0, 19),
            n.level ?? '-',
            n.kind ?? '-',
            n.status ?? '-',
            [n.subject?.node_id, n.subject?.portfolio_id].filter((s) => s != null).join('/') || '-',
            n.delivery?.status ?? '-',
            n.title ?? '',
          ],
    ),
    ctx.width,
  );
  return { text, json: answer, exitCode: 0 };
}

export async function plan(ctx: CommandContext): Promise<Outcome> {
  const p = await ctx.client.get<Plan>('/api/schedule/plan');
  const lines = [
    `plan v${p.version ?? '-'}  leader ${p.leader ?? 'none'}  ${p.total_portfolios} portfolios on ${p.total_nodes} nodes`,
    '',
    table(
      [
        { heading: 'NODE' },
        { heading: 'COUNT', right: true },
        { heading: 'PORTFOLIOS', shrinks: true },
      ],
      p.plans.map((n) => [n.node_id, String(n.portfolio_count), n.portfolio_ids.join(' ')]),
      ctx.width,
    ),
  ];
  if (p.orphaned.length > 0)
    lines.push(
      '',
      `orphaned: ${p.orphaned.map((o) => `${o.portfolio_id}${o.reason === null ? '' : ` (${o.reason})`}`).join(', ')}`,
    );
  return {
    text: lines.join('\n'),
    json: p,
    exitCode: p.orphaned.length > 0 || p.leader === null ? 1 : 0,
  };
}

/** The fleet in a few lines, and whether anything needs an operator. */
export async function status(ctx: CommandContext): Promise<Outcome> {
  const { client } = ctx;
  const notReady: Ready = { status: 'not_ready' };
  const ready = await client.get<Ready>('/api/ready').catch((err: unknown) => {
    // Not ready answers 503; the rest of the status is still worth reading.
    if ((err as { exitCode?: number }).exitCode === 1) return notReady;
    throw err;
  });
  const [nodesAll, lost, draining, orphaned, errors, trading, p] = await Promise.all([
    client.get<NodesPage>('/api/nodes?limit=1'),
    client.get<NodesPage>('/api/nodes?status=lost&limit=50'),
    client.get<NodesPage>('/api/nodes?status=draining&limit=50'),
    client.get<PortfoliosPage>('/api/portfolios?status=orphaned&limit=50'),
    client.get<PortfoliosPage>('/api/portfolios?status=error&limit=50'),
    client.get<Trading>('/api/fleet/trading'),
    client.get<Plan>('/api/schedule/plan'),
  ]);
  const problems: string[] = [];
  if (ready.status !== 'ready') problems.push('Redis is not answering the gateway');
  if (p.leader === null) problems.push('no scheduler leads');
  if (lost.total_count > 0)
    problems.push(
      `${lost.total_count} node(s) lost: ${lost.nodes.map((n) => n.node_id).join(', ')}`,
    );
  if (orphaned.total_count > 0)
    problems.push(
      `${orphaned.total_count} portfolio(s) orphaned: ${orphaned.portfolios.map((x) => x.portfolio_id).join(', ')}`,
    );
  if (errors.total_count > 0)
    problems.push(
      `${errors.total_count} portfolio(s) in error: ${errors.portfolios.map((x) => x.portfolio_id).join(', ')}`,
    );
  if (trading.halted !== null)
    problems.push(
      `trading halted since ${trading.halted.halted_at} by ${trading.halted.by}${trading.halted.reason === null ? '' : `: ${trading.halted.reason}`}`,
    );
  const latency = ready.checks?.redis?.latency_ms;
  const text = [
    `redis       ${ready.status === 'ready' ? `up${latency === undefined ? '' : ` (${latency} ms)`}` : 'DOWN'}`,
    `scheduler   ${p.leader === null ? 'NO LEADER' : `${p.leader} leads, plan v${p.version ?? '-'}`}`,
    `nodes       ${nodesAll.online_count} online of ${nodesAll.total_count}, ${draining.total_count} draining, ${lost.total_count} lost`,
    `portfolios  ${p.total_portfolios} in the plan, ${orphaned.total_count} orphaned, ${errors.total_count} in error, ${trading.paused.length} paused`,
    `trading     ${trading.halted === null ? 'on' : 'HALTED'}`,
    '',
    problems.length === 0 ? 'healthy' : `degraded:\n${problems.map((x) => `  - ${x}`).join('\n')}`,
  ].join('\n');
  return {
    text,
    json: {
      healthy: problems.length === 0,
      problems,
      redis: ready.status === 'ready' ? 'up' : 'down',
      leader: p.leader,
      plan_version: p.version,
      nodes: {
        total: nodesAll.total_count,
        online: nodesAll.online_count,
        draining: draining.total_count,
        lost: lost.total_count,
      },
      portfolios: {
        in_plan: p.total_portfolios,
        orphaned: orphaned.total_count,
        error: errors.total_count,
        paused: trading.paused.length,
      },
      halted: trading.halted !== null,
    },
    exitCode: problems.length === 0 ? 0 : 1,
  };
}

interface SilenceView {
  id: string;
  matchers: Partial<Record<'kind' | 'level' | 'node' | 'portfolio', string[]>>;
  starts_at: string;
  ends_at: string;
  created_by: string;
  comment: string;
  expired_by?: string;
}

const matcherText = (m: SilenceView['matchers']): string =>
  Object.entries(m)
    .map(([field, values]) => `${field}=${values.join(',')}`)
    .join(' ');

export async function silences(ctx: CommandContext): Promise<Outcome> {
  const answer = await ctx.client.get<{ active: SilenceView[]; ended: SilenceView[] }>(
    '/api/silences',
  );
  const now = Date.now();
  const rows = [
    ...answer.active.map((s) => [s, `ends in ${ago(Date.parse(s.ends_at) - now)}`] as const),
    ...answer.ended.map(
      (s) =>
        [
          s,
          `ended ${ago(now - Date.parse(s.ends_at))} ago${s.expired_by === undefined ? '' : ` by ${s.expired_by}`}`,
        ] as const,
    ),
  ];
  const text = table(
    [
      { heading: 'ID' },
      { heading: 'STATE' },
      { heading: 'BY' },
      { heading: 'MATCHES' },
      { heading: 'COMMENT', shrinks: true },
    ],
    rows.map(([s, state]) => [s.id, state, s.created_by, matcherText(s.matchers), s.comment]),
    ctx.width,
  );
  return { text, json: answer, exitCode: 0 };
}

/** Seconds of a `30s`, `15m`, `2h`, `7d` duration, checked here so a typo is a usage error. */
const DURATION = /^\d{1,6}(s|m|h|d)$/;

export async function silence(ctx: CommandContext): Promise<Outcome> {
  const o = ctx.options;
  const list = (v: string | undefined) => (v === undefined ? undefined : v.split(','));
  const matchers = Object.fromEntries(
    (['kind', 'level', 'node', 'portfolio'] as const)
      .map((f) => [f, list(o[f])] as const)
      .filter(([, v]) => v !== undefined),
  );
  if (Object.keys(matchers).length === 0)
    throw new CtlError('silence needs at least one of --node, --portfolio, --kind, --level', 2);
  const duration = o['for'];
  if (duration === undefined || !DURATION.test(duration))
    throw new CtlError('silence needs --for, a number and a unit: 30m, 2h, 7d', 2);
  const made = await ctx.client.post<SilenceView>('/api/silences', {
    matchers,
    duration,
    ...(o['comment'] === undefined ? {} : { comment: o['comment'] }),
  });
  return {
    text: `silenced ${matcherText(made.matchers)} until ${made.ends_at} (id ${made.id})`,
    json: made,
    exitCode: 0,
  };
}

export async function unsilence(ctx: CommandContext): Promise<Outcome> {
  const id = ctx.options['id'];
  if (id === undefined) throw new CtlError('unsilence needs the silence id', 2);
  const ended = await ctx.client.post<SilenceView>(
    `/api/silences/${encodeURIComponent(id)}/expire`,
    {},
  );
  return { text: `ended silence ${ended.id}`, json: ended, exitCode: 0 };
}

interface Queued {
  request_id: string;
}
interface ControlOutcome {
  request_id: string;
  status: 'accepted' | 'refused' | 'pending';
  reason?: string | null;
  plan_version?: number | null;
}

/**
 * Sends a request the scheduler answers (drain, migrate, catalog), then waits for its answer:
 * accepted is 0, refused or no answer within the timeout is 1 (the request stays queued: its id
 * is printed, `GET /api/control/<id>` tells later).
 */
async function queued(
  ctx: CommandContext,
  what: string,
  send: () => Promise<Queued>,
): Promise<Outcome> {
  const { request_id } = await send();
  const timeoutS = Number(ctx.options['timeout'] ?? '15');
  if (!Number.isFinite(timeoutS) || timeoutS <= 0)
    throw new CtlError('--timeout takes a number of seconds', 2);
  const deadline = Date.now() + timeoutS * 1_000;
  for (;;) {
    const outcome = await ctx.client.get<ControlOutcome>(`/api/control/${request_id}`);
    if (outcome.status !== 'pending') {
      const accepted = outcome.status === 'accepted';
      return {
        text: accepted
          ? `${what}: accepted (plan v${outcome.plan_version ?? '-'})`
          : `${what}: refused: ${outcome.reason ?? 'no reason given'}`,
        json: outcome,
        exitCode: accepted ? 0 : 1,
      };
    }
    if (Date.now() >= deadline)
      return {
        text: `${what}: no answer from the scheduler within ${timeoutS} s; still queued as ${request_id} (GET /api/control/${request_id})`,
        json: outcome,
        exitCode: 1,
      };
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

interface Changed {
  action: string;
  repeated: boolean;
  warning?: string | null;
}

/** A trading change (answered at once): done is 0; a warning (no replica acknowledged) is said. */
async function traded(what: string, send: () => Promise<Changed>): Promise<Outcome> {
  const answer = await send();
  const lines = [`${what}: done${answer.repeated ? ' (already made by this request)' : ''}`];
  if (typeof answer.warning === 'string' && answer.warning !== '')
    lines.push(`warning: ${answer.warning}`);
  return { text: lines.join('\n'), json: answer, exitCode: 0 };
}

const arg = (ctx: CommandContext, name: string): string => {
  const value = ctx.options[name];
  if (value === undefined) throw new CtlError(`needs <${name}>`, 2);
  return value;
};
const path = encodeURIComponent;

export const drain = (ctx: CommandContext) =>
  queued(ctx, `drain ${arg(ctx, 'node')}`, () =>
    ctx.client.post<Queued>(`/api/nodes/${path(arg(ctx, 'node'))}/drain`, {}),
  );
export const undrain = (ctx: CommandContext) =>
  queued(ctx, `undrain ${arg(ctx, 'node')}`, () =>
    ctx.client.post<Queued>(`/api/nodes/${path(arg(ctx, 'node'))}/undrain`, {}),
  );
export const migrate = (ctx: CommandContext) =>
  queued(ctx, `migrate ${arg(ctx, 'portfolio')} to ${arg(ctx, 'node')}`, () =>
    ctx.client.post<Queued>('/api/schedule/migrate', {
      portfolio_id: arg(ctx, 'portfolio'),
      target_node: arg(ctx, 'node'),
    }),
  );
export const catalogAdd = (ctx: CommandContext) => {
  let spec: unknown;
  try {
    spec = JSON.parse(arg(ctx, 'spec'));
  } catch {
    throw new CtlError(
      'catalog-add takes the portfolio as JSON, e.g. \'{"portfolio_id":"p9",...}\'',
      2,
    );
  }
  return queued(ctx, 'catalog-add', () => ctx.client.post<Queued>('/api/portfolios', spec));
};
export const catalogRemove = (ctx: CommandContext) =>
  queued(ctx, `catalog-remove ${arg(ctx, 'portfolio')}`, () =>
    ctx.client.delete<Queued>(`/api/portfolios/${path(arg(ctx, 'portfolio'))}`),
  );
export const halt = (ctx: CommandContext) =>
  traded('halt', () =>
    ctx.client.post<Changed>('/api/fleet/halt', { reason: ctx.options['reason'] ?? null }),
  );
export const unhalt = (ctx: CommandContext) =>
  traded('unhalt', () => ctx.client.post<Changed>('/api/fleet/resume', {}));
export const pause = (ctx: CommandContext) =>
  traded(`pause ${arg(ctx, 'portfolio')}`, () =>
    ctx.client.post<Changed>(`/api/portfolios/${path(arg(ctx, 'portfolio'))}/pause`, {
      reason: ctx.options['reason'] ?? null,
    }),
  );
export const resume = (ctx: CommandContext) =>
  traded(`resume ${arg(ctx, 'portfolio')}`, () =>
    ctx.client.post<Changed>(`/api/portfolios/${path(arg(ctx, 'portfolio'))}/resume`, {}),
  );

export const COMMANDS = {
  status,
  nodes,
  portfolios,
  notifications,
  plan,
  silences,
  silence,
  unsilence,
  drain,
  undrain,
  migrate,
  'catalog-add': catalogAdd,
  'catalog-remove': catalogRemove,
  halt,
  unhalt,
  pause,
  resume,
} as const;
export type CommandName = keyof typeof COMMANDS;
