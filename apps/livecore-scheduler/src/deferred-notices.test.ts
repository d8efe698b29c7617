import { describe, expect, it } from 'vitest';
import { DeferredNoticeSink } from './deferred-notices.ts';
import { tell, type NoticeSink } from './notices.ts';

/** A sink that writes down what it is told. */
function recorder(): { sink: NoticeSink; told: string[] } {
  const told: string[] = [];
  const sink = {
    raise: (kind: string, subject: unknown) =>
      told.push(`raise ${kind} ${JSON.stringify(subject)}`),
    resolve: (kind: string, subject: unknown) =>
      told.push(`resolve ${kind} ${JSON.stringify(subject)}`),
  } as unknown as NoticeSink;
  return { sink, told };
}

describe('DeferredNoticeSink', () => {
  it('holds notices until the notifier is attached, then passes them on in order, and later ones at once', () => {
    const deferred = new DeferredNoticeSink();
    tell(deferred.sink, {
      op: 'raise',
      kind: 'node_lost',
      subject: { nodeId: 'n1' },
      details: { last_seen: null },
    });
    tell(deferred.sink, {
      op: 'resolve',
      kind: 'catalog_missing',
      subject: {},
      details: { portfolios: 3 },
    });
    expect(deferred.holding).toBe(2);
    const { sink, told } = recorder();
    deferred.attach(sink);
    expect(told).toEqual(['raise node_lost {"nodeId":"n1"}', 'resolve catalog_missing {}']);
    expect(deferred.holding).toBe(0);
    tell(deferred.sink, {
      op: 'resolve',
      kind: 'node_lost',
      subject: { nodeId: 'n1' },
      details: {},
    });
    expect(told).toHaveLength(3);
  });
});
