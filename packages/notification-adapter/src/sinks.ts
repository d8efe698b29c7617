import type { Logger } from '@ginkgo-live/runtime';
import type { Notification, NotificationLevel } from '@ginkgo-live/state-keys';
import { EmailSink, type EmailSinkOptions } from './email-sink.ts';

/** Where notifications go. */
export interface Sink {
  /** Shown in logs and delivery records; never the URL. */
  readonly name: string;
  /** Delivers one notification; rejects with a `DeliveryError` when it did not arrive. */
  deliver(notification: Notification): Promise<void>;
}

/** Why a delivery failed; says nothing of the URL. */
export class DeliveryError extends Error {
  override readonly name = 'DeliveryError';

  constructor(
    message: string,
    /** HTTP status, when the receiver answered. */
    readonly status?: number,
    /** The receiver asked to wait this long before trying again (429 Retry-After), in ms. */
    readonly retryAfterMs?: number,
    /** Retrying cannot help (a 4xx other than 408/429). */
    readonly isPermanent = false,
  ) {
    super(message);
  }
}

/** `Retry-After` as seconds or an HTTP date, in ms; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, nowMs = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(header.trim())) return Math.round(Number(header) * 1_000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

const COLORS: Record<NotificationLevel, number> = {
  info: 0x2f80ed,
  warning: 0xf2c94c,
  error: 0xeb5757,
  critical: 0x9b1c1c,
};

/** `[LEVEL] title`, or `[RESOLVED] title`: the first line every sink shows. */
export function headline(n: Notification): string {
  const status = n.status === 'resolved' ? 'RESOLVED' : n.level.toUpperCase();
  return `[${status}] ${n.title}`;
}

/** The kind, the subject's ids, then every detail, as (name, value) text pairs. */
export function notificationFields(n: Notification): [string, string][] {
  return [
    ['kind', n.kind],
    ...(n.subject.node_id === null ? [] : ([['node', n.subject.node_id]] as [string, string][])),
    ...(n.subject.portfolio_id === null
      ? []
      : ([['portfolio', n.subject.portfolio_id]] as [string, string][])),
    ...Object.entries(n.details).map(([k, v]): [string, string] => [
      k,
      typeof v === 'string' ? v : JSON.stringify(v),
    ]),
  ];
}

/** Body formats of the HTTP sinks. */
export type WebhookFormat = 'json' | 'discord' | 'slack' | 'alertmanager';

/**
 * How long Alertmanager keeps a firing notification active without hearing of it again. Our
 * notifications are told once (and again each cooldown while raised), not re-sent every scrape as
 * Prometheus does, so Alertmanager's own default (`resolve_timeout`, 5 min) would resolve a
 * node-lost alert while the node is still lost. A day instead: the resolved notice ends it; if that
 * is ever lost, the alert stays up too long rather than going quiet too soon.
 */
export const ALERTMANAGER_FIRING_MS = 24 * 60 * 60 * 1_000;

/**
 * The labels that identify one alert in Alertmanager: the kind, the level and the subject's ids,
 * nothing that differs between the process that raised and the one that resolved.
 */
export function alertLabels(
  kind: string,
  level: string,
  subject: Notification['subject'],
): Record<string, string> {
  return {
    alertname: kind,
    severity: level,
    service: 'ginkgo-live',
    ...(subject.node_id === null ? {} : { node: subject.node_id }),
    ...(subject.portfolio_id === null ? {} : { portfolio: subject.portfolio_id }),
  };
}

/**
 * Alertmanager's v2 alerts: a firing notification is one alert, active for
 * `ALERTMANAGER_FIRING_MS`; a resolved notice ends every (kind, level) of its condition that was
 * firing (`details.resolved`, `kind|level` each), by the same labels.
 */
function alertmanagerAlerts(n: Notification): unknown[] {
  const annotations = {
    summary: n.title,
    description: n.message,
    source: `${n.source.app}${n.source.node_id === null ? '' : ` (${n.source.node_id})`}`,
    notification_id: n.id,
  };
  if (n.status !== 'resolved') {
    const endsAt = new Date(Date.parse(n.created_at) + ALERTMANAGER_FIRING_MS).toISOString();
    return [
      {
        labels: alertLabels(n.kind, n.level, n.subject),
        annotations,
        startsAt: n.created_at,
        endsAt,
      },
    ];
  }
  const resolved = Array.isArray(n.details['resolved'])
    ? n.details['resolved'].filter((f): f is string => typeof f === 'string' && f.includes('|'))
    : [];
  const pairs = resolved.length > 0 ? resolved.map((f) => f.split('|')) : [[n.kind, n.level]];
  // startsAt = endsAt: Alertmanager keeps the start it has for the alert and ends it now.
  return pairs.map(([kind, level]) => ({
    labels: alertLabels(kind ?? n.kind, level ?? n.level, n.subject),
    annotations,
    startsAt: n.created_at,
    endsAt: n.created_at,
  }));
}

function body(format: WebhookFormat, n: Notification): unknown {
  switch (format) {
    case 'json':
      return n;
    case 'alertmanager':
      return alertmanagerAlerts(n);
    case 'discord':
      return {
        username: 'ginkgo-live',
        embeds: [
          {
            title: headline(n).slice(0, 256),
            description: n.message.slice(0, 4_000),
            color: n.status === 'resolved' ? 0x27ae60 : COLORS[n.level],
            fields: notificationFields(n)
              .slice(0, 25)
              .map(([name, value]) => ({ name, value: value.slice(0, 1_024), inline: true })),
            timestamp: n.created_at,
          },
        ],
      };
    case 'slack':
      return {
        text: `${headline(n)}: ${n.message}`,
        blocks: [
          { type: 'section', text: { type: 'mrkdwn', text: `*${headline(n)}*\n${n.message}` } },
          {
            type: 'section',
            fields: notificationFields(n)
              .slice(0, 10)
              .map(([name, value]) => ({ type: 'mrkdwn', text: `*${name}*\n${value}` })),
          },
        ],
      };
  }
}

/**
 * POSTs notifications as JSON to a URL: the generic webhook (the notification itself), a Discord
 * webhook (an embed), a Slack incoming webhook (blocks) or Alertmanager's v2 API (alerts). Each
 * delivery has its own timeout.
 */
export class WebhookSink implements Sink {
  constructor(
    readonly name: string,
    private readonly url: string,
    private readonly format: WebhookFormat,
    private readonly timeoutMs: number,
  ) {}

  async deliver(notification: Notification): Promise<void> {
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'ginkgo-live' },
        body: JSON.stringify(body(this.format, notification)),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      const timedOut =
        (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError';
      throw new DeliveryError(
        timedOut
          ? `${this.name}: no answer within ${this.timeoutMs} ms`
          : `${this.name}: ${cause ?? (err as Error).message}`,
      );
    }
    // The body is not needed; reading it frees the connection.
    await response.arrayBuffer().catch(() => undefined);
    if (response.ok) return;
    const status = response.status;
    if (status === 429) {
      throw new DeliveryError(
        `${this.name}: HTTP 429`,
        status,
        parseRetryAfter(response.headers.get('retry-after')),
      );
    }
    const permanent = status >= 400 && status < 500 && status !== 408;
    throw new DeliveryError(`${this.name}: HTTP ${status}`, status, undefined, permanent);
  }
}

/** Writes notifications to the log (error for critical and error, warn for warning, info otherwise). */
export class LogSink implements Sink {
  readonly name = 'log';

  constructor(private readonly logger: Logger) {}

  deliver(n: Notification): Promise<void> {
    const level =
      n.status === 'resolved'
        ? 'info'
        : n.level === 'critical' || n.level === 'error'
          ? 'error'
          : n.level === 'warning'
            ? 'warn'
            : 'info';
    this.logger.log(level, 'Notification', {
      notificationId: n.id,
      kind: n.kind,
      notificationLevel: n.level,
      status: n.status,
      title: n.title,
      subject: n.subject,
      details: n.details,
    });
    return Promise.resolve();
  }
}

/**
 * The sinks the config names: the webhooks and the e-mail relay (the log sink is added by the
 * caller when wanted).
 */
export function createSinks(config: {
  webhookUrl: string | undefined;
  discordWebhookUrl: string | undefined;
  slackWebhookUrl: string | undefined;
  alertmanagerUrl: string | undefined;
  email: EmailSinkOptions | undefined;
  deliveryTimeoutMs: number;
}): Sink[] {
  const sinks: Sink[] = [];
  if (config.webhookUrl !== undefined)
    sinks.push(new WebhookSink('webhook', config.webhookUrl, 'json', config.deliveryTimeoutMs));
  if (config.discordWebhookUrl !== undefined)
    sinks.push(
      new WebhookSink('discord', config.discordWebhookUrl, 'discord', config.deliveryTimeoutMs),
    );
  if (config.slackWebhookUrl !== undefined)
    sinks.push(new WebhookSink('slack', config.slackWebhookUrl, 'slack', config.deliveryTimeoutMs));
  if (config.alertmanagerUrl !== undefined)
    sinks.push(
      new WebhookSink(
        'alertmanager',
        `${config.alertmanagerUrl.replace(/\/+$/, '')}/api/v2/alerts`,
        'alertmanager',
        config.deliveryTimeoutMs,
      ),
    );
  if (config.email !== undefined) sinks.push(new EmailSink(config.email));
  return sinks;
}
