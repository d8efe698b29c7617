import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  combineConfig,
  envBool,
  envDurationMs,
  envEnum,
  envInt,
  envString,
  formatConfigIssues,
  parseEnv,
  redactSecrets,
  unwrapConfig,
} from './env.ts';

const schema = z.object({
  PORT: envInt({ default: 8000, min: 1, max: 65_535 }),
  TIMEOUT_MS: envDurationMs(2_000),
  VERBOSE: envBool(false),
  MODE: envEnum(['fast', 'safe'] as const, 'safe'),
  NAME: envString(),
});

describe('parseEnv', () => {
  it('takes defaults for unset and empty variables', () => {
    expect(parseEnv(schema, { PORT: '', VERBOSE: '  ' })).toEqual({
      ok: true,
      value: { PORT: 8000, TIMEOUT_MS: 2_000, VERBOSE: false, MODE: 'safe', NAME: undefined },
    });
  });

  it('parses given values', () => {
    const result = parseEnv(schema, {
      PORT: '9000',
      TIMEOUT_MS: '0',
      VERBOSE: 'TRUE',
      MODE: 'Fast',
      NAME: ' x ',
    });
    expect(result).toEqual({
      ok: true,
      value: { PORT: 9000, TIMEOUT_MS: 0, VERBOSE: true, MODE: 'fast', NAME: 'x' },
    });
  });

  it('reports every bad variable by name, not only the first', () => {
    const result = parseEnv(schema, {
      PORT: 'abc',
      TIMEOUT_MS: '-5',
      VERBOSE: 'yes',
      MODE: 'turbo',
    });
    expect(result).toEqual({
      ok: false,
      issues: [
        { variable: 'PORT', message: 'must be an integer, got "abc"' },
        { variable: 'TIMEOUT_MS', message: 'must be at least 0, got -5' },
        { variable: 'VERBOSE', message: 'must be one of true, 1, false, 0, got "yes"' },
        { variable: 'MODE', message: 'must be one of fast, safe, got "turbo"' },
      ],
    });
  });

  it('rejects numbers out of range and fractions', () => {
    expect(parseEnv(schema, { PORT: '70000' })).toMatchObject({
      ok: false,
      issues: [{ variable: 'PORT', message: 'must be at most 65535, got 70000' }],
    });
    expect(parseEnv(schema, { PORT: '80.5' })).toMatchObject({
      ok: false,
      issues: [{ variable: 'PORT' }],
    });
  });

  it('accepts 1 and 0 as booleans', () => {
    expect(parseEnv(schema, { VERBOSE: '1' })).toMatchObject({ value: { VERBOSE: true } });
    expect(parseEnv(schema, { VERBOSE: '0' })).toMatchObject({ value: { VERBOSE: false } });
  });
});

describe('unwrapConfig and combineConfig', () => {
  it('throws a ConfigError listing every issue', () => {
    const result = parseEnv(schema, { PORT: 'x', MODE: 'y' });
    expect(() => unwrapConfig(result)).toThrow(ConfigError);
    expect(() => unwrapConfig(result)).toThrow(
      /PORT: must be an integer[\s\S]*MODE: must be one of/,
    );
  });

  it('combines parts and keeps the issues of all of them', () => {
    const a = parseEnv(z.object({ A: envInt({ default: 1 }) }), { A: 'bad' });
    const b = parseEnv(z.object({ B: envBool(true) }), { B: 'bad' });
    const combined = combineConfig({ a, b });
    expect(combined.ok).toBe(false);
    if (!combined.ok) expect(combined.issues.map((i) => i.variable)).toEqual(['A', 'B']);
    const good = combineConfig({
      a: parseEnv(z.object({ A: envInt({ default: 1 }) }), {}),
      b: parseEnv(z.object({ B: envBool(true) }), {}),
    });
    expect(good).toEqual({ ok: true, value: { a: { A: 1 }, b: { B: true } } });
  });

  it('formats one issue per line', () => {
    expect(
      formatConfigIssues([
        { variable: 'A', message: 'bad' },
        { variable: 'B', message: 'worse' },
      ]),
    ).toBe('A: bad\nB: worse');
  });
});

describe('redactSecrets', () => {
  it('hides passwords, tokens and URLs, deep, and keeps the rest', () => {
    expect(
      redactSecrets({
        host: 'redis',
        password: 'hunter2',
        nested: { webhookUrl: 'https://hooks/x', apiKey: 'k', count: 3 },
        list: [{ token: 't' }],
        unsetPassword: undefined,
      }),
    ).toEqual({
      host: 'redis',
      password: '[redacted]',
      nested: { webhookUrl: '[redacted]', apiKey: '[redacted]', count: 3 },
      list: [{ token: '[redacted]' }],
      unsetPassword: undefined,
    });
  });
});
