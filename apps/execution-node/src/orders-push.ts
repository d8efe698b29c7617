import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '@ginkgo-live/runtime';

/** The start of a probe's message; the plan write sends a plan version, never this. */
const PROBE = 'probe:';

export interface OrdersPushOptions {
  /** A connection of its own: `SSUBSCRIBE` makes it a subscriber, good for nothing else. */
  subscriber: Redis;
  /**
   * A connection that may publish (the node's main one): it sends the probe on the node's own
   * channel, which a subscriber connection cannot.
   */
  publisher: Pick<Redis, 'spublish'>;
  /** The node's own channel: the plan write tells it its assignment changed. */
  ordersChannel: string;
  /** The fleet-wide channel: a halt, lift, pause or resume was written. */
  tradingChannel: string;
  onOrders: () => void;
  onTrading: () => void;
  /**
   * Subscribed, at start or again after the connection came back: whatever was published while it
   * was away is lost (pub/sub keeps nothing), so everything is read again now.
   */
  onSubscribed: () => void;
  /** The subscription is gone: until it is back, nothing says a change happened. */
  onLost: () => void;
  /** How long to wait before asking again after Redis refused the subscription (ms). */
  retryMs: number;
  /**
   * How long a probe may take, from Redis's reply to its publish, to come back on the subscriber
   * before the subscription counts as lost (ms).
   */
  echoTimeoutMs: number;
  logger: Logger;
}

/**
 * The node's push subscription (sharded pub/sub, `SSUBSCRIBE`): a message is a hint that the
 * node's assignment or the trading controls changed, and the node reads them with its usual reads.
 * It keeps nothing that could go stale: while it is not subscribed the node polls, and every
 * (re)subscription is followed by a read, so a message lost to a reconnect costs nothing more.
 *
 * It subscribes on every `ready` of its connection, itself, rather than trusting ioredis's own
 * resubscription: the node's read must come after Redis confirmed the subscription (on this
 * connection), or a change written between the read and the subscription would go unannounced.
 *
 * Whether the subscription still delivers is checked end to end, by a probe: the node publishes on
 * its own channel (from its main connection) and expects the message back on the subscriber. A
 * `PING` on the subscriber would not do on a Redis Cluster, where the client sends it to any
 * master's ordinary connection, not to the shard's subscriber.
 */
export class OrdersPush {
  private isSubscribed = false;
  private subscribing: Promise<void> | undefined;
  /** The probe in flight: its message, and the timer that gives up on its echo. */
  private probe:
    { message: string; shard: boolean; timer?: ReturnType<typeof setTimeout> } | undefined;
  private probeSeq = 0;
  /** Tells this process's probes from any other's on the channel. */
  private readonly probeTag = randomBytes(4).toString('hex');
  private lastRefusedAt = Number.NEGATIVE_INFINITY;
  private refusalTold = false;
  private stopped = false;
  /** Messages received, by channel kind (for the metrics and the tests); probes not counted. */
  readonly received = { orders: 0, trading: 0, probes: 0 };

  constructor(private readonly options: OrdersPushOptions) {}

  /** Whether Redis confirmed the subscription and nothing since says it lapsed. */
  get subscribed(): boolean {
    return this.isSubscribed;
  }

  start(): void {
    const { subscriber } = this.options;
    // ioredis would send its own SSUBSCRIBE on reconnect, unawaited: a refusal there (an ACL
    // changed meanwhile) would be an unhandled rejection. This class subscribes on every ready.
    subscriber.options.autoResubscribe = false;
    subscriber.on('smessage', this.onMessage);
    subscriber.on('ready', this.onReady);
    subscriber.on('close', this.onClose);
    // On a Redis Cluster (REDIS_CLUSTER_NODES) the client keeps one subscriber per shard
    // (shardedSubscribers) and makes them again by itself when a shard's master changes: it says
    // so with these, not with ready and close, which are the whole client's. Neither says which
    // shard: a failover of any shard drops and makes again its subscriber.
    subscriber.on('-subscriber', this.onShardDropped);
    subscriber.on('subscribersReady', this.onShardSubscribed);
    if (subscriber.status === 'ready') this.onReady();
  }

  /** No callback fires after this; the connection itself is closed with the others. */
  stop(): void {
    this.stopped = true;
    this.clearProbe();
    const { subscriber } = this.options;
    subscriber.off('smessage', this.onMessage);
    subscriber.off('ready', this.onReady);
    subscriber.off('close', this.onClose);
    subscriber.off('-subscriber', this.onShardDropped);
    subscriber.off('subscribersReady', this.onShardSubscribed);
  }

  /**
   * Called at every safety read. Subscribed: sends a probe, so a subscription that stopped
   * delivering without its connection closing (a half-open socket, which only TCP keep-alive would
   * notice, minutes later; a shard subscriber gone silent) is noticed within an interval and
   * `echoTimeoutMs`, and dialled again. Not subscribed on a connection that is up (Redis refused
   * it): asks again, at most once per `retryMs`, since an operator may have granted the channels
   * meanwhile.
   */
  check(): void {
    if (this.stopped) return;
    const { subscriber } = this.options;
    if (subscriber.status !== 'ready') return;
    if (!this.isSubscribed) {
      if (performance.now() - this.lastRefusedAt >= this.options.retryMs) void this.subscribe();
      return;
    }
    this.sendProbe(false);
  }

  /**
   * Publishes a probe on the node's own channel, unless one is in flight. No subscriber on Redis's
   * side (its reply: 0 receivers), or no echo within `echoTimeoutMs` of the reply: the subscription
   * lapsed. A publish that fails says nothing about the subscriber (the main connection is in
   * trouble, which the beat tells): no verdict, the next check sends another. `shard`: sent
   * because a cluster's shard subscriber was dropped.
   */
  private sendProbe(shard: boolean): void {
    if (this.probe !== undefined) return;
    const message = `${PROBE}${this.probeTag}:${++this.probeSeq}`;
    this.probe = { message, shard };
    this.options.publisher.spublish(this.options.ordersChannel, message).then(
      (receivers) => {
        if (this.probe?.message !== message) return; // echoed already, or given up
        if (Number(receivers) === 0) {
          this.lapsed(shard, 'Redis has no subscriber on the channel');
          return;
        }
        const timer = setTimeout(() => {
          if (this.probe?.message === message)
            this.lapsed(shard, 'the probe did not come back within REDIS_COMMAND_TIMEOUT_MS');
        }, this.options.echoTimeoutMs);
        timer.unref();
        this.probe.timer = timer;
      },
      () => {
        if (this.probe?.message === message) this.clearProbe();
      },
    );
  }

  private clearProbe(): void {
    if (this.probe?.timer !== undefined) clearTimeout(this.probe.timer);
    this.probe = undefined;
  }

  /**
   * The probe says the subscription no longer delivers: polled meanwhile. After a cluster's shard
   * subscriber was dropped (`shard`), this node's was: a failover of its shard, which the client
   * mends by itself (`subscribersReady` subscribes anew and reads). Otherwise its connection looks
   * up but is not (a half-open socket): dialled again, and its `ready` subscribes anew and reads.
   */
  private lapsed(shard: boolean, reason: string): void {
    this.clearProbe();
    if (this.stopped || !this.isSubscribed) return;
    this.isSubscribed = false;
    if (shard) {
      this.options.logger.info(
        "Push subscription lost with its shard's subscriber (a failover); reading the assignment and the trading controls every ASSIGNMENT_POLL_MS until it is back",
        { reason },
      );
      this.options.onLost();
      return;
    }
    this.options.logger.warn(
      'Push subscription no longer delivers (a probe on the node channel did not come back); dialling it again, reading the assignment and the trading controls every ASSIGNMENT_POLL_MS meanwhile',
      { reason },
    );
    this.options.onLost();
    this.options.subscriber.disconnect(true);
  }

  private readonly onMessage = (channel: string, message: string): void => {
    if (this.stopped) return;
    if (channel === this.options.ordersChannel && message.startsWith(PROBE)) {
      if (this.probe?.message === message) {
        this.received.probes += 1;
        this.clearProbe();
      }
      return;
    }
    this.options.logger.debug('Push received', { channel, payload: message });
    if (channel === this.options.ordersChannel) {
      this.received.orders += 1;
      this.options.onOrders();
    } else if (channel === this.options.tradingChannel) {
      this.received.trading += 1;
      this.options.onTrading();
    }
  };

  private readonly onReady = (): void => {
    if (this.stopped) return;
    void this.subscribe();
  };

  /**
   * A cluster's shard subscriber was dropped — of this node's shard, or of any other: the event
   * does not say. A probe tells: it fails only if this node's subscription lapsed.
   */
  private readonly onShardDropped = (): void => {
    if (this.stopped || !this.isSubscribed) return;
    this.clearProbe();
    this.sendProbe(true);
  };

  /**
   * A cluster's shard subscribers were made again (a failover, of whichever shard): subscribed
   * anew (ioredis resends its remembered channels itself, unawaited; this confirms), and read anew
   * — a message sent while this node's shard subscriber was being replaced went to nobody.
   */
  private readonly onShardSubscribed = (): void => {
    if (this.stopped) return;
    void this.subscribe();
  };

  private readonly onClose = (): void => {
    if (this.stopped) return;
    this.clearProbe();
    if (!this.isSubscribed) return;
    this.isSubscribed = false;
    // Its connection closed (Redis restarted, a network fault): it dials again by itself.
    this.options.logger.info(
      'Push connection closed; reading the assignment and the trading controls every ASSIGNMENT_POLL_MS until it is back',
      {},
    );
    this.options.onLost();
  };

  private subscribe(): Promise<void> {
    this.subscribing ??= this.subscribeOnce().finally(() => {
      this.subscribing = undefined;
    });
    return this.subscribing;
  }

  private async subscribeOnce(): Promise<void> {
    const { subscriber, ordersChannel, tradingChannel, logger } = this.options;
    const channels = [ordersChannel, tradingChannel];
    try {
      // Both in the {scheduler} slot: one command, one shard on a cluster.
      await subscriber.ssubscribe(ordersChannel, tradingChannel);
    } catch (err) {
      rememberOnce(subscriber, channels, false);
      if (this.stopped) return;
      // A connection that dropped meanwhile subscribes again at its next ready; a refusal
      // (NOPERM: an ACL without the channels; an unknown command: a Redis before 7.0) stays.
      if (subscriber.status !== 'ready') return;
      this.lastRefusedAt = performance.now();
      if (!this.refusalTold) {
        this.refusalTold = true;
        logger.error(
          'Redis refused the push subscription; polling every ASSIGNMENT_POLL_MS instead (grant the channels, packages/redis-client acl.ts, or set ASSIGNMENT_PUSH=off)',
          { channels, err },
        );
      }
      return;
    }
    rememberOnce(subscriber, channels, true);
    if (this.stopped || subscriber.status !== 'ready') return;
    if (this.isSubscribed) {
      // Confirmed again (a cluster's subscribers made again): nothing lapsed that this node saw,
      // but a message may have gone to nobody meanwhile.
      logger.debug('Push subscription confirmed again; reading at once', {});
      this.options.onSubscribed();
      return;
    }
    this.isSubscribed = true;
    this.refusalTold = false;
    logger.info('Following the assignment and the trading controls by push', { channels });
    this.options.onSubscribed();
  }
}

/**
 * A Redis Cluster client remembers the channels of every `SSUBSCRIBE` sent through it, per slot,
 * to send them again to a shard's new subscriber — appended at every call, without looking
 * whether they are there already (ioredis 5's `ClusterSubscriberGroup.addChannels`), and kept even
 * when Redis refused them. Subscribing at every `subscribersReady` and after every refusal would
 * grow that list without end (and every resubscription with it): keep each channel once, or drop
 * them after a refusal (the next attempt adds them again). A single Redis's client keeps a set,
 * which needs nothing.
 */
function rememberOnce(subscriber: Redis, channels: readonly string[], subscribed: boolean): void {
  const group = (subscriber as unknown as { shardedSubscribers?: { channels?: unknown } })
    .shardedSubscribers;
  const remembered = group?.channels;
  if (!(remembered instanceof Map)) return;
  for (const [slot, list] of remembered as Map<unknown, unknown>) {
    if (!Array.isArray(list)) continue;
    const kept = subscribed
      ? [...new Set(list as unknown[])]
      : list.filter((c) => !channels.includes(c as string));
    remembered.set(slot, kept);
  }
}
