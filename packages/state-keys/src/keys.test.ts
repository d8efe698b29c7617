import { describe, expect, it } from 'vitest';
import { assertValidId, isValidId } from './ids.ts';
import { createStateKeys } from './keys.ts';

describe('createStateKeys', () => {
  it('spells the seed keys with their ids as hash tags, with no prefix by default', () => {
    const keys = createStateKeys();
    expect(keys.prefix).toBe('');
    expect(keys.nodeInfo('node-1')).toBe('execution_node:{node-1}:info');
    expect(keys.portfolioState('p1')).toBe('portfolio:{p1}:state');
    expect(keys.executionNodes()).toBe('{scheduler}:execution_nodes');
    expect(keys.portfolioAssignments()).toBe('{scheduler}:portfolio_assignments');
    expect(keys.heartbeat('node-1')).toBe('heartbeat:node:{node-1}');
  });

  it('builds every other key and queue name', () => {
    const keys = createStateKeys();
    expect(keys.nodeRegistry()).toBe('{scheduler}:execution_node_registry');
    expect(keys.nodeAssignment('node-1')).toBe('{scheduler}:execution_node:node-1:assignment');
    expect(keys.planMeta()).toBe('{scheduler}:plan_meta');
    expect(keys.schedulerLeader()).toBe('{scheduler}:leader');
    expect(keys.portfolioCatalog()).toBe('{scheduler}:portfolio_catalog');
    expect(keys.queuePrefix()).toBe('bull');
    expect(keys.portfolioQueue('p1')).toBe('portfolio-{p1}');
    expect(keys.portfolioBook('p1')).toBe('portfolio:{p1}:book');
    expect(keys.portfolioLease('p1')).toBe('portfolio:{p1}:lease');
    expect(keys.portfolioFence('p1')).toBe('portfolio:{p1}:fence');
    expect(keys.portfolioNoBook('p1')).toBe('portfolio:{p1}:nobook');
    expect(keys.portfolioClaims('p1')).toBe('portfolio:{p1}:claims');
    expect(keys.queueRefusals()).toBe('portfolio_queue_refusals');
    const subject = { nodeId: null, portfolioId: 'p1' };
    expect(keys.notificationCooldown('queue_full', subject, 'critical')).toBe(
      'notify:cooldown:queue_full:{-:p1}:critical',
    );
    expect(keys.notificationActive('queue', { nodeId: 'n1', portfolioId: null })).toBe(
      'notify:active:queue:{n1:-}',
    );
    expect(keys.notificationHistory()).toBe('notifications:history');
    expect(keys.notificationOutageReporter()).toBe('notify:outage_reporter');
    expect(keys.notificationOutageTold()).toBe('notify:outage_told');
    expect(keys.notificationOutageLate()).toBe('notify:outage_late');
    expect(keys.notificationsQueue()).toBe('{notifications}');
    expect(keys.controlRequests()).toBe('{scheduler}:control');
    expect(keys.controlResults()).toBe('{scheduler}:control_results');
    expect(keys.tradingHalt()).toBe('{scheduler}:trading_halt');
    expect(keys.pausedPortfolios()).toBe('{scheduler}:paused_portfolios');
    expect(keys.auditLog()).toBe('{scheduler}:audit');
    expect(keys.nodeOrdersChannel('node-1')).toBe('{scheduler}:push:execution_node:node-1');
    expect(keys.tradingChannel()).toBe('{scheduler}:push:trading');
    expect(() => keys.nodeOrdersChannel('a:b')).toThrow(/Invalid node id "a:b"/);
    expect(() => keys.notificationCooldown('Queue Full', subject, 'critical')).toThrow(RangeError);
  });

  it('puts the global prefix in front of every key', () => {
    const keys = createStateKeys('staging:');
    const built = [
      keys.heartbeat('n'),
      keys.nodeInfo('n'),
      keys.portfolioState('p'),
      keys.nodeRegistry(),
      keys.executionNodes(),
      keys.portfolioAssignments(),
      keys.nodeAssignment('n'),
      keys.planMeta(),
      keys.schedulerLeader(),
      keys.portfolioCatalog(),
      keys.portfolioBook('p'),
      keys.portfolioLease('p'),
      keys.portfolioFence('p'),
      keys.portfolioNoBook('p'),
      keys.portfolioClaims('p'),
      keys.queueRefusals(),
      keys.notificationCooldown('k', { nodeId: 'n', portfolioId: null }, 'warning'),
      keys.notificationActive('k', { nodeId: null, portfolioId: 'p' }),
      keys.notificationHistory(),
      keys.notificationOutageReporter(),
      keys.notificationOutageTold(),
      keys.notificationOutageLate(),
      keys.controlRequests(),
      keys.controlResults(),
      keys.tradingHalt(),
      keys.pausedPortfolios(),
      keys.auditLog(),
      keys.nodeOrdersChannel('n'),
      keys.tradingChannel(),
      keys.queuePrefix(),
    ];
    for (const key of built) expect(key.startsWith('staging:')).toBe(true);
    expect(keys.heartbeat('n')).toBe('staging:heartbeat:node:{n}');
    // BullMQ applies the prefix itself: queue names stay bare.
    expect(keys.portfolioQueue('p')).toBe('portfolio-{p}');
  });

  it('names the keys from before the hash tags, to carry their data over', () => {
    const keys = createStateKeys('staging:');
    expect(keys.legacyPortfolioBook('p1')).toBe('staging:portfolio:p1:book');
    expect(keys.legacySchedulerKeys()).toContainEqual({
      from: 'staging:portfolio_assignments',
      to: 'staging:{scheduler}:portfolio_assignments',
    });
    expect(keys.legacySchedulerKeys()).toHaveLength(7);
  });

  it('refuses a prefix with braces: its tag would put every key in one hash slot', () => {
    expect(() => createStateKeys('{ginkgo}:')).toThrow(/Invalid key prefix "\{ginkgo\}:"/);
  });

  it('refuses ids that would make a key ambiguous', () => {
    const keys = createStateKeys();
    expect(() => keys.nodeInfo('a:b')).toThrow(/Invalid node id "a:b"/);
    expect(() => keys.portfolioState('{p}')).toThrow(/Invalid portfolio id/);
    expect(() => keys.heartbeat('')).toThrow(RangeError);
    expect(() => keys.portfolioQueue('p 1')).toThrow(RangeError);
  });
});

describe('ids', () => {
  it('accepts letters, digits, _ . - up to 64 characters', () => {
    expect(isValidId('node_1.a-B')).toBe(true);
    expect(isValidId('x'.repeat(64))).toBe(true);
    expect(isValidId('x'.repeat(65))).toBe(false);
    expect(isValidId('é')).toBe(false);
    expect(assertValidId('node id', 'n1')).toBe('n1');
  });
});
