import type { Response } from 'express';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { TradingControls, type TradingActor, type TradingOutcome } from '@ginkgo-live/fleet';
import type { StateKeys } from '@ginkgo-live/state-keys';
import { callRedis } from '../../redis-unavailable.ts';
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

/** `{reason?}`: why, for the audit trail, the halt's banner and the notification. */
const reasonBody = z
  .object({
    reason: z
      .string({ error: 'must be a string' })
      .max(500, { error: 'must be at most 500 characters' })
      .nullable()
      .optional(),
  })
  .optional();

const changed = z.object({
  action: z.enum(['halt', 'unhalt', 'pause', 'resume']),
  status: z.literal('accepted'),
  trading: TradingSchema,
});

const CHANGE_RESPONSES = {
  200: { description: 'Done: the controls as they now stand', schema: changed },
  409: errorResponse('Already so (halted, not halted, paused, not paused): nothing changed'),
  503: REDIS_DOWN,
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
  const answer = async (
    res: Response,
    action: z.infer<typeof changed>['action'],
    outcome: TradingOutcome,
    portfolioId: string | null,
  ): Promise<void> => {
    if (!outcome.ok) {
      const details = { action, ...(portfolioId === null ? {} : { portfolio_id: portfolioId }) };
      throw outcome.code === 'unknown_portfolio'
        ? new AppError('NOT_FOUND', `No portfolio ${portfolioId ?? ''} in the catalog`, details)
        : new AppError('CONFLICT', `Refused: ${outcome.reason}`, details);
    }
    const trading = tradingView(await callRedis(redis, () => controls.read()));
    res.json({ action, status: 'accepted', trading });
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
      const outcome = await callRedis(redis, () =>
        controls.halt(actorOf(res), body?.reason ?? null),
      );
      await answer(res, 'halt', outcome, null);
    },
  );

  api.post(
    '/api/fleet/resume',
    {
      summary: 'Lift the trading halt: portfolios go on in queue order',
      scope: 'operate',
      control: markControl('unhalt', 'body'),
      responses: CHANGE_RESPONSES,
    },
    async (_input, _req, res) => {
      const outcome = await callRedis(redis, () => controls.unhalt(actorOf(res)));
      await answer(res, 'unhalt', outcome, null);
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
      const outcome = await callRedis(redis, () =>
        controls.pause(id, actorOf(res), body?.reason ?? null),
      );
      await answer(res, 'pause', outcome, id);
    },
  );

  api.post(
    '/api/portfolios/:id/resume',
    {
      summary: 'Resume a paused portfolio: it goes on in queue order',
      scope: 'operate',
      control: markControl('resume', 'portfolio_id'),
      params: idParams,
      responses: {
        ...CHANGE_RESPONSES,
        404: errorResponse('Neither paused nor in the catalog'),
      },
    },
    async ({ params: { id } }, _req, res) => {
      const outcome = await callRedis(redis, () => controls.resume(id, actorOf(res)));
      await answer(res, 'resume', outcome, id);
    },
  );
  return api;
}
