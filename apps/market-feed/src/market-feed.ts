import type { Redis } from 'ioredis';
import { PeriodicLoop, type Logger } from '@ginkgo-live/runtime';
import type { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { decodePayload, type StateKeys } from '@ginkgo-live/state-keys';
import type { FeedAlarm } from './feed-alarm.ts';
import { RandomWalk, startingPrice } from './random-walk.ts';

export interface MarketFeedOptions {
  redis: Redis;
  keys: StateKeys;
  queues: PortfolioQueues;
  ratePerSecond: number;
  volatilityBp: number;
  catalogRefreshMs: number;
  logger: Logger;
  /** Raises `queue_full` when a full queue refuses (`createFeedAlarm`); closed by `stop`. */
  alarm: FeedAlarm;
  /** How often the counters are logged; default 10 s. */
  reportMs?: number;
}

/** Counters of what the feed offered. */
export interface FeedCounters {
  accepted: number;
  refused: number;
  failed: number;
}

/** What the feed offered one portfolio, by outcome. */
export type PortfolioCounters = FeedCounters;

/**
 * Publishes a random-walk tick for every symbol that a catalogued portfolio follows, `ratePerSecond`
 * times a second, to each following portfolio's queue. A full queue refuses (counted, never
 * waited for); a Redis failure fails the round (counted, logged when the feed starts failing and
 * when it recovers) and the next round tries again. The catalog is read again every
 * `catalogRefreshMs`; while it cannot be read, the last one stands.
 */
export class MarketFeed {
  readonly counters: FeedCounters = { accepted: 0, refused: 0, failed: 0 };
  /** The same, per portfolio (for `/metrics`: a counter per portfolio and outcome). */
  readonly byPortfolio = new Map<string, PortfolioCounters>();
  private followers = new Map<string, string[]>();
  private readonly walks = new Map<string, RandomWalk>();
  private readonly alarm: FeedAlarm;
  private readonly rounds: PeriodicLoop;
  private readonly catalog: PeriodicLoop;
  private readonly report: PeriodicLoop;

  constructor(private readonly options: MarketFeedOptions) {
    this.alarm = options.alarm;
    const { logger } = options;
    this.catalog = new PeriodicLoop({
      name: 'catalog refresh',
      intervalMs: options.catalogRefreshMs,
      logger,
      run: () => this.refreshCatalog(),
    });
    const periodMs = 1_000 / options.ratePerSecond;
    this.rounds = new PeriodicLoop({
      name: 'publish round',
      // The rate counts from the start of a round; a slow round makes the next one wait, never pile up.
      intervalMs: () => Math.max(0, periodMs - this.rounds.stats.lastRunMs),
      logger,
      immediate: false,
      run: () => this.publishRound(),
    });
    this.report = new PeriodicLoop({
      name: 'counters report',
      intervalMs: options.reportMs ?? 10_000,
      logger,
      immediate: false,
      run: () => {
        logger.info('Feed counters', { ...this.counters });
        return Promise.resolve();
      },
    });
  }

  start(): void {
    for (const loop of [this.catalog, this.rounds, this.report]) loop.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.catalog, this.rounds, this.report].map((loop) => loop.stop()));
    this.options.logger.info('Feed counters', { ...this.counters });
    await this.alarm.notifier.close();
  }

  /** Portfolios and symbols fed now (from the last catalog read). */
  get fed(): { portfolios: number; symbols: number } {
    return {
      portfolios: new Set([...this.followers.values()].flat()).size,
      symbols: this.followers.size,
    };
  }

  /** Symbol → portfolios following it, from the catalog. Keeps the last view when Redis fails. */
  private async refreshCatalog(): Promise<void> {
    const entries = await this.options.redis.hgetall(this.options.keys.portfolioCatalog());
    const followers = new Map<string, string[]>();
    for (const [id, raw] of Object.entries(entries)) {
      const spec = decodePayload(
        'portfolioSpec',
        `${this.options.keys.portfolioCatalog()}[${id}]`,
        raw,
      );
      if (!spec.ok) {
        this.options.logger.warn('Skipping a malformed catalog entry', {
          problem: spec.error.problem,
        });
        continue;
      }
      for (const symbol of spec.value.symbols) {
        followers.set(symbol, [...(followers.get(symbol) ?? []), spec.value.portfolio_id]);
      }
    }
    if (followers.size !== this.followers.size) {
      this.options.logger.info('Feeding symbols', {
        symbols: [...followers.keys()],
        portfolios: Object.keys(entries).length,
      });
    }
    this.followers = followers;
  }

  /** One tick per followed symbol to every follower; throws the first failure after counting them all. */
  private async publishRound(): Promise<void> {
    const offers: Promise<void>[] = [];
    const eventTime = new Date().toISOString();
    for (const [symbol, portfolios] of this.followers) {
      let walk = this.walks.get(symbol);
      if (walk === undefined) {
        walk = new RandomWalk(startingPrice(symbol), this.options.volatilityBp / 10_000);
        this.walks.set(symbol, walk);
      }
      const price = walk.next();
      const volume = Math.round(Math.random() * 1_000) / 100;
      for (const portfolioId of portfolios) {
        offers.push(this.offer(portfolioId, { symbol, price, volume, event_time: eventTime }));
      }
    }
    const failures = (await Promise.allSettled(offers)).filter((r) => r.status === 'rejected');
    this.counters.failed += failures.length;
    const [first] = failures;
    if (first !== undefined) throw first.reason;
  }

  private async offer(
    portfolioId: string,
    tick: { symbol: string; price: number; volume: number; event_time: string },
  ): Promise<void> {
    let mine = this.byPortfolio.get(portfolioId);
    if (mine === undefined) {
      mine = { accepted: 0, refused: 0, failed: 0 };
      this.byPortfolio.set(portfolioId, mine);
    }
    let result;
    try {
      result = await this.options.queues.add(portfolioId, tick);
    } catch (err) {
      mine.failed += 1;
      throw err;
    }
    if (result.ok) {
      this.counters.accepted += 1;
      mine.accepted += 1;
    } else {
      this.counters.refused += 1;
      mine.refused += 1;
    }
    // The producer sees a full queue even when every consumer is frozen or dead.
    const { capacity } = this.options.queues;
    if (result.ok) this.alarm.alarm.accepted(portfolioId, { depth: result.depth, capacity });
    else if (result.reason === 'full')
      this.alarm.alarm.refused(portfolioId, { depth: result.depth, capacity });
  }
}
