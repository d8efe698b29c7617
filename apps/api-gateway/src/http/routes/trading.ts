import { randomUUID } from 'node:crypto';
import type { Response } from 'express';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import {
  replicationWarning,
  TRADING_OUTCOME_UNKNOWN,
  TradingControls,
  type TradingActor,
  type TradingOutcome,
} from '@ginkgo-live/fleet';
import type { StateKeys } from '@ginkgo-live/state-keys';
import { callRedis, RedisUnavailableError } from '../../redis-unavailable.ts';
import { tradingView } from '../../overview.ts';
import { principalOf, type Access } from '../access.ts';
import { ApiRouter } from '../api-router.ts';
import { AppError } from '../errors.ts';
import { components, errorResponse, idParams, REDIS_DOWN, time } from './common.ts';
import { markControl } from './control.ts';

/** The fleet's trading controls as the API and the overview show them. */
export const TradingSchema = z
  .object({
    halted: z
      .object({ halted_at: time, by: z.string(), reason: z.string().nullable() })
      .nullable()
      .meta({ description: 'The fleet-wide halt (who, when, why); null while the fleet trades' }),
    paused: z.array(
      z.object({
        portfolio_id: z.string(),
        paused_at: time,
        by: z.string(),
        reason: z.string().nullable(),
      }),
    ),
  })
  .register(components, { id: 'Trading' });

/**
 * `request_id`: the change's id (a UUID; the gateway makes one when absent). Sent again with the
 * same id — after a timeout whose outcome is unknown — the change is made at most once and
 * answers 200 (`repeated`) instead of a 409 for its own change.
 */
const requestId = z
  .uuid({ error: 'must be a UUID' })
  .optional()
  .meta({ description: "The change's id: resend with the same id to retry safely" });

/** `{reason?}`: why, for the audit trail, the halt's banner and the notification. */
const reasonBody = z
  .object({
    reason: z
      .string({ error: 'must be a string' })
      .max(500, { error: 'must be at most 500 characters' })
      .nullable()
      .optional(),
    request_id: requestId,
  })
  .optional();

const requestBody = z.object({ request_id: requestId }).optional();

const changed = z.object({
  action: z.enum(['halt', 'unhalt', 'pause', 'resume']),
  status: z.literal('accepted'),
  request_id: z.string(),
  repeated: z
    .boolean()
    .meta({ description: 'The same request (by id) had made this change already' }),
  replication: z
    .object({ replicas: z.number().int(), acknowledged: z.number().int() })
    .nullable()
    .meta({ description: 'Replicas connected, and how many acknowledged the change' }),
  warning: z
    .string()
    .nullable()
    .meta({ description: 'Set when the master has replicas and none acknowledged the change' }),
  trading: TradingSchema.nullable().meta({
    description: 'The controls as they now stand; null when reading them back failed',
  }),
});

const CHANGE_RESPONSES = {
  200: { description: 'Done: the controls as they now stand', schema: changed },
  409: errorResponse('Already so (halted, not halted, paused, not paused): nothing changed'),
  503: errorResponse(
    `Redis is unavailable (nothing changed), or: "${TRADING_OUTCOME_UNKNOWN}" — the change was sent and no answer came; resend it with the same request_id`,
  ),
};

export interface TradingDeps {
  access: Access;
  redis: Redis;
  keys: StateKeys;
}

/**
 * The trading desk's controls (operate): halt the whole fleet, pause one portfolio, and lift
 * either; read them (read). Written straight to Redis with their audit entry (`TradingControls`),
 * not queued for the scheduler: a kill switch must work with every scheduler dead. Nodes stop
 * applying events within their assignment poll.
 */
export function tradingRoutes(deps: TradingDeps): ApiRouter {
  const { redis } = deps;
  const controls = new TradingControls(redis, deps.keys);
  const api = new ApiRouter(deps.access);
  const actorOf = (res: Response): TradingActor => {
    const { name, address } = principalOf(res);
    return { name: name.slice(0, 128), via: 'api-gateway', address: address.slice(0, 64) };
  };
  type Action = z.infer<typeof changed>['action'];
  /**
   * Makes a change and answers. Not sent (Redis not connected) or refused by Redis (a script error:
   * every one comes before any write) is the usual 503; a change sent with no answer (a timeout) may
   * still land, so it is reported as unknown, not failed.
   */
  const change = async (
    res: Response,
    action: Action,
    portfolioId: string | null,
    id: string | undefined,
    run: (options: { requestId: string }) => Promise<TradingOutcome>,
  ): Promise<void> => {
    const request_id = id ?? randomUUID();
    const details = {
      action,
      request_id,
      ...(portfolioId === null ? {} : { portfolio_id: portfolioId }),
    };
    if (redis.status !== 'ready') throw new RedisUnavailableError(`connection ${redis.status}`);
    let outcome: TradingOutcome;
    try {
      outcome = await run({ requestId: request_id });
    } catch (err) {
      if (err instanceof Error && err.name === 'ReplyError')
        throw new RedisUnavailableError(err.message, { cause: err });
      throw new AppError('REDIS_UNAVAILABLE', TRADING_OUTCOME_UNKNOWN, details, { cause: err });
    }
    if (!outcome.ok) {
      throw outcome.code === 'unknown_portfolio'
        ? new AppError('NOT_FOUND', `No portfolio ${portfolioId ?? ''} in the catalog`, details)
        : new AppError('CONFLICT', `Refused: ${outcome.reason}`, details);
    }
    // The change stands: a read that fails now must not answer it as failed.
    const trading = await controls.read().then(tradingView, () => null);
    res.json({
      action,
      status: 'accepted',
      request_id,
      repeated: outcome.repeated,
      replication: outcome.replication,
      warning: replicationWarning(outcome.replication),
      trading,
    });
  };

  api.get(
    '/api/fleet/trading',
    {
      summary: 'The trading halt and the paused portfolios',
      scope: 'read',
      responses: { 200: { description: 'The controls', schema: TradingSchema }, 503: REDIS_DOWN },
    },
    async (_input, _req, res) => {
      res.json(tradingView(await callRedis(redis, () => controls.read())));
    },
  );

  api.post(
    '/api/fleet/halt',
    {
      summary: 'Halt trading: no portfolio applies events until resumed (queues keep what arrives)',
      scope: 'operate',
      control: markControl('halt', 'body'),
      body: reasonBody,
      responses: CHANGE_RESPONSES,
    },
    async ({ body }, _req, res) => {
      await change(res, 'halt', null, body?.request_id, (options) =>
        controls.halt(actorOf(res), body?.reason ?? null, options),
      );
    },
  );

  api.post(
    '/api/fleet/resume',
    {
      summary: 'Lift the trading halt: portfolios go on in queue order',
      scope: 'operate',
      control: markControl('unhalt', 'body'),
      body: requestBody,
      responses: CHANGE_RESPONSES,
    },
    async ({ body }, _req, res) => {
      await change(res, 'unhalt', null, body?.request_id, (options) =>
        controls.unhalt(actorOf(res), options),
      );
    },
  );

  api.post(
    '/api/portfolios/:id/pause',
    {
      summary: 'Pause one portfolio: it applies no events until resumed (its queue keeps them)',
      scope: 'operate',
      control: markControl('pause', 'portfolio_id'),
      params: idParams,
      body: reasonBody,
      responses: { ...CHANGE_RESPONSES, 404: errorResponse('Not in the catalog') },
    },
    async ({ params: { id }, body }, _req, res) => {
      await change(res, 'pause', id, body?.request_id, (options) =>
        controls.pause(id, actorOf(res), body?.reason ?? null, options),
      );
    },
  );

  api.post(
    '/api/portfolios/:id/resume',
    {
      summary: 'Resume a paused portfolio: it goes on in queue order',
      scope: 'operate',
      control: markControl('resume', 'portfolio_id'),
      params: idParams,
      body: requestBody,
      responses: {
        ...CHANGE_RESPONSES,
        404: errorResponse('Neither paused nor in the catalog'),
      },
    },
    async ({ params: { id }, body }, _req, res) => {
      await change(res, 'resume', id, body?.request_id, (options) =>
        controls.resume(id, actorOf(res), options),
      );
    },
  );
  return api;
}
