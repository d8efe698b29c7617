import { z } from 'zod';
import { PAYLOAD_SCHEMAS, PORTFOLIO_STATUSES } from '@ginkgo-live/state-keys';
import { ApiRouter } from '../api-router.ts';
import { AppError } from '../errors.ts';
import { intParam } from '../query.ts';
import type { PortfolioView } from '../../fleet-reader.ts';
import {
  components,
  errorResponse,
  fleetId,
  idParams,
  REDIS_DOWN,
  time,
  type ResourceDeps,
} from './common.ts';
import { CONTROL_RESPONSES, markControl, queueControl } from './control.ts';
import { page } from './nodes.ts';

/** A portfolio's status as the API shows it: its state's, or `orphaned` / `pending` from the plan. */
const portfolioStatus = z.enum([...PORTFOLIO_STATUSES, 'orphaned', 'pending']);

export const PortfolioSchema = z
  .object({
    portfolio_id: fleetId,
    name: z.string().nullable(),
    symbols: z.array(z.string()),
    status: portfolioStatus,
    node_id: z.string().nullable(),
    assignment: z.object({
      status: z.enum(['assigned', 'orphaned', 'unplanned']),
      node_id: z.string().nullable(),
      reason: z.string().nullable(),
    }),
    state: PAYLOAD_SCHEMAS.portfolioState.omit({ _v: true }).nullable(),
    error: z.string().optional().meta({ description: 'Why one of its payloads is unreadable' }),
  })
  .register(components, { id: 'Portfolio' });

const portfoliosQuery = z.object({
  status: portfolioStatus.optional(),
  node_id: fleetId.optional().meta({ description: 'Only portfolios the plan puts on this node' }),
  limit: intParam(1, 1_000, 'Page size (default 100)').optional(),
  offset: intParam(0, 1_000_000, 'Items to skip (default 0)').optional(),
});

const portfoliosAnswer = z.object({
  portfolios: z.array(PortfolioSchema),
  total_count: z.number().int(),
  timestamp: time,
});

/** The body of `POST /api/portfolios`: a catalog entry as the state keys define it (`_v` not needed). */
const catalogEntry = PAYLOAD_SCHEMAS.portfolioSpec.omit({ _v: true });

/** `/api/portfolios…`: portfolios (read), and catalog add / remove requests (admin). */
export function portfolioRoutes(deps: ResourceDeps): ApiRouter {
  const { reader } = deps;
  const api = new ApiRouter(deps.access);

  api.get(
    '/api/portfolios',
    {
      summary: 'Every portfolio: state and place in the plan',
      scope: 'read',
      query: portfoliosQuery,
      responses: { 200: { description: 'Portfolios', schema: portfoliosAnswer }, 503: REDIS_DOWN },
    },
    async ({ query: q }, _req, res) => {
      let portfolios: PortfolioView[];
      let total: number;
      if (q.status === undefined && q.node_id === undefined) {
        // The sorted ids (no value read), then the page's entries and states only.
        const ids = await reader.portfolioIds();
        portfolios = await reader.portfolios(page(ids, q.limit, q.offset));
        total = ids.length;
      } else if (q.status === undefined) {
        // Where the plan puts each portfolio, then the states of the page's portfolios only.
        const index = (await reader.portfolioIndex()).filter((p) => p.nodeId === q.node_id);
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
      res.json({ portfolios, total_count: total, timestamp: new Date().toISOString() });
    },
  );

  api.get(
    '/api/portfolios/:id',
    {
      summary: 'One portfolio',
      scope: 'read',
      params: idParams,
      responses: {
        200: { description: 'The portfolio', schema: PortfolioSchema.extend({ timestamp: time }) },
        404: errorResponse('Unknown portfolio'),
        503: REDIS_DOWN,
      },
    },
    async ({ params: { id } }, _req, res) => {
      const [portfolio] = await reader.portfolios([id]);
      if (portfolio === undefined)
        throw new AppError('NOT_FOUND', `No portfolio ${id}`, { portfolio_id: id });
      res.json({ ...portfolio, timestamp: new Date().toISOString() });
    },
  );

  api.post(
    '/api/portfolios',
    {
      summary: 'Ask the scheduler to add a portfolio to the catalog',
      scope: 'admin',
      control: markControl('catalog_add', 'body'),
      body: catalogEntry,
      responses: { ...CONTROL_RESPONSES, 413: errorResponse('Body too large') },
    },
    ({ body }, _req, res) =>
      queueControl(deps.control, res, {
        action: 'catalog_add',
        portfolio_id: body.portfolio_id,
        spec: body,
      }),
  );

  api.delete(
    '/api/portfolios/:id',
    {
      summary: 'Ask the scheduler to remove a portfolio from the catalog',
      scope: 'admin',
      control: markControl('catalog_remove', 'portfolio_id'),
      params: idParams,
      responses: CONTROL_RESPONSES,
    },
    ({ params: { id } }, _req, res) =>
      queueControl(deps.control, res, { action: 'catalog_remove', portfolio_id: id }),
  );
  return api;
}
