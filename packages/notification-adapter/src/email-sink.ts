import { readFileSync } from 'node:fs';
import type { Notification } from '@ginkgo-live/state-keys';
import { DeliveryError, headline, notificationFields, type Sink } from './sinks.ts';

/** How the SMTP connection is protected. */
export type SmtpTls = 'starttls' | 'implicit' | 'off';

/** One SMTP relay and the mail it sends. */
export interface EmailSinkOptions {
  host: string;
  port: number;
  /**
   * `starttls` (the default): plain connect, then STARTTLS, required — a relay that does not offer
   * it gets nothing, not a message in clear. `implicit`: TLS from the first byte (port 465). `off`:
   * no TLS at all (a relay on this host; refused by the config when a password is set).
   */
  tls: SmtpTls;
  /** Login, when the relay asks for one (AUTH PLAIN/LOGIN over the protected connection). */
  auth: { username: string; password: string } | undefined;
  /** A PEM file of the CA that signed the relay's certificate, when it is not a public one. */
  caFile: string | undefined;
  from: string;
  to: string[];
  /** One delivery, connect to the relay's answer to the message, in ms. */
  timeoutMs: number;
}

/** nodemailer's error: the SMTP reply code when the relay answered, a code of its own otherwise. */
interface SmtpFailure {
  message?: string;
  code?: string;
  responseCode?: number;
}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The plain-text body: headline, message, then one `name: value` line per field. */
export function emailText(n: Notification): string {
  return [
    headline(n),
    '',
    n.message,
    '',
    ...notificationFields(n).map(([name, value]) => `${name}: ${value}`),
    `source: ${n.source.app}${n.source.node_id === null ? '' : ` (${n.source.node_id})`}`,
    `at: ${n.created_at}`,
    `id: ${n.id}`,
  ].join('\n');
}

/** The HTML body: the same content, every value escaped. */
export function emailHtml(n: Notification): string {
  const rows = [
    ...notificationFields(n),
    ['source', `${n.source.app}${n.source.node_id === null ? '' : ` (${n.source.node_id})`}`],
    ['at', n.created_at],
    ['id', n.id],
  ]
    .map(
      ([name, value]) =>
        `<tr><th align="left">${escapeHtml(name ?? '')}</th><td>${escapeHtml(value ?? '')}</td></tr>`,
    )
    .join('');
  return `<!doctype html><html><body><h2>${escapeHtml(headline(n))}</h2><p>${escapeHtml(n.message)}</p><table>${rows}</table></body></html>`;
}

/**
 * Sends each notification as one e-mail (plain text and HTML) through an SMTP relay. A reply the
 * relay gives as permanent (5xx: a rejected recipient, a failed login) is not retried; a
 * temporary one (4xx), a refused or lost connection and a timeout are, by the delivery worker.
 * nodemailer is loaded at the first delivery, so an app that never sends mail never pays for it.
 */
export class EmailSink implements Sink {
  readonly name = 'email';
  private transport: Promise<{ sendMail(message: object): Promise<unknown> }> | undefined;

  constructor(private readonly options: EmailSinkOptions) {}

  async deliver(n: Notification): Promise<void> {
    const transport = await (this.transport ??= this.createTransport());
    try {
      await transport.sendMail({
        from: this.options.from,
        to: this.options.to,
        subject: headline(n).slice(0, 200),
        text: emailText(n),
        html: emailHtml(n),
        headers: { 'X-Ginkgo-Notification': n.id },
      });
    } catch (err) {
      throw this.failure(err as SmtpFailure);
    }
  }

  private async createTransport() {
    const { createTransport } = await import('nodemailer');
    const o = this.options;
    return createTransport({
      host: o.host,
      port: o.port,
      secure: o.tls === 'implicit',
      requireTLS: o.tls === 'starttls',
      ignoreTLS: o.tls === 'off',
      ...(o.auth === undefined ? {} : { auth: { user: o.auth.username, pass: o.auth.password } }),
      tls: {
        ...(o.caFile === undefined ? {} : { ca: readFileSync(o.caFile, 'utf8') }),
        minVersion: 'TLSv1.2',
      },
      connectionTimeout: o.timeoutMs,
      greetingTimeout: o.timeoutMs,
      socketTimeout: o.timeoutMs,
    });
  }

  /** What went wrong, in words that name neither the password nor the message. */
  private failure(err: SmtpFailure): DeliveryError {
    const code = err.responseCode;
    if (code !== undefined) {
      // The relay's own reply line (e.g. "550 5.1.1 mailbox unknown"), without what we sent.
      const reply = /\b[45]\d\d\b.*$/.exec(err.message ?? '')?.[0] ?? String(code);
      return new DeliveryError(
        `${this.name}: SMTP ${reply.slice(0, 200)}`,
        undefined,
        undefined,
        code >= 500,
      );
    }
    const what =
      err.code === 'ETIMEDOUT'
        ? `no answer within ${this.options.timeoutMs} ms`
        : err.code === 'ETLS' || err.code === 'ESOCKET'
          ? `${err.code}: ${(err.message ?? '').slice(0, 200)}`
          : (err.code ?? (err.message ?? 'failed').slice(0, 200));
    return new DeliveryError(`${this.name}: ${what}`);
  }
}
