import type { NotificationLevel, NotificationSubject } from '@ginkgo-live/state-keys';
import { dedupeSubject } from './catalogue.ts';
import { normalizeLevel } from './levels.ts';
import type { Raise, Resolve } from './notification-step.ts';

/*
 * The form the scheduler raised and resolved in before the catalogue: a free kind and level, its
 * own text, the kinds to clear spelled by the resolver. Kept only until the scheduler raises by
 * name; then this file goes.
 */

/** A notification as raised before the catalogue (`Notifier.notify`). */
export interface NotifyInput {
  kind: string;
  /** info, warning (or WARN), error, critical (or ALERT). */
  level: string;
  title: string;
  message: string;
  details?: Record<string, unknown>;
  subject?: Partial<NotificationSubject>;
  /** The condition it belongs to, for the resolved notice; default the kind. */
  group?: string;
}

/** A condition that cleared, as resolved before the catalogue (`Notifier.resolve(input)`). */
export interface ResolveInput {
  group: string;
  subject?: Partial<NotificationSubject>;
  title: string;
  message: string;
  details?: Record<string, unknown>;
  kinds: readonly { kind: string; level: NotificationLevel }[];
}

/** The raise of an older-form input; an unknown level is sent as `error` (and `unknown` told). */
export function legacyRaise(
  input: NotifyInput,
  unknown: (level: string) => void,
): Omit<Raise, 'notification'> & {
  title: string;
  message: string;
  details: Record<string, unknown>;
} {
  let level = normalizeLevel(input.level);
  if (level === undefined) {
    unknown(input.level);
    level = 'error';
  }
  return {
    kind: input.kind,
    level,
    group: input.group ?? input.kind,
    subject: dedupeSubject(input.subject ?? {}),
    title: input.title,
    message: input.message,
    details: input.details ?? {},
  };
}

export function legacyResolve(input: ResolveInput): Resolve {
  return {
    group: input.group,
    subject: dedupeSubject(input.subject ?? {}),
    kinds: input.kinds,
    title: input.title,
    message: input.message,
    details: input.details ?? {},
  };
}
