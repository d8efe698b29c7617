import winston from 'winston';
import type Transport from 'winston-transport';
import { z } from 'zod';
import { envEnum, parseEnv, type ConfigResult, type Env } from './env.ts';

/** The logger every component receives; take a child with `{ component }`. */
export type Logger = winston.Logger;

/** Log levels in use, most severe first: a human must act, degraded, lifecycle, per-tick detail. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `json` for containers and machines, `pretty` for a terminal, `auto` picks by TTY. */
export type LogFormat = 'json' | 'pretty' | 'auto';

export interface LoggingConfig {
  /** `LOG_LEVEL`, default `info`. */
  level: LogLevel;
  /** `LOG_FORMAT`, default `auto` (pretty on a TTY, JSON otherwise). */
  format: LogFormat;
}

const loggingEnvSchema = z
  .object({
    LOG_LEVEL: envEnum(LOG_LEVELS, 'info'),
    LOG_FORMAT: envEnum(['json', 'pretty', 'auto'] as const, 'auto'),
  })
  .transform((env): LoggingConfig => ({ level: env.LOG_LEVEL, format: env.LOG_FORMAT }));

/** Reads `LOG_LEVEL` and `LOG_FORMAT`. Pure. */
export function loadLoggingConfig(env: Env): ConfigResult<LoggingConfig> {
  return parseEnv(loggingEnvSchema, env);
}

export interface LoggerOptions {
  /** Tag on every line: which app wrote it. */
  app: string;
  /** Tag on every line: which node (or instance) of the app. */
  nodeId?: string;
  /** Default `info`. */
  level?: LogLevel;
  /** Default `auto`. */
  format?: LogFormat;
  /** Where lines go; default one console transport writing to stdout. */
  transports?: Transport[];
}

/** Turns an `err` field holding an Error into plain data (name, message, code, stack). */
const serializeErrors = winston.format((info) => {
  const err: unknown = info['err'];
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    info['err'] = {
      name: err.name,
      message: err.message,
      ...(code === undefined ? {} : { code }),
      stack: err.stack,
    };
  }
  return info;
});

const RESERVED = new Set(['level', 'message', 'timestamp', 'app', 'nodeId', 'component']);

/** `12:00:01.123 info  [scheduler node-1 tick] Tick done durationMs=12` */
const prettyLine = winston.format.printf((info) => {
  const tags = [info['app'], info['nodeId'], info['component']].filter(
    (t): t is string => typeof t === 'string' && t !== '',
  );
  const fields = Object.entries(info)
    .filter(([key]) => !RESERVED.has(key) && typeof key === 'string')
    .map(([key, value]) => {
      if (key === 'err' && value !== null && typeof value === 'object') {
        const e = value as { message?: unknown; code?: unknown };
        const code =
          typeof e.code === 'string' || typeof e.code === 'number' ? ` code=${e.code}` : '';
        return `err="${typeof e.message === 'string' ? e.message : ''}"${code}`;
      }
      return `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`;
    });
  const time = typeof info['timestamp'] === 'string' ? info['timestamp'].slice(11, 23) : '';
  const message = typeof info.message === 'string' ? info.message : JSON.stringify(info.message);
  return `${time} ${info.level.padEnd(5)} [${tags.join(' ')}] ${message}${fields.length > 0 ? ' ' + fields.join(' ') : ''}`;
});

/** Creates the one root logger of a process, every line tagged with app and node id. */
export function createLogger(options: LoggerOptions): Logger {
  const format = options.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY);
  return winston.createLogger({
    level: options.level ?? 'info',
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    defaultMeta: {
      app: options.app,
      ...(options.nodeId === undefined ? {} : { nodeId: options.nodeId }),
    },
    format: winston.format.combine(
      winston.format.timestamp(),
      serializeErrors(),
      pretty ? prettyLine : winston.format.json(),
    ),
    // winston types its Console transport as an interface over TransportStream, not a subclass;
    // the object is a real TransportStream at run time.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
    transports: options.transports ?? [new winston.transports.Console()],
  });
}
