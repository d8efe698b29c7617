import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cliEntry,
  freePort,
  ManagedProcess,
  RedisServer,
  StackFixture,
  tsEntry,
  waitFor,
  type ManagedProcess as Process,
} from '@ginkgo-live/testing';

/**
 * The real ginkgo-ctl binary against a real stack: Redis, a scheduler, two nodes and a gateway
 * that wants keys. Each run is a process, as an operator's shell or a script runs it.
 */
const READ_KEY = 'ctl-read-secret-0123456789';
const OPERATE_KEY = 'ctl-operate-secret-0123456789';
let server: RedisServer;
let fx: StackFixture;
let gatewayUrl: string;
let nodeB: Process;

beforeAll(async () => {
  server = await RedisServer.start();
  fx = new StackFixture(server, { startTimeoutMs: 60_000 });
  for (const id of ['p1', 'p2', 'p3', 'p4']) {
    await fx.addToCatalog(id);
    await fx.seedBook(id);
  }
  const [, , b, gateway] = await Promise.all([
    fx.startScheduler('s1'),
    fx.startNode('a'),
    fx.startNode('b'),
    fx.startGateway({ GATEWAY_API_KEYS: `cli:read:${READ_KEY},desk:operate:${OPERATE_KEY}` }),
  ]);
  nodeB = b;
  gatewayUrl = gateway.url;
  await waitFor(
    async () => {
      for (const id of ['p1', 'p2', 'p3', 'p4'])
        if ((await fx.state(id))?.status !== 'running') return false;
      return true;
    },
    { timeoutMs: 30_000, description: 'every portfolio running' },
  );
}, 120_000);
afterAll(async () => {
  await fx.close();
  await server.cleanup();
});

/**
 * The ginkgo-ctl process with these arguments, as the gateway's reader: from its bundle (made by
 * the tests' global setup from the sources as they are), or `fromSource`, as `pnpm ginkgo-ctl`
 * runs it (tsx), which takes seconds longer to start.
 */
function ctlProcess(
  args: string[],
  env: Record<string, string | undefined> = {},
  fromSource = false,
): Process {
  const ctlEnv = { GINKGO_URL: gatewayUrl, GINKGO_API_KEY: READ_KEY, ...env };
  const file = 'apps/ginkgo-ctl/src/main.ts';
  const entry = fromSource
    ? tsEntry('ginkgo-ctl', file, ctlEnv)
    : cliEntry('ginkgo-ctl', file, ctlEnv);
  return ManagedProcess.start({ ...entry, args: [...(entry.args ?? []), ...args] });
}

interface Run {
  code: number | null;
  out: string;
}

/** Runs ginkgo-ctl to its end. */
async function ctl(
  args: string[],
  env: Record<string, string | undefined> = {},
  fromSource = false,
): Promise<Run> {
  const p = ctlProcess(args, env, fromSource);
  const exit = await p.waitForExit(30_000);
  return { code: exit.code, out: p.output };
}

describe('ginkgo-ctl against the gateway', () => {
  it('status: healthy, exit 0; --json for scripts', async () => {
    // Once as an operator starts it from the repository: the sources, with tsx.
    const text = await ctl(['status'], {}, true);
    expect(text.code, text.out).toBe(0);
    expect(text.out).toMatch(/nodes\s+2 online of 2, 0 draining, 0 lost/);
    expect(text.out).toMatch(/scheduler\s+s1 leads/);
    expect(text.out).toContain('healthy');
    const json = await ctl(['status', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({
      healthy: true,
      problems: [],
      redis: 'up',
      leader: 's1',
      nodes: { total: 2, online: 2, draining: 0, lost: 0 },
      portfolios: { in_plan: 4, orphaned: 0, error: 0, paused: 0 },
      halted: false,
    });
  });

  it('nodes, portfolios, plan and notifications: tables that fit the terminal, and JSON', async () => {
    const nodes = await ctl(['nodes']);
    expect(nodes.code, nodes.out).toBe(0);
    const lines = nodes.out.split('\n');
    expect(lines[0]).toMatch(/^NODE\s+STATUS\s+BEAT\s+PORTFOLIOS/);
    expect(lines.filter((l) => /^(a|b)\s+online\s/.test(l))).toHaveLength(2);
    // Not a terminal: 120 columns at most.
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(120);

    const portfolios = JSON.parse((await ctl(['portfolios', '--json'])).out) as {
      portfolios: { portfolio_id: string; status: string }[];
    };
    expect(portfolios.portfolios.map((p) => [p.portfolio_id, p.status]).sort()).toEqual([
      ['p1', 'running'],
      ['p2', 'running'],
      ['p3', 'running'],
      ['p4', 'running'],
    ]);
    const onA = await ctl(['portfolios', '--node', 'a']);
    const plan = JSON.parse((await ctl(['plan', '--json'])).out) as {
      plans: { node_id: string; portfolio_ids: string[] }[];
    };
    const planned = plan.plans.find((n) => n.node_id === 'a')?.portfolio_ids ?? [];
    expect(
      onA.out
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/)[0])
        .sort(),
    ).toEqual([...planned].sort());
    const notifications = await ctl(['notifications', '--limit', '5']);
    expect(notifications.code).toBe(0);
    expect(notifications.out.split('\n')[0]).toMatch(/^TIME\s+LEVEL\s+KIND/);
  });

  it('usage and keys: exit 2 with one line that says what to change; no gateway: exit 1', async () => {
    const unknown = await ctl(['nodez']);
    expect(unknown.code).toBe(2);
    expect(unknown.out).toContain('ginkgo-ctl: unknown command "nodez"');
    const badOption = await ctl(['nodes', '--node', 'a']);
    expect(badOption.code).toBe(2);
    expect(badOption.out).toContain('nodes takes no "--node"');
    const noKey = await ctl(['nodes'], { GINKGO_API_KEY: undefined });
    expect(noKey.code).toBe(2);
    expect(noKey.out).toMatch(/wants an API key .*set GINKGO_API_KEY or GINKGO_API_KEY_FILE/);
    const closed = await freePort();
    const gone = await ctl(['status'], { GINKGO_URL: `http://127.0.0.1:${closed}` });
    expect(gone.code).toBe(1);
    expect(gone.out).toContain(
      `cannot reach the gateway at http://127.0.0.1:${closed} (ECONNREFUSED): is it running? set GINKGO_URL or --url`,
    );
    for (const run of [unknown, badOption, noKey, gone]) expect(run.out).not.toMatch(/\n\s+at /);
  });

  it('--watch prints again until Ctrl-C, then exits 0', async () => {
    const p = ctlProcess(['nodes', '--watch', '0.5']);
    await waitFor(() => p.lines.filter((l) => l.startsWith('NODE')).length >= 2, {
      timeoutMs: 20_000,
      description: 'two frames',
    });
    expect((await p.stop('SIGINT')).code).toBe(0);
  });

  it('silence, silences, unsilence: an operate key silences a node, a read key may not', async () => {
    const refused = await ctl(['silence', '--node', 'b', '--for', '1h']);
    expect(refused.code).toBe(2);
    expect(refused.out).toContain('this key may not do that');
    const noMatcher = await ctl(['silence', '--for', '1h'], { GINKGO_API_KEY: OPERATE_KEY });
    expect(noMatcher.code).toBe(2);
    expect(noMatcher.out).toContain('silence needs at least one of --node');
    const made = await ctl(
      [
        'silence',
        '--node',
        'b',
        '--kind',
        'node_lost,queue_usage_high',
        '--for',
        '2h',
        '--comment',
        'maintenance',
        '--json',
      ],
      { GINKGO_API_KEY: OPERATE_KEY },
    );
    expect(made.code, made.out).toBe(0);
    const silence = JSON.parse(made.out) as { id: string; created_by: string; matchers: unknown };
    expect(silence).toMatchObject({
      created_by: 'desk',
      matchers: { node: ['b'], kind: ['node_lost', 'queue_usage_high'] },
    });
    const listed = await ctl(['silences']);
    expect(listed.code).toBe(0);
    expect(listed.out.split('\n')[0]).toMatch(/^ID\s+STATE\s+BY\s+MATCHES\s+COMMENT/);
    expect(listed.out).toMatch(
      new RegExp(
        `^${silence.id}\\s+ends in 2h\\s+desk\\s+kind=node_lost,queue_usage_high node=b\\s+maintenance$`,
        'm',
      ),
    );
    const ended = await ctl(['unsilence', silence.id], { GINKGO_API_KEY: OPERATE_KEY });
    expect(ended.code).toBe(0);
    expect(ended.out).toContain(`ended silence ${silence.id}`);
    const json = JSON.parse((await ctl(['silences', '--json'])).out) as {
      active: unknown[];
      ended: { id: string; expired_by: string }[];
    };
    expect(json.active).toEqual([]);
    expect(json.ended.map((s) => [s.id, s.expired_by])).toEqual([[silence.id, 'desk']]);
  });

  it('changes: halt, pause, drain and migrate with an operate key, each answered; refusals exit 1, a read key exit 2', async () => {
    const op = { GINKGO_API_KEY: OPERATE_KEY };
    expect((await ctl(['drain', 'a'])).out).toContain('this key may not do that');
    expect((await ctl(['drain'], op)).out).toContain('drain needs <node>');

    const halted = await ctl(['halt', 'exchange', 'outage'], op);
    expect([halted.code, halted.out.trim()]).toEqual([0, 'halt: done']);
    const status = await ctl(['status']);
    expect(status.code).toBe(1);
    expect(status.out).toMatch(/- trading halted since \S+ by desk: exchange outage/);
    const again = await ctl(['halt'], op);
    expect([again.code, again.out.trim()]).toEqual([1, 'ginkgo-ctl: Refused: already halted']);
    expect((await ctl(['unhalt'], op)).code).toBe(0);

    expect((await ctl(['pause', 'p1', 'checking'], op)).out.trim()).toBe('pause p1: done');
    expect((await ctl(['resume', 'p1'], op)).out.trim()).toBe('resume p1: done');

    // Queued for the scheduler, answered by it.
    const drained = await ctl(['drain', 'a'], op);
    expect(drained.code, drained.out).toBe(0);
    expect(drained.out).toMatch(/^drain a: accepted \(plan v\d+\)$/m);
    await waitFor(async () => (await ctl(['nodes', '--status', 'draining'])).out.includes('\na '), {
      timeoutMs: 10_000,
      description: 'a draining',
    });
    expect((await ctl(['undrain', 'a'], op)).code).toBe(0);
    const plan = JSON.parse((await ctl(['plan', '--json'])).out) as {
      plans: { node_id: string; portfolio_ids: string[] }[];
    };
    // After the drain everything is on b: move one back to a.
    const onB = plan.plans.find((n) => n.node_id === 'b')?.portfolio_ids[0];
    if (onB === undefined) throw new Error('nothing on b');
    const moved = await ctl(['migrate', onB, 'a'], op);
    expect(moved.code, moved.out).toBe(0);
    expect(moved.out).toMatch(new RegExp(`^migrate ${onB} to a: accepted`, 'm'));
    const refused = await ctl(['migrate', onB, 'no-such-node'], op);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(new RegExp(`^migrate ${onB} to no-such-node: refused: `, 'm'));
  });

  it('status: a node killed → degraded, exit 1, naming it', async () => {
    await nodeB.stop('SIGKILL');
    await waitFor(async () => (await ctl(['status'])).code === 1, {
      timeoutMs: 30_000,
      intervalMs: 1_000,
      description: 'status degraded',
    });
    const status = await ctl(['status']);
    expect(status.out).toMatch(/degraded:\n\s+- 1 node\(s\) lost: b/);
    expect((await ctl(['nodes'])).code).toBe(1);
  });
});
