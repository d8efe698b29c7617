import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import {
  combineConfig,
  envBool,
  envDurationMs,
  envEnum,
  envInt,
  envString,
  loadLoggingConfig,
  parseEnv,
  type ConfigIssue,
  type ConfigResult,
  type Env,
  type LoggingConfig,
} from '@ginkgo-live/runtime';
import { loadRedisConfig, type RedisConfig } from '@ginkgo-live/redis-client';
import { loadNotificationConfig, type NotificationConfig } from '@ginkgo-live/notification-adapter';
import { SCOPES, type Scope } from './http/scopes.ts';

/** One API key: who holds it (its name: audit actor, `requested_by`), what it may do, its secret. */
export interface ApiKey {
  name: string;
  scope: Scope;
  /** Never logged, never answered. */
  secret: string;
}

/** express's `trust proxy`: off, a hop count, or the proxies' addresses / subnets. */
export type TrustProxy = false | number | string[];

export interface SecurityConfig {
  /** `GATEWAY_API_KEYS` (`name:scope:secret,…`) and `GATEWAY_API_KEYS_FILE` (one a line). */
  apiKeys: ApiKey[];
  /** `GATEWAY_PUBLIC_READS`: with keys configured, let reads through without one (default false). */
  publicReads: boolean;
  /** `GATEWAY_CORS_ORIGINS`: origins allowed to call from a browser (default none). */
  corsOrigins: string[];
  /** `GATEWAY_RATE_LIMIT_PER_MINUTE`: weight a key may spend per minute (after authentication), default 300. */
  rateLimitPerMinute: number;
  // The settings below have defaults here so that a test's config may leave them out.
  /** `GATEWAY_AUTH=off`: serve without keys on a non-loopback host (default `on`). */
  auth?: 'on' | 'off';
  /**
   * `GATEWAY_ALLOWED_HOSTS`: host names (any port) the `Host` header may carry; others are refused
   * (DNS rebinding). Default localhost, 127.0.0.1, ::1 and the bound host.
   */
  allowedHosts?: string[];
  /** `GATEWAY_TRUST_PROXY`, default off: which hops' `X-Forwarded-For` names the client. */
  trustProxy?: TrustProxy;
  /** `GATEWAY_ADDRESS_RATE_LIMIT_PER_MINUTE`: weight a client address may spend per minute (before authentication), default 600. */
  addressRateLimitPerMinute?: number;
  /** `GATEWAY_SSE_MAX_PER_CLIENT`: open event streams per client address, default 8. */
  sseMaxPerClient?: number;
  /** `GATEWAY_SSE_MAX_PER_KEY`: open event streams per key name (not `anonymous`), default 8. */
  sseMaxPerKey?: number;
  /** `GATEWAY_SSE_MAX_TOTAL`: open event streams in all, default 100. */
  sseMaxTotal?: number;
}

export const SECURITY_DEFAULTS = {
  auth: 'on',
  allowedHosts: ['localhost', '127.0.0.1', '::1'],
  trustProxy: false,
  addressRateLimitPerMinute: 600,
  sseMaxPerClient: 8,
  sseMaxPerKey: 8,
  sseMaxTotal: 100,
} as const satisfies Partial<SecurityConfig>;

export interface GatewayConfig {
  /** `GATEWAY_PORT`, default 8000 (0 picks a free port, logged). */
  port: number;
  /** `GATEWAY_HOST`, default 127.0.0.1 (this machine only). */
  host: string;
  /** `GATEWAY_OVERVIEW_INTERVAL_MS`, default 1000: how often the operations page is updated. */
  overviewIntervalMs: number;
  /**
   * `GATEWAY_LEADER_MISSING_AFTER_MS`, default 30000: no scheduler has held the leader lock this
   * long (every scheduler dead or frozen) → `scheduler_leader_missing`, raised by the gateway.
   * Above the lock's TTL, so a normal failover between schedulers is no alarm.
   */
  leaderMissingAfterMs: number;
  security: Required<SecurityConfig>;
  redis: RedisConfig;
  logging: LoggingConfig;
  /** `NOTIFY_*`: the gateway raises and resolves `scheduler_leader_missing`. */
  notify: NotificationConfig;
}

const list = (raw: string | undefined): string[] =>
  (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

const KEY_FORMAT = `name:scope:secret (scope one of ${SCOPES.join(', ')}; e.g. grafana:read:<secret of 16+ characters>)`;
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** True for a host that only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * Parses `name:scope:secret` entries. An entry's text is never put in a message (a bare key of
 * the old format is a secret); entries are named by their position and, once parsed, their name.
 */
export function parseApiKeys(
  entries: { where: string; text: string }[],
  variable: string,
): { keys: ApiKey[]; issues: ConfigIssue[] } {
  const keys: ApiKey[] = [];
  const issues: ConfigIssue[] = [];
  for (const { where, text } of entries) {
    const first = text.indexOf(':');
    const second = first < 0 ? -1 : text.indexOf(':', first + 1);
    if (second < 0) {
      issues.push({
        variable,
        message: `${where} is not ${KEY_FORMAT}; keys are named and scoped now (value not shown: it may be a secret)`,
      });
      continue;
    }
    const name = text.slice(0, first);
    const scope = text.slice(first + 1, second);
    const secret = text.slice(second + 1);
    if (!NAME.test(name)) {
      issues.push({
        variable,
        message: `${where}: the name must be 1 to 64 of A-Z a-z 0-9 _ . - (format ${KEY_FORMAT})`,
      });
    } else if (!(SCOPES as readonly string[]).includes(scope)) {
      issues.push({
        variable,
        message: `${where} (${name}): scope must be one of ${SCOPES.join(', ')}`,
      });
    } else if (secret.length < 16) {
      issues.push({
        variable,
        message: `${where} (${name}): the secret must be at least 16 characters (value not shown)`,
      });
    } else if (keys.some((k) => k.name === name)) {
      issues.push({ variable, message: `${where}: the name ${name} is used by another key` });
    } else {
      keys.push({ name, scope: scope as Scope, secret });
    }
  }
  return { keys, issues };
}

/** `GATEWAY_API_KEYS_FILE`: one `name:scope:secret` a line; blank lines and `#` comments skipped. */
function keysFileEntries(
  file: string,
  readFile: (path: string) => string,
): { entries: { where: string; text: string }[] } | { issue: ConfigIssue } {
  let text: string;
  try {
    text = readFile(file);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return {
      issue: {
        variable: 'GATEWAY_API_KEYS_FILE',
        message: `cannot read ${file} (${typeof code === 'string' ? code : 'unreadable'})`,
      },
    };
  }
  const entries = text
    .split(/\r?\n/)
    .map((line, i) => ({ where: `line ${i + 1}`, text: line.trim() }))
    .filter((e) => e.text !== '' && !e.text.startsWith('#'));
  return { entries };
}

const ORIGIN = /^https?:\/\/[^/\s]+$/;
const TRUST_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** `GATEWAY_TRUST_PROXY`: off, a hop count, or addresses/subnets (`true` would let any client pick its address). */
const trustProxy = envString().transform((raw, ctx): TrustProxy => {
  if (raw === undefined || /^(off|false|0)$/i.test(raw)) return false;
  if (/^\d+$/.test(raw)) return Number(raw);
  const parts = list(raw);
  const bad = parts.filter((p) => {
    const [address, bits, extra] = p.split('/');
    if (extra !== undefined || address === undefined) return true;
    if (TRUST_NAMES.has(p)) return false;
    const family = isIP(address);
    if (family === 0) return true;
    if (bits === undefined) return false;
    const n = Number(bits);
    return !/^\d+$/.test(bits) || n > (family === 4 ? 32 : 128);
  });
  if (bad.length > 0 || parts.length === 0) {
    ctx.addIssue({
      code: 'custom',
      message: `must be off, a hop count (1: one reverse proxy in front), or the proxies' addresses/subnets (10.0.0.1, 10.0.0.0/8, loopback); not understood: ${bad.join(', ') || raw}`,
    });
    return z.NEVER;
  }
  return parts;
});

const schema = z.object({
  GATEWAY_PORT: envInt({ default: 8_000, min: 0, max: 65_535 }),
  GATEWAY_HOST: envString(),
  GATEWAY_API_KEYS: envString(),
  GATEWAY_API_KEYS_FILE: envString(),
  GATEWAY_AUTH: envEnum(['on', 'off'], 'on'),
  GATEWAY_PUBLIC_READS: envBool(false),
  GATEWAY_CORS_ORIGINS: envString().refine((v) => list(v).every((o) => ORIGIN.test(o)), {
    error: 'must be comma-separated origins like https://ops.example.com',
  }),
  GATEWAY_ALLOWED_HOSTS: envString().refine(
    (v) => list(v).every((h) => /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)$/.test(h)),
    { error: 'must be comma-separated host names without port, like ops.example.com,10.0.0.5' },
  ),
  GATEWAY_TRUST_PROXY: trustProxy,
  GATEWAY_RATE_LIMIT_PER_MINUTE: envInt({ default: 300, min: 1, max: 1_000_000 }),
  GATEWAY_ADDRESS_RATE_LIMIT_PER_MINUTE: envInt({
    default: SECURITY_DEFAULTS.addressRateLimitPerMinute,
    min: 1,
    max: 1_000_000,
  }),
  GATEWAY_SSE_MAX_PER_CLIENT: envInt({
    default: SECURITY_DEFAULTS.sseMaxPerClient,
    min: 1,
    max: 10_000,
  }),
  GATEWAY_SSE_MAX_PER_KEY: envInt({
    default: SECURITY_DEFAULTS.sseMaxPerKey,
    min: 1,
    max: 10_000,
  }),
  GATEWAY_SSE_MAX_TOTAL: envInt({ default: SECURITY_DEFAULTS.sseMaxTotal, min: 1, max: 100_000 }),
  GATEWAY_OVERVIEW_INTERVAL_MS: envDurationMs(1_000, 200),
  GATEWAY_LEADER_MISSING_AFTER_MS: envDurationMs(30_000, 500),
});

const hostName = (h: string): string => h.toLowerCase().replace(/^\[|\]$/g, '');

/**
 * Reads the gateway's configuration: the environment, and the keys file it names (`readFile`,
 * for tests). Refuses a non-loopback host without keys unless `GATEWAY_AUTH=off` says so.
 */
export function loadConfig(
  env: Env,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): ConfigResult<GatewayConfig> {
  const parts = combineConfig({
    gateway: parseEnv(schema, env),
    redis: loadRedisConfig(env),
    logging: loadLoggingConfig(env),
    notify: loadNotificationConfig(env),
  });
  if (!parts.ok) return parts;
  const { gateway, redis, logging, notify } = parts.value;

  const issues: ConfigIssue[] = [];
  const fromEnv = parseApiKeys(
    list(gateway.GATEWAY_API_KEYS).map((text, i) => ({ where: `entry ${i + 1}`, text })),
    'GATEWAY_API_KEYS',
  );
  issues.push(...fromEnv.issues);
  const apiKeys = [...fromEnv.keys];
  if (gateway.GATEWAY_API_KEYS_FILE !== undefined) {
    const read = keysFileEntries(gateway.GATEWAY_API_KEYS_FILE, readFile);
    if ('issue' in read) issues.push(read.issue);
    else {
      const fromFile = parseApiKeys(read.entries, 'GATEWAY_API_KEYS_FILE');
      issues.push(...fromFile.issues);
      for (const key of fromFile.keys) {
        if (apiKeys.some((k) => k.name === key.name))
          issues.push({
            variable: 'GATEWAY_API_KEYS_FILE',
            message: `the name ${key.name} is also in GATEWAY_API_KEYS`,
          });
        else apiKeys.push(key);
      }
    }
  }

  // Two keys with one secret: the last would win, with its scope and its name in the audit trail.
  apiKeys.forEach((key, i) => {
    const twin = apiKeys.slice(0, i).find((k) => k.secret === key.secret);
    if (twin !== undefined)
      issues.push({
        variable: i < fromEnv.keys.length ? 'GATEWAY_API_KEYS' : 'GATEWAY_API_KEYS_FILE',
        message: `the keys ${twin.name} and ${key.name} have the same secret (value not shown); give each its own`,
      });
  });

  const host = gateway.GATEWAY_HOST ?? '127.0.0.1';
  const auth = gateway.GATEWAY_AUTH;
  if (auth === 'off' && apiKeys.length > 0)
    issues.push({
      variable: 'GATEWAY_AUTH',
      message: 'is off but API keys are set; unset one of GATEWAY_AUTH and GATEWAY_API_KEYS(_FILE)',
    });
  // Only when the keys themselves are fine: a bad key is reported as such, not as "no keys".
  if (issues.length === 0 && apiKeys.length === 0 && auth === 'on' && !isLoopbackHost(host))
    issues.push({
      variable: 'GATEWAY_HOST',
      message: `${host} is reachable from other machines and no API keys are set; set GATEWAY_API_KEYS (or GATEWAY_API_KEYS_FILE), or GATEWAY_AUTH=off to serve anyone who reaches it`,
    });
  if (issues.length > 0) return { ok: false, issues };

  const bound = hostName(host);
  const allowedHosts =
    gateway.GATEWAY_ALLOWED_HOSTS === undefined
      ? [
          ...new Set([
            ...SECURITY_DEFAULTS.allowedHosts,
            ...(bound === '0.0.0.0' || bound === '::' ? [] : [bound]),
          ]),
        ]
      : list(gateway.GATEWAY_ALLOWED_HOSTS).map(hostName);
  return {
    ok: true,
    value: {
      port: gateway.GATEWAY_PORT,
      host,
      overviewIntervalMs: gateway.GATEWAY_OVERVIEW_INTERVAL_MS,
      leaderMissingAfterMs: gateway.GATEWAY_LEADER_MISSING_AFTER_MS,
      security: {
        apiKeys,
        auth,
        publicReads: gateway.GATEWAY_PUBLIC_READS,
        corsOrigins: list(gateway.GATEWAY_CORS_ORIGINS),
        allowedHosts,
        trustProxy: gateway.GATEWAY_TRUST_PROXY,
        rateLimitPerMinute: gateway.GATEWAY_RATE_LIMIT_PER_MINUTE,
        addressRateLimitPerMinute: gateway.GATEWAY_ADDRESS_RATE_LIMIT_PER_MINUTE,
        sseMaxPerClient: gateway.GATEWAY_SSE_MAX_PER_CLIENT,
        sseMaxPerKey: gateway.GATEWAY_SSE_MAX_PER_KEY,
        sseMaxTotal: gateway.GATEWAY_SSE_MAX_TOTAL,
      },
      redis,
      logging,
      notify,
    },
  };
}

/** The start log's view of the keys: names by scope, never a secret. */
export function describeKeys(security: SecurityConfig): Record<string, string[]> | string {
  if (security.apiKeys.length === 0)
    return security.auth === 'off' ? 'none (GATEWAY_AUTH=off)' : 'none (this machine only)';
  const byScope: Record<string, string[]> = {};
  for (const scope of SCOPES) {
    const names = security.apiKeys.filter((k) => k.scope === scope).map((k) => k.name);
    if (names.length > 0) byScope[scope] = names;
  }
  return byScope;
}
