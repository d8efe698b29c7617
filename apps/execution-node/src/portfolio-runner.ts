import type { Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@ginkgo-live/runtime';
import { createPortfolioWorker } from '@ginkgo-live/portfolio-queue';
import type {
  PortfolioBook,
  PortfolioSpec,
  PortfolioState,
  PortfolioStatus,
  PriceTick,
  StateKeys,
} from '@ginkgo-live/state-keys';
import { LatencyWindow } from './latency-window.ts';
import { Book } from './portfolio-book.ts';
import type { Strategy } from './strategies/index.ts';

export interface PortfolioRunnerOptions {
  spec: PortfolioSpec;
  nodeId: string;
  keys: StateKeys;
  /** `blocking` connection shared by the node's workers. */
  connection: Redis;
  strategy: Strategy | undefined;
  /** Saved book to resume from; a fresh one from the spec's starting cash when absent. */
  saved: PortfolioBook | undefined;
  queueCapacity: number;
  logger: Logger;
  /** Called whenever the state changed (the node coalesces the writes). */
  onChange: () => void;
}

/**
 * One portfolio on this node: its queue's worker (one event at a time, in order), its strategy and
 * book, its counters. Unloading stops taking events, finishes the event in hand and closes the
 * worker, so another node can take the queue over with nothing lost and nothing processed twice.
 */
export class PortfolioRunner {
  readonly portfolioId: string;
  status: PortfolioStatus = 'loading';
  processed = 0;
  failed = 0;
  refused = 0;
  queueDepth = 0;
  eventsPerSecond = 0;
  lastEventTime: string | null = null;
  lastError: string | null = null;
  private readonly book: Book;
  private readonly latency = new LatencyWindow();
  private worker: Worker | undefined;
  private readonly log: Logger;

  constructor(private readonly options: PortfolioRunnerOptions) {
    this.portfolioId = options.spec.portfolio_id;
    this.log = options.logger.child({ component: 'portfolio', portfolioId: this.portfolioId });
    const saved = options.saved;
    this.book = saved === undefined ? new Book(options.spec.starting_cash) : Book.from(saved);
    this.processed = saved?.processed_count ?? 0;
    this.failed = saved?.failed_count ?? 0;
  }

  /** True while events are consumed. */
  get isRunning(): boolean {
    return this.status === 'running';
  }

  /** Starts consuming the queue. */
  start(): void {
    if (this.worker !== undefined || this.options.strategy === undefined) return;
    const worker = createPortfolioWorker({
      portfolioId: this.portfolioId,
      keys: this.options.keys,
      connection: this.options.connection,
      workerName: this.options.nodeId,
      handler: (tick, job) => this.handle(tick, job),
    });
    worker.on('failed', (job, err) => this.onFailed(job, err));
    worker.on('error', (err) => this.log.warn('Queue worker error', { err }));
    this.worker = worker;
    this.status = 'running';
    this.options.onChange();
  }

  /** Marks the portfolio as unable to run, with the reason. */
  fail(reason: string): void {
    this.status = 'error';
    this.lastError = reason;
    this.options.onChange();
  }

  /**
   * Stops consuming: waits for the event in hand (BullMQ's graceful close), or abandons it when
   * `force` (its lock expires and it runs again elsewhere). Status ends `stopped`.
   */
  async stop(force = false): Promise<void> {
    if (this.status !== 'error') this.status = 'stopping';
    await this.worker?.close(force);
    this.worker = undefined;
    if (this.status !== 'error') this.status = 'stopped';
  }

  /** The `portfolio:{id}:state` payload. */
  state(): PortfolioState {
    const capacity = this.options.queueCapacity;
    return {
      _v: 1,
      portfolio_id: this.portfolioId,
      node_id: this.options.nodeId,
      status: this.status,
      queue_depth: this.queueDepth,
      queue_capacity: capacity,
      queue_usage: this.queueDepth / capacity,
      processed_count: this.processed,
      failed_count: this.failed,
      refused_count: this.refused,
      events_per_second: Math.round(this.eventsPerSecond * 100) / 100,
      last_event_time: this.lastEventTime,
      latency_ms: this.latency.percentiles(),
      cash: this.book.cash,
      position_count: this.book.positionCount,
      total_value: this.book.totalValue,
      last_error: this.lastError,
      updated_at: new Date().toISOString(),
    };
  }

  /** The `portfolio:{id}:book` payload. */
  bookPayload(): PortfolioBook {
    return {
      _v: 1,
      portfolio_id: this.portfolioId,
      node_id: this.options.nodeId,
      ...this.book.toJSON(),
      strategy_state: this.options.strategy?.snapshot() ?? this.options.saved?.strategy_state ?? {},
      processed_count: this.processed,
      failed_count: this.failed,
      updated_at: new Date().toISOString(),
    };
  }

  private handle(tick: PriceTick, job: Job): void {
    const strategy = this.options.strategy;
    if (strategy === undefined) throw new Error('No strategy');
    this.book.mark(tick);
    for (const order of strategy.onTick(tick, this.book)) this.book.fill(order, tick.price);
    this.processed += 1;
    this.lastEventTime = tick.event_time;
    this.latency.add(Math.max(0, Date.now() - job.timestamp));
    this.options.onChange();
  }

  private onFailed(job: Job | undefined, err: Error): void {
    this.failed += 1;
    this.lastError = err.message;
    this.log.warn('Event failed', { jobId: job?.id, reason: err.message });
    this.options.onChange();
  }
}
