import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import type { TlsCertificates } from './tls-certificates.ts';

/** One message the relay accepted. */
export interface ReceivedMail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
  headers: Map<string, unknown>;
  /** Whether the connection was TLS when the message was sent (STARTTLS or implicit). */
  secure: boolean;
  /** The user that logged in, if any. */
  user: string | undefined;
}

export interface SmtpRelayOptions {
  /**
   * `starttls`: plain connect, STARTTLS offered (`certs` needed); `implicit`: TLS from the first
   * byte; `none`: no TLS offered at all. Default `starttls`.
   */
  tls?: 'starttls' | 'implicit' | 'none';
  certs?: TlsCertificates;
  /** Logins it accepts (user → password); none: no AUTH asked for. */
  users?: Record<string, string>;
}

/**
 * A real SMTP server (the `smtp-server` library) on 127.0.0.1 and a free port, for e-mail
 * notification tests: it speaks the protocol (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA) to a real
 * client, records every message it accepts, parsed, and answers DATA as scripted (`answers`,
 * consumed in order: a reply code such as 451 or 550 refuses that message; empty: accepted).
 */
export class SmtpRelay {
  readonly received: ReceivedMail[] = [];
  answers: number[] = [];
  /** Logins refused (wrong user or password). */
  refusedLogins = 0;
  private server: SMTPServer | undefined;
  private portNumber = 0;

  constructor(private readonly options: SmtpRelayOptions = {}) {}

  get port(): number {
    return this.portNumber;
  }

  async start(): Promise<this> {
    const tls = this.options.tls ?? 'starttls';
    const certs = this.options.certs;
    if (tls !== 'none' && certs === undefined) throw new Error('SmtpRelay: TLS needs certs');
    const users = this.options.users;
    const server = new SMTPServer({
      secure: tls === 'implicit',
      hideSTARTTLS: tls === 'none',
      ...(certs === undefined
        ? {}
        : {
            key: readFileSync(certs.serverKeyFile),
            cert: readFileSync(certs.serverCertFile),
          }),
      authOptional: users === undefined,
      ...(users === undefined ? { disabledCommands: ['AUTH'] } : {}),
      // Over plain text only where no TLS is offered at all (the test of a relay without it).
      allowInsecureAuth: tls === 'none',
      logger: false,
      onAuth: (auth, _session, callback) => {
        if (users !== undefined && users[auth.username ?? ''] === auth.password) {
          callback(null, { user: auth.username });
          return;
        }
        this.refusedLogins += 1;
        callback(new Error('Invalid username or password'));
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const answer = this.answers.shift();
          if (answer !== undefined) {
            const refusal = Object.assign(new Error(`refused by the test (${answer})`), {
              responseCode: answer,
            });
            callback(refusal);
            return;
          }
          void this.record(Buffer.concat(chunks), session).then(
            () => callback(),
            (err: unknown) => callback(err as Error),
          );
        });
      },
    });
    server.on('error', () => {
      // A client that drops the connection; the test sees what it sent, or not.
    });
    await new Promise<void>((resolve, reject) => {
      server.listen(0, '127.0.0.1', () => resolve());
      server.server.once('error', reject);
    });
    this.server = server;
    this.portNumber = (server.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async record(raw: Buffer, session: SMTPServerSession): Promise<void> {
    const mail = await simpleParser(raw);
    this.received.push({
      from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
      to: session.envelope.rcptTo.map((r) => r.address),
      subject: mail.subject ?? '',
      text: mail.text ?? '',
      html: typeof mail.html === 'string' ? mail.html : '',
      headers: mail.headers,
      secure: session.secure,
      user: typeof session.user === 'string' ? session.user : undefined,
    });
  }
}
