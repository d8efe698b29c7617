import express, { type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import type { Logger } from '@ginkgo-live/runtime';
import type { PingResult } from '@ginkgo-live/redis-client';
import { NODE_FLEET_STATUSES } from '@ginkgo-live/fleet';
import { NOTIFICATION_LEVELS } from '@ginkgo-live/state-keys';
import helmet from 'helmet';
import type { SecurityConfig } from '../config.ts';
import type { ControlQueue } from '../control-queue.ts';
import type { FleetReader, NodeView, PortfolioView } from '../fleet-reader.ts';
import { OverviewFeed } from '../overview-feed.ts';
import { OPENAPI } from './openapi.ts';
import { pageRoutes } from './page.ts';
import { cors, rateLimiter, requireKey } from './security.ts';
import { AppError, errorBody, toAppError } from './errors.ts';
import { booleanParam, intParam, parseQuery } from './query.ts';

export interface AppOptions {
  reader: FleetReader;
  control: ControlQueue;
  security: SecurityConfig;
  ping: () => Promise<PingResult>;
  registry: Registry;
  logger: Logger;
  /** The operations page's feed; default one made here that reads only while a page watches. */
  overview?: OverviewFeed;
}

const nodesQuery = z.object({
  status: z.enum(NODE_FLEET_STATUSES).optional(),
  online: booleanParam.optional(),
  limit: intParam(1, 1_000).optional(),
  offset: intParam(0, 1_000_000).optional(),
});
const portfoliosQuery = z.object({
  status: z
    .enum(['loading', 'running', 'paused', 'stopping', 'stopped', 'error', 'orphaned', 'pending'])
    .optional(),
  node_id: z.string().min(1).max(64).optional(),
  limit: intParam(1, 1_000).optional(),
  offset: intParam(0, 1_000_000).optional(),
});
const metricsQuery = z.object({
  component: z.string().min(1).optional(),
  metric_name: z.string().min(1).optional(),
});
const notificationsQuery = z.object({
  level: z.enum(NOTIFICATION_LEVELS).optional(),
  kind: z.string().min(1).max(64).optional(),
  limit: intParam(1, 1_000).optional(),
});

function page<T>(items: T[], limit = 100, offset = 0): T[] {
  return items.slice(offset, offset + limit);
}

/** `{component, metric_name, value, timestamp}` rows for nodes, portfolios and fleet totals. */
export function metricRows(nodes: NodeView[], portfolios: PortfolioView[], timestamp: string) {
  const rows: { component: string; metric_name: string; value: number; timestamp: string }[] = [];
  const add = (component: string, metric_name: string, value: number | null | undefined): void => {
    if (typeof value === 'number') rows.push({ component, metric_name, value, timestamp });
  };
  for (const n of nodes) {
    const c = `execution_node_${n.node_id}`;
    add(c, 'node.online', n.is_online ? 1 : 0);
    add(c, 'node.portfolio_count', n.portfolio_count);
    add(c, 'node.queue_usage_max', n.queue_usage_max);
    add(c, 'node.events_per_second', n.events_per_second);
    add(c, 'node.cpu_percent', n.cpu_percent);
    add(c, 'node.memory_rss_bytes', n.memory_rss_bytes);
    add(c, 'node.heartbeat_failures', n.redis?.total_failures);
  }
  for (const p of portfolios) {
    const c = `portfolio_${p.portfolio_id}`;
    const s = p.state;
    if (s === null) continue;
    add(c, 'portfolio.queue_size', s.queue_depth);
    add(c, 'portfolio.queue_usage', s.queue_usage);
    add(c, 'portfolio.processed_count', s.processed_count);
    add(c, 'portfolio.events_per_second', s.events_per_second);
    add(c, 'portfolio.refused_count', s.refused_count);
    add(c, 'portfolio.failed_count', s.failed_count);
    add(c, 'portfolio.processing_time_ms', s.latency_ms?.p50);
    add(c, 'portfolio.processing_time_p99_ms', s.latency_ms?.p99);
  }
  add('fleet', 'fleet.nodes_total', nodes.length);
  add('fleet', 'fleet.nodes_online', nodes.filter((n) => n.is_online).length);
  add('fleet', 'fleet.portfolios_total', portfolios.length);
  add('fleet', 'fleet.portfolios_running', portfolios.filter((p) => p.status === 'running').length);
  add(
    'fleet',
    'fleet.portfolios_orphaned',
    portfolios.filter((p) => p.status === 'orphaned').length,
  );
  add(
    'fleet',
    'fleet.events_per_second',
    nodes.reduce((s, n) => s + (n.events_per_second ?? 0), 0),
  );
  return rows;
}

/** The gateway's express app: the monitoring API, health, readiness, Prometheus. Reads Redis only. */
export function createApp(options: AppOptions): express.Express {
  const { reader } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(helmet());
  app.use(cors(options.security));
  const read = requireKey(options.security, 'read');
  const write = requireKey(options.security, 'control');
  const limit = rateLimiter(options.security);
  app.use(
    [
      '/api/nodes',
      '/api/portfolios',
      '/api/metrics',
      '/api/schedule',
      '/api/notifications',
      '/api/control',
      '/api/overview',
      '/metrics',
    ],
    limit,
  );
  app.use(pageRoutes());
  const overview =
    options.overview ?? new OverviewFeed({ reader: options.reader, logger: options.logger });
  app.use(express.json({ limit: '16kb' }));
  const startedAt = Date.now();
  const route =
    (handler: (req: Request, res: Response) => Promise<void>) =>
    (req: Request, res: Response, next: NextFunction): void => {
      handler(req, res).catch(next);
    };

  app.get('/api/openapi.json', (_req, res) => {
    res.json(OPENAPI);
  });

  app.get('/api/health', (_req, res) => {
    res.json({
      status: 'ok',
      uptime_seconds: (Date.now() - startedAt) / 1_000,
      timestamp: new Date().toISOString(),
    });
  });

  app.get(
    '/api/ready',
    route(async (_req, res) => {
      const ping = await options.ping();
      const redis = ping.ok
        ? { status: 'up', latency_ms: ping.latencyMs }
        : { status: 'down', reason: ping.reason };
      res.status(ping.ok ? 200 : 503).json({
        status: ping.ok ? 'ready' : 'not_ready',
        components: { redis },
        timestamp: new Date().toISOString(),
      });
    }),
  );

  app.get(
    '/api/nodes',
    read,
    route(async (req, res) => {
      const q = parseQuery(nodesQuery, req.query);
      let nodes: NodeView[];
      let total: number;
      let online: number;
      const limit = q.limit ?? 100;
      // A page of most of the fleet (or a status, which needs each node's info and record): one read of
      // everything. Otherwise the liveness of every node, then the info of the page's nodes only.
      if (q.status !== undefined || 2 * limit >= (await reader.nodeCount())) {
        const filtered = (await reader.nodes()).filter(
          (n) =>
            (q.status === undefined || n.status === q.status) &&
            (q.online === undefined || n.is_online === q.online),
        );
        nodes = page(filtered, q.limit, q.offset);
        total = filtered.length;
        online = filtered.filter((n) => n.is_online).length;
      } else {
        const index = (await reader.nodeIndex()).filter(
          (n) => q.online === undefined || n.online === q.online,
        );
        nodes = await reader.nodes(page(index, q.limit, q.offset).map((n) => n.nodeId));
        total = index.length;
        online = index.filter((n) => n.online).length;
      }
      res.json({
        nodes,
        total_count: total,
        online_count: online,
        limit: q.limit ?? 100,
        offset: q.offset ?? 0,
        timestamp: new Date().toISOString(),
      });
    }),
  );

  app.get(
    '/api/nodes/:id',
    read,
    route(async (req, res) => {
      const id = String(req.params['id']);
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
    }),
  );

  app.get(
    '/api/portfolios',
    read,
    route(async (req, res) => {
      const q = parseQuery(portfoliosQuery, req.query);
      let portfolios: PortfolioView[];
      let total: number;
      if (q.status === undefined) {
        // Where the plan puts each portfolio, then the states of the page's portfolios only.
        const index = (await reader.portfolioIndex()).filter(
          (p) => q.node_id === undefined || p.nodeId === q.node_id,
        );
        portfolios = await reader.portfolios(
          page(index, q.limit, q.offset).map((p) => p.portfolioId),
        );
        total = index.length;
      } else {
        // A status comes from each portfolio's state: every state is read.
        const filtered = (await reader.portfolios()).filter(
          (p) => p.status === q.status && (q.node_id === undefined || p.node_id === q.node_id),
        );
        portfolios = page(filtered, q.limit, q.offset);
        total = filtered.length;
      }
      res.json({
        portfolios,
        total_count: total,
        timestamp: new Date().toISOString(),
      });
    }),
  );

  app.get(
    '/api/portfolios/:id',
    read,
    route(async (req, res) => {
      const id = String(req.params['id']);
      const [portfolio] = await reader.portfolios([id]);
      if (portfolio === undefined)
        throw new AppError('NOT_FOUND', `No portfolio ${id}`, { portfolio_id: id });
      res.json({ ...portfolio, timestamp: new Date().toISOString() });
    }),
  );

  app.get(
    '/api/metrics',
    read,
    route(async (req, res) => {
      const q = parseQuery(metricsQuery, req.query);
      const [nodes, portfolios] = await Promise.all([reader.nodes(), reader.portfolios()]);
      const metrics = metricRows(nodes, portfolios, new Date().toISOString()).filter(
        (m) =>
          (q.component === undefined || m.component === q.component) &&
          (q.metric_name === undefined || m.metric_name === q.metric_name),
      );
      res.json({ metrics, total_count: metrics.length });
    }),
  );

  app.get(
    '/api/schedule/plan',
    read,
    route(async (_req, res) => {
      res.json({ ...(await reader.plan()), timestamp: new Date().toISOString() });
    }),
  );

  app.get(
    '/api/notifications',
    read,
    route(async (req, res) => {
      const q = parseQuery(notificationsQuery, req.query);
      const all = await reader.notifications();
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
    }),
  );

  // The operations page's data: one shaped overview (JSON), or a stream of them (server-sent
  // events, one per update; while Redis cannot be read each says so and carries the last data
  // flagged stale).
  app.get(
    '/api/overview',
    read,
    route(async (_req, res) => {
      res.json(await overview.read());
    }),
  );
  app.get('/api/overview/stream', read, (req, res) => {
    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    res.write('retry: 2000\n\n');
    const unsubscribe = overview.subscribe((message) => {
      res.write(`event: overview\ndata: ${JSON.stringify(message)}\n\n`);
    });
    req.on('close', unsubscribe);
  });

  app.get(
    '/metrics',
    read,
    route(async (_req, res) => {
      res.type(options.registry.contentType).send(await options.registry.metrics());
    }),
  );

  // Control: requests for the scheduler, answered 202 with an id to read the outcome back.
  const accepted = (res: Response, id: string): void => {
    res.status(202).json({ request_id: id, status: 'queued', result: `/api/control/${id}` });
  };
  const by = (req: Request): string => `api-gateway ${req.ip ?? ''}`.trim();
  const migrateBody = z.object({
    portfolio_id: z.string().min(1),
    target_node: z.string().min(1).optional(),
    target_node_id: z.string().min(1).optional(),
  });
  app.post(
    '/api/portfolios',
    write,
    route(async (req, res) => {
      accepted(
        res,
        await options.control.submit({ action: 'catalog_add', spec: req.body as unknown }, by(req)),
      );
    }),
  );
  app.delete(
    '/api/portfolios/:id',
    write,
    route(async (req, res) => {
      accepted(
        res,
        await options.control.submit(
          { action: 'catalog_remove', portfolio_id: String(req.params['id']) },
          by(req),
        ),
      );
    }),
  );
  for (const action of ['drain', 'undrain'] as const) {
    app.post(
      `/api/nodes/:id/${action}`,
      write,
      route(async (req, res) => {
        accepted(
          res,
          await options.control.submit({ action, node_id: String(req.params['id']) }, by(req)),
        );
      }),
    );
  }
  app.post(
    '/api/schedule/migrate',
    write,
    route(async (req, res) => {
      const body = parseQuery(migrateBody, req.body);
      const target = body.target_node ?? body.target_node_id;
      if (target === undefined)
        throw new AppError('INVALID_PARAMETER', 'Missing target_node', {
          parameter: 'target_node',
        });
      accepted(
        res,
        await options.control.submit(
          { action: 'migrate', portfolio_id: body.portfolio_id, target_node_id: target },
          by(req),
        ),
      );
    }),
  );
  app.get(
    '/api/control/:id',
    read,
    route(async (req, res) => {
      const id = String(req.params['id']);
      const outcome = await options.control.outcome(id);
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
    }),
  );

  app.use((req, _res, next) => {
    next(new AppError('NOT_FOUND', `No route ${req.method} ${req.path}`));
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const appError = toAppError(err);
    if (appError.code === 'INTERNAL_ERROR')
      options.logger.error('Request failed', { path: req.path, err });
    else if (appError.code === 'REDIS_UNAVAILABLE')
      options.logger.warn('Request failed: Redis unavailable', { path: req.path });
    res.status(appError.status).json(errorBody(appError));
  });
  return app;
}
