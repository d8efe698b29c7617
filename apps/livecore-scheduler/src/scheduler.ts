import { PeriodicLoop, type Logger } from '@ginkgo-live/runtime';
import type { NodeRecordStatus, PlanMeta } from '@ginkgo-live/state-keys';
import {
  decide,
  initialMemory,
  type Effect,
  type SchedulerMemory,
  type SchedulerSettings,
} from './decide.ts';
import { tell, type NoticeSink } from './notices.ts';
import { PlanWriteRefused, type PlanWrite, type SchedulerStore } from './world.ts';

export interface SchedulerOptions {
  store: SchedulerStore;
  notifier: NoticeSink;
  logger: Logger;
  settings: SchedulerSettings;
  leaderTtlMs: number;
  /** When the process started (epoch ms), for the recovery measurement. */
  processStartMs: number;
  /** The clock (epoch ms); `Date.now` unless a test drives time. */
  now?: () => number;
}

/** What the scheduler is doing, for metrics and health. */
export interface SchedulerStatus {
  role: 'starting' | 'leader' | 'standby';
  planVersion: number;
  consecutiveFailures: number;
  totalFailures: number;
  lastTickMs: number;
  /** Ticks run since start, whatever their outcome. */
  ticks: number;
  /** Process start → plan loaded → first tick done, once measured. */
  recovery: { planLoadedMs: number; firstTickMs: number } | null;
  assigned: number;
  orphaned: number;
  nodes: Record<NodeRecordStatus, number>;
}

type Safe<T> = { ok: true; value: T } | { ok: false };

/** A plan write whose reply said it failed or was refused: what it would have said and remembered. */
interface Unconfirmed {
  meta: PlanMeta;
  afterWrite: readonly Effect[];
  memory: SchedulerMemory;
}

/**
 * The LiveCore scheduler's shell around its core (`decide.ts`). Each tick (never overlapping):
 * lead or stand by; read the world; ask the core what to do; write that in one script, fenced by
 * leadership and version, before any node acts; then log and notify what the core said.
 *
 * FR-037: every Redis call is caught, logged at error level with the consecutive-failure count, and
 * yields a value flagged as failed. A tick that saw a failed read writes nothing and moves nothing —
 * an unreadable node list is unknown, not empty — and the loop goes on.
 */
export class Scheduler {
  readonly status: SchedulerStatus = {
    role: 'starting',
    planVersion: 0,
    consecutiveFailures: 0,
    totalFailures: 0,
    lastTickMs: 0,
    ticks: 0,
    recovery: null,
    assigned: 0,
    orphaned: 0,
    nodes: { alive: 0, lost: 0, draining: 0 },
  };
  private memory: SchedulerMemory = initialMemory();
  private unconfirmed: Unconfirmed | null = null;
  private planLoadedAt: number | undefined;
  private starting: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly loop: PeriodicLoop;

  constructor(private readonly options: SchedulerOptions) {
    this.log = options.logger.child({ component: 'scheduler' });
    this.now = options.now ?? Date.now;
    this.loop = new PeriodicLoop({
      name: 'scheduler tick',
      intervalMs: options.settings.tickMs,
      logger: this.log,
      run: () => this.tick(),
      // start() runs the first tick itself, so that it is done when start() resolves.
      immediate: false,
    });
  }

  /**
   * Carries legacy keys over and runs the first tick (a restarted leader has recovered when this
   * resolves), then every tick after.
   */
  start(): Promise<void> {
    this.starting ??= this.begin();
    return this.starting;
  }

  /** Stops after the tick in progress (the first one included) and gives up leadership. */
  async stop(): Promise<void> {
    // A stop during the first tick (a signal at startup) waits for it, then stops the loop.
    await this.starting;
    await this.loop.stop();
    if (this.status.role === 'leader')
      await this.safely('resign', () => this.options.store.resign());
  }

  /** Where the last tick's time went (ms), for the debug log. */
  private phases: { readMs?: number; decideMs?: number; writeMs?: number; planned?: string } = {};

  /** One tick, whatever its outcome (the loop runs it; tests call it directly). */
  async tick(): Promise<void> {
    const started = this.now();
    this.phases = {};
    await this.leadAndPlan();
    this.status.lastTickMs = this.now() - started;
    this.status.ticks += 1;
    this.log.debug('Tick done', {
      tick: this.status.ticks,
      ms: this.status.lastTickMs,
      role: this.status.role,
      failed: this.status.consecutiveFailures > 0,
      ...this.phases,
    });
  }

  private async begin(): Promise<void> {
    const migrated = await this.safely('carry over keys from before the hash tags', () =>
      this.options.store.migrateLegacyKeys(),
    );
    if (migrated.ok && migrated.value.moved.length > 0)
      this.log.warn('Keys from before the hash tags renamed', { moved: migrated.value.moved });
    if (migrated.ok && migrated.value.kept.length > 0)
      this.log.error('Keys from before the hash tags left in place: their new names exist', {
        kept: migrated.value.kept,
      });
    await this.tick().catch((err: unknown) => {
      this.log.error('Scheduler tick failed', { err });
    });
    this.loop.start();
  }

  /** FR-037: one Redis call, caught, logged with the consecutive count, flagged when it failed. */
  private async safely<T>(what: string, call: () => Promise<T>): Promise<Safe<T>> {
    try {
      const value = await call();
      return { ok: true, value };
    } catch (err) {
      this.status.consecutiveFailures += 1;
      this.status.totalFailures += 1;
      this.log.error('Redis operation failed; this tick changes nothing', {
        operation: what,
        consecutiveFailures: this.status.consecutiveFailures,
        totalFailures: this.status.totalFailures,
        err,
      });
      return { ok: false };
    }
  }

  private async leadAndPlan(): Promise<void> {
    const { store, settings } = this.options;
    const lead = await this.safely('leader lock', () => store.lead(this.options.leaderTtlMs));
    if (!lead.ok) return;
    if (!lead.value) {
      if (this.status.role !== 'standby') this.log.info('Standing by: another scheduler leads');
      this.status.role = 'standby';
      this.unconfirmed = null;
      return;
    }
    if (this.status.role !== 'leader') {
      this.log.info('Leading the plan', { schedulerId: settings.schedulerId });
      // A new leadership starts from what Redis says; only the sight of a catalog carries over.
      this.memory = { ...initialMemory(), catalogSeen: this.memory.catalogSeen };
      // What the store remembers from an earlier leadership is as old as that: read everything.
      store.forget();
    }
    this.status.role = 'leader';
    const readStarted = performance.now();
    const world = await this.safely('read world', () => store.readWorld());
    this.phases.readMs = Math.round(performance.now() - readStarted);
    if (!world.ok) return;
    this.confirm(world.value.meta);
    const now = this.now();
    if (this.status.consecutiveFailures > 0) {
      this.log.info('Redis reachable again; planning resumes', {
        afterFailures: this.status.consecutiveFailures,
        graceMs: settings.outageGraceMs,
      });
      this.status.consecutiveFailures = 0;
      this.memory = { ...this.memory, outageEndedAt: now };
    }
    this.planLoadedAt ??= now;

    const decideStarted = performance.now();
    const decisions = decide(world.value, this.memory, now, settings);
    this.phases.decideMs = Math.round(performance.now() - decideStarted);
    this.phases.planned = decisions.planned;
    this.perform(decisions.effects);
    const writeStarted = performance.now();
    const written =
      decisions.write === null || (await this.write(decisions.write, decisions.reasons));
    if (decisions.write !== null)
      this.phases.writeMs = Math.round(performance.now() - writeStarted);
    this.memory = written ? decisions.memory : decisions.memoryUnwritten;
    if (written) this.perform(decisions.afterWrite);
    else if (decisions.write !== null)
      this.unconfirmed = {
        meta: decisions.write.meta,
        afterWrite: decisions.afterWrite,
        memory: decisions.memory,
      };
    const { summary } = decisions;
    this.status.planVersion = written ? summary.planVersion : (world.value.meta?.version ?? 0);
    this.status.assigned = summary.assigned;
    this.status.orphaned = summary.orphaned;
    this.status.nodes = summary.nodes;

    if (this.status.recovery === null) {
      const done = this.now();
      this.status.recovery = {
        planLoadedMs: this.planLoadedAt - this.options.processStartMs,
        firstTickMs: done - this.options.processStartMs,
      };
      this.log.info('Recovered: plan loaded and first tick done', {
        planVersion: this.status.planVersion,
        planLoadedMs: this.status.recovery.planLoadedMs,
        recoveryMs: this.status.recovery.firstTickMs,
      });
    }
  }

  /**
   * A write whose reply was an error may have run all the same (Redis frozen past the command
   * timeout, the connection dropped after the script ran, or ioredis resent it and got
   * STALE_VERSION). The core says node lost / back and orphans only on a change from what Redis
   * holds, so once such a write is in, nothing would ever say it: when the plan meta read now is
   * the one that write carried, it landed, and what it would have said and remembered is done now.
   */
  private confirm(meta: PlanMeta | null): void {
    const attempt = this.unconfirmed;
    this.unconfirmed = null;
    if (attempt === null || meta === null) return;
    const { version, updated_at, leader } = attempt.meta;
    if (meta.version !== version || meta.updated_at !== updated_at || meta.leader !== leader)
      return;
    this.log.warn('Plan write landed; its reply was lost', { planVersion: version });
    this.memory = attempt.memory;
    this.perform(attempt.afterWrite);
  }

  /** The one fenced write: true when written, false when refused or failed (retried next tick). */
  private async write(plan: PlanWrite, reasons: string[]): Promise<boolean> {
    const written = await this.safely('write plan', async () => {
      try {
        return await this.options.store.writePlan(plan);
      } catch (err) {
        if (!(err instanceof PlanWriteRefused)) throw err;
        this.log.warn('Plan write refused; re-reading next tick', { reason: err.message });
        return null;
      }
    });
    if (!written.ok || written.value === null) return false;
    this.log.info('Plan written', { planVersion: written.value, reasons });
    return true;
  }

  /** Says what the core decided: its log lines, and its notices through the notifier. */
  private perform(effects: readonly Effect[]): void {
    for (const effect of effects) {
      if (effect.type === 'notice') tell(this.options.notifier, effect.notice);
      else this.log[effect.level](effect.message, effect.fields);
    }
  }
}
