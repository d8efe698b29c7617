import { QUEUE_THRESHOLDS } from '@ginkgo-live/fleet';
import { PeriodicLoop, type Logger } from '@ginkgo-live/runtime';
import type { FleetReader } from './fleet-reader.ts';
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
  reader: FleetReader;
  logger: Logger;
  /** Update interval while someone watches. Default 1000 ms. */
  intervalMs?: number;
  /** Sampling interval for the charts while nobody watches (after `start()`). Default 5000 ms. */
  idleIntervalMs?: number;
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
 * (four pipelined reads) and sent to all subscribers, however many pages are open. While Redis
 * cannot be read the message says so, keeps the last data flagged stale, and the loop goes on.
 */
export class OverviewFeed {
  private readonly listeners = new Set<Listener>();
  private readonly history: OverviewHistory;
  private readonly now: () => Date;
  private last: OverviewMessage | undefined;
  private lastGood: FleetOverview | undefined;
  private downSince: string | null = null;
  private running: Promise<void> | undefined;
  private background = false;
  /** Reads every second while a page watches, every five (for the charts) after `start()`. */
  private readonly loop: PeriodicLoop;

  constructor(private readonly options: OverviewFeedOptions) {
    this.history = options.history ?? new OverviewHistory();
    this.now = options.now ?? (() => new Date());
    this.loop = new PeriodicLoop({
      name: 'operations feed',
      intervalMs: () =>
        this.listeners.size > 0
          ? (this.options.intervalMs ?? 1_000)
          : (this.options.idleIntervalMs ?? 5_000),
      logger: options.logger,
      // `update` never throws: a failed read is a stale message, logged once by `readOnce`.
      run: async () => {
        await this.update();
      },
      immediate: false,
    });
  }

  /** Samples in the background (for the charts) even while no page is open. */
  start(): void {
    this.background = true;
    this.loop.start();
  }

  stop(): void {
    this.background = false;
    void this.loop.stop();
  }

  /** The fleet read now, for the JSON endpoint: throws `RedisUnavailableError` rather than go stale. */
  async read(): Promise<OverviewMessage> {
    const message = await this.update();
    if (message.stale) throw new RedisUnavailableError('the operations feed cannot read the fleet');
    return message;
  }

  /** Adds a watcher; it gets the latest message at once (when there is one), then each update. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.last !== undefined) listener(this.last);
    else void this.update();
    this.loop.start();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && !this.background) void this.loop.stop();
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
    const { reader } = this.options;
    let message: OverviewMessage;
    try {
      // One after the other: with a large fleet, replies of reads sent together would wait while
      // the first is decoded, and could outlast the command timeout.
      const nodes = await reader.nodes();
      const portfolios = await reader.portfolios();
      const plan = await reader.plan();
      const notifications = await reader.notifications();
      const trading = await reader.trading();
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
