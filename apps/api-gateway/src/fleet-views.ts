import { nodeStatus, type NodeFleetStatus, type NodeSnapshot } from '@ginkgo-live/fleet';
import type {
  NodeInfo,
  Payload,
  PayloadDecoder,
  PortfolioState,
  StateKeys,
} from '@ginkgo-live/state-keys';

/** One node as the API shows it; `error` set when one of its payloads is malformed. */
export interface NodeView {
  node_id: string;
  host: string | null;
  /** The fleet's one status (`@ginkgo-live/fleet`): online, draining or lost. */
  status: NodeFleetStatus;
  /** Its heartbeat is alive: status online or draining. */
  is_online: boolean;
  last_heartbeat: string | null;
  heartbeat_age_ms: number | null;
  portfolio_count: number;
  portfolio_ids: string[];
  capacity: number | null;
  queue_usage_max: number | null;
  events_per_second: number | null;
  uptime_seconds: number | null;
  cpu_percent: number | null;
  memory_rss_bytes: number | null;
  redis: NodeInfo['redis'] | null;
  error?: string;
}

/** One portfolio as the API shows it: its state (from its node) and its place in the plan. */
export interface PortfolioView {
  portfolio_id: string;
  name: string | null;
  symbols: string[];
  status: string;
  node_id: string | null;
  assignment: {
    status: 'assigned' | 'orphaned' | 'unplanned';
    node_id: string | null;
    reason: string | null;
  };
  state: Omit<PortfolioState, '_v'> | null;
  error?: string;
}

/** A node's snapshot as the API shows it: what a lost node last reported is not shown as current. */
export function nodeView(snapshot: NodeSnapshot): NodeView {
  const { info, record, liveness } = snapshot;
  const status = nodeStatus(snapshot);
  const online = status !== 'lost';
  const view: NodeView = {
    node_id: snapshot.nodeId,
    host: info?.host ?? null,
    status,
    is_online: online,
    last_heartbeat: liveness.lastHeartbeatAt ?? info?.last_heartbeat ?? record?.last_seen ?? null,
    heartbeat_age_ms: liveness.heartbeatAgeMs,
    portfolio_count: online ? (info?.portfolio_count ?? 0) : 0,
    portfolio_ids: online ? (info?.portfolio_ids ?? []) : [],
    capacity: info?.capacity ?? record?.capacity ?? null,
    queue_usage_max: online ? (info?.queue_usage_max ?? null) : null,
    events_per_second: online ? (info?.events_per_second ?? null) : null,
    uptime_seconds: online ? (info?.uptime_seconds ?? null) : null,
    cpu_percent: online ? (info?.cpu_percent ?? null) : null,
    memory_rss_bytes: online ? (info?.memory_rss_bytes ?? null) : null,
    redis: info?.redis ?? null,
  };
  return snapshot.problems.length > 0
    ? { ...view, error: snapshot.problems.map((p) => `${p.key}: ${p.problem}`).join('; ') }
    : view;
}

/** One portfolio's view from its raw catalog entry, assignment and state (absent: undefined / null). */
export function buildPortfolioView(
  k: StateKeys,
  decoder: Pick<PayloadDecoder, 'decode'>,
  id: string,
  specRaw: string | undefined,
  assignmentRaw: string | undefined,
  stateRaw: string | null | undefined,
): PortfolioView {
  const problems: string[] = [];
  const decode = <N extends 'portfolioSpec' | 'assignment' | 'portfolioState'>(
    name: N,
    key: string,
    raw: string | null | undefined,
  ): Payload<N> | null => {
    if (raw === null || raw === undefined) return null;
    const decoded = decoder.decode(name, key, raw);
    if (decoded.ok) return decoded.value;
    problems.push(`${key}: ${decoded.error.problem}`);
    return null;
  };
  const spec = decode('portfolioSpec', `${k.portfolioCatalog()}[${id}]`, specRaw);
  const assignment = decode('assignment', `${k.portfolioAssignments()}[${id}]`, assignmentRaw);
  const state = decode('portfolioState', k.portfolioState(id), stateRaw);
  const stateWithoutVersion = state === null ? null : (({ _v, ...rest }) => rest)(state);
  const view: PortfolioView = {
    portfolio_id: id,
    name: spec?.name ?? null,
    symbols: spec?.symbols ?? [],
    status: assignment?.status === 'orphaned' ? 'orphaned' : (state?.status ?? 'pending'),
    node_id: assignment?.node_id ?? null,
    assignment: {
      status: assignment?.status ?? 'unplanned',
      node_id: assignment?.node_id ?? null,
      reason: assignment?.reason ?? null,
    },
    state: stateWithoutVersion,
  };
  return problems.length > 0 ? { ...view, error: problems.join('; ') } : view;
}
