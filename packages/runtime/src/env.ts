import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** One problem found in the environment: the variable it concerns and what is wrong with it. */
export interface ConfigIssue {
  variable: string;
  message: string;
}

/** The result of parsing an environment: the config, or every problem found (never only the first). */
export type ConfigResult<T> = { ok: true; value: T } | { ok: false; issues: ConfigIssue[] };

/** Thrown by `unwrapConfig` when the environment is invalid; carries every issue. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(formatConfigIssues(issues));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** A process environment: variable name to raw string value. */
export type Env = Record<string, string | undefined>;

/** Exit code of a process that refused to start because of its configuration. */
export const CONFIG_EXIT_CODE = 2;

/**
 * Parses `env` with a zod object schema whose keys are variable names, so every issue names the
 * variable it concerns. Pure: reads nothing but `env`.
 */
export function parseEnv<S extends z.ZodType>(schema: S, env: Env): ConfigResult<z.output<S>> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return { ok: true, value: parsed.data };
  return {
    ok: false,
    issues: parsed.error.issues.map((issue) => ({
      variable: issue.path.length > 0 ? issue.path.map(String).join('.') : '(environment)',
      message: issue.message,
    })),
  };
}

/** Formats issues one per line: `REDIS_PORT: must be an integer, got "abc"`. */
export function formatConfigIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((issue) => `${issue.variable}: ${issue.message}`).join('\n');
}

/** Returns the config value or throws a `ConfigError` naming every bad variable. */
export function unwrapConfig<T>(result: ConfigResult<T>): T {
  if (!result.ok) throw new ConfigError(result.issues);
  return result.value;
}

/** Merges several results, keeping every issue of every part. */
export function combineConfig<T extends Record<string, unknown>>(parts: {
  [K in keyof T]: ConfigResult<T[K]>;
}): ConfigResult<T> {
  const issues: ConfigIssue[] = [];
  const value: Partial<T> = {};
  for (const key of Object.keys(parts) as (keyof T)[]) {
    const part = parts[key];
    if (part.ok) value[key] = part.value;
    else issues.push(...part.issues);
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: value as T };
}

const optionalRaw = z
  .string()
  .optional()
  .transform((raw) => {
    const trimmed = raw?.trim();
    return trimmed === undefined || trimmed === '' ? undefined : trimmed;
  });

interface IntOptions {
  /** Used when the variable is unset or empty. */
  default: number;
  min?: number;
  max?: number;
}

/** An integer variable with bounds; an unset or empty variable takes the default. */
export function envInt(options: IntOptions) {
  return optionalRaw.transform((raw, ctx) => {
    if (raw === undefined) return options.default;
    if (!/^-?\d+$/.test(raw)) {
      ctx.addIssue({ code: 'custom', message: `must be an integer, got "${raw}"` });
      return z.NEVER;
    }
    const value = Number(raw);
    if (options.min !== undefined && value < options.min) {
      ctx.addIssue({ code: 'custom', message: `must be at least ${options.min}, got ${value}` });
      return z.NEVER;
    }
    if (options.max !== undefined && value > options.max) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${options.max}, got ${value}` });
      return z.NEVER;
    }
    return value;
  });
}

/** A duration in milliseconds: a non-negative integer (or at least `min`). */
export function envDurationMs(defaultMs: number, min = 0) {
  return envInt({ default: defaultMs, min });
}

/** A boolean variable: exactly true/1 or false/0 (case-insensitive); unset takes the default. */
export function envBool(defaultValue: boolean) {
  return optionalRaw.transform((raw, ctx) => {
    if (raw === undefined) return defaultValue;
    const lower = raw.toLowerCase();
    if (lower === 'true' || lower === '1') return true;
    if (lower === 'false' || lower === '0') return false;
    ctx.addIssue({ code: 'custom', message: `must be one of true, 1, false, 0, got "${raw}"` });
    return z.NEVER;
  });
}

/** One of a fixed set of words (case-insensitive); unset takes the default. */
export function envEnum<const V extends string>(values: readonly V[], defaultValue: V) {
  return optionalRaw.transform((raw, ctx): V => {
    if (raw === undefined) return defaultValue;
    const match = values.find((v) => v === raw.toLowerCase());
    if (match === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `must be one of ${values.join(', ')}, got "${raw}"`,
      });
      return z.NEVER;
    }
    return match;
  });
}

/** An optional free-form string; unset or empty becomes `undefined`. */
export function envString() {
  return optionalRaw;
}

/** Names that mark a config field as secret for `redactSecrets`. */
const SECRET_FIELD = /pass(word)?|secret|token|api_?key|url/i;

/**
 * Returns a copy of `value` fit for logging: fields whose name looks secret (passwords, tokens,
 * URLs that may carry credentials) are replaced by `"[redacted]"` when set.
 */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    if (SECRET_FIELD.test(key) && field !== undefined && field !== null && field !== '') {
      out[key] = '[redacted]';
    } else {
      out[key] = redactSecrets(field);
    }
  }
  return out;
}

/**
 * A secret kept in a file (a Docker secret: `*_PASSWORD_FILE`): its one line, without the trailing
 * newline; or what is wrong, in words fit for a config error (the content is never shown).
 */
export function readSecretFile(file: string): { value: string } | { problem: string } {
  let content: string;
  try {
    content = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    return { problem: `cannot read ${file} (${code}): name a readable file holding the password` };
  }
  const value = content.replace(/\r?\n$/, '');
  if (value === '' || /[\r\n]/.test(value)) {
    return { problem: `${file} must hold the password on one line` };
  }
  return { value };
}
