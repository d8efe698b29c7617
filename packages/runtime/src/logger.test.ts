import Transport from 'winston-transport';
import { describe, expect, it } from 'vitest';
import { createLogger, loadLoggingConfig } from './logger.ts';

class Capture extends Transport {
  readonly entries: Record<string, unknown>[] = [];
  override log(info: Record<string, unknown>, next: () => void): void {
    this.entries.push(info);
    next();
  }
}

/** The formatted line winston produced for an entry. */
function formatted(entry: Record<string, unknown> | undefined): string {
  const line = entry?.[Symbol.for('message') as unknown as string];
  return typeof line === 'string' ? line : '';
}

describe('createLogger', () => {
  it('tags every JSON line with app, node id and component', () => {
    const capture = new Capture();
    const logger = createLogger({
      app: 'scheduler',
      nodeId: 'n1',
      format: 'json',
      transports: [capture],
    });
    logger.child({ component: 'tick' }).info('Tick done', { durationMs: 12 });
    const line = JSON.parse(formatted(capture.entries[0])) as Record<string, unknown>;
    expect(line).toMatchObject({
      level: 'info',
      message: 'Tick done',
      app: 'scheduler',
      nodeId: 'n1',
      component: 'tick',
      durationMs: 12,
    });
    expect(line['timestamp']).toMatch(/^\d{4}-\d{2}-\d{2}T/);
  });

  it('turns an err field into name, message, code and stack', () => {
    const capture = new Capture();
    const logger = createLogger({ app: 'a', format: 'json', transports: [capture] });
    const err = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    logger.warn('Redis connection error', { err });
    const line = JSON.parse(formatted(capture.entries[0])) as { err: Record<string, unknown> };
    expect(line.err).toMatchObject({
      name: 'Error',
      message: 'connect ECONNREFUSED',
      code: 'ECONNREFUSED',
    });
    expect(line.err['stack']).toContain('connect ECONNREFUSED');
  });

  it('writes readable lines for a terminal', () => {
    const capture = new Capture();
    const logger = createLogger({
      app: 'node',
      nodeId: 'n2',
      format: 'pretty',
      transports: [capture],
    });
    logger.child({ component: 'heartbeat' }).warn('Heartbeat write failed', {
      attempt: 2,
      err: Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }),
    });
    expect(formatted(capture.entries[0])).toMatch(
      /^\d{2}:\d{2}:\d{2}\.\d{3} warn {2}\[node n2 heartbeat\] Heartbeat write failed attempt=2 err="timeout" code=ETIMEDOUT$/,
    );
  });

  it('drops entries below the level', () => {
    const capture = new Capture();
    const logger = createLogger({ app: 'a', level: 'info', format: 'json', transports: [capture] });
    logger.debug('hidden');
    logger.info('shown');
    expect(capture.entries.map((e) => e['message'])).toEqual(['shown']);
  });
});

describe('loadLoggingConfig', () => {
  it('reads LOG_LEVEL and LOG_FORMAT and names them when bad', () => {
    expect(loadLoggingConfig({})).toEqual({ ok: true, value: { level: 'info', format: 'auto' } });
    expect(loadLoggingConfig({ LOG_LEVEL: 'debug', LOG_FORMAT: 'json' })).toEqual({
      ok: true,
      value: { level: 'debug', format: 'json' },
    });
    expect(loadLoggingConfig({ LOG_LEVEL: 'loud' })).toMatchObject({
      ok: false,
      issues: [{ variable: 'LOG_LEVEL' }],
    });
  });
});
