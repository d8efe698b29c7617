export { CONDITIONS, KINDS, kindsOf } from './catalogue.ts';
export type {
  ConditionDetails,
  ConditionName,
  ConditionSubject,
  KindDetails,
  KindLevel,
  KindName,
  KindSubject,
  Level,
  QueueRefusal,
  QueueSample,
} from './catalogue.ts';
export { loadNotificationConfig } from './config.ts';
export type { NotificationConfig } from './config.ts';
export { NotificationDeliveryWorker } from './delivery-worker.ts';
export type { DeliveryStats, DeliveryWorkerOptions } from './delivery-worker.ts';
export { createAppNotifier, Notifier } from './notifier.ts';
export type { NotifierOptions, QueuedCondition, QueuedKind } from './notifier.ts';
export { QUEUE_CONDITION, QueueFullAlarm } from './queue-full-alarm.ts';
export { SILENCE_KEPT_MS, SILENCE_MAX_MS, SilenceError, Silences } from './silences.ts';
export type { SilenceRequest } from './silences.ts';
export {
  MATCH_FIELDS,
  matchesFields,
  parseRoutes,
  routedSinks,
  routeOf,
  sinksFor,
} from './routes.ts';
export type { MatchField, Route, RoutesProblem, Routing } from './routes.ts';
export type { QueueFullAlarmOptions } from './queue-full-alarm.ts';
export { createSinks, DeliveryError, LogSink, parseRetryAfter, WebhookSink } from './sinks.ts';
export type { Sink, WebhookFormat } from './sinks.ts';
export { EmailSink, emailHtml, emailText } from './email-sink.ts';
export type { EmailSinkOptions, SmtpTls } from './email-sink.ts';
