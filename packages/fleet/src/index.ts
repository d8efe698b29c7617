export { countNodes, decodeNodeSnapshot, readNodeIds, readNodeSnapshots } from './snapshot.ts';
export type { NodeSnapshot, RawNodeReplies, ReadNodeSnapshotsOptions } from './snapshot.ts';
export { NODE_FLEET_STATUSES, nodeStatus, statusOfRecord } from './status.ts';
export type { NodeFleetStatus, StatusInput } from './status.ts';
export { QUEUE_LEVEL_RANK, QUEUE_LEVELS, QUEUE_THRESHOLDS, queueLevel } from './queue-levels.ts';
export type { QueueLevel, QueueThresholds } from './queue-levels.ts';
export { AUDIT_MAX_ENTRIES, AuditLog, encodeAuditEntry } from './audit.ts';
export { queueControlRequest } from './control-requests.ts';
export type { AuditInput, AuditRecord } from './audit.ts';
export {
  decodeTrading,
  haltRecordState,
  readControlRecord,
  readTradingRecords,
  REPLICA_WAIT_MS,
  replicationWarning,
  TRADING_OUTCOME_UNKNOWN,
  TradingControls,
  UNREADABLE_BY,
  UNREADABLE_ID,
} from './trading-controls.ts';
export type {
  ChangeOptions,
  ControlRecord,
  Replication,
  TradingActor,
  TradingOutcome,
  TradingReading,
} from './trading-controls.ts';
