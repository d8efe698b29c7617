export { loadQueueConfig, MAX_QUEUE_CAPACITY } from './config.ts';
export type { QueueConfig } from './config.ts';
export { DEFAULT_QUEUE_CAPACITY, PortfolioQueues, TICK_JOB } from './portfolio-queues.ts';
export type {
  AddResult,
  PortfolioQueuesOptions,
  QueueDepth,
  TickInput,
} from './portfolio-queues.ts';
export { RecoveringQueue } from './recovering-queue.ts';
export { portfolioQueueLayout, PortfolioQueueReader } from './queue-reader.ts';
export { QueueWakeups } from './queue-wakeups.ts';
export type { QueueWakeupsOptions } from './queue-wakeups.ts';
export type { PortfolioQueueLayout, QueuedEvent } from './queue-reader.ts';
