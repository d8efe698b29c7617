import { z } from 'zod';
import { AppError } from './errors.ts';

/** Parses a request's query with a zod schema; the first bad parameter is a 400 naming it. */
export function parseQuery<S extends z.ZodType>(schema: S, query: unknown): z.output<S> {
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const parameter = issue?.path.map(String).join('.') ?? '(query)';
  throw new AppError(
    'INVALID_PARAMETER',
    `Invalid query parameter ${parameter}: ${issue?.message ?? 'invalid'}`,
    {
      parameter,
    },
  );
}

/** `true`/`false` (also 1/0). */
export const booleanParam = z
  .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1');

/** A whole number in [min, max]. */
export function intParam(min: number, max: number) {
  return z
    .string()
    .regex(/^\d+$/, { error: `must be a whole number from ${min} to ${max}` })
    .transform(Number)
    .refine((n) => n >= min && n <= max, { error: `must be a whole number from ${min} to ${max}` });
}
