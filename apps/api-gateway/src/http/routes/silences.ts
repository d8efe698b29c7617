import type { Redis } from 'ioredis';
import { z } from 'zod';
import { AuditLog } from '@ginkgo-live/fleet';
import { SILENCE_MAX_MS, SilenceError, Silences } from '@ginkgo-live/notification-adapter';
import { NOTIFICATION_LEVELS, PAYLOAD_SCHEMAS, type StateKeys } from '@ginkgo-live/state-keys';
import { callRedis } from '../../redis-unavailable.ts';
import { principalOf, type Access } from '../access.ts';
import { ApiRouter } from '../api-router.ts';
import { AppError } from '../errors.ts';
import { components, errorResponse, REDIS_DOWN, time } from './common.ts';
import { markControl } from './control.ts';

export interface SilenceDeps {
  access: Access;
  redis: Redis;
  keys: StateKeys;
}

const SilenceSchema = PAYLOAD_SCHEMAS.silence
  .omit({ _v: true })
  .register(components, { id: 'Silence' });

const names = z
  .array(z.string().min(1).max(128), { error: 'must be a list of names' })
  .min(1)
  .max(64)
  .optional()
  .meta({ description: 'Names; one ending in * matches by prefix' });

/** `30s`, `15m`, `2h`, `7d`. */
const DURATION = /^(\d{1,6})(s|m|h|d)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

const silenceBody = z.object({
  matchers: z
    .object({
      kind: names,
      level: z.array(z.enum(NOTIFICATION_LEVELS)).min(1).max(4).optional(),
      node: names,
      portfolio: names,
    })
    .strict(),
  duration: z
    .string()
    .regex(DURATION, { error: 'must be a number and a unit: 30m, 2h, 7d' })
    .meta({ description: 'How long from now: 30s, 15m, 2h, 7d (at most 30 days)' }),
  comment: z.string().max(1_000).optional().meta({ description: 'Why, for the others on call' }),
});

const listAnswer = z.object({
  active: z.array(SilenceSchema),
  ended: z.array(SilenceSchema).meta({ description: 'Ended in the last week, newest first' }),
  timestamp: time,
});

const idOfSilence = z.object({ id: z.uuid({ error: 'must be a silence id (a UUID)' }) });

/**
 * `/api/silences`: operators' silences — list them (read), create one and end one early (operate),
 * each creation and end in the audit trail. A silence keeps matching notifications from every sink;
 * the delivery worker records them as silenced.
 */
export function silenceRoutes(deps: SilenceDeps): ApiRouter {
  const silences = new Silences(deps.redis, deps.keys);
  const audit = new AuditLog(deps.redis, deps.keys);
  const api = new ApiRouter(deps.access);

  api.get(
    '/api/silences',
    {
      summary: 'Silences: the active ones (soonest to end first) and those ended in the last week',
      scope: 'read',
      responses: { 200: { description: 'Silences', schema: listAnswer }, 503: REDIS_DOWN },
    },
    async (_input, _req, res) => {
      const { active, ended } = await callRedis(deps.redis, () => silences.list());
      const strip = ({ _v, ...rest }: (typeof active)[number]) => rest;
      res.json({
        active: active.map(strip),
        ended: ended.map(strip),
        timestamp: new Date().toISOString(),
      });
    },
  );

  api.post(
    '/api/silences',
    {
      summary:
        'Silence notifications that match every field given (kind, level, node, portfolio) for a while',
      scope: 'operate',
      control: markControl('silence', 'body'),
      body: silenceBody,
      responses: {
        201: { description: 'The silence', schema: SilenceSchema },
        400: errorResponse('A matcher or the duration that cannot work'),
        503: REDIS_DOWN,
      },
    },
    async ({ body }, _req, res) => {
      const [, amount = '0', unit = 's'] = DURATION.exec(body.duration) ?? [];
      const durationMs = Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
      if (durationMs > SILENCE_MAX_MS)
        throw new AppError('INVALID_PARAMETER', 'duration: at most 30 days', {
          parameter: 'duration',
        });
      const { name, address } = principalOf(res);
      const { matchers } = body;
      let silence;
      try {
        silence = Silences.prepare({
          matchers,
          durationMs,
          createdBy: name.slice(0, 128),
          comment: body.comment ?? '',
        });
      } catch (err) {
        if (err instanceof SilenceError)
          throw new AppError('INVALID_PARAMETER', `${err.field}: ${err.message}`, {
            parameter: err.field,
          });
        throw err;
      }
      const made = silence;
      await callRedis(deps.redis, () => silences.save(made));
      await callRedis(deps.redis, () =>
        audit.append({
          actor: name.slice(0, 128),
          via: 'api-gateway',
          action: 'silence',
          target: {
            node_id: matchers.node?.join(',').slice(0, 128) ?? null,
            portfolio_id: matchers.portfolio?.join(',').slice(0, 128) ?? null,
            target_node_id: null,
          },
          outcome: 'accepted',
          reason:
            `until ${silence.ends_at}${body.comment === undefined ? '' : `: ${body.comment}`}`.slice(
              0,
              500,
            ),
          request_id: silence.id,
          address: address.slice(0, 64),
        }),
      );
      const { _v, ...shown } = silence;
      res.status(201).json(shown);
    },
  );

  api.post(
    '/api/silences/:id/expire',
    {
      summary: 'End a silence now (it stays listed, marked with who ended it)',
      scope: 'operate',
      control: markControl('unsilence', 'body'),
      params: idOfSilence,
      responses: {
        200: { description: 'The silence, ended', schema: SilenceSchema },
        404: errorResponse('No active silence by that id'),
        503: REDIS_DOWN,
      },
    },
    async ({ params: { id } }, _req, res) => {
      const { name, address } = principalOf(res);
      const ended = await callRedis(deps.redis, () => silences.expire(id, name.slice(0, 128)));
      if (ended === undefined) throw new AppError('NOT_FOUND', `No active silence ${id}`);
      await callRedis(deps.redis, () =>
        audit.append({
          actor: name.slice(0, 128),
          via: 'api-gateway',
          action: 'unsilence',
          target: { node_id: null, portfolio_id: null, target_node_id: null },
          outcome: 'accepted',
          reason: null,
          request_id: id,
          address: address.slice(0, 64),
        }),
      );
      const { _v, ...shown } = ended;
      res.json(shown);
    },
  );
  return api;
}
