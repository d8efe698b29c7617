export { decodePayload, encodePayload, PayloadDecoder, PayloadEncodeError } from './codec.ts';
export type { Decoded, PayloadProblem } from './codec.ts';
export { ID_PATTERN, assertValidId, isValidId } from './ids.ts';
export { createStateKeys } from './keys.ts';
export type { NotificationSubject, StateKeys } from './keys.ts';
export { assessLiveness, isNodeAlive } from './liveness.ts';
export type { HeartbeatReading, Liveness } from './liveness.ts';
export {
  AUDIT_OUTCOMES,
  CONTROL_ACTIONS,
  NODE_RECORD_STATUSES,
  NOTIFICATION_LEVELS,
  NODE_STATUSES,
  PAYLOAD_SCHEMAS,
  PAYLOAD_VERSION,
  PORTFOLIO_STATUSES,
} from './schemas.ts';
export type {
  AppliedRange,
  Assignment,
  AuditEntry,
  AuditOutcome,
  BookFence,
  ControlAction,
  ControlRequest,
  ControlResult,
  Heartbeat,
  NodeAssignment,
  NodeInfo,
  NodeRecord,
  NodeRecordStatus,
  NodeStatus,
  Notification,
  NotificationLevel,
  NotificationRecord,
  Payload,
  PayloadName,
  PlanMeta,
  PortfolioBook,
  PortfolioPause,
  PriceTick,
  PortfolioSpec,
  PortfolioState,
  PortfolioStatus,
  RedisHealth,
  Silence,
  TradingHalt,
} from './schemas.ts';
export { placementDigest } from './placement.ts';
export { appliedSeqs, recordApplied, SEQ_CHECKSUM_MODULUS } from './applied.ts';
export type { ApplyDecision } from './applied.ts';
export { DEFAULT_TIMINGS } from './timings.ts';
export type { ContractTimings } from './timings.ts';
