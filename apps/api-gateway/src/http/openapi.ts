import { z } from 'zod';
import type { ServedOperation } from './api-router.ts';
import { ErrorSchema } from './routes/common.ts';

type JsonSchema = Record<string, unknown>;

/** The API's description as served at `/api/openapi.json`. */
export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  components: { securitySchemes: JsonSchema; schemas: Record<string, JsonSchema> };
  security: Record<string, string[]>[];
  paths: Record<string, Record<string, JsonSchema>>;
}

/** `/api/nodes/:id` → `/api/nodes/{id}`. */
export const openApiPath = (expressPath: string): string =>
  expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/**
 * The OpenAPI 3.1 description of the operations the routers serve, made from their zod schemas
 * (`z.toJSONSchema`, JSON Schema 2020-12): what validates a request is what is described, and
 * each response schema is checked against real answers by `openapi.int.test.ts`. Schemas with an
 * `id` in zod's global registry (`routes/common.ts` `components`) become
 * `#/components/schemas/<id>`.
 */
export function buildOpenApi(operations: readonly ServedOperation[]): OpenApiDocument {
  const schemas: Record<string, JsonSchema> = {};
  const convert = (schema: z.ZodType, io: 'input' | 'output'): JsonSchema => {
    const json = z.toJSONSchema(schema, {
      target: 'draft-2020-12',
      io,
      unrepresentable: 'any',
      // A whole-number query parameter is text on the wire, described as the integer it means.
      override: ({ jsonSchema }) => {
        if (jsonSchema.type !== 'integer') return;
        delete jsonSchema.pattern;
        // zod's `.int()` bounds are JavaScript's safe integers: noise in every count.
        if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
        if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
      },
    }) as JsonSchema;
    const { $schema: _schema, $defs, ...rest } = json;
    const rewrite = (value: unknown): unknown =>
      JSON.parse(JSON.stringify(value).replaceAll('"#/$defs/', '"#/components/schemas/'));
    for (const [id, def] of Object.entries(($defs ?? {}) as Record<string, unknown>))
      schemas[id] = rewrite(def) as JsonSchema;
    return rewrite(rest) as JsonSchema;
  };
  const error = (description: string) => ({
    description,
    content: { 'application/json': { schema: convert(ErrorSchema, 'output') } },
  });

  const paths: OpenApiDocument['paths'] = {};
  for (const { method, path, operation: op } of operations) {
    const parameters: JsonSchema[] = [];
    for (const [place, schema] of [
      ['path', op.params],
      ['query', op.query],
    ] as const) {
      if (schema === undefined) continue;
      const json = convert(schema, 'input');
      const required = new Set((json['required'] as string[] | undefined) ?? []);
      for (const [name, property] of Object.entries(
        (json['properties'] ?? {}) as Record<string, JsonSchema>,
      )) {
        const { description, ...rest } = property;
        parameters.push({
          name,
          in: place,
          required: place === 'path' || required.has(name),
          schema: rest,
          ...(typeof description === 'string' ? { description } : {}),
        });
      }
    }
    const responses: Record<string, unknown> = {};
    for (const [status, doc] of Object.entries(op.responses)) {
      responses[status] =
        doc.schema === undefined
          ? { description: doc.description }
          : {
              description: doc.description,
              content: {
                [doc.contentType ?? 'application/json']: { schema: convert(doc.schema, 'output') },
              },
            };
    }
    const takesInput = op.params !== undefined || op.query !== undefined || op.body !== undefined;
    if (takesInput)
      responses['400'] ??= error('A bad parameter or body field, named in details.parameter');
    if (op.scope !== null) {
      responses['401'] ??= error('Missing or invalid API key');
      responses['403'] ??= error(`The key lacks the \`${op.scope}\` scope`);
      responses['429'] ??= error('Rate limited');
    }
    (paths[openApiPath(path)] ??= {})[method] = {
      summary: op.summary,
      ...(op.scope === null
        ? { security: [{}] }
        : { description: `Needs a key with the \`${op.scope}\` scope.`, 'x-scope': op.scope }),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(op.body === undefined
        ? {}
        : {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: convert(op.body, 'input') } },
            },
          }),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'ginkgo-live api-gateway',
      version: '0.1.0',
      description:
        'Monitoring and control of the live-trading fleet. Reads come from Redis; control requests are queued for the scheduler. Scopes: metrics (scrape /metrics), read, operate (drain, undrain, migrate), admin (catalog, audit); each includes the ones before it, except metrics.',
    },
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        bearer: { type: 'http', scheme: 'bearer' },
      },
      schemas,
    },
    security: [{}, { apiKey: [] }, { bearer: [] }],
    paths,
  };
}
