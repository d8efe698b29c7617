import type { Redis } from 'ioredis';
import type { Logger } from '@ginkgo-live/runtime';

export interface OrdersPushOptions {
  /** A connection of its own: `SSUBSCRIBE` makes it a subscriber, good for nothing else. */
  subscriber: Redis;
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
 */
export class OrdersPush {
  private isSubscribed = false;
  private subscribing: Promise<void> | undefined;
  private pinging = false;
  private lastRefusedAt = Number.NEGATIVE_INFINITY;
  private refusalTold = false;
  private stopped = false;
  /** Messages received, by channel kind (for the metrics and the tests). */
  readonly received = { orders: 0, trading: 0 };

  constructor(private readonly options: OrdersPushOptions) {}

  /** Whether Redis confirmed the subscription and the connection has not dropped since. */
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
    // (shardedSubscribers) and makes them again by itself when the shard's master changes: it says
    // so with these, not with ready and close, which are the whole client's.
    subscriber.on('-subscriber', this.onClose);
    subscriber.on('subscribersReady', this.onShardSubscribed);
    if (subscriber.status === 'ready') this.onReady();
  }

  /** No callback fires after this; the connection itself is closed with the others. */
  stop(): void {
    this.stopped = true;
    const { subscriber } = this.options;
    subscriber.off('smessage', this.onMessage);
    subscriber.off('ready', this.onReady);
    subscriber.off('close', this.onClose);
    subscriber.off('-subscriber', this.onClose);
    subscriber.off('subscribersReady', this.onShardSubscribed);
  }

  /**
   * Called at every safety read. Subscribed: a PING on the subscriber, so a connection that died
   * without a word (a half-open socket after a network fault, which only TCP keep-alive would
   * notice, minutes later) is dropped and dialled again within one interval and the command
   * timeout. Not subscribed on a connection that is up (Redis refused it): asks again, at most once
   * per `retryMs`, since an operator may have granted the channels meanwhile.
   */
  check(): void {
    if (this.stopped) return;
    const { subscriber } = this.options;
    if (subscriber.status !== 'ready') return;
    if (!this.isSubscribed) {
      if (performance.now() - this.lastRefusedAt >= this.options.retryMs) void this.subscribe();
      return;
    }
    if (this.pinging) return;
    this.pinging = true;
    subscriber
      .ping()
      .catch((err: unknown) => {
        if (this.stopped || subscriber.status !== 'ready') return;
        this.options.logger.warn('Push connection does not answer; dialling it again', { err });
        subscriber.disconnect(true);
      })
      .finally(() => {
        this.pinging = false;
      });
  }

  private readonly onMessage = (channel: string, message: string): void => {
    if (this.stopped) return;
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
   * A cluster's shard subscriber made again (a failover of the `{scheduler}` shard): subscribed
   * anew, so read anew — messages sent meanwhile went to nobody.
   */
  private readonly onShardSubscribed = (): void => {
    if (this.stopped) return;
    this.isSubscribed = false;
    void this.subscribe();
  };

  private readonly onClose = (): void => {
    if (this.stopped || !this.isSubscribed) return;
    this.isSubscribed = false;
    this.options.logger.warn(
      'Push subscription lost; reading the assignment and the trading controls every ASSIGNMENT_POLL_MS until it is back',
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
    try {
      // Both in the {scheduler} slot: one command, one shard on a cluster.
      await subscriber.ssubscribe(ordersChannel, tradingChannel);
    } catch (err) {
      if (this.stopped) return;
      // A connection that dropped meanwhile subscribes again at its next ready; a refusal
      // (NOPERM: an ACL without the channels; an unknown command: a Redis before 7.0) stays.
      if (subscriber.status !== 'ready') return;
      this.lastRefusedAt = performance.now();
      if (!this.refusalTold) {
        this.refusalTold = true;
        logger.error(
          'Redis refused the push subscription; polling every ASSIGNMENT_POLL_MS instead (grant the channels, packages/redis-client acl.ts, or set ASSIGNMENT_PUSH=off)',
          { channels: [ordersChannel, tradingChannel], err },
        );
      }
      return;
    }
    if (this.stopped || subscriber.status !== 'ready' || this.isSubscribed) return;
    this.isSubscribed = true;
    this.refusalTold = false;
    logger.info('Following the assignment and the trading controls by push', {
      channels: [ordersChannel, tradingChannel],
    });
    this.options.onSubscribed();
  }
}
