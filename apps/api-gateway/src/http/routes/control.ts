import type { Response } from 'express';
import { z } from 'zod';
import type { Access } from '../access.ts';
import { principalOf } from '../access.ts';
import { ApiRouter, type ControlMark } from '../api-router.ts';
import { AppError } from '../errors.ts';
import type { ControlBody, ControlQueue } from '../../control-queue.ts';
import { components, errorResponse, REDIS_DOWN } from './common.ts';

export const AcceptedSchema = z
  .object({ request_id: z.uuid(), status: z.literal('queued'), result: z.string() })
  .register(components, { id: 'Accepted' });

/** What a control route answers: 202 with the request's id, or the refusals. */
export const CONTROL_RESPONSES = {
  202: {
    description: 'Queued for the scheduler (read its outcome at `result`)',
    schema: AcceptedSchema,
  },
  503: REDIS_DOWN,
};

/** The mark of a control route whose target is the path's `:id` (a node or a portfolio). */
export function markControl(
  action: string,
  target: 'node_id' | 'portfolio_id' | 'body',
): ControlMark {
  return {
    action,
    target: ({ params, body }) => (target === 'body' ? (body ?? {}) : { [target]: params['id'] }),
  };
}

/**
 * Queues a request for the scheduler in the name of the request's principal (its key's name is
 * `requested_by` and the audit entry's actor) and answers 202 with its id.
 */
export async function queueControl(
  control: ControlQueue,
  res: Response,
  body: ControlBody,
): Promise<void> {
  const { name, address } = principalOf(res);
  const id = await control.submit(body, { name, address });
  res.status(202).json({ request_id: id, status: 'queued', result: `/api/control/${id}` });
}

const outcomeAnswer = z.object({
  request_id: z.uuid(),
  status: z.enum(['accepted', 'refused']),
  reason: z.string().nullable(),
  plan_version: z.number().int().nullable(),
  processed_at: z.iso.datetime({ offset: true }),
});
const pendingAnswer = z.object({ request_id: z.uuid(), status: z.literal('pending') });

/** `GET /api/control/:id`: a request's outcome, by the id the gateway issued (a UUID). */
export function controlRoutes(deps: { access: Access; control: ControlQueue }): ApiRouter {
  const api = new ApiRouter(deps.access);
  api.get(
    '/api/control/:id',
    {
      summary: 'The outcome of a control request',
      scope: 'read',
      params: z.object({
        id: z.uuid({ error: 'must be a request id the gateway issued (a UUID)' }),
      }),
      responses: {
        200: { description: 'Answered by the scheduler', schema: outcomeAnswer },
        202: { description: 'Still queued', schema: pendingAnswer },
        404: errorResponse('Unknown request (never sent, or its answer expired)'),
        503: REDIS_DOWN,
      },
    },
    async ({ params: { id } }, _req, res) => {
      const outcome = await deps.control.outcome(id);
      if (outcome.status === 'unknown')
        throw new AppError('NOT_FOUND', `No request ${id} (never sent, or its answer expired)`, {
          request_id: id,
        });
      if (outcome.status === 'pending') {
        res.status(202).json({ request_id: id, status: 'pending' });
        return;
      }
      const { reason, plan_version, processed_at } = outcome.result;
      res.json({ request_id: id, status: outcome.status, reason, plan_version, processed_at });
    },
  );
  return api;
}
