import { userInfo } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog, TradingControls } from '@ginkgo-live/fleet';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import {
  cliEntry,
  FRESH_START_MS,
  logEntries,
  ManagedProcess,
  type RedisServer,
  StackFixture,
  tick,
  waitFor,
} from '@ginkgo-live/testing';

let fx: StackFixture;
let server: RedisServer;

beforeEach(async () => {
  fx = await StackFixture.start({ redis: { persistence: true } });
  server = fx.server;
});
afterEach(() => fx.close());

/** The node a portfolio runs on, per its state, when it runs. */
const runningOn = async (portfolioId: string): Promise<string | undefined> => {
  const state = await fx.state(portfolioId);
  return state?.status === 'running' ? state.node_id : undefined;
};

/** Runs ginkgo-ctl (the real CLI) and returns its exit code and output. */
async function ctl(...args: string[]): Promise<{ code: number | null; output: string }> {
  return ctlWith({}, ...args);
}

async function ctlWith(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number | null; output: string }> {
  const entry = cliEntry('ginkgo-ctl', 'apps/livecore-scheduler/src/ctl.ts', {
    ...server.env,
    REDIS_KEY_PREFIX: fx.keys.prefix,
    CTL_TIMEOUT_MS: '10000',
    ...env,
  });
  const child = ManagedProcess.start({ ...entry, args: [...(entry.args ?? []), ...args] });
  const exit = await child.waitForExit(20_000);
  return { code: exit.code, output: child.output };
}

describe('livecore-scheduler with real node processes', () => {
  it('places the catalog over the nodes, and the nodes run it', async () => {
    for (const id of ['p1', 'p2', 'p3']) await fx.addToCatalog(id);
    await Promise.all([fx.startNode('a'), fx.startNode('b')]);
    await fx.startScheduler('s1');
    await waitFor(async () => Object.keys(await fx.plan()).length === 3, { timeoutMs: 5_000 });
    const plan = await fx.plan();
    expect(new Set(Object.values(plan))).toEqual(new Set(['a', 'b']));
    // New portfolios, no book: each starts after the nodes' fresh-start wait.
    for (const id of ['p1', 'p2', 'p3']) {
      await waitFor(async () => (await runningOn(id)) === plan[id], {
        timeoutMs: FRESH_START_MS + 3_000,
        description: `${id} running`,
      });
    }
  });

  it('moves a killed node’s portfolios within heartbeat TTL plus one tick, with their queued events', async ({
    annotate,
  }) => {
    for (const id of ['p1', 'p2']) await fx.addToCatalog(id);
    const a = await fx.startNode('a', { NODE_CAPACITY: '2' });
    await fx.startScheduler('s1');
    await waitFor(async () => (await runningOn('p1')) === 'a' && (await runningOn('p2')) === 'a', {
      timeoutMs: 5_000,
    });
    await fx.startNode('b', { NODE_CAPACITY: '2' });

    await a.stop('SIGKILL');
    const killedAt = Date.now();
    const queues = fx.track(new PortfolioQueues({ connection: fx.redis, keys: fx.keys }));
    for (let i = 0; i < 25; i++) await queues.add('p1', tick(i));
    await waitFor(async () => (await runningOn('p1')) === 'b' && (await runningOn('p2')) === 'b', {
      timeoutMs: 10_000,
      description: 'both portfolios running on b',
    });
    const failoverMs = Date.now() - killedAt;
    await annotate(`failover ${failoverMs} ms (heartbeat TTL 2000 ms, tick 500 ms)`);
    // Heartbeat TTL 2 s + one tick 0.5 s, plus the node's assignment poll and load.
    expect(failoverMs).toBeLessThan(2_000 + 500 + 1_000);
    await waitFor(
      async () =>
        (await fx.state('p1'))?.queue_depth === 0 &&
        ((await fx.state('p1'))?.processed_count ?? 0) >= 25,
      {
        timeoutMs: 5_000,
        description: 'the queued events processed on b',
      },
    );
    const records = await fx.redis.hget(fx.keys.executionNodes(), 'a');
    expect(JSON.parse(records ?? '{}')).toMatchObject({ status: 'lost', assigned_count: 0 });
  });

  it('changes nothing while Redis is frozen or killed across several ticks, and resumes after (FR-037)', async () => {
    for (const id of ['p1', 'p2', 'p3']) await fx.addToCatalog(id);
    await Promise.all([fx.startNode('a'), fx.startNode('b')]);
    const scheduler = await fx.startScheduler('s1', { REDIS_COMMAND_TIMEOUT_MS: '300' });
    await waitFor(async () => Object.keys(await fx.plan()).length === 3);
    const before = await fx.plan();
    const version = await fx.redis.get(fx.keys.planMeta());
    const failures = () =>
      logEntries(scheduler, 'Redis operation failed; this tick changes nothing');

    server.freeze();
    await waitFor(() => failures().length >= 3, {
      timeoutMs: 10_000,
      description: 'three failed ticks',
    });
    server.thaw();
    await waitFor(
      () => logEntries(scheduler, 'Redis reachable again; planning resumes').length === 1,
      { timeoutMs: 10_000 },
    );
    await server.kill();
    const afterFreeze = failures().length;
    await waitFor(() => failures().length >= afterFreeze + 3, {
      timeoutMs: 10_000,
      description: 'three more failed ticks',
    });
    await server.restart(); // with its data (append-only file)
    await waitFor(
      () => logEntries(scheduler, 'Redis reachable again; planning resumes').length === 2,
      { timeoutMs: 10_000 },
    );

    const counts = failures().map((e) => Number(e['consecutiveFailures']));
    expect(counts.slice(0, 3)).toEqual([1, 2, 3]);
    expect(failures().every((e) => e['level'] === 'error')).toBe(true);
    const story = scheduler.lines
      .filter((l) => /placed|Node lost|Node back|reachable|Leading|Recovered|Plan written/.test(l))
      .join('\n');
    expect(await fx.plan(), story).toEqual(before);
    expect(await fx.redis.get(fx.keys.planMeta()), story).toBe(version);
    expect(logEntries(scheduler, 'Portfolio placed').filter((e) => e['to'] === null)).toHaveLength(
      0,
    );
    for (const [id, node] of Object.entries(before)) {
      await waitFor(async () => (await runningOn(id)) === node, {
        timeoutMs: 5_000,
        description: `${id} still on ${node}`,
      });
    }
    expect(scheduler.exit).toBeUndefined();
  });

  it('nudges a node that does not run what it was assigned, with backoff', async () => {
    await fx.addToCatalog('p1');
    // It has a book: its first load is not held back by the fresh-start wait (which the
    // scheduler, ticking every 300 ms here, would nudge too).
    await fx.seedBook('p1');
    await fx.startNode('a');
    const scheduler = await fx.startScheduler('s1', {
      SCHEDULER_TICK_MS: '300',
      SCHEDULER_LEADER_TTL_MS: '2000',
    });
    await waitFor(async () => (await runningOn('p1')) === 'a', { timeoutMs: 5_000 });
    // The node's assignment key goes wrong behind the scheduler's back: the node unloads p1.
    await fx.assign('a', []);
    await waitFor(async () => (await fx.state('p1'))?.status === 'stopped', { timeoutMs: 3_000 });
    await waitFor(async () => (await runningOn('p1')) === 'a', {
      timeoutMs: 10_000,
      description: 'p1 back on a after a nudge',
    });
    const nudges = logEntries(scheduler, 'Node does not run an assigned portfolio; nudging it');
    expect(nudges.length).toBeGreaterThanOrEqual(1);
    expect(nudges.length).toBeLessThanOrEqual(2);
    expect(nudges[0]).toMatchObject({ nodeId: 'a', portfolioId: 'p1', nudges: 1 });
  });

  it('has one leader; when it dies the standby leads within the lock TTL', async () => {
    await fx.addToCatalog('p1');
    await fx.startNode('a');
    const s1 = await fx.startScheduler('s1');
    await waitFor(async () => (await fx.redis.get(fx.keys.schedulerLeader())) === 's1');
    const s2 = await fx.startScheduler('s2');
    await s2.waitForLine('Standing by: another scheduler leads', 5_000);
    await s1.stop('SIGKILL');
    const killedAt = Date.now();
    await s2.waitForLine('Leading the plan', 5_000);
    expect(Date.now() - killedAt).toBeLessThan(2_000 + 500 + 500);
    expect(await fx.redis.get(fx.keys.schedulerLeader())).toBe('s2');
  });

  it('orphans with a reason when capacity runs out, and places the orphan when room appears', async () => {
    for (const id of ['p1', 'p2']) await fx.addToCatalog(id);
    await fx.startNode('a', { NODE_CAPACITY: '1' });
    const scheduler = await fx.startScheduler('s1', { ORPHAN_NOTIFY_AFTER_MS: '1000' });
    await waitFor(
      async () => Object.values(await fx.plan()).some((v) => v.startsWith('orphaned')),
      { timeoutMs: 5_000 },
    );
    expect(Object.values(await fx.plan()).sort()).toEqual([
      'a',
      'orphaned: every alive node is full (1 nodes, capacity 1)',
    ]);
    // Notified once it has been orphaned for the grace period (1 s here), not at once.
    await waitFor(
      () =>
        logEntries(scheduler, 'Notification raised').some(
          (e) => e['kind'] === 'portfolio_orphaned',
        ),
      { timeoutMs: 5_000, description: 'the orphan notification' },
    );
    await fx.startNode('b');
    await waitFor(
      async () => !Object.values(await fx.plan()).some((v) => v.startsWith('orphaned')),
      { timeoutMs: 5_000 },
    );
  });

  // Seven ctl processes, each a few seconds to start on a loaded machine: more than the default 30 s.
  it(
    'drains, undrains and migrates on request, and the moves stick; bad requests are refused with a reason',
    { timeout: 90_000 },
    async () => {
      for (const id of ['p1', 'p2']) await fx.addToCatalog(id);
      await Promise.all([fx.startNode('a'), fx.startNode('b')]);
      const scheduler = await fx.startScheduler('s1');
      await waitFor(async () => Object.keys(await fx.plan()).length === 2);

      expect(await ctl('drain', 'a')).toMatchObject({ code: 0 });
      await waitFor(async () => Object.values(await fx.plan()).every((n) => n === 'b'), {
        timeoutMs: 5_000,
      });
      expect(
        JSON.parse((await fx.redis.hget(fx.keys.executionNodes(), 'a')) ?? '{}'),
      ).toMatchObject({
        status: 'draining',
      });

      expect(await ctl('undrain', 'a')).toMatchObject({ code: 0 });
      expect(await ctl('migrate', 'p1', 'a')).toMatchObject({ code: 0 });
      await waitFor(async () => (await runningOn('p1')) === 'a', { timeoutMs: 5_000 });
      const version = JSON.parse((await fx.redis.get(fx.keys.planMeta())) ?? '{}') as {
        version: number;
      };
      // Several ticks later the manual move still holds.
      await waitFor(
        async () =>
          (JSON.parse((await fx.redis.get(fx.keys.planMeta())) ?? '{}') as { version: number })
            .version >= version.version,
        { timeoutMs: 2_000 },
      );
      await fx.startNode('c');
      await waitFor(
        async () =>
          JSON.parse((await fx.redis.hget(fx.keys.executionNodes(), 'c')) ?? 'null') !== null,
        { timeoutMs: 5_000 },
      );
      expect((await fx.plan())['p1']).toBe('a');

      expect(await ctl('migrate', 'p1', 'nowhere')).toMatchObject({
        code: 1,
        output: expect.stringContaining('refused: unknown node nowhere') as unknown,
      });
      expect(await ctl('drain', 'ghost')).toMatchObject({
        code: 1,
        output: expect.stringContaining('refused: unknown node ghost') as unknown,
      });
      expect(await ctl('catalog-remove', 'nope')).toMatchObject({
        code: 1,
        output: expect.stringContaining('refused: unknown portfolio nope') as unknown,
      });
      expect(await ctl('frobnicate')).toMatchObject({ code: 2 });

      // The audit trail: ctl's `queued` entry, then the scheduler's answer, under one request id.
      const actor = `ginkgo-ctl:${userInfo().username}`;
      const trail = (await new AuditLog(fx.redis, fx.keys).list({ limit: 100 }))
        .reverse()
        .map((r) => {
          if (!('entry' in r)) throw new Error(r.error.problem);
          return r.entry;
        });
      const ghost = trail.filter((e) => e.action === 'drain' && e.target.node_id === 'ghost');
      expect(ghost.map((e) => [e.actor, e.via, e.outcome, e.reason])).toEqual([
        [actor, 'ginkgo-ctl', 'queued', null],
        [actor, 'livecore-scheduler', 'refused', 'unknown node ghost'],
      ]);
      expect(ghost[1]?.request_id).toBe(ghost[0]?.request_id);
      // Six requests, each queued then answered.
      expect(trail.filter((e) => e.outcome === 'queued')).toHaveLength(6);
      expect(trail.filter((e) => e.via === 'livecore-scheduler')).toHaveLength(6);
      const lines = logEntries(scheduler, 'Control request');
      expect(lines.map((l) => [l['actor'], l['action'], l['outcome']])).toContainEqual([
        actor,
        'drain',
        'refused',
      ]);
    },
  );

  it('ginkgo-ctl reports a halt that got no answer as of unknown outcome, not as failed', async () => {
    // Writes (scripts included) wait while reads go on: ginkgo-ctl connects, its halt gets no
    // answer within REDIS_COMMAND_TIMEOUT_MS — Redis would still run it once the pause ends.
    await fx.redis.call('CLIENT', 'PAUSE', '30000', 'WRITE');
    try {
      const halt = await ctlWith({ REDIS_COMMAND_TIMEOUT_MS: '500' }, 'halt', 'drill');
      expect(halt.code).toBe(1);
      expect(halt.output).toMatch(
        /^Outcome unknown — check GET \/api\/fleet\/trading \(request [0-9a-f-]{36}\)$/m,
      );
    } finally {
      await fx.redis.call('CLIENT', 'UNPAUSE');
    }
  });

  it('ginkgo-ctl queues nothing when the audit entry cannot be written', async () => {
    await fx.redis.set(fx.keys.auditLog(), 'not a stream');
    const drain = await ctl('drain', 'a');
    expect(drain.code).toBe(1);
    expect(drain.output).toContain('WRONGTYPE');
    // A MULTI ran the RPUSH though the XADD failed: a request queued without its audit entry.
    expect(await fx.redis.llen(fx.keys.controlRequests())).toBe(0);
  });

  it(
    'halts, unhalts, pauses and resumes through ginkgo-ctl with no scheduler running at all',
    // Eight ctl processes, each a few seconds to start on a loaded machine.
    { timeout: 90_000 },
    async () => {
      await fx.addToCatalog('p1');
      const controls = new TradingControls(fx.redis, fx.keys);
      expect(await ctl('halt', 'exchange', 'outage')).toMatchObject({ code: 0 });
      expect((await controls.read()).halted).toMatchObject({
        by: `ginkgo-ctl:${userInfo().username}`,
        reason: 'exchange outage',
      });
      expect(await ctl('halt')).toMatchObject({
        code: 1,
        output: expect.stringContaining('refused: already halted') as unknown,
      });
      expect(await ctl('pause', 'p1')).toMatchObject({ code: 0 });
      expect(await ctl('pause', 'nope')).toMatchObject({
        code: 1,
        output: expect.stringContaining('refused: unknown portfolio nope') as unknown,
      });
      expect((await controls.read()).paused.map((p) => p.portfolio_id)).toEqual(['p1']);
      expect(await ctl('resume', 'p1')).toMatchObject({ code: 0 });
      expect(await ctl('unhalt')).toMatchObject({ code: 0 });
      expect(await controls.read()).toEqual({ halted: null, paused: [], problems: [] });
      expect(await ctl('pause')).toMatchObject({ code: 2 });
      const outcomes = (await new AuditLog(fx.redis, fx.keys).list({ limit: 10 }))
        .reverse()
        .map((r) => ('entry' in r ? [r.entry.action, r.entry.outcome, r.entry.via] : []));
      expect(outcomes).toEqual([
        ['halt', 'accepted', 'ginkgo-ctl'],
        ['halt', 'refused', 'ginkgo-ctl'],
        ['pause', 'accepted', 'ginkgo-ctl'],
        ['pause', 'refused', 'ginkgo-ctl'],
        ['resume', 'accepted', 'ginkgo-ctl'],
        ['unhalt', 'accepted', 'ginkgo-ctl'],
      ]);
    },
  );
});
