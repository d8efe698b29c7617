import type { Redis } from 'ioredis';
import { decodePayload, encodePayload, type StateKeys } from '@ginkgo-live/state-keys';
import { fleetNodeInfo, fleetPortfolioState } from '@ginkgo-live/testing';
// The node's own beat (its Lua script), driven by simulated nodes: the benchmark harness reaches
// into the app here, as a test would; no app imports another.
import { NodeStore } from '../apps/execution-node/src/node-store.ts';
import { sleep } from './lib.ts';

/** Beats sent and not yet answered, at most (see beatAll). */
const MAX_IN_FLIGHT = 1_000;

export interface SimulatedFleetOptions {
  /** Connection the beats go through (one for the whole fleet). */
  beats: Redis;
  /** Connection the assignment polls go through; needed when `pollMs` > 0. */
  polls?: Redis;
  keys: StateKeys;
  nodes: number;
  /** Portfolios a node may run (its info's `capacity`). */
  capacity: number;
  /** Beat interval and heartbeat TTL: the defaults, 5 s and 15 s (docs/architecture.md). */
  intervalMs?: number;
  ttlMs?: number;
  /** How often each node reads its assignment (a real node: `ASSIGNMENT_POLL_MS`, 250); 0 = never. */
  pollMs?: number;
  /**
   * A connection of its own for the push subscriptions: with it, nodes follow their assignment as
   * a real node with `ASSIGNMENT_PUSH=on` does — `SSUBSCRIBE` to their channel and the trading
   * one, a read of their orders at each message, and at every beat the node's safety reads (its
   * orders, the trading controls, a PING of its subscriber) — instead of polling. `setMode` switches.
   */
  push?: Redis;
  /** Portfolios node `n` runs from the start (default none: it waits for an assignment). */
  initial?: (n: number) => string[];
}

interface SimNode {
  nodeId: string;
  store: NodeStore;
  ids: string[];
  alive: boolean;
  assignmentRaw: string | null;
}

/**
 * Lightweight execution nodes for benchmarks: each beats with the node's own `NodeStore.beat`
 * (heartbeat, info, registry, leases and one state per portfolio, the payloads a real node with
 * that many portfolios sends), spread evenly over the interval, and follows its assignment key as a
 * real node does. No queue, no strategy: what a node costs Redis and the control plane, not what
 * its trading costs. `kill` stops one node as SIGKILL would: no more beats, nothing cleaned up.
 */
export class SimulatedFleet {
  readonly nodes: SimNode[];
  private stopped = false;
  private loops: Promise<void>[] = [];
  private sent = 0;
  private failed = 0;
  private polls = 0;
  private pushed = 0;
  private maxLateMs = 0;
  private inFlight = 0;
  private drained: (() => void)[] = [];
  private mode: 'poll' | 'push';

  constructor(private readonly options: SimulatedFleetOptions) {
    this.mode = options.push === undefined ? 'poll' : 'push';
    this.nodes = Array.from({ length: options.nodes }, (_, n) => {
      const nodeId = `sim-${n}`;
      return {
        nodeId,
        ids: options.initial?.(n) ?? [],
        alive: true,
        assignmentRaw: null,
        store: new NodeStore({
          redis: options.beats,
          keys: options.keys,
          nodeId,
          heartbeatTtlMs: this.ttlMs,
          nodeInfoTtlMs: 3 * this.ttlMs,
          portfolioStateTtlMs: 3 * this.ttlMs,
        }),
      };
    });
  }

  private get intervalMs(): number {
    return this.options.intervalMs ?? 5_000;
  }

  private get ttlMs(): number {
    return this.options.ttlMs ?? 15_000;
  }

  /**
   * Subscribes every node to its channel and the trading one (when a push connection was given);
   * resolves once Redis confirmed them.
   */
  async subscribe(): Promise<void> {
    const push = this.options.push;
    if (push === undefined) return;
    const byChannel = new Map(
      this.nodes.map((n) => [this.options.keys.nodeOrdersChannel(n.nodeId), n] as const),
    );
    push.on('smessage', (channel: string) => {
      if (this.mode !== 'push') return;
      const node = byChannel.get(channel);
      // A trading change: every node re-reads the controls (one read each, as real nodes do).
      const targets = node === undefined ? this.nodes : [node];
      for (const target of targets) {
        if (!target.alive) continue;
        this.pushed += 1;
        void (node === undefined ? target.store.readTrading() : this.follow(target)).catch(
          () => undefined,
        );
      }
    });
    const channels = [...byChannel.keys(), this.options.keys.tradingChannel()];
    for (let i = 0; i < channels.length; i += 1_000)
      await push.ssubscribe(...channels.slice(i, i + 1_000));
  }

  /** Poll (every node reads its assignment every `pollMs`) or push (see `push`). */
  setMode(mode: 'poll' | 'push'): void {
    if (mode === 'push' && this.options.push === undefined)
      throw new Error('push mode needs a push connection');
    this.mode = mode;
  }

  /** A node's read of its orders, followed as the node does. */
  private async follow(node: SimNode): Promise<void> {
    const { assignment } = await node.store.readOrders();
    if (assignment?.ok !== true) return;
    node.ids = assignment.value.portfolio_ids.slice(0, this.options.capacity);
  }

  start(): void {
    const t0 = performance.now();
    this.loops.push(
      (async () => {
        for (let start = t0; !this.stopped; start += this.intervalMs) await this.beatAll(start);
      })(),
    );
    const pollMs = this.options.pollMs ?? 0;
    if (pollMs > 0) {
      this.loops.push(
        (async () => {
          while (!this.stopped) {
            const started = performance.now();
            if (this.mode === 'poll') await this.pollAll();
            await sleep(Math.max(0, pollMs - (performance.now() - started)));
          }
        })(),
      );
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /** Stops a node as SIGKILL would: it beats no more; its keys expire by themselves. */
  kill(nodeId: string): void {
    const node = this.nodes.find((n) => n.nodeId === nodeId);
    if (node === undefined) throw new Error(`no simulated node ${nodeId}`);
    node.alive = false;
  }

  /** Portfolios run by alive nodes, each with its node. */
  running(): Map<string, string> {
    const out = new Map<string, string>();
    for (const node of this.nodes)
      if (node.alive) for (const id of node.ids) out.set(id, node.nodeId);
    return out;
  }

  /**
   * Beats sent and failed, poll rounds done, reads made because of a message, and how late the
   * latest beat was against its slot.
   */
  stats(): {
    beats: number;
    failedBeats: number;
    polls: number;
    pushed: number;
    maxLateMs: number;
  } {
    return {
      beats: this.sent,
      failedBeats: this.failed,
      polls: this.polls,
      pushed: this.pushed,
      maxLateMs: this.maxLateMs,
    };
  }

  private async beatAll(offsetMs: number): Promise<void> {
    const count = this.nodes.length;
    for (const [i, node] of this.nodes.entries()) {
      if (this.stopped) return;
      const due = offsetMs + (i * this.intervalMs) / count;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      else {
        this.maxLateMs = Math.max(this.maxLateMs, -wait);
        // Behind the pace: still let replies in (a loop that never yields queues beats without
        // end: at 10,000 nodes it ran this process out of heap), and never more than
        // MAX_IN_FLIGHT beats unanswered — the fleet then beats late, which maxLateMs shows.
        if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
        while (this.inFlight >= MAX_IN_FLIGHT)
          await new Promise<void>((resolve) => this.drained.push(resolve));
      }
      if (!node.alive) continue;
      this.sent += 1;
      this.inFlight += 1;
      const now = new Date().toISOString();
      node.store
        .beat(
          encodePayload('heartbeat', { _v: 1, node_id: node.nodeId, sent_at: now, seq: this.sent }),
          {
            ...fleetNodeInfo(node.nodeId, node.ids, now, 1_000 + i),
            capacity: this.options.capacity,
            // A payload that changes at every beat, as a real node's does.
            uptime_seconds: Math.round(performance.now() / 1_000),
          },
          node.ids.map((id) => ({
            portfolioId: id,
            state: fleetPortfolioState(id, node.nodeId, now),
            lease: {
              token: `${node.nodeId}/sim/1`,
              loadedToken: '',
              loadedVersion: 0,
              mayReassert: true,
              releasing: false,
            },
          })),
        )
        .catch(() => {
          this.failed += 1;
        })
        .finally(() => {
          this.inFlight -= 1;
          if (this.inFlight < MAX_IN_FLIGHT)
            for (const resolve of this.drained.splice(0)) resolve();
        });
      if (this.mode === 'push') this.safetyReads(node);
    }
  }

  /** What a subscribed node reads at each beat: its orders, the trading controls, a PING. */
  private safetyReads(node: SimNode): void {
    void this.follow(node).catch(() => undefined);
    void node.store.readTrading().catch(() => undefined);
    void this.options.push?.ping().catch(() => undefined);
  }

  /** Every alive node reads its assignment key; a changed one is decoded and followed. */
  private async pollAll(): Promise<void> {
    const redis = this.options.polls;
    if (redis === undefined) return;
    const alive = this.nodes.filter((n) => n.alive);
    const pipeline = redis.pipeline();
    for (const node of alive) pipeline.get(this.options.keys.nodeAssignment(node.nodeId));
    const replies = (await pipeline.exec().catch(() => null)) ?? [];
    this.polls += 1;
    for (const [i, node] of alive.entries()) {
      const [err, raw] = replies[i] ?? [null, null];
      if (err !== null || typeof raw !== 'string' || raw === node.assignmentRaw) continue;
      node.assignmentRaw = raw;
      const decoded = decodePayload('nodeAssignment', node.nodeId, raw);
      if (decoded.ok) node.ids = decoded.value.portfolio_ids.slice(0, this.options.capacity);
    }
  }
}
