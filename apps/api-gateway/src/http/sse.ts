import type { Request, Response } from 'express';
import { Counter, Gauge, type Registry } from 'prom-client';
import { SECURITY_DEFAULTS } from '../config.ts';
import { AppError, errorBody } from './errors.ts';
import { principalOf } from './access.ts';
import { clientAddress } from './limits.ts';

/** How long a refused client is told to wait before it tries again, in seconds. */
const RETRY_AFTER_SECONDS = 10;

/** One open event stream, as `EventStreams.snapshot` shows it. */
export interface StreamState {
  address: string;
  /** The key's name (`anonymous` without one). */
  key: string;
  /** Bytes written to the socket that it has not taken yet. */
  bufferedBytes: number;
  /** Whether a frame waits for the socket to drain (at most one: the latest). */
  pending: boolean;
  /** Frames replaced by a later one while the client was not reading. */
  dropped: number;
}

/**
 * An open stream: `send` a frame; a client that does not keep up gets the latest one when it
 * drains — or, when frames were skipped and the latest came with a `resync`, what that makes (a
 * frame that does not build on the skipped ones, such as the whole overview instead of a delta).
 */
export interface EventStream {
  send(frame: string, resync?: () => string): void;
  onClose(listener: () => void): void;
}

/**
 * The gateway's server-sent event streams: at most `maxPerClient` per client address and
 * `maxPerKey` per key name (beyond: 429; `anonymous` has only the address's cap, as all of a
 * keyless gateway's clients are anonymous) and `maxTotal` in all (beyond: 503), all with
 * `Retry-After`. Without the per-key cap, one read key used from many addresses takes every slot. A stream never buffers more than
 * the frame the socket is taking plus the latest one waiting: a client that stops reading costs
 * one frame of memory, not one per update.
 */
export class EventStreams {
  private readonly open = new Map<Response, StreamState>();
  private readonly perClient = new Map<string, number>();
  private readonly perKey = new Map<string, number>();
  private readonly maxPerClient: number;
  private readonly maxPerKey: number;
  private readonly maxTotal: number;
  /** Updates replaced by a later one, over closed streams too. */
  private dropped = 0;

  /** With a `registry`, `/metrics` says how many streams are open, what they buffer, what they skipped. */
  constructor(
    options: {
      maxPerClient?: number;
      maxPerKey?: number;
      maxTotal?: number;
      registry?: Registry;
    } = {},
  ) {
    this.maxPerClient = options.maxPerClient ?? SECURITY_DEFAULTS.sseMaxPerClient;
    this.maxPerKey = options.maxPerKey ?? SECURITY_DEFAULTS.sseMaxPerKey;
    this.maxTotal = options.maxTotal ?? SECURITY_DEFAULTS.sseMaxTotal;
    const { registry } = options;
    if (registry === undefined) return;
    const registers = [registry];
    // A registry outlives an app made again on it (tests): the newest streams are the ones counted.
    for (const name of [
      'ginkgo_gateway_sse_streams',
      'ginkgo_gateway_sse_buffered_bytes',
      'ginkgo_gateway_sse_updates_skipped_total',
    ])
      registry.removeSingleMetric(name);
    const streams = this.open;
    const skipped = (): number => this.dropped;
    new Gauge({
      name: 'ginkgo_gateway_sse_streams',
      help: 'Open event streams (the operations page feed)',
      registers,
      collect() {
        this.set(streams.size);
      },
    });
    new Gauge({
      name: 'ginkgo_gateway_sse_buffered_bytes',
      help: "Bytes written to the event streams' sockets and not yet taken by their clients",
      registers,
      collect() {
        let bytes = 0;
        for (const res of streams.keys()) bytes += res.writableLength;
        this.set(bytes);
      },
    });
    new Counter({
      name: 'ginkgo_gateway_sse_updates_skipped_total',
      help: 'Updates a slow event stream client never got: replaced by a later one while its socket was full',
      registers,
      collect() {
        this.reset();
        this.inc(skipped());
      },
    });
  }

  get size(): number {
    return this.open.size;
  }

  snapshot(): StreamState[] {
    return [...this.open].map(([res, state]) => ({ ...state, bufferedBytes: res.writableLength }));
  }

  /**
   * Starts an event stream on `res`, or answers 429 / 503 and returns undefined when a cap is
   * reached. `preamble` is written first (`retry:`). Behind `access.require` (the key is its principal's).
   */
  start(req: Request, res: Response, preamble = ''): EventStream | undefined {
    const address = clientAddress(req);
    const key = principalOf(res).name;
    const capsKey = key !== 'anonymous';
    const mine = this.perClient.get(address) ?? 0;
    const keys = capsKey ? (this.perKey.get(key) ?? 0) : 0;
    const refusal =
      mine >= this.maxPerClient
        ? new AppError(
            'RATE_LIMITED',
            `This address has ${mine} event streams open, the most GATEWAY_SSE_MAX_PER_CLIENT allows; close one`,
            { limit: this.maxPerClient, retry_after_seconds: RETRY_AFTER_SECONDS },
          )
        : capsKey && keys >= this.maxPerKey
          ? new AppError(
              'RATE_LIMITED',
              `The key ${key} has ${keys} event streams open, the most GATEWAY_SSE_MAX_PER_KEY allows; close one`,
              { limit: this.maxPerKey, retry_after_seconds: RETRY_AFTER_SECONDS },
            )
          : this.open.size >= this.maxTotal
            ? new AppError(
                'OVERLOADED',
                `The gateway serves ${this.open.size} event streams, the most GATEWAY_SSE_MAX_TOTAL allows; try again later`,
                { limit: this.maxTotal, retry_after_seconds: RETRY_AFTER_SECONDS },
              )
            : undefined;
    if (refusal !== undefined) {
      res
        .status(refusal.status)
        .set('Retry-After', String(RETRY_AFTER_SECONDS))
        .json(errorBody(refusal));
      return undefined;
    }

    const state: StreamState = { address, key, bufferedBytes: 0, pending: false, dropped: 0 };
    this.open.set(res, state);
    this.perClient.set(address, mine + 1);
    if (capsKey) this.perKey.set(key, keys + 1);
    let latest: string | undefined;
    let latestResync: (() => string) | undefined;
    /** A frame was replaced since the socket last took one: the next must not build on it. */
    let skipped = false;
    let draining = false;
    let closed = false;
    const closeListeners: (() => void)[] = [];
    res.on('close', () => {
      if (closed) return;
      closed = true;
      latest = undefined;
      latestResync = undefined;
      this.open.delete(res);
      const left = (this.perClient.get(address) ?? 1) - 1;
      if (left === 0) this.perClient.delete(address);
      else this.perClient.set(address, left);
      if (capsKey) {
        const keyLeft = (this.perKey.get(key) ?? 1) - 1;
        if (keyLeft === 0) this.perKey.delete(key);
        else this.perKey.set(key, keyLeft);
      }
      for (const listener of closeListeners) listener();
    });
    const write = (frame: string): void => {
      if (res.write(frame)) return;
      // The socket holds this frame and takes no more for now: later frames wait, the latest only.
      draining = true;
      res.once('drain', () => {
        draining = false;
        const next = skipped && latestResync !== undefined ? latestResync() : latest;
        latest = undefined;
        latestResync = undefined;
        skipped = false;
        state.pending = false;
        if (next !== undefined && !closed) write(next);
      });
    };

    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    if (preamble !== '') write(preamble);
    return {
      send: (frame, resync) => {
        if (closed) return;
        if (draining) {
          if (latest !== undefined) {
            state.dropped++;
            this.dropped++;
            skipped = true;
          }
          latest = frame;
          latestResync = resync;
          state.pending = true;
          return;
        }
        write(frame);
      },
      onClose: (listener) => {
        if (closed) listener();
        else closeListeners.push(listener);
      },
    };
  }
}
