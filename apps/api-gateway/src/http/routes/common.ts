import { z } from 'zod';
import { ID_PATTERN } from '@ginkgo-live/state-keys';
import type { Access } from '../access.ts';
import type { ResponseDoc } from '../api-router.ts';
import type { ControlQueue } from '../../control-queue.ts';
import type { FleetReader } from '../../fleet-reader.ts';

/**
 * Schemas several routers share. Those registered with an `id` (`.register(components, {id})`)
 * are named components of the OpenAPI description (`#/components/schemas/<id>`); the rest is
 * inlined where used. It is zod's global registry, the one `.meta()` writes to, so that the
 * descriptions and the integer form of query parameters given with `.meta()` are in the document.
 */
export const components = z.globalRegistry;

export const time = z.iso.datetime({ offset: true });

/** A node or portfolio id as the state keys take it (the gateway's ids are the fleet's). */
export const fleetId = z
  .string()
  .regex(ID_PATTERN, { error: 'must be 1-64 characters of [A-Za-z0-9_.-]' });

/** `/…/:id` of a node or a portfolio. */
export const idParams = z.object({ id: fleetId });

export const ErrorSchema = z
  .object({
    error: z.literal(true),
    code: z.string(),
    message: z.string(),
    details: z.record(z.string(), z.unknown()),
    timestamp: time,
  })
  .register(components, { id: 'Error' });

export const errorResponse = (description: string): ResponseDoc => ({
  description,
  schema: ErrorSchema,
});

/** Every route that reads or writes Redis may answer this. */
export const REDIS_DOWN = errorResponse('Redis unavailable');

/** What a resource's routes read and where they queue control requests. */
export interface ResourceDeps {
  access: Access;
  reader: FleetReader;
  control: ControlQueue;
}
