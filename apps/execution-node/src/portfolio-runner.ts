import type { Logger } from '@ginkgo-live/runtime';
import type { PortfolioQueueReader, QueuedEvent } from '@ginkgo-live/portfolio-queue';
import {
  decodePayload,
  recordApplied,
  type AppliedRange,
  type PortfolioBook,
  type PortfolioSpec,
  type PortfolioState,
  type PortfolioStatus,
  type PriceTick,
} from '@ginkgo-live/state-keys';
import { LatencyWindow, type LatencyHistogram } from './latency-window.ts';
import type { CommitOutcome, CommitRequest, LeaseClaim } from './node-store.ts';
import { Book } from './portfolio-book.ts';
import type { Strategy } from './strategies/index.ts';

/** Producers a book remembers; the least recently applied one is forgotten beyond that. */
const MAX_PRODUCERS = 64;

/** The lease a runner was started under. */
export interface RunnerLease {
  token: string;
  /** Fence of the book loaded when the lease was taken; null when there was no book. */
  loaded: { token: string; version: number } | null;
  /**
   * When (performance.now()) the acquire that took the lease was sent: the lease counts as current
   * from then, not from when the runner is built — a process frozen between the acquire and the
   * runner may have outlived the lease already.
   */
  sentAt: number;
}

export interface PortfolioRunnerOptions {
  spec: PortfolioSpec;
  nodeId: string;
  strategy: Strategy | undefined;
  /** Saved book to resume from; a fresh one from the spec's starting cash when absent. */
  saved: PortfolioBook | undefined;
  /** The lease it runs under; null for a runner waiting for the lease (it runs nothing). */
  lease: RunnerLease | null;
  /** Lease TTL: the lease counts as expired by this process's clock this long after its renewal. */
  leaseTtlMs: number;
  /** Opens the reader of its queue (a blocking connection of its own), at start. */
  openReader: () => PortfolioQueueReader;
  /**
   * How long a wait on an empty queue blocks before the runner looks again (ms), default 1000: an
   * add ends the wait at once, so this bounds only a wake-up lost (another reader took the marker,
   * a blocking connection dead without a word).
   */
  idleWaitMs?: number;
  /** Commits through the node's store (fenced, atomic). */
  commit: (request: CommitRequest) => Promise<CommitOutcome>;
  /** Events applied per commit at most. */
  batchSize: number;
  queueCapacity: number;
  logger: Logger;
  /** Called whenever the state changed (the node coalesces the state writes). */
  onChange: () => void;
  /** Called once when another process holds the lease or wrote the book: drop this runner. */
  onLost: (reason: string) => void;
}

/** Why an operator holds a portfolio: the fleet-wide halt, or a pause of this portfolio. */
export type Hold = 'halt' | 'pause';

/** Why a commit did not land. */
class CommitRefused extends Error {
  override readonly name = 'CommitRefused';
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * One portfolio on this node: it reads its queue's oldest events, applies them in order to the
 * strategy and book in memory, and commits them — the book (with its fence and what it applied)
 * written and the jobs removed in one atomic step, under its lease. Nothing is taken from the
 * queue before it is in the book, so a process that dies or freezes loses nothing: the next owner
 * loads the last committed book and finds the uncommitted events still at the head of the queue.
 * A resent or replayed event (its producer seq already applied) is removed without being applied.
 */
export class PortfolioRunner {
  readonly portfolioId: string;
  status: PortfolioStatus = 'loading';
  processed = 0;
  failed = 0;
  refused = 0;
  skipped = 0;
  queueDepth = 0;
  eventsPerSecond = 0;
  lastEventTime: string | null = null;
  lastError: string | null = null;
  private readonly book: Book;
  private readonly latency = new LatencyWindow();
  private readonly log: Logger;
  private producers: Record<string, AppliedRange>;
  /** Version of the book this process last committed (or loaded). */
  private version: number;
  /** When (performance.now()) the beat that last renewed the lease started. */
  private renewedAt: number;
  private releasing = false;
  /**
   * The last book this process committed (or loaded), with its version: what a claim holds. Never
   * the batch in flight: another node may have committed the same version since with other events
   * (see `claimBook`).
   */
  private committed: { version: number; book: PortfolioBook };
  /**
   * The version the last beat that carried this runner reported left in Redis as a claim (see
   * NodeStore's BEAT), and when (performance.now()) that beat started; undefined when it did not.
   */
  private claimed: { version: number; beatStartedAt: number } | undefined;
  /** Stopped while its book waited in Redis as a claim: nothing was released, nothing is lost. */
  private leftAsClaim = false;
  private loop: Promise<void> | undefined;
  private reader: PortfolioQueueReader | undefined;
  /** The blocking wait in progress, if any (kept across wake-ups: one at a time per connection). */
  private pendingWait: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private stopRequested = false;
  /** When (performance.now()) the first stop was asked for. */
  private stopRequestedAt: number | undefined;
  private syncRequested = false;
  /** An operator's halt or pause: no event is applied while it holds (null: none). */
  private hold: Hold | null = null;
  private lost = false;
  private released = false;

  constructor(private readonly options: PortfolioRunnerOptions) {
    this.portfolioId = options.spec.portfolio_id;
    this.log = options.logger.child({ component: 'portfolio', portfolioId: this.portfolioId });
    const saved = options.saved;
    this.book = saved === undefined ? new Book(options.spec.starting_cash) : Book.from(saved);
    this.processed = saved?.processed_count ?? 0;
    this.failed = saved?.failed_count ?? 0;
    this.producers = { ...(saved?.applied?.producers ?? {}) };
    this.version = options.lease?.loaded?.version ?? 0;
    this.renewedAt = options.lease?.sentAt ?? performance.now();
    this.committed = { version: this.version, book: this.bookPayload(this.version) };
  }

  /** True while events are consumed. */
  get isRunning(): boolean {
    return this.status === 'running';
  }

  /** True while it holds its portfolio, consuming events or held by an operator. */
  get isActive(): boolean {
    return this.status === 'running' || this.status === 'paused';
  }

  /**
   * An operator's halt or pause (null lifts it). Held, the runner applies no further event: the
   * batch in hand, if any, still commits (nothing is dropped or applied twice), then it waits; its
   * queue keeps what arrives. Lifted, it goes on from the head of the queue, in order. Before
   * `start` it decides how the runner starts, so a portfolio loaded while halted applies nothing.
   */
  setHold(hold: Hold | null): void {
    if (hold === this.hold) return;
    const before = this.hold;
    this.hold = hold;
    if (this.status === 'running' && hold !== null) this.status = 'paused';
    else if (this.status === 'paused' && hold === null) this.status = 'running';
    if (this.loop !== undefined) {
      if (hold === null) this.log.info('Portfolio resumed', { after: before });
      else this.log.info('Portfolio paused', { by: hold });
    }
    this.options.onChange();
    this.wake?.();
  }

  /** The lease as the beat renews it; null once released or lost. */
  leaseClaim(): LeaseClaim | null {
    const lease = this.options.lease;
    if (lease === null || this.released || this.lost) return null;
    const loaded = lease.loaded;
    // Not 'this process ran throughout': cut off from Redis alone, it cannot tell that from Redis
    // being away for everyone, and another node may have taken the portfolio meanwhile.
    const currentForMs = this.renewedAt + this.options.leaseTtlMs - performance.now();
    const current = currentForMs > 0;
    return {
      token: lease.token,
      loadedToken: loaded?.token ?? '',
      loadedVersion: loaded?.version ?? 0,
      mayReassert: current,
      ...(current ? { currentForMs } : {}),
      claim: current ? null : this.claimBook(),
      releasing: this.releasing,
    };
  }

  /**
   * The book this runner claims with: the last one it committed (or loaded). Committed versions
   * form one line within a Redis's history (each takeover loads the latest fence), so two claims of
   * one version hold the same book and the tie between them loses nothing. A batch in flight is
   * not committed: a node that took over meanwhile may have committed that same version with more
   * events, and a claim with the batch could win the tie and drop them. The batch's events stay in
   * the queue until a commit removes them (or went with a Redis that restarted empty, as every
   * event queued and not yet committed does).
   */
  private claimBook(): { version: number; book: PortfolioBook } {
    return this.committed;
  }

  /**
   * What a beat that carried this runner, started at `beatStartedAt` (performance.now()), reported:
   * its book left in Redis as a claim at `version`, or (undefined) not. A stop may end without its
   * final commit only on a claim reported by a beat that started after that commit found no lease
   * (see `commitLoop`): an older report may predate a Redis that lost the claim since.
   */
  claimReported(version: number | undefined, beatStartedAt: number): void {
    this.claimed = version === undefined ? undefined : { version, beatStartedAt };
  }

  /**
   * Stopped while its book waited in Redis as a claim (nothing released, nothing lost). A method,
   * not a field test: the compiler would keep a check's narrowing across the awaits.
   */
  stoppedAsClaim(): boolean {
    return this.leftAsClaim;
  }

  /**
   * Whether the book this runner holds is in Redis as a claim, by a beat that started after
   * `since` (performance.now()).
   */
  private claimHoldsBook(since: number): boolean {
    const claimed = this.claimed;
    return (
      claimed !== undefined &&
      claimed.beatStartedAt > since &&
      claimed.version === this.claimBook().version
    );
  }

  /** The beat that started at `startedAt` (performance.now()) renewed the lease. */
  leaseRenewed(startedAt: number): void {
    this.renewedAt = Math.max(this.renewedAt, startedAt);
  }

  /** The lease had vanished and was taken back: write the book again (Redis may have lost it). */
  requestSync(): void {
    this.syncRequested = true;
    this.wake?.();
  }

  /** Starts consuming the queue. */
  start(): void {
    if (this.loop !== undefined || this.options.strategy === undefined) return;
    if (this.options.lease === null) return;
    this.status = this.hold === null ? 'running' : 'paused';
    this.options.onChange();
    const reader = this.options.openReader();
    this.reader = reader;
    this.loop = this.run(reader).finally(() => reader.close());
  }

  /** Marks the portfolio as unable to run, with the reason. */
  fail(reason: string): void {
    this.status = 'error';
    this.lastError = reason;
    this.options.onChange();
  }

  /**
   * Stops consuming. Graceful: the batch in hand is committed, then a final commit writes the
   * stopped state and releases the lease, retrying (Redis errors, the lease being taken back)
   * until it lands, the lease is lost, or `stop(true)` is called; resolves to whether the lease was
   * released. `force`:
   * gives up at once (the batch in hand stays in the queue; the lease expires by itself).
   */
  async stop(force = false): Promise<boolean> {
    if (this.status !== 'error') this.status = 'stopping';
    this.stopRequested = true;
    this.stopRequestedAt ??= performance.now();
    // Ends a wait for events, or a hold, at once.
    this.reader?.close();
    this.wake?.();
    if (this.loop === undefined) {
      if (this.status !== 'error') this.status = 'stopped';
      return false;
    }
    if (force) {
      this.lost = true;
      return false;
    }
    await this.loop;
    if (this.lost || this.leftAsClaim) return false;
    if (this.status !== 'error') this.status = 'stopped';
    // From here a beat asks for no resync; a lease that vanished is still taken back (else the
    // final commit would wait for ever on 'nolease'), unless the fence says this commit released it.
    this.releasing = true;
    try {
      await this.commitUntilSettled([], [], true);
      if (this.stoppedAsClaim()) return false;
      this.released = true;
      return true;
    } catch (err) {
      if (this.stoppedAsClaim()) return false;
      if (this.status !== 'error') this.status = 'stopping';
      this.log.warn('Final commit failed; the lease expires by itself', { err });
      return false;
    }
  }

  /** Enqueue-to-processed latency of every event this runner processed, as a histogram. */
  latencyHistogram(): LatencyHistogram {
    return this.latency.histogram();
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

  /** The `portfolio:{id}:book` payload at version `version`. */
  bookPayload(version = this.version): PortfolioBook {
    return {
      _v: 1,
      portfolio_id: this.portfolioId,
      node_id: this.options.nodeId,
      ...this.book.toJSON(),
      strategy_state: this.options.strategy?.snapshot() ?? this.options.saved?.strategy_state ?? {},
      processed_count: this.processed,
      failed_count: this.failed,
      updated_at: new Date().toISOString(),
      fence: { token: this.options.lease?.token ?? '', version },
      applied: { producers: this.producers },
    };
  }

  private async run(reader: PortfolioQueueReader): Promise<void> {
    let failures = 0;
    while (!this.stopRequested && !this.lost) {
      try {
        if (this.syncRequested) {
          this.syncRequested = false;
          await this.commitUntilSettled([], [], false);
          this.log.info('Book written again after its lease was taken back');
          continue;
        }
        // Checked between commits only: the batch in hand is never split or dropped.
        if (this.hold !== null) {
          await this.held();
          continue;
        }
        const events = await reader.peek(this.options.batchSize);
        failures = 0;
        if (events.length === 0) {
          await this.idle(reader);
          continue;
        }
        const { applied, failed } = this.apply(events);
        await this.commitUntilSettled(applied, failed, false);
      } catch (err) {
        if (err instanceof CommitRefused) return;
        failures += 1;
        if (failures === 1) this.log.warn('Queue read failed; retrying', { err });
        await sleep(Math.min(1_000, 50 * 2 ** Math.min(failures, 5)));
      }
    }
  }

  /** Waits while an operator holds the portfolio, until the hold is lifted, a sync or a stop. */
  private async held(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    this.wake = undefined;
  }

  /** Waits for an add to the queue (at most `idleWaitMs`), or for `requestSync`. */
  private async idle(reader: PortfolioQueueReader): Promise<void> {
    const wait = (this.pendingWait ??= reader
      .waitForEvents(this.options.idleWaitMs ?? 1_000)
      .catch(() => sleep(100))
      .finally(() => {
        this.pendingWait = undefined;
      }));
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      void wait.then(resolve);
    });
    this.wake = undefined;
  }

  /** Applies events in memory, in queue order; returns the job ids applied and failed. */
  private apply(events: readonly QueuedEvent[]): {
    applied: string[];
    failed: { jobId: string; reason: string }[];
  } {
    const strategy = this.options.strategy;
    const applied: string[] = [];
    const failed: { jobId: string; reason: string }[] = [];
    for (const event of events) {
      const tick = this.decode(event);
      if (!tick.ok) {
        failed.push({ jobId: event.jobId, reason: tick.reason });
        this.failed += 1;
        this.lastError = tick.reason;
        this.log.warn('Event failed', { jobId: event.jobId, reason: tick.reason });
        continue;
      }
      if (!this.claimSeq(tick.value)) {
        applied.push(event.jobId);
        this.skipped += 1;
        continue;
      }
      try {
        if (strategy === undefined) throw new Error('No strategy');
        this.book.mark(tick.value);
        for (const order of strategy.onTick(tick.value, this.book)) {
          this.book.fill(order, tick.value.price);
        }
        applied.push(event.jobId);
        this.processed += 1;
        this.lastEventTime = tick.value.event_time;
        this.latency.add(Math.max(0, Date.now() - event.timestamp));
      } catch (err) {
        // Consumed once, with its reason kept on the failed job; not retried.
        const reason = (err as Error).message;
        failed.push({ jobId: event.jobId, reason });
        this.failed += 1;
        this.lastError = reason;
        this.log.warn('Event failed', { jobId: event.jobId, reason });
      }
    }
    return { applied, failed };
  }

  private decode(
    event: QueuedEvent,
  ): { ok: true; value: PriceTick } | { ok: false; reason: string } {
    if (event.data === null) return { ok: false, reason: 'Malformed event: job data missing' };
    const decoded = decodePayload('priceTick', `${this.portfolioId}:${event.jobId}`, event.data);
    return decoded.ok
      ? { ok: true, value: decoded.value }
      : { ok: false, reason: `Malformed event: ${decoded.error.problem}` };
  }

  /** Records a numbered event as applied; false when its seq was already applied (skip it). */
  private claimSeq(tick: PriceTick): boolean {
    if (tick.producer === undefined || tick.seq === undefined) return true;
    const decision = recordApplied(this.producers[tick.producer], tick.seq);
    if (!decision.apply) return false;
    // Re-inserted last, so the first key is the least recently applied producer.
    const names = Object.keys(this.producers);
    if (names[names.length - 1] === tick.producer) {
      this.producers[tick.producer] = decision.range;
      return true;
    }
    const entries = Object.entries(this.producers).filter(([name]) => name !== tick.producer);
    entries.push([tick.producer, decision.range]);
    this.producers = Object.fromEntries(entries.slice(-MAX_PRODUCERS));
    return true;
  }

  /**
   * Commits, retrying while Redis fails or the lease is being taken back, until it lands; throws
   * `CommitRefused` (after `onLost`) when another process holds the lease or wrote the book.
   */
  private async commitUntilSettled(
    applied: readonly string[],
    failed: readonly { jobId: string; reason: string }[],
    release: boolean,
  ): Promise<void> {
    const version = this.version + 1;
    await this.commitLoop(
      version,
      this.bookPayload(version),
      this.state(),
      applied,
      failed,
      release,
    );
  }

  private async commitLoop(
    version: number,
    book: PortfolioBook,
    state: PortfolioState,
    applied: readonly string[],
    failed: readonly { jobId: string; reason: string }[],
    release: boolean,
  ): Promise<void> {
    // Consecutive errors only (for the log and the backoff): a 'nolease' wait is not an error.
    let errors = 0;
    // When the first 'nolease' reply since this commit's last error came (performance.now()).
    let noleaseAt: number | undefined;
    // An attempt threw: it may have landed (the book in Redis at `version`, its jobs removed) and
    // its reply been lost, and Redis may have lost that book since (killed, back empty). The claim
    // holds the committed book, one version older, without this batch's events: a stop that ended
    // on it could have them lost for good. Such a stop waits for the settle instead (its own beat
    // settles its claim within a window; then this commit lands or answers 'done'); stop(true),
    // the drain budget, still bounds it. A commit without events (a resync, the final commit)
    // carries nothing the claim lacks.
    let outcomeUnknown = false;
    const carriesEvents = applied.length + failed.length > 0;
    for (;;) {
      const lease = this.leaseClaim();
      if (lease === null) throw new CommitRefused('lease given up');
      let outcome: CommitOutcome;
      try {
        outcome = await this.options.commit({
          portfolioId: this.portfolioId,
          lease,
          version,
          book,
          state,
          applied,
          failed,
          release,
        });
      } catch (err) {
        errors++;
        if (errors === 1) this.log.warn('Commit failed; retrying', { err });
        // Redis may have lost a claim reported since the last 'nolease' along with this reply.
        noleaseAt = undefined;
        if (carriesEvents) outcomeUnknown = true;
        // A final commit never gives up on errors either: the book in memory may be the only copy
        // (Redis restarted empty), and a runner that gave up is deleted with it. Only stop(true)
        // (the drain budget, a lost lease) ends it: leaseClaim() is then null.
        await sleep(Math.min(1_000, 50 * 2 ** Math.min(errors, 5)));
        continue;
      }
      switch (outcome.kind) {
        case 'ok':
        case 'done':
          this.version = version;
          this.committed = { version, book };
          this.options.onChange();
          if (outcome.kind === 'ok' && outcome.missing > 0) {
            this.log.warn('Committed events were no longer queued (Redis lost them)', {
              missing: outcome.missing,
            });
          }
          return;
        case 'nolease':
          errors = 0;
          noleaseAt ??= performance.now();
          // Expired (this process was slow or frozen) or Redis restarted empty: the beat takes it
          // back if nobody wrote the book since, or reports it lost, or leaves the book as a claim.
          // A stop need not wait for the contest: the claim holds this very book, and outlives us —
          // once a beat sent after this reply and after the stop wrote it (Redis may have lost an
          // earlier one) — unless this commit may have landed (see `outcomeUnknown`).
          if (
            this.stopRequested &&
            !outcomeUnknown &&
            this.claimHoldsBook(Math.max(noleaseAt, this.stopRequestedAt ?? noleaseAt))
          ) {
            this.leftAsClaim = true;
            this.log.warn('Stopped while its book waits in Redis as a claim; nothing released', {
              version: this.claimed?.version,
            });
            throw new CommitRefused('left as a claim');
          }
          await sleep(100);
          continue;
        case 'lost':
        case 'fenced':
          this.lost = true;
          this.log.error(
            'Portfolio taken over by another process; dropping its uncommitted events here',
            {
              outcome,
            },
          );
          this.options.onLost(outcome.kind);
          throw new CommitRefused(outcome.kind);
      }
    }
  }
}
