import { QUEUE_LEVEL_RANK, QUEUE_THRESHOLDS, type QueueLevel } from '@ginkgo-live/fleet';
import { PeriodicLoop, type Logger } from '@ginkgo-live/runtime';
import type { FleetSnapshot } from './fleet-view.ts';
import { RedisUnavailableError } from './redis-unavailable.ts';
import {
  overviewHead,
  OverviewHistory,
  type FleetOverview,
  type HistoryPoint,
  type OverviewHead,
} from './overview.ts';
import { OverviewRows, type RowDelta } from './overview-rows.ts';

/** What every frame of the page carries besides the rows. */
export interface OverviewFrameHead extends OverviewHead {
  /** This update's number: a delta applies to the rows as of `base`, the update before it. */
  seq: number;
  redis: { status: 'up' | 'down'; reason: string | null; down_since: string | null };
  /**
   * True when Redis could not be read: the fleet parts are the last ones read (at `data_as_of`,
   * null when none was ever read) and must not be shown as current.
   */
  stale: boolean;
  data_as_of: string | null;
  history: HistoryPoint[];
  /** The order of the queue levels in the portfolio list (fullest first), for a page that sorts. */
  queue_level_rank: Readonly<Record<QueueLevel, number>>;
}

/** The whole overview (`/api/overview`, and a stream's first frame). */
export type OverviewMessage = OverviewFrameHead & Pick<FleetOverview, 'nodes' | 'portfolios'>;

/** A stream's later frames: the head, and the rows changed since update `base`. */
export type OverviewDelta = OverviewFrameHead & RowDelta & { base: number | null };

/** One update of the feed, serialised only when and as a stream needs it, once for all streams. */
export interface OverviewUpdate {
  readonly seq: number;
  /** The update before this one (null: the first since the feed started). */
  readonly base: number | null;
  /** This update as a delta (`OverviewDelta`), JSON. */
  deltaJson(): string;
  /** The whole overview as of the latest update (`OverviewMessage`), JSON. */
  fullJson(): string;
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

type Listener = (update: OverviewUpdate) => void;

const EMPTY: OverviewHead = {
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
  notifications: [],
};

const NO_CHANGE: RowDelta = {
  nodes: { set: [], remove: [] },
  portfolios: { set: [], remove: [] },
};

/**
 * One reader loop for every watcher of the operations page: each update is read from Redis once
 * and sent to all subscribers, however many pages are open. It runs only while someone watches —
 * an event stream is open, or `/api/overview` was asked within `demandMs` — and reads nothing
 * otherwise; each update reads only what changed since the last (`FleetView`). While Redis cannot
 * be read the update says so, keeps the last data flagged stale, and the loop goes on.
 *
 * The rows are kept once (`OverviewRows`), and an update carries only the rows it changed: a page
 * gets the whole overview when it connects (or falls behind) and deltas after it. Each update is
 * numbered; a delta names the update it applies to, so a page that missed one can tell.
 */
export class OverviewFeed {
  private readonly listeners = new Set<Listener>();
  private readonly history: OverviewHistory;
  private readonly now: () => Date;
  private readonly rows = new OverviewRows();
  private last: OverviewUpdate | undefined;
  private lastHead: OverviewFrameHead | undefined;
  private lastGood: OverviewHead | undefined;
  private seq = 0;
  private full: { seq: number; json: string } | undefined;
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
      // `update` never throws: a failed read is a stale update, logged once by `readOnce`.
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
   * The whole overview read now (`OverviewMessage`, JSON), for the JSON endpoint: throws
   * `RedisUnavailableError` rather than go stale. Keeps the loop going for `demandMs`, so the
   * charts go on for a page that polls.
   */
  async read(): Promise<string> {
    this.lastAskedMs = this.now().getTime();
    this.loop.start();
    await this.update();
    if (this.lastHead?.stale !== false)
      throw new RedisUnavailableError('the operations feed cannot read the fleet');
    return this.fullJson();
  }

  /** Adds a watcher; it gets the latest update at once (when there is one), then each update. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.last !== undefined && this.loop.running) listener(this.last);
    else void this.update();
    this.loop.start();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** The whole overview as of the latest update, JSON: serialised once per update that needs it. */
  private fullJson(): string {
    const head = this.lastHead;
    if (head === undefined) throw new Error('Operations feed: no update yet');
    if (this.full?.seq !== head.seq) {
      // The portfolio rows are joined from their kept JSON, not serialised again.
      const json = JSON.stringify({ ...head, nodes: this.rows.sortedNodes() });
      this.full = {
        seq: head.seq,
        json: `${json.slice(0, -1)},"portfolios":${this.rows.portfoliosJson()}}`,
      };
    }
    return this.full.json;
  }

  /** One read, shared by concurrent callers; never throws. */
  private update(): Promise<void> {
    this.running ??= this.readOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async readOnce(): Promise<void> {
    let head: OverviewHead;
    let changes: RowDelta;
    let redis: OverviewFrameHead['redis'];
    let stale: boolean;
    let dataAsOf: string | null;
    try {
      const { nodes, portfolios, plan, notifications, trading } =
        await this.options.source.refresh();
      const now = this.now();
      changes = await this.rows.update({ nodes, portfolios, now });
      head = overviewHead(
        { nodes: this.rows.nodeRows(), portfolios: this.rows.portfolioRows() },
        { plan, notifications, trading, now },
      );
      this.history.record(head.summary, now.getTime());
      if (this.downSince !== null)
        this.options.logger.info('Operations feed: Redis readable again', {
          downSince: this.downSince,
        });
      this.downSince = null;
      this.lastGood = head;
      redis = { status: 'up', reason: null, down_since: null };
      stale = false;
      dataAsOf = head.generated_at;
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
      // The rows kept are the last ones read: nothing changes in them.
      changes = NO_CHANGE;
      head = { ...(this.lastGood ?? EMPTY), generated_at: this.now().toISOString() };
      redis = { status: 'down', reason, down_since: this.downSince };
      stale = true;
      dataAsOf = this.lastGood?.generated_at ?? null;
    }
    const base = this.lastHead?.seq ?? null;
    this.seq += 1;
    // The whole overview of the last update is kept only until this one (8 MB at 5,000 nodes).
    this.full = undefined;
    const frameHead: OverviewFrameHead = {
      seq: this.seq,
      ...head,
      redis,
      stale,
      data_as_of: dataAsOf,
      history: this.history.series(),
      queue_level_rank: QUEUE_LEVEL_RANK,
    };
    this.lastHead = frameHead;
    let delta: string | undefined;
    const update: OverviewUpdate = {
      seq: frameHead.seq,
      base,
      deltaJson: () =>
        (delta ??= JSON.stringify({ ...frameHead, base, ...changes } satisfies OverviewDelta)),
      fullJson: () => this.fullJson(),
    };
    this.last = update;
    for (const listener of this.listeners) listener(update);
  }
}
