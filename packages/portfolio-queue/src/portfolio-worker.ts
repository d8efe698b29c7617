import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { decodePayload, type PriceTick, type StateKeys } from '@ginkgo-live/state-keys';

/** Handles one decoded tick; a throw fails the job with the error's message as its reason. */
export type TickHandler = (tick: PriceTick, job: Job) => Promise<void> | void;

export interface PortfolioWorkerOptions {
  portfolioId: string;
  keys: StateKeys;
  /** A `blocking` profile connection; BullMQ duplicates it for its blocking reads. */
  connection: Redis;
  handler: TickHandler;
  /** Start consuming at once (default true). */
  autorun?: boolean;
  /** Worker name (the node id): stored on every job it processes and in its client name. */
  workerName?: string;
}

/** Why a job failed: its payload was not a valid tick. */
export class MalformedEventError extends Error {
  override readonly name = 'MalformedEventError';
}

/**
 * The consumer of one portfolio queue: concurrency 1, so a strategy sees its ticks in order. A
 * malformed event becomes a failed job whose reason says what is wrong; it is not retried.
 */
export function createPortfolioWorker(options: PortfolioWorkerOptions): Worker {
  const queueName = options.keys.portfolioQueue(options.portfolioId);
  return new Worker(
    queueName,
    async (job: Job) => {
      const decoded = decodePayload(
        'priceTick',
        `${queueName}:${job.id ?? '?'}`,
        JSON.stringify(job.data),
      );
      if (!decoded.ok) throw new MalformedEventError(`Malformed event: ${decoded.error.problem}`);
      await options.handler(decoded.value, job);
    },
    {
      connection: options.connection,
      prefix: options.keys.queuePrefix(),
      concurrency: 1,
      autorun: options.autorun ?? true,
      ...(options.workerName === undefined ? {} : { name: options.workerName }),
      // A stalled job (its node died mid-event) goes back to wait once, to run elsewhere.
      maxStalledCount: 1,
    },
  );
}
