import express from 'express';
import type { Registry } from 'prom-client';
import type { Logger } from '@ginkgo-live/runtime';
import type { PingResult } from '@ginkgo-live/redis-client';
import helmet from 'helmet';
import type { SecurityConfig } from '../config.ts';
import type { ControlQueue } from '../control-queue.ts';
import type { FleetReader } from '../fleet-reader.ts';
import { OverviewFeed } from '../overview-feed.ts';
import { createAccess, type Access } from './access.ts';
import type { ApiRouter } from './api-router.ts';
import { errorHandler } from './error-handler.ts';
import { AppError } from './errors.ts';
import { buildOpenApi, type OpenApiDocument } from './openapi.ts';
import { pageRoutes } from './page.ts';
import { auditRoutes } from './routes/audit.ts';
import { controlRoutes } from './routes/control.ts';
import { healthRoutes } from './routes/health.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { nodeRoutes } from './routes/nodes.ts';
import { notificationRoutes } from './routes/notifications.ts';
import { overviewRoutes } from './routes/overview.ts';
import { portfolioRoutes } from './routes/portfolios.ts';
import { scheduleRoutes } from './routes/schedule.ts';
import { silenceRoutes } from './routes/silences.ts';
import { tradingRoutes, type TradingDeps } from './routes/trading.ts';
import { EventStreams } from './sse.ts';

export { metricRows } from './routes/metrics.ts';

export interface AppOptions {
  reader: FleetReader;
  control: ControlQueue;
  security: SecurityConfig;
  ping: () => Promise<PingResult>;
  registry: Registry;
  logger: Logger;
  /** The operations page's feed; default one made here that reads only while a page watches. */
  overview?: OverviewFeed;
  /** The routes' access checks; default the one made from `security` (tests give their own). */
  access?: Access;
  /**
   * Pause / resume / halt (`routes/trading.ts`): where they write. Mounted with the other routers
   * (under the same access checks) when given.
   */
  trading?: Omit<TradingDeps, 'access'>;
}

/** The gateway's express app: wiring only. Each resource's routes, schemas and docs are in `routes/`. */
export function createApp(options: AppOptions): express.Express & { openapi: OpenApiDocument } {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(helmet());
  // Which hops' X-Forwarded-For names the client (its rate limit, its stream cap): off by default.
  app.set('trust proxy', options.security.trustProxy ?? false);
  const gatewayAccess = createAccess(options.security);
  app.use(gatewayAccess.guard);
  app.use(pageRoutes());

  const access = options.access ?? gatewayAccess;
  const { reader, control } = options;
  const overview =
    options.overview ?? new OverviewFeed({ source: reader.view, logger: options.logger });
  const routers: ApiRouter[] = [
    healthRoutes({ access, ping: options.ping, logger: options.logger, openapi: () => openapi }),
    nodeRoutes({ access, reader, control }),
    portfolioRoutes({ access, reader, control }),
    scheduleRoutes({ access, reader, control }),
    controlRoutes({ access, control }),
    metricsRoutes({ access, reader, registry: options.registry }),
    notificationRoutes({ access, reader }),
    auditRoutes({ access, control }),
    // `/api/overview` and its event stream (helper gateway-security's file).
    overviewRoutes({
      access,
      overview,
      streams: new EventStreams({
        maxPerClient: options.security.sseMaxPerClient,
        maxPerKey: options.security.sseMaxPerKey,
        maxTotal: options.security.sseMaxTotal,
        registry: options.registry,
      }),
    }),
    // Pause / resume / halt (helper trading-controls' `routes/trading.ts`).
    ...(options.trading === undefined ? [] : [tradingRoutes({ access, ...options.trading })]),
    // Silences (notification-adapter's store): written where the trading controls are.
    ...(options.trading === undefined ? [] : [silenceRoutes({ access, ...options.trading })]),
  ];
  for (const router of routers) app.use(router.router);
  const openapi: OpenApiDocument = buildOpenApi(routers.flatMap((r) => r.operations));

  app.use((req, _res, next) => {
    next(new AppError('NOT_FOUND', `No route ${req.method} ${req.path}`));
  });
  app.use(errorHandler({ logger: options.logger, control }));
  return Object.assign(app, { openapi });
}
