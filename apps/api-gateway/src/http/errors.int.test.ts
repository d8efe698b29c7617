import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import { MemoryTransport } from '@ginkgo-live/testing';
import type { ControlQueue } from '../control-queue.ts';
import type { FleetReader } from '../fleet-reader.ts';
import { createApp } from './app.ts';

describe('unexpected errors', () => {
  it('answer 500 INTERNAL_ERROR without a stack trace, and log the cause', async () => {
    const logs = new MemoryTransport();
    const broken = {
      nodes: () =>
        Promise.reject(
          new TypeError('cannot read properties of undefined (reading "x") at secret.ts:12'),
        ),
    } as unknown as FleetReader;
    const app = createApp({
      reader: broken,
      control: {} as unknown as ControlQueue,
      security: { apiKeys: [], publicReads: false, corsOrigins: [], rateLimitPerMinute: 100 },
      ping: () => Promise.resolve({ ok: true, latencyMs: 1 }),
      registry: new Registry(),
      logger: createLogger({ app: 't', transports: [logs] }),
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const response = await fetch(
        `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/nodes`,
      );
      expect(response.status).toBe(500);
      const text = await response.text();
      expect(JSON.parse(text)).toMatchObject({
        error: true,
        code: 'INTERNAL_ERROR',
        message: 'Internal error',
        details: {},
      });
      expect(text).not.toContain('secret.ts');
      expect(text).not.toContain('TypeError');
      expect(logs.withMessage('Request failed')).toHaveLength(1);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
