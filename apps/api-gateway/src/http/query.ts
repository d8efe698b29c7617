import { z } from 'zod';
import { AppError } from './errors.ts';

/** Where a request's input comes from, as its 400 says it. */
export type InputPlace = 'query' | 'path' | 'body';

const WHAT: Record<InputPlace, string> = {
  query: 'query parameter',
  path: 'path parameter',
  body: 'body field',
};

/**
 * Parses one part of a request with a zod schema; the first bad field is a 400
 * `INVALID_PARAMETER` naming it in the message and in `details.parameter` (a nested body field as
 * `strategy.name`; a body that is not an object at all as `body`).
 */
export function parseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
  place: InputPlace,
): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue?.path.map(String).join('.') ?? '';
  const parameter = path === '' ? place : path;
  const message = issue?.message ?? 'invalid';
  throw new AppError(
    'INVALID_PARAMETER',
    path === '' ? `Invalid ${place}: ${message}` : `Invalid ${WHAT[place]} ${path}: ${message}`,
    { parameter },
  );
}

/** `true`/`false` (also 1/0). */
export const booleanParam = z
  .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1');

/** A whole number in [min, max]; described as an integer (a query string carries it as text). */
export function intParam(min: number, max: number, description?: string) {
  return z
    .string()
    .regex(/^\d+$/, { error: `must be a whole number from ${min} to ${max}` })
    .transform(Number)
    .refine((n) => n >= min && n <= max, { error: `must be a whole number from ${min} to ${max}` })
    .meta({
      type: 'integer',
      minimum: min,
      maximum: max,
      ...(description === undefined ? {} : { description }),
    });
}
