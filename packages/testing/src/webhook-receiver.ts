import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** How the receiver answers one request: a status, never (`hang`), or 429 with Retry-After. */
export type ReceiverAnswer = number | 'hang' | { status: number; retryAfter: string };

/** One request the receiver got. */
export interface ReceivedRequest<T> {
  at: number;
  path: string;
  body: T;
}

/**
 * A real HTTP webhook receiver on a free port, for notification tests. It records every POST and
 * answers as scripted (`answers`, consumed in order; 200 when empty).
 */
export class WebhookReceiver<T = unknown> {
  readonly received: ReceivedRequest<T>[] = [];
  answers: ReceiverAnswer[] = [];
  /** Requests left unanswered on purpose. */
  hanging = 0;
  private readonly server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (chunk: Buffer) => (data += chunk.toString()));
    req.on('end', () => {
      const answer = this.answers.shift() ?? 200;
      if (answer === 'hang') {
        this.hanging += 1;
        return;
      }
      this.received.push({ at: Date.now(), path: req.url ?? '/', body: JSON.parse(data) as T });
      if (typeof answer === 'number') res.writeHead(answer).end();
      else res.writeHead(answer.status, { 'retry-after': answer.retryAfter }).end();
    });
  });

  /** Listens on 127.0.0.1 and a free port; resolves with a URL whose path holds a fake secret. */
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/hooks/SECRET-TOKEN-123`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
