import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { unwrapConfig } from '@ginkgo-live/runtime';
import type { Notification } from '@ginkgo-live/state-keys';
import { Alertmanager, waitFor, WebhookReceiver } from '@ginkgo-live/testing';
import { loadNotificationConfig } from './config.ts';
import { ALERTMANAGER_FIRING_MS, createSinks, DeliveryError, type Sink } from './sinks.ts';

/** What Alertmanager's webhook receiver posts: one group's alerts. */
interface AmMessage {
  status: 'firing' | 'resolved';
  groupLabels: Record<string, string>;
  alerts: { status: 'firing' | 'resolved'; labels: Record<string, string> }[];
}

let receiver: WebhookReceiver<AmMessage>;
let am: Alertmanager;

beforeEach(async () => {
  receiver = new WebhookReceiver<AmMessage>();
  const hook = await receiver.start();
  am = await Alertmanager.start(
    [
      'route:',
      '  receiver: hook',
      '  group_by: [alertname, service]',
      '  group_wait: 500ms',
      '  group_interval: 1s',
      '  repeat_interval: 1h',
      'receivers:',
      '  - name: hook',
      '    webhook_configs:',
      `      - url: ${hook}`,
      '        send_resolved: true',
      '',
    ].join('\n'),
  );
}, 30_000);
afterEach(async () => {
  await am.stop();
  await receiver.stop();
});

function sink(url = am.url): Sink {
  const config = unwrapConfig(loadNotificationConfig({ NOTIFY_ALERTMANAGER_URL: url }));
  const [alertmanager] = createSinks(config);
  if (alertmanager === undefined) throw new Error('no Alertmanager sink');
  return alertmanager;
}

const queueFull = (portfolio: string): Notification => ({
  _v: 1,
  id: `n-${portfolio}`,
  kind: 'queue_full',
  level: 'critical',
  status: 'firing',
  title: `Queue of ${portfolio} is full`,
  message: `${portfolio} refuses events`,
  details: { depth: 20, capacity: 20 },
  subject: { node_id: null, portfolio_id: portfolio },
  source: { app: 'market-feed', node_id: 'feed-1' },
  created_at: new Date().toISOString(),
});

describe('the Alertmanager sink against a real Alertmanager', () => {
  it('posts alerts it groups by kind, and a resolved notice ends exactly the alert it speaks for', async () => {
    const s = sink();
    expect(s.name).toBe('alertmanager');
    const p1 = queueFull('p1');
    await s.deliver(p1);
    await s.deliver(queueFull('p2'));

    // One group (alertname + service), both alerts in it, labelled by kind, level and subject.
    await waitFor(async () => (await am.groups()).some((g) => g.alerts.length === 2), {
      timeoutMs: 5_000,
      description: 'both alerts in one group',
    });
    const [group] = await am.groups();
    expect(group?.labels).toEqual({ alertname: 'queue_full', service: 'ginkgo-live' });
    expect(
      group?.alerts
        .map((a) => a.labels)
        .sort((x, y) => (x['portfolio'] ?? '').localeCompare(y['portfolio'] ?? '')),
    ).toEqual([
      { alertname: 'queue_full', severity: 'critical', service: 'ginkgo-live', portfolio: 'p1' },
      { alertname: 'queue_full', severity: 'critical', service: 'ginkgo-live', portfolio: 'p2' },
    ]);
    const first = group?.alerts.find((a) => a.labels['portfolio'] === 'p1');
    expect(first?.annotations).toMatchObject({
      summary: 'Queue of p1 is full',
      notification_id: 'n-p1',
    });
    // Active for a day, not Alertmanager's 5-minute resolve_timeout: we do not re-send every scrape.
    expect(Date.parse(first?.endsAt ?? '') - Date.parse(p1.created_at)).toBe(
      ALERTMANAGER_FIRING_MS,
    );
    // Its receiver was told once, of both together.
    await waitFor(() => receiver.received.length >= 1, { timeoutMs: 5_000 });
    expect(
      receiver.received[0]?.body.alerts.map((a) => [a.labels['portfolio'], a.status]).sort(),
    ).toEqual([
      ['p1', 'firing'],
      ['p2', 'firing'],
    ]);

    // p1 resolves: its alert ends, p2's stays, and the receiver hears p1 resolved.
    await s.deliver({
      ...p1,
      id: 'n-p1-resolved',
      status: 'resolved',
      title: 'Queue of p1 below 60 %',
      details: { depth: 3, capacity: 20, resolved: ['queue_full|critical'] },
      created_at: new Date().toISOString(),
    });
    await waitFor(async () => (await am.alerts()).length === 1, {
      timeoutMs: 5_000,
      description: 'only p2 still active',
    });
    expect((await am.alerts()).map((a) => a.labels['portfolio'])).toEqual(['p2']);
    await waitFor(
      () =>
        receiver.received.some((r) =>
          r.body.alerts.some((a) => a.labels['portfolio'] === 'p1' && a.status === 'resolved'),
        ),
      { timeoutMs: 5_000, description: 'the receiver told p1 resolved' },
    );
  }, 30_000);

  it('an Alertmanager that is down is a failure the worker retries; a wrong path is not retried', async () => {
    const url = am.url;
    const missing = await sink(`${url}/no-such-prefix`)
      .deliver(queueFull('p1'))
      .catch((err: unknown) => err);
    expect(missing).toBeInstanceOf(DeliveryError);
    expect((missing as DeliveryError).isPermanent).toBe(true);
    await am.stop();
    const down = await sink(url)
      .deliver(queueFull('p1'))
      .catch((err: unknown) => err);
    expect(down).toBeInstanceOf(DeliveryError);
    expect((down as DeliveryError).isPermanent).toBe(false);
    expect((down as DeliveryError).message).toMatch(/^alertmanager: ECONNREFUSED/);
    am = await Alertmanager.start('route:\n  receiver: none\nreceivers:\n  - name: none\n');
  }, 30_000);
});
