import {
  PayloadEncodeError,
  type Notification,
  type NotificationLevel,
  type NotificationSubject,
} from '@ginkgo-live/state-keys';

/** An occurrence raised: its dedupe identity and the notification to send when it is new. */
export interface Raise {
  kind: string;
  level: NotificationLevel;
  /** The condition it belongs to (the resolved notice clears the whole group). */
  group: string;
  subject: NotificationSubject;
  notification: Notification;
}

/** A condition that cleared: its dedupe identity and the text of its resolved notice. */
export interface Resolve {
  group: string;
  subject: NotificationSubject;
  /** Every (kind, level) the group may have raised, so their cooldowns are cleared. */
  kinds: readonly { kind: string; level: NotificationLevel }[];
  title: string;
  message: string;
  details: Record<string, unknown>;
}

/**
 * One piece of notification work: claim the shared dedupe then send (raise), clear a condition then
 * send its resolved notice (resolve), or only send (the dedupe was already claimed). Held in order
 * while Redis is away and done when it is back, through the same dedupe as at first.
 */
export type Step =
  | ({ op: 'raise' } & Raise)
  | ({ op: 'resolve' } & Resolve)
  | { op: 'send'; notification: Notification };

/** The dedupe was claimed but the queue add failed: only the send is left to do. */
export class SendFailed extends Error {
  override readonly name = 'SendFailed';

  constructor(
    readonly notification: Notification,
    override readonly cause: unknown,
  ) {
    super('Notification not queued');
  }
}

/** What is left of a step that failed: only the send once its dedupe was claimed. */
export function remainderOf(step: Step, err: unknown): Step {
  return err instanceof SendFailed ? { op: 'send', notification: err.notification } : step;
}

/**
 * An error of our own making (an invalid kind or id, a payload that breaks its schema): holding the
 * step for later would fail the same way forever, and block every step held behind it.
 */
export function isBug(err: unknown): boolean {
  if (err instanceof SendFailed) return isBug(err.cause);
  return err instanceof RangeError || err instanceof PayloadEncodeError;
}

/** A held step as a line of the "Redis unavailable" notice. */
export function describeStep(step: Step): string {
  switch (step.op) {
    case 'raise':
      return `${step.level} ${step.kind}: ${step.notification.title}`;
    case 'resolve':
      return `resolved ${step.group}: ${step.title}`;
    case 'send': {
      const n = step.notification;
      return `${n.status === 'resolved' ? 'resolved' : n.level} ${n.kind}: ${n.title}`;
    }
  }
}
