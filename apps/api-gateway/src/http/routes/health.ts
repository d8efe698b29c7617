import { z } from 'zod';
import type { PingResult } from '@ginkgo-live/redis-client';
import type { Logger } from '@ginkgo-live/runtime';
import type { Access } from '../access.ts';
import { ApiRouter } from '../api-router.ts';
import { time } from './common.ts';

export interface HealthDeps {
  access: Access;
  ping: () => Promise<PingResult>;
  logger: Logger;
  /** The OpenAPI description, made once the app's routers are all there. */
  openapi: () => unknown;
}

const healthAnswer = z.object({
  status: z.literal('ok'),
  uptime_seconds: z.number(),
  timestamp: time,
});
const readyAnswer = z.object({
  status: z.enum(['ready', 'not_ready']),
  components: z.object({
    redis: z.union([
      z.object({ status: z.literal('up'), latency_ms: z.number() }),
      z.object({ status: z.literal('down') }),
    ]),
  }),
  timestamp: time,
});

/**
 * `/api/health`, `/api/ready` and `/api/openapi.json`: open to anyone (probes, tools). Readiness
 * says only `down`: the client library's reason (addresses, `WRONGPASS`…) goes to the log, once
 * per change, not to whoever asks.
 */
export function healthRoutes(deps: HealthDeps): ApiRouter {
  const api = new ApiRouter(deps.access);
  const startedAt = Date.now();
  let lastReason: string | null = null;

  api.get(
    '/api/health',
    {
      summary: 'The process lives',
      scope: null,
      responses: { 200: { description: 'Alive', schema: healthAnswer } },
    },
    (_input, _req, res) => {
      res.json({
        status: 'ok',
        uptime_seconds: (Date.now() - startedAt) / 1_000,
        timestamp: new Date().toISOString(),
      });
    },
  );

  api.get(
    '/api/ready',
    {
      summary: 'Redis reachable',
      scope: null,
      responses: {
        200: { description: 'Ready', schema: readyAnswer },
        503: { description: 'A component is down (its reason is in the log)', schema: readyAnswer },
      },
    },
    async (_input, _req, res) => {
      const ping = await deps.ping();
      const reason = ping.ok ? null : ping.reason;
      if (reason !== lastReason) {
        if (reason === null) deps.logger.info('Readiness: Redis answers again');
        else deps.logger.warn('Readiness: Redis is down', { reason });
        lastReason = reason;
      }
      res.status(ping.ok ? 200 : 503).json({
        status: ping.ok ? 'ready' : 'not_ready',
        components: {
          redis: ping.ok ? { status: 'up', latency_ms: ping.latencyMs } : { status: 'down' },
        },
        timestamp: new Date().toISOString(),
      });
    },
  );

  api.get(
    '/api/openapi.json',
    {
      summary: 'This description (OpenAPI 3.1)',
      scope: null,
      responses: {
        200: { description: 'The OpenAPI document', schema: z.record(z.string(), z.unknown()) },
      },
    },
    (_input, _req, res) => {
      res.json(deps.openapi());
    },
  );
  return api;
}
