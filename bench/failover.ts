import { RedisServer, StackFixture, waitFor } from '@ginkgo-live/testing';
import { type Bench, type Row } from './lib.ts';

interface Setting {
  label: string;
  env: Record<string, string>;
  ttlMs: number;
}

const SHORT: Setting = {
  label: 'short settings (beat 500 ms, TTL 2 s, tick 500 ms)',
  env: {
    HEARTBEAT_INTERVAL_MS: '500',
    HEARTBEAT_TTL_MS: '2000',
    SCHEDULER_TICK_MS: '500',
    SCHEDULER_LEADER_TTL_MS: '2000',
    SCHEDULER_OUTAGE_GRACE_MS: '2000',
  },
  ttlMs: 2_000,
};
const DEFAULTS: Setting = {
  label: 'default settings (beat 5 s, TTL 15 s, tick 5 s)',
  env: {
    HEARTBEAT_INTERVAL_MS: '5000',
    HEARTBEAT_TTL_MS: '15000',
    NODE_INFO_TTL_MS: '45000',
    PORTFOLIO_STATE_TTL_MS: '45000',
    SCHEDULER_TICK_MS: '5000',
    SCHEDULER_LEADER_TTL_MS: '10000',
    SCHEDULER_OUTAGE_GRACE_MS: '15000',
  },
  ttlMs: 15_000,
};

/**
 * 3. Failover: SIGKILL a node that runs 5 portfolios → all five running on the other node, against
 * the heartbeat TTL, at short and at default settings.
 */
export const failover: Bench = async ({ quick, log }) => {
  const rows: Row[] = [];
  for (const setting of quick ? [SHORT] : [SHORT, DEFAULTS]) {
    log(`failover: ${setting.label}`);
    const server = await RedisServer.start();
    const fx = new StackFixture(server, { bundled: true });
    try {
      const ids = ['f1', 'f2', 'f3', 'f4', 'f5'];
      for (const id of ids) await fx.addToCatalog(id);
      const victim = await fx.startNode('victim', { ...setting.env, LOG_LEVEL: 'info' });
      await fx.startScheduler('s1', { ...setting.env, LOG_LEVEL: 'info' });
      const runningOn = async (node: string) =>
        (await Promise.all(ids.map((id) => fx.state(id)))).every(
          (s) => s?.node_id === node && s.status === 'running',
        );
      await waitFor(() => runningOn('victim'), {
        timeoutMs: 60_000,
        description: 'five on victim',
      });
      await fx.startNode('survivor', { ...setting.env, LOG_LEVEL: 'info', NODE_CAPACITY: '10' });
      // Let the survivor's first beats land and a tick or two pass: a settled fleet.
      await new Promise((resolve) =>
        setTimeout(resolve, Number(setting.env['SCHEDULER_TICK_MS']) * 2),
      );
      const killedAt = Date.now();
      await victim.stop('SIGKILL');
      await waitFor(() => runningOn('survivor'), {
        timeoutMs: setting.ttlMs * 4 + 30_000,
        intervalMs: 50,
        description: 'five on the survivor',
      });
      const movedMs = Date.now() - killedAt;
      rows.push({
        metric: `all 5 running elsewhere after SIGKILL — ${setting.label}`,
        value: movedMs,
        unit: 'ms',
        baseline: { label: 'heartbeat TTL', value: setting.ttlMs },
        target: { text: '≤ TTL + 2 s', met: movedMs <= setting.ttlMs + 2_000 },
      });
    } finally {
      await fx.close();
      await server.cleanup();
    }
  }
  return {
    id: 'failover',
    title: '3. Failover of a node running 5 portfolios',
    rows,
    notes: [
      'Measured from SIGKILL to the moment every portfolio state says running on the other node (polled every 50 ms): heartbeat expiry, the scheduler noticing at its next tick, the plan write, the survivor polling its assignment, taking the expired leases and loading the portfolio.',
      'What bounds it: the TTL (a silent node is only declared dead after it), plus up to one scheduler tick, plus the lease (it expires with the heartbeat) — the default tick (5 s) alone can push it past TTL + 2 s.',
    ],
  };
};
