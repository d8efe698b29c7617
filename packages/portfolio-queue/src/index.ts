export { DEFAULT_QUEUE_CAPACITY, PortfolioQueues, TICK_JOB } from './portfolio-queues.ts';
export type {
  AddResult,
  PortfolioQueuesOptions,
  QueueDepth,
  TickInput,
} from './portfolio-queues.ts';
export { createPortfolioWorker, MalformedEventError } from './portfolio-worker.ts';
export type { PortfolioWorkerOptions, TickHandler } from './portfolio-worker.ts';
export { RecoveringQueue } from './recovering-queue.ts';
export { portfolioQueueLayout, PortfolioQueueReader } from './queue-reader.ts';
export type { PortfolioQueueLayout, QueuedEvent } from './queue-reader.ts';
