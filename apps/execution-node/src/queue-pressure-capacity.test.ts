import { describe, expect, it } from 'vitest';
import { DEFAULT_QUEUE_CAPACITY } from '@ginkgo-live/portfolio-queue';
import { loadConfig as loadFeedConfig } from '../../market-feed/src/config.ts';
import { loadConfig as loadNodeConfig } from './config.ts';

/** Both apps' configurations from one environment, as a deployment gives them. */
function both(env: Record<string, string>) {
  return { feed: loadFeedConfig(env), node: loadNodeConfig(env) };
}

describe('the queue capacity: one setting, read alike by the producer (market feed) and the node', () => {
  it('is the same default on both sides', () => {
    const { feed, node } = both({});
    expect([feed.ok && feed.value.queueCapacity, node.ok && node.value.queueCapacity]).toEqual([
      DEFAULT_QUEUE_CAPACITY,
      DEFAULT_QUEUE_CAPACITY,
    ]);
  });

  it('set once by the operator, it is the one value both use', () => {
    const { feed, node } = both({ PORTFOLIO_QUEUE_CAPACITY: '20' });
    expect([feed.ok && feed.value.queueCapacity, node.ok && node.value.queueCapacity]).toEqual([
      20, 20,
    ]);
  });

  it('a bad value is the same one clear error on both sides, naming the setting', () => {
    for (const [raw, message] of [
      ['0', 'must be at least 1, got 0'],
      ['lots', 'must be an integer, got "lots"'],
      ['2000000', 'must be at most 1000000, got 2000000'],
    ] as const) {
      const { feed, node } = both({ PORTFOLIO_QUEUE_CAPACITY: raw });
      const expected = { ok: false, issues: [{ variable: 'PORTFOLIO_QUEUE_CAPACITY', message }] };
      expect(feed, raw).toEqual(expected);
      expect(node, raw).toEqual(expected);
    }
  });
});
