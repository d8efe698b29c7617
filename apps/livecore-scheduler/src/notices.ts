import type {
  ConditionDetails,
  ConditionSubject,
  KindDetails,
  KindSubject,
  Notifier,
} from '@ginkgo-live/notification-adapter';

/** The kinds the scheduler raises; each resolves by the condition of the same name. */
type SchedulerKind = 'node_lost' | 'portfolio_orphaned' | 'catalog_missing' | 'fleet_halted';

/**
 * The scheduler's notifications as data, in the notification catalogue's terms: the core decides
 * them, `tell` sends them. Every kind is raised and resolved by the leader alone; the adapter
 * dedupes across processes.
 */
export type Notice =
  | {
      [K in SchedulerKind]: {
        op: 'raise';
        kind: K;
        subject: KindSubject<K>;
        details: KindDetails<K>;
      };
    }[SchedulerKind]
  | {
      [C in SchedulerKind]: {
        op: 'resolve';
        kind: C;
        subject: ConditionSubject<C>;
        details: ConditionDetails<C>;
      };
    }[SchedulerKind];

export type NoticeSink = Pick<Notifier, 'raise' | 'resolve'>;

/** Sends one notice through the catalogue (which spells titles, levels and dedupe groups). */
export function tell(notifier: NoticeSink, notice: Notice): void {
  // One case per kind: the compiler checks each subject and details against the catalogue.
  switch (notice.kind) {
    case 'node_lost':
      if (notice.op === 'raise') notifier.raise(notice.kind, notice.subject, notice.details);
      else notifier.resolve(notice.kind, notice.subject, notice.details);
      return;
    case 'portfolio_orphaned':
      if (notice.op === 'raise') notifier.raise(notice.kind, notice.subject, notice.details);
      else notifier.resolve(notice.kind, notice.subject, notice.details);
      return;
    case 'catalog_missing':
      if (notice.op === 'raise') notifier.raise(notice.kind, notice.subject, notice.details);
      else notifier.resolve(notice.kind, notice.subject, notice.details);
      return;
    case 'fleet_halted':
      if (notice.op === 'raise') notifier.raise(notice.kind, notice.subject, notice.details);
      else notifier.resolve(notice.kind, notice.subject, notice.details);
      return;
  }
}
