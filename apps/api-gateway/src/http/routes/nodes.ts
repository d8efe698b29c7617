import { z } from 'zod';
import { NODE_FLEET_STATUSES, type NodeFleetStatus } from '@ginkgo-live/fleet';
import { PAYLOAD_SCHEMAS } from '@ginkgo-live/state-keys';
import { ApiRouter } from '../api-router.ts';
import { AppError } from '../errors.ts';
import { booleanParam, intParam } from '../query.ts';
import {
  components,
  errorResponse,
  fleetId,
  idParams,
  REDIS_DOWN,
  time,
  type ResourceDeps,
} from './common.ts';
import { CONTROL_RESPONSES, markControl, queueControl } from './control.ts';

const nodeStatus = z.enum(NODE_FLEET_STATUSES).meta({
  description:
    'online: heartbeat alive; draining: alive, drained by an operator or stopping by itself; lost: no live heartbeat',
});

export const NodeSchema = z
  .object({
    node_id: fleetId,
    host: z.string().nullable(),
    status: nodeStatus,
    is_online: z.boolean().meta({ description: 'Heartbeat alive: status online or draining' }),
    last_heartbeat: z.string().nullable(),
    heartbeat_age_ms: z.number().nullable(),
    portfolio_count: z.number().int(),
    portfolio_ids: z.array(z.string()),
    capacity: z.number().int().nullable(),
    queue_usage_max: z.number().nullable(),
    events_per_second: z.number().nullable(),
    uptime_seconds: z.number().nullable(),
    cpu_percent: z.number().nullable(),
    memory_rss_bytes: z.number().nullable(),
    redis: PAYLOAD_SCHEMAS.nodeInfo.shape.redis.nullable(),
    error: z.string().optional().meta({ description: 'Why one of its payloads is unreadable' }),
  })
  .register(components, { id: 'Node' });

const nodesQuery = z.object({
  status: nodeStatus.optional(),
  online: booleanParam
    .optional()
    .meta({ description: 'Only nodes whose heartbeat is (not) alive' }),
  limit: intParam(1, 1_000, 'Page size (default 100)').optional(),
  offset: intParam(0, 1_000_000, 'Items to skip (default 0)').optional(),
});

const nodesAnswer = z.object({
  nodes: z.array(NodeSchema),
  total_count: z.number().int(),
  online_count: z.number().int(),
  limit: z.number().int(),
  offset: z.number().int(),
  timestamp: time,
});

const nodeAnswer = NodeSchema.extend({
  portfolios: z.array(
    z.object({
      portfolio_id: z.string(),
      status: z.string(),
      queue_depth: z.number().int().nullable(),
      queue_usage: z.number().nullable(),
      processed_count: z.number().int().nullable(),
      last_event_time: z.string().nullable(),
    }),
  ),
  timestamp: time,
});

export function page<T>(items: T[], limit = 100, offset = 0): T[] {
  return items.slice(offset, offset + limit);
}

/** `/api/nodes…`: the fleet's nodes (read), and drain / undrain requests (operate). */
export function nodeRoutes(deps: ResourceDeps): ApiRouter {
  const { reader } = deps;
  const api = new ApiRouter(deps.access);

  api.get(
    '/api/nodes',
    {
      summary: 'Every node, with liveness by the heartbeat rule',
      scope: 'read',
      query: nodesQuery,
      responses: { 200: { description: 'Nodes', schema: nodesAnswer }, 503: REDIS_DOWN },
    },
    async ({ query: q }, _req, res) => {
      const limit = q.limit ?? 100;
      const offset = q.offset ?? 0;
      // The index: every node id with its liveness (no payload; `LivenessIndex` checks what it saw
      // last with an EXISTS per chunk of keys, a PTTL only where that changed). A status needs more
      // only for live nodes: draining is the scheduler's record (an operator's drain) or the node's
      // own info (stopping by itself), which the fleet view keeps up to date from the registry's
      // beat scores — the info is written only by the beat that moves the score.
      const ids = await reader.nodeIds();
      if (q.status === undefined && q.online === undefined) {
        // No filter: the page is known from the ids alone, so it is read beside the liveness.
        const [index, nodes] = await Promise.all([
          reader.nodeIndex(ids),
          reader.nodes(page(ids, limit, offset)),
        ]);
        res.json({
          nodes,
          total_count: index.length,
          online_count: index.filter((n) => n.online).length,
          limit,
          offset,
          timestamp: new Date().toISOString(),
        });
        return;
      }
      const index = await reader.nodeIndex(ids);
      let statusOf: ((n: { nodeId: string; online: boolean }) => NodeFleetStatus) | undefined;
      if (q.status === 'online' || q.status === 'draining') {
        const live = index.filter((n) => n.online).map((n) => n.nodeId);
        const [records, selfDraining] = await Promise.all([
          reader.recordStatuses(live),
          reader.view.selfDraining(),
        ]);
        statusOf = (n) =>
          !n.online
            ? 'lost'
            : records.get(n.nodeId) === 'draining' || selfDraining.has(n.nodeId)
              ? 'draining'
              : 'online';
      } else if (q.status === 'lost') statusOf = (n) => (n.online ? 'online' : 'lost');
      const filtered = index.filter(
        (n) =>
          (q.online === undefined || n.online === q.online) &&
          (statusOf === undefined || statusOf(n) === q.status),
      );
      // Only the page's nodes are read in full; the status is judged again on what was read.
      const nodes = (await reader.nodes(page(filtered, limit, offset).map((n) => n.nodeId))).filter(
        (n) =>
          (q.status === undefined || n.status === q.status) &&
          (q.online === undefined || n.is_online === q.online),
      );
      const total = filtered.length;
      const online = filtered.filter((n) => n.online).length;
      res.json({
        nodes,
        total_count: total,
        online_count: online,
        limit,
        offset,
        timestamp: new Date().toISOString(),
      });
    },
  );

  api.get(
    '/api/nodes/:id',
    {
      summary: 'One node and its portfolios',
      scope: 'read',
      params: idParams,
      responses: {
        200: { description: 'The node', schema: nodeAnswer },
        404: errorResponse('Unknown node'),
        503: REDIS_DOWN,
      },
    },
    async ({ params: { id } }, _req, res) => {
      const [node] = await reader.nodes([id]);
      if (node === undefined) throw new AppError('NOT_FOUND', `No node ${id}`, { node_id: id });
      // What the plan puts there, and what the node says it runs (a portfolio on its way).
      const candidates = new Set(node.portfolio_ids);
      for (const p of await reader.portfolioIndex())
        if (p.nodeId === id) candidates.add(p.portfolioId);
      const portfolios = (await reader.portfolios([...candidates].sort()))
        .filter((p) => p.node_id === id || p.state?.node_id === id)
        .map((p) => ({
          portfolio_id: p.portfolio_id,
          status: p.status,
          queue_depth: p.state?.queue_depth ?? null,
          queue_usage: p.state?.queue_usage ?? null,
          processed_count: p.state?.processed_count ?? null,
          last_event_time: p.state?.last_event_time ?? null,
        }));
      res.json({ ...node, portfolios, timestamp: new Date().toISOString() });
    },
  );

  for (const action of ['drain', 'undrain'] as const) {
    api.post(
      `/api/nodes/:id/${action}`,
      {
        summary: `Ask the scheduler to ${action} a node`,
        scope: 'operate',
        control: markControl(action, 'node_id'),
        params: idParams,
        responses: CONTROL_RESPONSES,
      },
      ({ params: { id } }, _req, res) => queueControl(deps.control, res, { action, node_id: id }),
    );
  }
  return api;
}
