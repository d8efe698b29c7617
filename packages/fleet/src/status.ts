import type { Liveness, NodeInfo, NodeRecord, NodeRecordStatus } from '@ginkgo-live/state-keys';

/**
 * THE words for a node's state, the same in the API, the operations page and the comparison with
 * the scheduler's records:
 * - `online`: its heartbeat is alive (the liveness rule of state-keys) and it takes portfolios;
 * - `draining`: alive, but handing its portfolios over and taking no new ones — an operator drained
 *   it (the scheduler's record says `draining`) or it is stopping by itself (its info says
 *   `draining` or `stopping`);
 * - `lost`: no live heartbeat (expired, never sent, or a key without TTL), whatever the record or
 *   the last info still say.
 * What the node says of its own process (`starting`, `running`, …) stays in its info; it is not a
 * fleet status.
 */
export const NODE_FLEET_STATUSES = ['online', 'draining', 'lost'] as const;
export type NodeFleetStatus = (typeof NODE_FLEET_STATUSES)[number];

/** What the status is derived from: a `NodeSnapshot` or any part of one with these fields. */
export interface StatusInput {
  liveness: Pick<Liveness, 'alive'>;
  info: Pick<NodeInfo, 'status'> | null;
  record: Pick<NodeRecord, 'status'> | null;
}

/**
 * THE node status. The heartbeat decides online or lost (a record lags the heartbeat by up to a
 * scheduler tick: a record still `alive` or already `lost` does not override it); among live nodes
 * an operator's drain and the node's own stop both read `draining`.
 */
export function nodeStatus(node: StatusInput): NodeFleetStatus {
  if (!node.liveness.alive) return 'lost';
  if (
    node.record?.status === 'draining' ||
    node.info?.status === 'draining' ||
    node.info?.status === 'stopping'
  )
    return 'draining';
  return 'online';
}

const FROM_RECORD: Record<NodeRecordStatus, NodeFleetStatus> = {
  alive: 'online',
  draining: 'draining',
  lost: 'lost',
};

/**
 * What the scheduler decided for a node (its record's `alive | draining | lost`, a Redis contract
 * value kept for compatibility), in the fleet's words: what `nodeStatus` gives for a node whose
 * heartbeat agrees with the record.
 */
export function statusOfRecord(status: NodeRecordStatus): NodeFleetStatus {
  return FROM_RECORD[status];
}
