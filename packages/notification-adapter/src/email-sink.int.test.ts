import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { unwrapConfig } from '@ginkgo-live/runtime';
import type { Notification } from '@ginkgo-live/state-keys';
import { SmtpRelay, TlsCertificates } from '@ginkgo-live/testing';
import { loadNotificationConfig } from './config.ts';
import { EmailSink } from './email-sink.ts';
import { DeliveryError } from './sinks.ts';

const notification: Notification = {
  _v: 1,
  id: 'n-42',
  kind: 'queue_full',
  level: 'critical',
  status: 'firing',
  title: 'Queue full',
  message: 'p<1> is at capacity & refusing events',
  details: { depth: 1000, capacity: 1000 },
  subject: { node_id: 'node-1', portfolio_id: 'p1' },
  source: { app: 'execution-node', node_id: 'node-1' },
  created_at: '2026-12-02T08:00:00.000Z',
};

let certs: TlsCertificates;
const relays: SmtpRelay[] = [];
beforeAll(() => {
  certs = TlsCertificates.make('ginkgo-smtp-ca');
});
afterEach(async () => {
  for (const relay of relays.splice(0)) await relay.stop();
});
afterAll(() => certs.cleanup());

async function relay(options: ConstructorParameters<typeof SmtpRelay>[0]): Promise<SmtpRelay> {
  const r = await new SmtpRelay(options).start();
  relays.push(r);
  return r;
}

/** The sink exactly as the notification settings make it. */
function sink(r: SmtpRelay, env: Record<string, string> = {}): EmailSink {
  const config = unwrapConfig(
    loadNotificationConfig({
      NOTIFY_EMAIL_TO: 'oncall@desk.example, risk@desk.example',
      NOTIFY_EMAIL_FROM: 'ginkgo@desk.example',
      NOTIFY_SMTP_HOST: '127.0.0.1',
      NOTIFY_SMTP_PORT: String(r.port),
      NOTIFY_SMTP_USERNAME: 'ginkgo',
      NOTIFY_SMTP_PASSWORD: 's3cret-smtp',
      NOTIFY_SMTP_CA_FILE: certs.caFile,
      NOTIFY_DELIVERY_TIMEOUT_MS: '2000',
      ...env,
    }),
  );
  if (config.email === undefined) throw new Error('no e-mail sink configured');
  return new EmailSink(config.email);
}

const USERS = { ginkgo: 's3cret-smtp' };

describe('EmailSink against a real SMTP server', () => {
  it('sends over STARTTLS with a login: one message to every recipient, plain text and HTML, escaped', async () => {
    const r = await relay({ tls: 'starttls', certs, users: USERS });
    await sink(r).deliver(notification);
    expect(r.received).toHaveLength(1);
    const [mail] = r.received;
    expect(mail).toMatchObject({
      from: 'ginkgo@desk.example',
      to: ['oncall@desk.example', 'risk@desk.example'],
      subject: '[CRITICAL] Queue full',
      secure: true,
      user: 'ginkgo',
    });
    expect(mail?.headers.get('x-ginkgo-notification')).toBe('n-42');
    expect(mail?.text).toContain('p<1> is at capacity & refusing events');
    expect(mail?.text).toContain('portfolio: p1');
    expect(mail?.text).toContain('depth: 1000');
    expect(mail?.html).toContain('p&#60;1&#62; is at capacity &#38; refusing events');
    expect(mail?.html).not.toContain('p<1>');
  });

  it('sends a resolved notice under a RESOLVED subject', async () => {
    const r = await relay({ tls: 'starttls', certs, users: USERS });
    await sink(r).deliver({ ...notification, status: 'resolved', level: 'info' });
    expect(r.received.map((m) => m.subject)).toEqual(['[RESOLVED] Queue full']);
  });

  it('sends nothing to a relay that does not offer STARTTLS: no message, no password in clear', async () => {
    const r = await relay({ tls: 'none', users: USERS });
    const failure = await sink(r)
      .deliver(notification)
      .then(
        () => null,
        (err: unknown) => err,
      );
    expect(failure).toBeInstanceOf(DeliveryError);
    expect((failure as DeliveryError).message).toMatch(/^email: /);
    expect((failure as DeliveryError).message).not.toContain('s3cret-smtp');
    expect(r.received).toEqual([]);
  });

  it('refuses a relay whose certificate another CA signed', async () => {
    const other = TlsCertificates.make('another-ca');
    try {
      const r = await relay({ tls: 'starttls', certs: other, users: USERS });
      await expect(sink(r).deliver(notification)).rejects.toThrow(DeliveryError);
      expect(r.received).toEqual([]);
    } finally {
      other.cleanup();
    }
  });

  it('sends over implicit TLS (port 465 style)', async () => {
    const r = await relay({ tls: 'implicit', certs, users: USERS });
    await sink(r, { NOTIFY_SMTP_TLS: 'implicit' }).deliver(notification);
    expect(r.received.map((m) => m.secure)).toEqual([true]);
  });

  it('a refused login is permanent (not retried) and names neither user nor password', async () => {
    const r = await relay({ tls: 'starttls', certs, users: USERS });
    const failure = (await sink(r, { NOTIFY_SMTP_PASSWORD: 'wrong-password' })
      .deliver(notification)
      .catch((err: unknown) => err)) as DeliveryError;
    expect(failure).toBeInstanceOf(DeliveryError);
    expect(failure.isPermanent).toBe(true);
    expect(failure.message).toMatch(/^email: SMTP 535/);
    expect(failure.message).not.toContain('wrong-password');
    expect(r.refusedLogins).toBe(1);
    expect(r.received).toEqual([]);
  });

  it('a temporary refusal (451) is retried by the caller; a permanent one (550) is not', async () => {
    const r = await relay({ tls: 'starttls', certs, users: USERS });
    const s = sink(r);
    r.answers = [451, 550];
    const temporary = (await s.deliver(notification).catch((e: unknown) => e)) as DeliveryError;
    expect(temporary.isPermanent).toBe(false);
    expect(temporary.message).toMatch(/^email: SMTP 451/);
    const permanent = (await s.deliver(notification).catch((e: unknown) => e)) as DeliveryError;
    expect(permanent.isPermanent).toBe(true);
    expect(permanent.message).toMatch(/^email: SMTP 550/);
    // And the same sink goes on sending once the relay accepts again.
    await s.deliver(notification);
    expect(r.received).toHaveLength(1);
  });

  it('a relay that is not there is a temporary failure', async () => {
    const r = await relay({ tls: 'starttls', certs, users: USERS });
    const port = r.port;
    await r.stop();
    const failure = (await sink(r, { NOTIFY_SMTP_PORT: String(port) })
      .deliver(notification)
      .catch((e: unknown) => e)) as DeliveryError;
    expect(failure).toBeInstanceOf(DeliveryError);
    expect(failure.isPermanent).toBe(false);
    expect(failure.message).toMatch(/ECONNREFUSED|ECONNECTION/);
  });
});
