import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { envInt, envString, parseEnv, type ConfigResult, type Env } from './env.ts';
import { listen } from './startup-error.ts';

/** Where an app serves `/metrics` and `/health`: the one definition of `METRICS_*`. */
export interface MetricsServerConfig {
  /** `METRICS_HOST`, default 127.0.0.1: per-portfolio cash and value are not for every network. */
  host: string;
  /** `METRICS_PORT`, the app's default (0 picks a free port). */
  port: number;
  /** `METRICS_TOKEN`: when set, `/metrics` wants `Authorization: Bearer <token>`. Never logged. */
  token: string | undefined;
  /**
   * `METRICS_ALLOWED_HOSTS`: host names (any port) the `Host` header may carry for `/metrics`
   * (DNS rebinding). Default localhost, 127.0.0.1, ::1 and `METRICS_HOST` unless it is 0.0.0.0 / ::.
   */
  allowedHosts: string[];
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];

const bare = (host: string): string => host.toLowerCase().replace(/^\[|\]$/g, '');

/** The host names a server bound to `host` answers to by default: loopback's, and `host` itself. */
export function defaultAllowedHosts(host: string): string[] {
  const bound = bare(host);
  return [
    ...new Set([...LOOPBACK_NAMES, ...(bound === '0.0.0.0' || bound === '::' ? [] : [bound])]),
  ];
}

/** The host name of a `Host` header, without its port (`[::1]:9464` → `::1`). */
function hostNameOf(header: string): string {
  const bracketed = /^\[([^\]]*)\]/.exec(header);
  return bare(bracketed?.[1] ?? header.split(':')[0] ?? '');
}

// An IPv6 address may come bare (`::1`, as compose and the default list write it): two colons or
// more tell it from a `host:port`, which is refused.
const HOST_LIST =
  /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+|[0-9a-fA-F.]*:[0-9a-fA-F.]*:[0-9a-fA-F:.]*)$/;

/** Reads `METRICS_HOST`, `METRICS_PORT` (default `defaultPort`), `METRICS_TOKEN` and `METRICS_ALLOWED_HOSTS`. Pure. */
export function loadMetricsServerConfig(
  env: Env,
  defaultPort: number,
): ConfigResult<MetricsServerConfig> {
  const schema = z.object({
    METRICS_PORT: envInt({ default: defaultPort, min: 0, max: 65_535 }),
    METRICS_HOST: envString(),
    METRICS_TOKEN: envString().refine((v) => v === undefined || v.length >= 16, {
      error: 'must be at least 16 characters (value not shown: it is a secret)',
    }),
    METRICS_ALLOWED_HOSTS: envString().refine(
      (v) => v === undefined || hostList(v).every((h) => HOST_LIST.test(h)),
      {
        error:
          'must be comma-separated host names without port, like execution-node,prometheus.internal',
      },
    ),
  });
  const parsed = parseEnv(schema, env);
  if (!parsed.ok) return parsed;
  const { METRICS_PORT, METRICS_HOST, METRICS_TOKEN, METRICS_ALLOWED_HOSTS } = parsed.value;
  const host = METRICS_HOST ?? '127.0.0.1';
  return {
    ok: true,
    value: {
      host,
      port: METRICS_PORT,
      token: METRICS_TOKEN,
      allowedHosts:
        METRICS_ALLOWED_HOSTS === undefined
          ? defaultAllowedHosts(host)
          : hostList(METRICS_ALLOWED_HOSTS).map(bare),
    },
  };
}

function hostList(raw: string): string[] {
  return raw
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  registry: Registry;
  /** When set, `/metrics` needs `Authorization: Bearer <token>` (compared in constant time). */
  token?: string | undefined;
  /** Host names `/metrics` answers to (see `MetricsServerConfig`); default `defaultAllowedHosts(host)`. */
  allowedHosts?: string[];
  /** The settings a port in use or a wrong host is reported under; default METRICS_PORT, METRICS_HOST. */
  portSetting?: string;
  hostSetting?: string;
  /** The body of `/health`, and whether it is healthy (200) or not (503). */
  health: () => { healthy: boolean; body: Record<string, unknown> };
  /** A server error after it listens (an accept failing): reported, never fatal. */
  onError: (err: Error) => void;
}

/**
 * A small HTTP server every worker app runs: `GET /metrics` (Prometheus text) and `GET /health`
 * (JSON). `/metrics` answers only to an allowed `Host` (403 otherwise): a page whose name was
 * made to point at this machine (DNS rebinding) would read every portfolio's cash. With a token,
 * `/metrics` wants it. `/health` stays open (probes, which may use any address) but tells a caller
 * without the token, or with another Host, only whether the app is healthy.
 */
export class MetricsServer {
  private server: http.Server | undefined;
  private readonly tokenDigest: Buffer | undefined;
  private readonly allowedHosts: Set<string>;

  constructor(private readonly options: MetricsServerOptions) {
    this.tokenDigest = options.token === undefined ? undefined : digest(options.token);
    this.allowedHosts = new Set(
      (options.allowedHosts ?? defaultAllowedHosts(options.host)).map(bare),
    );
  }

  private hostAllowed(req: http.IncomingMessage): boolean {
    const host = req.headers.host;
    return host !== undefined && this.allowedHosts.has(hostNameOf(host));
  }

  private authorized(req: http.IncomingMessage): boolean {
    if (this.tokenDigest === undefined) return true;
    const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    return match?.[1] !== undefined && timingSafeEqual(digest(match[1]), this.tokenDigest);
  }

  /** Listens; resolves with the bound port, rejects with a `StartupError` naming the setting. */
  start(): Promise<number> {
    const server = http.createServer((req, res) => {
      void this.handle(req, res);
    });
    this.server = server;
    return listen(
      server,
      {
        port: this.options.port,
        host: this.options.host,
        portSetting: this.options.portSetting ?? 'METRICS_PORT',
        hostSetting: this.options.hostSetting ?? 'METRICS_HOST',
      },
      this.options.onError,
    );
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/metrics') {
      if (!this.hostAllowed(req)) {
        const host = req.headers.host === undefined ? '(none)' : hostNameOf(req.headers.host);
        res.writeHead(403, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            error: true,
            code: 'FORBIDDEN',
            message: `This server does not answer to Host ${host}; an operator adds it to METRICS_ALLOWED_HOSTS`,
          }),
        );
        return;
      }
      if (!this.authorized(req)) {
        res
          .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' })
          .end(
            JSON.stringify({
              error: true,
              code: 'UNAUTHORIZED',
              message: 'Missing or invalid bearer token (METRICS_TOKEN)',
            }),
          );
        return;
      }
      try {
        const body = await this.options.registry.metrics();
        res.writeHead(200, { 'content-type': this.options.registry.contentType }).end(body);
      } catch (err) {
        // The reason goes to the log, not to whoever asked.
        this.options.onError(err as Error);
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed (see the log)');
      }
      return;
    }
    if (path === '/health') {
      const { healthy, body } = this.options.health();
      res
        .writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' })
        .end(
          JSON.stringify(
            this.authorized(req) && this.hostAllowed(req)
              ? body
              : { status: healthy ? 'healthy' : 'unhealthy' },
          ),
        );
      return;
    }
    res
      .writeHead(404, { 'content-type': 'application/json' })
      .end(JSON.stringify({ error: true, code: 'NOT_FOUND', message: `No route ${path}` }));
  }
}
