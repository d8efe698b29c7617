import { z } from 'zod';
import { NOTIFICATION_LEVELS, PAYLOAD_SCHEMAS } from '@ginkgo-live/state-keys';
import type { Access } from '../access.ts';
import { ApiRouter } from '../api-router.ts';
import { intParam } from '../query.ts';
import type { FleetReader } from '../../fleet-reader.ts';
import { REDIS_DOWN, time } from './common.ts';

const notificationsQuery = z.object({
  level: z.enum(NOTIFICATION_LEVELS).optional(),
  kind: z.string().min(1).max(64).optional(),
  limit: intParam(1, 1_000, 'At most this many, newest first (default 100)').optional(),
});

const notificationsAnswer = z.object({
  notifications: z.array(
    z.union([
      PAYLOAD_SCHEMAS.notificationRecord,
      z.object({ error: z.string(), raw: z.string() }).meta({ description: 'An unreadable entry' }),
    ]),
  ),
  total_count: z.number().int(),
  timestamp: time,
});

/** `/api/notifications`: the notification history, newest first. */
export function notificationRoutes(deps: { access: Access; reader: FleetReader }): ApiRouter {
  const api = new ApiRouter(deps.access);
  api.get(
    '/api/notifications',
    {
      summary: 'Notification history, newest first',
      scope: 'read',
      query: notificationsQuery,
      responses: {
        200: { description: 'Notifications', schema: notificationsAnswer },
        503: REDIS_DOWN,
      },
    },
    async ({ query: q }, _req, res) => {
      const all = await deps.reader.notifications();
      const filtered = all.filter(
        (n) =>
          'error' in n ||
          ((q.level === undefined || n.level === q.level) &&
            (q.kind === undefined || n.kind === q.kind)),
      );
      const notifications = filtered.slice(0, q.limit ?? 100);
      res.json({
        notifications,
        total_count: notifications.length,
        timestamp: new Date().toISOString(),
      });
    },
  );
  return api;
}
