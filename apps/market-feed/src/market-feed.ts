import type { Redis } from 'ioredis';
import type { Logger } from '@ginkgo-live/runtime';
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
}

/** Counters of what the feed offered. */
export interface FeedCounters {
  accepted: number;
  refused: number;
  failed: number;
}

/**
 * Publishes a random-walk tick for every symbol that a catalogued portfolio follows, `ratePerSecond`
 * times a second, to each following portfolio's queue. A full queue refuses (counted, never
 * waited for); a Redis failure skips the round and is retried on the next.
 */
export class MarketFeed {
  readonly counters: FeedCounters = { accepted: 0, refused: 0, failed: 0 };
  private followers = new Map<string, string[]>();
  private readonly walks = new Map<string, RandomWalk>();
  private timer: NodeJS.Timeout | undefined;
  private catalogTimer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private failing = false;
  private readonly alarm: FeedAlarm;

  constructor(private readonly options: MarketFeedOptions) {
    this.alarm = options.alarm;
  }

  async start(): Promise<void> {
    await this.refreshCatalog();
    this.catalogTimer = setInterval(
      () => void this.refreshCatalog(),
      this.options.catalogRefreshMs,
    );
    this.timer = setInterval(() => {
      // Rounds never overlap: a slow round makes the next one wait, it does not pile up.
      this.round ??= this.publishRound().finally(() => (this.round = undefined));
    }, 1_000 / this.options.ratePerSecond);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.catalogTimer);
    await this.round;
    await this.alarm.notifier.close();
  }

  /** Symbol → portfolios following it, from the catalog. Keeps the last view when Redis fails. */
  private async refreshCatalog(): Promise<void> {
    let entries: Record<string, string>;
    try {
      entries = await this.options.redis.hgetall(this.options.keys.portfolioCatalog());
    } catch (err) {
      this.options.logger.warn('Catalog read failed; keeping the last one', { err });
      return;
    }
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
    await Promise.all(offers);
  }

  private async offer(
    portfolioId: string,
    tick: { symbol: string; price: number; volume: number; event_time: string },
  ): Promise<void> {
    try {
      const result = await this.options.queues.add(portfolioId, tick);
      if (result.ok) this.counters.accepted += 1;
      else this.counters.refused += 1;
      // The producer sees a full queue even when every consumer is frozen or dead.
      const { capacity } = this.options.queues;
      if (result.ok) this.alarm.alarm.accepted(portfolioId, { depth: result.depth, capacity });
      else if (result.reason === 'full')
        this.alarm.alarm.refused(portfolioId, { depth: result.depth, capacity });
      if (this.failing) {
        this.failing = false;
        this.options.logger.info('Publishing again');
      }
    } catch (err) {
      this.counters.failed += 1;
      if (!this.failing) {
        this.failing = true;
        this.options.logger.warn('Publishing failed; retrying every round', { err });
      }
    }
  }
}
