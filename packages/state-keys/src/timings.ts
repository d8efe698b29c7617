/** Time-related defaults of the Redis contract (docs/architecture.md), each overridable by env. */
export interface ContractTimings {
  /** How often a node beats, in ms. Default 5000. */
  heartbeatIntervalMs: number;
  /** TTL of `heartbeat:node:{id}`, in ms: three missed beats. Default 15000. */
  heartbeatTtlMs: number;
  /** TTL of `execution_node:{id}:info`, in ms: about 3× the heartbeat TTL. Default 45000. */
  nodeInfoTtlMs: number;
  /** TTL of `portfolio:{id}:state`, in ms: like the node info. Default 45000. */
  portfolioStateTtlMs: number;
  /** TTL of the scheduler leader lock, in ms. Default 10000. */
  schedulerLeaderTtlMs: number;
}

export const DEFAULT_TIMINGS: Readonly<ContractTimings> = Object.freeze({
  heartbeatIntervalMs: 5_000,
  heartbeatTtlMs: 15_000,
  nodeInfoTtlMs: 45_000,
  portfolioStateTtlMs: 45_000,
  schedulerLeaderTtlMs: 10_000,
});
