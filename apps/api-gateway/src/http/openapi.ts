import { NODE_FLEET_STATUSES, QUEUE_LEVELS } from '@ginkgo-live/fleet';

/** JSON Schema pieces (OpenAPI 3.1 uses JSON Schema 2020-12). */
const str = { type: 'string' } as const;
const num = { type: 'number' } as const;
const int = { type: 'integer' } as const;
const bool = { type: 'boolean' } as const;
const time = { type: 'string', format: 'date-time' } as const;
const nullable = (schema: { type: string; format?: string }) => ({
  ...schema,
  type: [schema.type, 'null'],
});
const obj = (properties: Record<string, unknown>, required = Object.keys(properties)) => ({
  type: 'object',
  properties,
  required,
});
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});
const errors = {
  '400': json(ref('Error'), 'A bad parameter, named in details.parameter'),
  '401': json(ref('Error'), 'Missing or invalid API key'),
  '429': json(ref('Error'), 'Rate limited'),
  '503': json(ref('Error'), 'Redis unavailable'),
};
const query = (name: string, schema: unknown, description: string) => ({
  name,
  in: 'query',
  required: false,
  schema,
  description,
});
/** The fleet read model's one node status and queue levels (`@ginkgo-live/fleet`). */
const nodeStatus = {
  enum: [...NODE_FLEET_STATUSES],
  description:
    'online: heartbeat alive; draining: alive, drained by an operator or stopping by itself; lost: no live heartbeat',
};
const queueLevel = { enum: [...QUEUE_LEVELS] };
const path = (name: string) => ({ name, in: 'path', required: true, schema: str });
const paging = [
  query('limit', { type: 'integer', minimum: 1, maximum: 1000, default: 100 }, 'Page size'),
  query('offset', { type: 'integer', minimum: 0, default: 0 }, 'Items to skip'),
];

/** The OpenAPI description of the gateway, served at `/api/openapi.json` and checked by tests. */
export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'ginkgo-live api-gateway',
    version: '0.1.0',
    description:
      'Monitoring and control of the live-trading fleet. Reads come from Redis; control requests are queued for the scheduler.',
  },
  components: {
    securitySchemes: {
      apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      bearer: { type: 'http', scheme: 'bearer' },
    },
    schemas: {
      Overview: obj({
        generated_at: time,
        redis: obj({
          status: { enum: ['up', 'down'] },
          reason: nullable(str),
          down_since: nullable(time),
        }),
        stale: bool,
        data_as_of: nullable(time),
        queue_thresholds: obj({ warning: num, critical: num, full: num }),
        summary: obj({
          nodes_online: { ...int, description: 'Heartbeat alive: status online or draining' },
          nodes_total: int,
          nodes_draining: int,
          nodes_lost: int,
          portfolios_running: int,
          portfolios_total: int,
          portfolios_orphaned: int,
          events_per_second: num,
          queue_depth_total: int,
          queue_usage_max: nullable(num),
          notifications_last_hour: int,
          leader: nullable(str),
          plan_version: nullable(int),
        }),
        nodes: {
          type: 'array',
          items: obj({
            node_id: str,
            status: nodeStatus,
            heartbeat_age_ms: nullable(num),
            portfolio_count: int,
            capacity: nullable(int),
            queue_usage_max: nullable(num),
            queue_level: queueLevel,
            events_per_second: nullable(num),
            cpu_percent: nullable(num),
            memory_rss_bytes: nullable(num),
            redis_failures: nullable(int),
            redis_healthy: nullable(bool),
            error: nullable(str),
          }),
        },
        portfolios: {
          type: 'array',
          items: obj({
            portfolio_id: str,
            name: nullable(str),
            status: str,
            node_id: nullable(str),
            reason: nullable(str),
            queue_depth: nullable(int),
            queue_capacity: nullable(int),
            queue_usage: nullable(num),
            queue_level: queueLevel,
            events_per_second: nullable(num),
            latency_p50_ms: nullable(num),
            latency_p99_ms: nullable(num),
            cash: nullable(num),
            total_value: nullable(num),
            last_error: nullable(str),
          }),
        },
        notifications: {
          type: 'array',
          items: obj({
            id: str,
            created_at: time,
            level: str,
            kind: str,
            status: { enum: ['firing', 'resolved'] },
            title: str,
            message: str,
            subject: nullable(str),
            delivery: { enum: ['delivered', 'partial', 'failed'] },
            delivery_problems: { type: 'array', items: str },
          }),
        },
        history: {
          type: 'array',
          items: obj({
            t: int,
            queue_depth_total: int,
            queue_usage_max: nullable(num),
            events_per_second: num,
          }),
        },
      }),
      Error: obj({
        error: { const: true },
        code: str,
        message: str,
        details: { type: 'object' },
        timestamp: time,
      }),
      Node: obj(
        {
          node_id: str,
          host: nullable(str),
          status: nodeStatus,
          is_online: { ...bool, description: 'Heartbeat alive: status online or draining' },
          last_heartbeat: nullable(str),
          heartbeat_age_ms: nullable(num),
          portfolio_count: int,
          portfolio_ids: { type: 'array', items: str },
          capacity: nullable(int),
          queue_usage_max: nullable(num),
          events_per_second: nullable(num),
          uptime_seconds: nullable(num),
          cpu_percent: nullable(num),
          memory_rss_bytes: nullable(num),
          redis: { type: ['object', 'null'] },
          error: str,
        },
        [
          'node_id',
          'status',
          'is_online',
          'last_heartbeat',
          'heartbeat_age_ms',
          'portfolio_count',
          'capacity',
          'queue_usage_max',
          'uptime_seconds',
          'cpu_percent',
          'memory_rss_bytes',
          'redis',
        ],
      ),
      Portfolio: obj(
        {
          portfolio_id: str,
          name: nullable(str),
          symbols: { type: 'array', items: str },
          status: str,
          node_id: nullable(str),
          assignment: obj({
            status: { enum: ['assigned', 'orphaned', 'unplanned'] },
            node_id: nullable(str),
            reason: nullable(str),
          }),
          state: { type: ['object', 'null'] },
          error: str,
        },
        ['portfolio_id', 'status', 'node_id', 'assignment', 'state'],
      ),
      Accepted: obj({ request_id: str, status: { const: 'queued' }, result: str }),
    },
  },
  security: [{}, { apiKey: [] }, { bearer: [] }],
  paths: {
    '/api/health': {
      get: {
        summary: 'The process lives',
        security: [{}],
        responses: {
          '200': json(
            obj({ status: { const: 'ok' }, uptime_seconds: num, timestamp: time }),
            'Alive',
          ),
        },
      },
    },
    '/api/ready': {
      get: {
        summary: 'Redis reachable',
        security: [{}],
        responses: {
          '200': json(
            obj({
              status: { enum: ['ready', 'not_ready'] },
              components: obj({ redis: obj({ status: { enum: ['up', 'down'] } }) }),
              timestamp: time,
            }),
            'Ready',
          ),
          '503': json(
            obj({
              status: { enum: ['ready', 'not_ready'] },
              components: { type: 'object' },
              timestamp: time,
            }),
            'A component is down',
          ),
        },
      },
    },
    '/api/nodes': {
      get: {
        summary: 'Every node, with liveness by the heartbeat rule',
        parameters: [
          query('status', nodeStatus, 'Only nodes of this status'),
          query('online', { type: 'boolean' }, 'Only online (or offline) nodes'),
          ...paging,
        ],
        responses: {
          '200': json(
            obj({
              nodes: { type: 'array', items: ref('Node') },
              total_count: int,
              online_count: int,
              limit: int,
              offset: int,
              timestamp: time,
            }),
            'Nodes',
          ),
          ...errors,
        },
      },
    },
    '/api/nodes/{id}': {
      get: {
        summary: 'One node and its portfolios',
        parameters: [path('id')],
        responses: {
          '200': json(
            {
              allOf: [
                ref('Node'),
                obj({
                  portfolios: { type: 'array', items: obj({ portfolio_id: str, status: str }) },
                  timestamp: time,
                }),
              ],
            },
            'The node',
          ),
          '404': json(ref('Error'), 'Unknown node'),
          ...errors,
        },
      },
    },
    '/api/nodes/{id}/drain': {
      post: {
        summary: 'Ask the scheduler to drain a node',
        parameters: [path('id')],
        responses: { '202': json(ref('Accepted'), 'Queued'), ...errors },
      },
    },
    '/api/nodes/{id}/undrain': {
      post: {
        summary: 'Ask the scheduler to undrain a node',
        parameters: [path('id')],
        responses: { '202': json(ref('Accepted'), 'Queued'), ...errors },
      },
    },
    '/api/portfolios': {
      get: {
        summary: 'Every portfolio: state and place in the plan',
        parameters: [
          query('status', str, 'running, orphaned…'),
          query('node_id', str, 'Only this node'),
          ...paging,
        ],
        responses: {
          '200': json(
            obj({
              portfolios: { type: 'array', items: ref('Portfolio') },
              total_count: int,
              timestamp: time,
            }),
            'Portfolios',
          ),
          ...errors,
        },
      },
      post: {
        summary: 'Ask the scheduler to add a portfolio to the catalog',
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: obj({
                portfolio_id: str,
                symbols: { type: 'array', items: str },
                strategy: { type: 'object' },
                starting_cash: num,
              }),
            },
          },
        },
        responses: {
          '202': json(ref('Accepted'), 'Queued'),
          '413': json(ref('Error'), 'Body too large'),
          ...errors,
        },
      },
    },
    '/api/portfolios/{id}': {
      get: {
        summary: 'One portfolio',
        parameters: [path('id')],
        responses: {
          '200': json(ref('Portfolio'), 'The portfolio'),
          '404': json(ref('Error'), 'Unknown portfolio'),
          ...errors,
        },
      },
      delete: {
        summary: 'Ask the scheduler to remove a portfolio from the catalog',
        parameters: [path('id')],
        responses: { '202': json(ref('Accepted'), 'Queued'), ...errors },
      },
    },
    '/api/metrics': {
      get: {
        summary: 'Node, portfolio and fleet metrics',
        parameters: [
          query('component', str, 'execution_node_<id>, portfolio_<id>, fleet'),
          query('metric_name', str, 'e.g. portfolio.queue_size'),
        ],
        responses: {
          '200': json(
            obj({
              metrics: {
                type: 'array',
                items: obj({ component: str, metric_name: str, value: num, timestamp: time }),
              },
              total_count: int,
            }),
            'Metrics',
          ),
          ...errors,
        },
      },
    },
    '/api/schedule/plan': {
      get: {
        summary: 'The scheduler plan',
        responses: {
          '200': json(
            obj({
              plans: {
                type: 'array',
                items: obj({
                  node_id: str,
                  portfolio_ids: { type: 'array', items: str },
                  portfolio_count: int,
                }),
              },
              total_nodes: int,
              total_portfolios: int,
              orphaned: { type: 'array' },
              version: nullable(int),
              leader: nullable(str),
              timestamp: time,
            }),
            'The plan',
          ),
          ...errors,
        },
      },
    },
    '/api/schedule/migrate': {
      post: {
        summary: 'Ask the scheduler to move a portfolio to a node',
        requestBody: {
          required: true,
          content: { 'application/json': { schema: obj({ portfolio_id: str, target_node: str }) } },
        },
        responses: { '202': json(ref('Accepted'), 'Queued'), ...errors },
      },
    },
    '/api/control/{id}': {
      get: {
        summary: 'The outcome of a control request',
        parameters: [path('id')],
        responses: {
          '200': json(
            obj({
              request_id: str,
              status: { enum: ['accepted', 'refused'] },
              reason: nullable(str),
              plan_version: nullable(int),
              processed_at: time,
            }),
            'Answered',
          ),
          '202': json(obj({ request_id: str, status: { const: 'pending' } }), 'Still queued'),
          '404': json(ref('Error'), 'Unknown request'),
          ...errors,
        },
      },
    },
    '/api/notifications': {
      get: {
        summary: 'Notification history, newest first',
        parameters: [
          query('level', { enum: ['info', 'warning', 'error', 'critical'] }, 'Level'),
          query('kind', str, 'Kind'),
          query('limit', { type: 'integer', minimum: 1, maximum: 1000 }, 'At most'),
        ],
        responses: {
          '200': json(
            obj({
              notifications: { type: 'array', items: { type: 'object' } },
              total_count: int,
              timestamp: time,
            }),
            'Notifications',
          ),
          ...errors,
        },
      },
    },
    '/api/overview': {
      get: {
        summary: "The operations page's data: fleet summary, nodes, portfolios, notifications",
        responses: {
          '200': json(ref('Overview'), 'The fleet as read now'),
          ...errors,
        },
      },
    },
    '/api/overview/stream': {
      get: {
        summary:
          'Server-sent events, one `overview` per update (GATEWAY_OVERVIEW_INTERVAL_MS); while Redis cannot be read each says so (`redis.status` down) and carries the last data with `stale` true',
        responses: {
          '200': {
            description: 'An event stream whose `data` are Overview objects',
            content: { 'text/event-stream': { schema: str } },
          },
          '401': errors['401'],
          '429': errors['429'],
        },
      },
    },
    '/metrics': {
      get: {
        summary: 'Fleet metrics, Prometheus text format',
        responses: {
          '200': { description: 'Prometheus text', content: { 'text/plain': { schema: str } } },
          ...errors,
        },
      },
    },
  },
} as const;
