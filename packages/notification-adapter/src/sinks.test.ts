import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Notification } from '@ginkgo-live/state-keys';
import { DeliveryError, parseRetryAfter, WebhookSink } from './sinks.ts';

const notification: Notification = {
  _v: 1,
  id: 'n1',
  kind: 'queue_full',
  level: 'critical',
  status: 'firing',
  title: 'Queue full',
  message: 'p1 is at capacity',
  details: { depth: 1000, capacity: 1000 },
  subject: { node_id: 'node-1', portfolio_id: 'p1' },
  source: { app: 'execution-node', node_id: 'node-1' },
  created_at: '2026-11-28T06:00:00.000Z',
};

afterEach(() => {
  vi.unstubAllGlobals();
});

/** The body a sink posts, captured from a stubbed fetch. */
async function postedBody(format: 'json' | 'discord' | 'slack'): Promise<unknown> {
  let body = '';
  vi.stubGlobal('fetch', (_url: string, init: RequestInit) => {
    body = typeof init.body === 'string' ? init.body : '';
    return Promise.resolve(new Response(null, { status: 204 }));
  });
  await new WebhookSink('s', 'https://example.test/hook', format, 1_000).deliver(notification);
  return JSON.parse(body) as unknown;
}

describe('webhook bodies', () => {
  it('posts the notification itself to the generic webhook', async () => {
    expect(await postedBody('json')).toEqual(notification);
  });

  it('posts a Discord embed with level colour and fields', async () => {
    expect(await postedBody('discord')).toMatchObject({
      username: 'ginkgo-live',
      embeds: [
        {
          title: '[CRITICAL] Queue full',
          description: 'p1 is at capacity',
          color: 0x9b1c1c,
          fields: expect.arrayContaining([
            { name: 'portfolio', value: 'p1', inline: true },
          ]) as unknown,
        },
      ],
    });
  });

  it('posts Slack blocks with a plain-text fallback', async () => {
    expect(await postedBody('slack')).toMatchObject({
      text: '[CRITICAL] Queue full: p1 is at capacity',
      blocks: [{ type: 'section' }, { type: 'section' }],
    });
  });
});

describe('delivery errors', () => {
  it('turns 429 into a retry delay and 4xx into a permanent failure, without the URL', async () => {
    vi.stubGlobal('fetch', () =>
      Promise.resolve(new Response(null, { status: 429, headers: { 'retry-after': '7' } })),
    );
    const sink = new WebhookSink(
      'discord',
      'https://discord.test/api/webhooks/SECRET',
      'discord',
      1_000,
    );
    const err = (await sink.deliver(notification).catch((e: unknown) => e)) as DeliveryError;
    expect(err).toBeInstanceOf(DeliveryError);
    expect(err).toMatchObject({
      status: 429,
      retryAfterMs: 7_000,
      isPermanent: false,
      message: 'discord: HTTP 429',
    });
    vi.stubGlobal('fetch', () => Promise.resolve(new Response(null, { status: 404 })));
    const gone = (await sink.deliver(notification).catch((e: unknown) => e)) as DeliveryError;
    expect(gone).toMatchObject({ status: 404, isPermanent: true });
    expect(gone.message).not.toContain('SECRET');
  });

  it('reads Retry-After as seconds or as a date', () => {
    expect(parseRetryAfter('2')).toBe(2_000);
    expect(parseRetryAfter('0.5')).toBe(500);
    expect(
      parseRetryAfter('Sat, 28 Nov 2026 06:00:10 GMT', Date.parse('2026-11-28T06:00:00Z')),
    ).toBe(10_000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});
