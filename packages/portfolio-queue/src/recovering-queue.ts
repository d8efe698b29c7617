import { Queue, type QueueOptions } from 'bullmq';

/**
 * A BullMQ `Queue` that heals. BullMQ initialises a queue's connection once and keeps a failed
 * initialisation forever: a queue created (or first used) while Redis was away rejects every later
 * `add` with the same error, even after Redis is back. This wrapper checks the initialisation before
 * each use and replaces a queue whose initialisation failed, so the caller's next attempt works.
 */
export class RecoveringQueue {
  private queue: Queue;

  constructor(
    private readonly name: string,
    private readonly options: QueueOptions,
  ) {
    this.queue = this.create();
  }

  /** The queue, ready; rejects (and prepares a fresh queue) when it cannot initialise. */
  async get(): Promise<Queue> {
    const queue = this.queue;
    try {
      await queue.waitUntilReady();
      return queue;
    } catch (err) {
      if (this.queue === queue) {
        this.queue = this.create();
        // The broken queue owns nothing but its failed init; closing it cannot fail usefully.
        void queue.close().catch(() => undefined);
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.queue.close();
  }

  private create(): Queue {
    const queue = new Queue(this.name, this.options);
    // Failures reach callers through `get` and `add`; the listener keeps them from crashing.
    queue.on('error', () => undefined);
    return queue;
  }
}
