import { QUEUE_THRESHOLDS } from '@ginkgo-live/fleet';
import { PeriodicLoop, type Logger } from '@ginkgo-live/runtime';
import type { FleetSnapshot } from './fleet-view.ts';
import { RedisUnavailableError } from './redis-unavailable.ts';
import {
  buildOverview,
  OverviewHistory,
  type FleetOverview,
  type HistoryPoint,
} from './overview.ts';

/** What the page receives each update. */
export interface OverviewMessage extends FleetOverview {
  redis: { status: 'up' | 'down'; reason: string | null; down_since: string | null };
  /**
   * True when Redis could not be read: the fleet parts are the last ones read (at `data_as_of`,
   * null when none was ever read) and must not be shown as current.
   */
  stale: boolean;
  data_as_of: string | null;
  history: HistoryPoint[];
}

export interface OverviewFeedOptions {
  /** The fleet, brought up to date from what changed (`FleetView`). */
  source: { refresh(): Promise<FleetSnapshot> };
  logger: Logger;
  /** Update interval while someone watches. Default 1000 ms. */
  intervalMs?: number;
  /**
   * After an `/api/overview` request, updates go on this long without a stream open (a page that
   * polls the JSON keeps its charts). Default 30 s.
   */
  demandMs?: number;
  history?: OverviewHistory;
  now?: () => Date;
}

type Listener = (message: OverviewMessage) => void;

const EMPTY: FleetOverview = {
  generated_at: new Date(0).toISOString(),
  trading: { halted: null, paused: [] },
  queue_thresholds: { ...QUEUE_THRESHOLDS },
  summary: {
    nodes_online: 0,
    nodes_total: 0,
    nodes_draining: 0,
    nodes_lost: 0,
    portfolios_running: 0,
    portfolios_total: 0,
    portfolios_orphaned: 0,
    events_per_second: 0,
    queue_depth_total: 0,
    queue_usage_max: null,
    notifications_last_hour: 0,
    leader: null,
    plan_version: null,
  },
  nodes: [],
  portfolios: [],
  notifications: [],
};

/**
 * One reader loop for every watcher of the operations page: each update is read from Redis once
 * and sent to all subscribers, however many pages are open. It runs only while someone watches —
 * an event stream is open, or `/api/overview` was asked within `demandMs` — and reads nothing
 * otherwise; each update reads only what changed since the last (`FleetView`). While Redis cannot
 * be read the message says so, keeps the last data flagged stale, and the loop goes on.
 */
export class OverviewFeed {
  private readonly listeners = new Set<Listener>();
  private readonly history: OverviewHistory;
  private readonly now: () => Date;
  private last: OverviewMessage | undefined;
  private lastGood: FleetOverview | undefined;
  private downSince: string | null = null;
  private running: Promise<void> | undefined;
  /** When `/api/overview` was last asked (epoch ms). */
  private lastAskedMs = Number.NEGATIVE_INFINITY;
  private readonly loop: PeriodicLoop;

  constructor(private readonly options: OverviewFeedOptions) {
    this.history = options.history ?? new OverviewHistory();
    this.now = options.now ?? (() => new Date());
    this.loop = new PeriodicLoop({
      name: 'operations feed',
      intervalMs: () => this.options.intervalMs ?? 1_000,
      logger: options.logger,
      // `update` never throws: a failed read is a stale message, logged once by `readOnce`.
      run: async () => {
        if (!this.watched()) {
          void this.loop.stop();
          return;
        }
        await this.update();
      },
      immediate: false,
    });
  }

  /** Someone watches: a stream is open, or the JSON was asked within `demandMs`. */
  private watched(): boolean {
    return (
      this.listeners.size > 0 ||
      this.now().getTime() - this.lastAskedMs < (this.options.demandMs ?? 30_000)
    );
  }

  stop(): void {
    this.listeners.clear();
    this.lastAskedMs = Number.NEGATIVE_INFINITY;
    void this.loop.stop();
  }

  /**
   * The fleet read now, for the JSON endpoint: throws `RedisUnavailableError` rather than go stale.
   * Keeps the loop going for `demandMs`, so the charts go on for a page that polls.
   */
  async read(): Promise<OverviewMessage> {
    this.lastAskedMs = this.now().getTime();
    this.loop.start();
    const message = await this.update();
    if (message.stale) throw new RedisUnavailableError('the operations feed cannot read the fleet');
    return message;
  }

  /** Adds a watcher; it gets the latest message at once (when there is one), then each update. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.last !== undefined && this.loop.running) listener(this.last);
    else void this.update();
    this.loop.start();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** One read, shared by concurrent callers; never throws. */
  private update(): Promise<OverviewMessage> {
    this.running ??= this.readOnce().finally(() => {
      this.running = undefined;
    });
    return this.running.then(() => this.last as OverviewMessage);
  }

  private async readOnce(): Promise<void> {
    let message: OverviewMessage;
    try {
      const { nodes, portfolios, plan, notifications, trading } =
        await this.options.source.refresh();
      const now = this.now();
      const overview = buildOverview({ nodes, portfolios, plan, notifications, trading, now });
      this.history.record(overview.summary, now.getTime());
      if (this.downSince !== null)
        this.options.logger.info('Operations feed: Redis readable again', {
          downSince: this.downSince,
        });
      this.downSince = null;
      this.lastGood = overview;
      message = {
        ...overview,
        redis: { status: 'up', reason: null, down_since: null },
        stale: false,
        data_as_of: overview.generated_at,
        history: this.history.series(),
      };
    } catch (err) {
      // What the page shows says what failed, not the client library's text (addresses,
      // `WRONGPASS`…): every reader of the stream gets it, with `GATEWAY_PUBLIC_READS` anyone.
      const reason =
        err instanceof RedisUnavailableError
          ? 'Redis is unavailable'
          : 'Fleet read failed (the reason is in the gateway log)';
      if (this.downSince === null) {
        this.downSince = this.now().toISOString();
        this.options.logger.warn('Operations feed: cannot read the fleet', {
          reason: err instanceof RedisUnavailableError ? err.reason : undefined,
          err: err instanceof RedisUnavailableError ? undefined : err,
        });
      }
      const kept = this.lastGood ?? EMPTY;
      message = {
        ...kept,
        generated_at: this.now().toISOString(),
        redis: { status: 'down', reason, down_since: this.downSince },
        stale: true,
        data_as_of: this.lastGood?.generated_at ?? null,
        history: this.history.series(),
      };
    }
    this.last = message;
    for (const listener of this.listeners) listener(message);
  }
}
