import { z } from 'zod';
import { AUDIT_OUTCOMES } from '@ginkgo-live/state-keys';
import type { Access } from '../access.ts';
import { ApiRouter } from '../api-router.ts';
import { intParam } from '../query.ts';
import type { ControlQueue } from '../../control-queue.ts';
import { REDIS_DOWN, time } from './common.ts';

/** A stream id of `{scheduler}:audit` (`<ms>-<seq>`), as `next_before` gives it. */
const streamId = z.string().regex(/^\d{1,20}-\d{1,20}$/, {
  error: 'must be an entry id as next_before gives it (<ms>-<seq>)',
});

const auditQuery = z.object({
  limit: intParam(1, 1_000, 'Page size (default 100)').optional(),
  before: streamId
    .optional()
    .meta({ description: "The previous page's next_before: entries older than it" }),
});

const nullableText = z.string().nullable();
const auditRow = z.union([
  z.object({
    id: streamId,
    at: time,
    actor: z.string(),
    via: z.string(),
    action: z.string(),
    target: z.object({
      node_id: nullableText,
      portfolio_id: nullableText,
      target_node_id: nullableText,
    }),
    outcome: z.enum(AUDIT_OUTCOMES),
    reason: nullableText,
    request_id: nullableText,
    address: nullableText,
  }),
  z.object({ id: streamId, error: z.string() }).meta({ description: 'An unreadable entry' }),
]);

const auditAnswer = z.object({
  entries: z.array(auditRow),
  /** Pass as `before` for the next (older) page; null when this page is the last. */
  next_before: streamId.nullable(),
  timestamp: time,
});

/** `GET /api/audit`: the audit trail, newest first, paged by entry id (admin). */
export function auditRoutes(deps: { access: Access; control: ControlQueue }): ApiRouter {
  const api = new ApiRouter(deps.access);
  api.get(
    '/api/audit',
    {
      summary:
        'The audit trail of control requests (who, what, on what, outcome), newest first; page with `before=next_before`',
      scope: 'admin',
      query: auditQuery,
      responses: { 200: { description: 'Entries', schema: auditAnswer }, 503: REDIS_DOWN },
    },
    async ({ query: q }, _req, res) => {
      const limit = q.limit ?? 100;
      const records = await deps.control.auditTrail({
        limit,
        ...(q.before === undefined ? {} : { before: q.before }),
      });
      const entries = records.map((r) =>
        'entry' in r
          ? (({ _v, ...entry }) => ({ id: r.id, ...entry }))(r.entry)
          : { id: r.id, error: r.error.problem },
      );
      res.json({
        entries,
        next_before: records.length === limit ? (records.at(-1)?.id ?? null) : null,
        timestamp: new Date().toISOString(),
      });
    },
  );
  return api;
}
