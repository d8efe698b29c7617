import { z } from 'zod';
import { ApiRouter } from '../api-router.ts';
import { errorResponse, fleetId, REDIS_DOWN, time, type ResourceDeps } from './common.ts';
import { CONTROL_RESPONSES, queueControl } from './control.ts';

const planAnswer = z.object({
  plans: z.array(
    z.object({
      node_id: z.string(),
      portfolio_ids: z.array(z.string()),
      portfolio_count: z.number().int(),
    }),
  ),
  total_nodes: z.number().int(),
  total_portfolios: z.number().int(),
  orphaned: z.array(z.object({ portfolio_id: z.string(), reason: z.string().nullable() })),
  version: z.number().int().nullable(),
  leader: z.string().nullable(),
  timestamp: time,
});

/** `target_node` (or its older name `target_node_id`) is where to. */
const migrateBody = z
  .object({
    portfolio_id: fleetId,
    target_node: fleetId.optional(),
    target_node_id: fleetId.optional(),
  })
  .refine((b) => b.target_node !== undefined || b.target_node_id !== undefined, {
    error: 'Required',
    path: ['target_node'],
  });

/** `/api/schedule…`: the plan (read), and migrate requests (operate). */
export function scheduleRoutes(deps: ResourceDeps): ApiRouter {
  const api = new ApiRouter(deps.access);
  api.get(
    '/api/schedule/plan',
    {
      summary: 'The scheduler plan',
      scope: 'read',
      responses: { 200: { description: 'The plan', schema: planAnswer }, 503: REDIS_DOWN },
    },
    async (_input, _req, res) => {
      res.json({ ...(await deps.reader.plan()), timestamp: new Date().toISOString() });
    },
  );
  api.post(
    '/api/schedule/migrate',
    {
      summary: 'Ask the scheduler to move a portfolio to a node',
      scope: 'operate',
      control: {
        action: 'migrate',
        target: ({ body }) => {
          const given = (body ?? {}) as Record<string, unknown>;
          return {
            portfolio_id: given['portfolio_id'],
            target_node_id: given['target_node'] ?? given['target_node_id'],
          };
        },
      },
      body: migrateBody,
      responses: { ...CONTROL_RESPONSES, 413: errorResponse('Body too large') },
    },
    ({ body }, _req, res) =>
      queueControl(deps.control, res, {
        action: 'migrate',
        portfolio_id: body.portfolio_id,
        target_node_id: body.target_node ?? body.target_node_id,
      }),
  );
  return api;
}
