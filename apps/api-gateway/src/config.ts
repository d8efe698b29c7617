import { z } from 'zod';
import {
  combineConfig,
  envInt,
  envString,
  loadLoggingConfig,
  parseEnv,
  type ConfigResult,
  type Env,
  type LoggingConfig,
} from '@ginkgo-live/runtime';
import { loadRedisConfig, type RedisConfig } from '@ginkgo-live/redis-client';

export interface GatewayConfig {
  /** `GATEWAY_PORT`, default 8000 (0 picks a free port, logged). */
  port: number;
  /** `GATEWAY_HOST`, default 0.0.0.0. */
  host: string;
  redis: RedisConfig;
  logging: LoggingConfig;
}

const schema = z.object({
  GATEWAY_PORT: envInt({ default: 8_000, min: 0, max: 65_535 }),
  GATEWAY_HOST: envString(),
});

/** Reads the gateway's configuration. Pure. */
export function loadConfig(env: Env): ConfigResult<GatewayConfig> {
  const parts = combineConfig({
    gateway: parseEnv(schema, env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
  });
  if (!parts.ok) return parts;
  const { gateway, redis, logging } = parts.value;
  return {
    ok: true,
    value: { port: gateway.GATEWAY_PORT, host: gateway.GATEWAY_HOST ?? '0.0.0.0', redis, logging },
  };
}
