import http from 'node:http';
import type { Registry } from 'prom-client';
import { listen } from './startup-error.ts';

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  registry: Registry;
  /** The settings a port in use or a wrong host is reported under; default METRICS_PORT, METRICS_HOST. */
  portSetting?: string;
  hostSetting?: string;
  /** The body of `/health`, and whether it is healthy (200) or not (503). */
  health: () => { healthy: boolean; body: Record<string, unknown> };
  /** A server error after it listens (an accept failing): reported, never fatal. */
  onError: (err: Error) => void;
}

/** A small HTTP server every worker app runs: `GET /metrics` (Prometheus text) and `GET /health` (JSON). */
export class MetricsServer {
  private server: http.Server | undefined;

  constructor(private readonly options: MetricsServerOptions) {}

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
      try {
        const body = await this.options.registry.metrics();
        res.writeHead(200, { 'content-type': this.options.registry.contentType }).end(body);
      } catch (err) {
        res
          .writeHead(500, { 'content-type': 'text/plain' })
          .end(`metrics failed: ${(err as Error).message}`);
      }
      return;
    }
    if (path === '/health') {
      const { healthy, body } = this.options.health();
      res
        .writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify(body));
      return;
    }
    res
      .writeHead(404, { 'content-type': 'application/json' })
      .end(JSON.stringify({ error: true, code: 'NOT_FOUND', message: `No route ${path}` }));
  }
}
