import type { Redis } from 'ioredis';
import { decodePayload, encodePayload, type StateKeys } from '@ginkgo-live/state-keys';
import { fleetNodeInfo, fleetPortfolioState } from '@ginkgo-live/testing';
// The node's own beat (its Lua script), driven by simulated nodes: the benchmark harness reaches
// into the app here, as a test would; no app imports another.
import { NodeStore } from '../apps/execution-node/src/node-store.ts';
import { sleep } from './lib.ts';

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
  private maxLateMs = 0;

  constructor(private readonly options: SimulatedFleetOptions) {
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
            await this.pollAll();
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

  /** Beats sent and failed, polls done, and how late the latest beat was against its slot. */
  stats(): { beats: number; failedBeats: number; polls: number; maxLateMs: number } {
    return {
      beats: this.sent,
      failedBeats: this.failed,
      polls: this.polls,
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
      else this.maxLateMs = Math.max(this.maxLateMs, -wait);
      if (!node.alive) continue;
      this.sent += 1;
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
        });
    }
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
