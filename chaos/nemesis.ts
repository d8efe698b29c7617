/**
 * The nemesis: injects one planned fault into the running stack and recovers from it (restart,
 * thaw, undrain), recording when the fault began and when the recovery was done. Every random
 * choice comes with the plan (`FaultSchedule`), so a seed replays the same faults.
 */
import { randomUUID } from 'node:crypto';
import { decodePayload, encodePayload, type ControlRequest } from '@ginkgo-live/state-keys';
import { waitFor } from '@ginkgo-live/testing';
import type { FaultPlan, FaultRecord } from './model.ts';
import type { Sampler } from './sampler.ts';
import type { ChaosStack } from './stack.ts';

export interface NemesisOptions {
  stack: ChaosStack;
  sampler: Sampler;
  portfolios: readonly string[];
  clock: () => number;
  log: (message: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const secs = (ms: number): string => `${(ms / 1_000).toFixed(1)} s`;

type ControlBody = Omit<ControlRequest, '_v' | 'id' | 'requested_by' | 'requested_at'>;

export class Nemesis {
  readonly faults: FaultRecord[] = [];
  /** The fault under way, for progress lines. */
  current: { id: number; plan: FaultPlan; startMs: number } | undefined;

  constructor(private readonly options: NemesisOptions) {}

  /** Injects one fault and recovers from it; resolves with what happened. */
  async inject(plan: FaultPlan): Promise<FaultRecord> {
    const id = this.faults.length + 1;
    const record: FaultRecord = {
      id,
      kind: plan.kind,
      target: '',
      startMs: this.options.clock(),
      endMs: 0,
      notes: [],
    };
    this.current = { id, plan, startMs: record.startMs };
    try {
      await this.run(plan, record);
    } catch (err) {
      record.notes.push(`nemesis error: ${(err as Error).message.split('\n')[0] ?? ''}`);
    }
    record.endMs = this.options.clock();
    this.current = undefined;
    this.faults.push(record);
    this.options.log(
      `fault #${id} ${plan.kind} ${record.target}: ${secs(record.startMs)} → ${secs(record.endMs)}${record.notes.length > 0 ? ` (${record.notes.join('; ')})` : ''}`,
    );
    return record;
  }

  private get stack(): ChaosStack {
    return this.options.stack;
  }

  private node(index: number): string {
    const ids = this.stack.nodeIds;
    return ids[index % ids.length] ?? 'node-1';
  }

  private async run(plan: FaultPlan, record: FaultRecord): Promise<void> {
    const { stack } = this;
    const server = stack.server;
    switch (plan.kind) {
      case 'node-kill': {
        const nodeId = this.node(plan.targetIndex);
        record.target = nodeId;
        record.startMs = this.options.clock();
        await stack.end(nodeId, 'SIGKILL');
        await sleep(plan.durationMs);
        await this.restartNode(nodeId, record);
        return;
      }
      case 'node-pause': {
        const nodeId = this.node(plan.targetIndex);
        record.target = nodeId;
        const p = stack.process(nodeId);
        if (p === undefined) throw new Error(`${nodeId} is not running`);
        record.startMs = this.options.clock();
        p.signal('SIGSTOP');
        await sleep(plan.durationMs);
        p.signal('SIGCONT');
        record.notes.push(`frozen ${secs(plan.durationMs)}`);
        return;
      }
      case 'node-term': {
        const nodeId = this.node(plan.targetIndex);
        record.target = nodeId;
        record.startMs = this.options.clock();
        const exit = await stack.end(nodeId, 'SIGTERM');
        record.notes.push(
          `stopped in ${secs(exit.tookMs)}, exit code ${exit.code ?? `signal ${exit.signal ?? '?'}`}${exit.code === 0 ? '' : ' (not clean)'}`,
        );
        await sleep(plan.durationMs);
        await this.restartNode(nodeId, record);
        return;
      }
      case 'drain-migrate':
        if (plan.drain) await this.drain(plan, record);
        else await this.migrate(plan, record);
        return;
      case 'redis-kill':
      case 'redis-empty': {
        const empty = plan.kind === 'redis-empty';
        record.target = 'redis';
        const before = await this.options.sampler.appliedNow();
        record.appliedBefore = before.applied;
        if (!before.fresh) record.notes.push('books unreadable before the kill: last samples used');
        record.startMs = this.options.clock();
        await server.kill();
        await sleep(plan.durationMs);
        record.restartedMs = this.options.clock();
        await server.restart({ keepData: !empty });
        const catalog = Number(await server.command('HLEN', stack.fx.keys.portfolioCatalog()));
        record.notes.push(
          `down ${secs(this.options.clock() - record.startMs)}, ${empty ? 'restarted empty' : catalog > 0 ? 'AOF reloaded' : 'AOF restart came back EMPTY'}`,
        );
        return;
      }
      case 'redis-freeze':
        record.target = 'redis';
        record.startMs = this.options.clock();
        server.freeze();
        await sleep(plan.durationMs);
        server.thaw();
        record.notes.push(`frozen ${secs(plan.durationMs)}`);
        return;
      case 'leader-kill': {
        const leader = await stack.leader();
        const id =
          leader !== null && stack.schedulerIds.includes(leader) ? leader : stack.schedulerIds[0];
        if (id === undefined) throw new Error('no scheduler');
        if (leader === null) record.notes.push('no leader held the lock: killed the first');
        record.target = id;
        record.startMs = this.options.clock();
        await stack.end(id, 'SIGKILL');
        await sleep(plan.durationMs);
        await this.retry(record, `restart ${id}`, () => stack.startScheduler(id));
        const now = await stack.leader();
        record.notes.push(`leader now ${now ?? 'none'}`);
        return;
      }
    }
  }

  /** Restarts a node under the same NODE_ID once its heartbeat has expired. */
  private async restartNode(nodeId: string, record: FaultRecord): Promise<void> {
    const { fx } = this.stack;
    await waitFor(async () => (await fx.redis.pttl(fx.keys.heartbeat(nodeId))) < 0, {
      timeoutMs: 15_000,
      intervalMs: 100,
      description: `${nodeId}'s heartbeat to expire`,
    });
    await this.retry(record, `restart ${nodeId}`, () => this.stack.startNode(nodeId));
  }

  private async retry(record: FaultRecord, what: string, run: () => Promise<unknown>) {
    for (let attempt = 1; ; attempt++) {
      try {
        await run();
        return;
      } catch (err) {
        record.notes.push(
          `${what} failed (attempt ${attempt}): ${(err as Error).message.split('\n')[0] ?? ''}`,
        );
        if (attempt >= 3) throw err;
        await sleep(2_000);
      }
    }
  }

  private async drain(plan: FaultPlan, record: FaultRecord): Promise<void> {
    const nodeId = this.node(plan.targetIndex);
    record.target = `drain ${nodeId}`;
    record.startMs = this.options.clock();
    const asked = await this.control({ action: 'drain', node_id: nodeId });
    record.notes.push(`drain ${asked}`);
    const emptied = await this.until(15_000, async () => {
      const states = await Promise.all(this.options.portfolios.map((p) => this.stack.fx.state(p)));
      return states.every((s) => s?.node_id !== nodeId);
    });
    record.notes.push(emptied ? 'node emptied' : 'node not emptied within 15 s');
    await sleep(plan.durationMs);
    record.notes.push(`undrain ${await this.control({ action: 'undrain', node_id: nodeId })}`);
  }

  private async migrate(plan: FaultPlan, record: FaultRecord): Promise<void> {
    const { portfolios } = this.options;
    const portfolioId = portfolios[plan.targetIndex % portfolios.length] ?? '';
    const from = (await this.stack.fx.state(portfolioId))?.node_id ?? null;
    let to = this.node(plan.otherIndex);
    if (to === from) to = this.node(plan.otherIndex + 1);
    record.target = `${portfolioId} → ${to}`;
    record.startMs = this.options.clock();
    record.notes.push(
      `migrate from ${from ?? '?'}: ${await this.control({ action: 'migrate', portfolio_id: portfolioId, target_node_id: to })}`,
    );
    const moved = await this.until(15_000, async () => {
      const state = await this.stack.fx.state(portfolioId);
      return state?.node_id === to && state.status === 'running';
    });
    record.notes.push(moved ? `running on ${to}` : `not running on ${to} within 15 s`);
  }

  /** Queues an operator request for the scheduler leader; resolves with its answer in words. */
  private async control(body: ControlBody): Promise<string> {
    const { fx } = this.stack;
    const id = randomUUID();
    await fx.redis.rpush(
      fx.keys.controlRequests(),
      encodePayload('controlRequest', {
        _v: 1,
        id,
        ...body,
        requested_by: 'chaos',
        requested_at: new Date().toISOString(),
      }),
    );
    let answer = 'unanswered within 15 s';
    await this.until(15_000, async () => {
      const raw = await fx.redis.hget(fx.keys.controlResults(), id);
      if (raw === null) return false;
      const result = decodePayload('controlResult', fx.keys.controlResults(), raw);
      answer = !result.ok
        ? `unreadable answer: ${result.error.problem}`
        : result.value.ok
          ? 'accepted'
          : `refused: ${result.value.reason ?? 'no reason'}`;
      return true;
    });
    return answer;
  }

  /** Polls `check` every 100 ms until it holds or `timeoutMs` passes; resolves with whether it held. */
  private async until(timeoutMs: number, check: () => Promise<boolean>): Promise<boolean> {
    try {
      await waitFor(check, { timeoutMs, intervalMs: 100 });
      return true;
    } catch {
      return false;
    }
  }
}
