import type { Notifier } from '@ginkgo-live/notification-adapter';

/**
 * The scheduler's notifications as data: the core decides them, `tell` sends them. Every kind is
 * raised and resolved by the leader alone; the adapter dedupes across processes.
 */
export type Notice =
  | {
      op: 'raise' | 'resolve';
      kind: 'node_lost';
      subject: { nodeId: string };
      details: { node_id: string; last_seen: string | null };
    }
  | {
      op: 'raise';
      kind: 'portfolio_orphaned';
      subject: { portfolioId: string };
      details: { portfolio_id: string; reason: string | null; orphaned_since: string };
    }
  | {
      op: 'resolve';
      kind: 'portfolio_orphaned';
      subject: { portfolioId: string };
      details: { portfolio_id: string; node_id: string | null };
    }
  | {
      op: 'raise';
      kind: 'catalog_missing';
      subject: null;
      details: { plan_portfolios: number; reload_from_file: boolean };
    }
  | { op: 'resolve'; kind: 'catalog_missing'; subject: null; details: { portfolios: number } };

export type NoticeSink = Pick<Notifier, 'notify' | 'resolve'>;

/** Sends one notice: the only place that spells the scheduler's titles, levels and groups. */
export function tell(notifier: NoticeSink, notice: Notice): void {
  const level = 'critical';
  const kinds = [{ kind: notice.kind, level }] as const;
  switch (notice.kind) {
    case 'node_lost': {
      const { node_id: id } = notice.details;
      const common = { group: 'node', subject: notice.subject, details: notice.details };
      if (notice.op === 'raise')
        notifier.notify({
          ...common,
          kind: notice.kind,
          level,
          title: `Node ${id} lost`,
          message: `No heartbeat from ${id}; its portfolios are moved to other nodes.`,
        });
      else
        notifier.resolve({
          ...common,
          kinds,
          title: `Node ${id} back`,
          message: `${id} is beating again.`,
        });
      return;
    }
    case 'portfolio_orphaned': {
      const id = notice.details.portfolio_id;
      const common = { group: 'orphan', subject: notice.subject };
      if (notice.op === 'raise')
        notifier.notify({
          ...common,
          kind: notice.kind,
          level,
          title: `Portfolio ${id} has no node`,
          message: `${id} runs nowhere: ${notice.details.reason ?? 'no reason'}.`,
          details: notice.details,
        });
      else
        notifier.resolve({
          ...common,
          kinds,
          title: `Portfolio ${id} placed`,
          message: `${id} runs on ${notice.details.node_id ?? '?'} again.`,
          details: notice.details,
        });
      return;
    }
    case 'catalog_missing':
      if (notice.op === 'raise') {
        const { plan_portfolios: held, reload_from_file: reload } = notice.details;
        notifier.notify({
          kind: notice.kind,
          level,
          title: 'Portfolio catalog missing',
          message: `The catalog is gone from Redis (the plan holds ${held} portfolios); nothing was unassigned.${reload ? ' Reloading the catalog file.' : ' No catalog file was given: reload it.'}`,
          details: { plan_portfolios: held },
        });
      } else {
        const { portfolios } = notice.details;
        notifier.resolve({
          group: notice.kind,
          kinds,
          title: 'Portfolio catalog back',
          message: `The catalog is in Redis again (${portfolios} portfolios); planning goes on.`,
          details: { portfolios },
        });
      }
      return;
  }
}
