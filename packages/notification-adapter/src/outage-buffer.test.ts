import { describe, expect, it } from 'vitest';
import { createLogger } from '@ginkgo-live/runtime';
import { PayloadEncodeError, type Notification } from '@ginkgo-live/state-keys';
import { MemoryTransport } from '@ginkgo-live/testing';
import { SendFailed, type Step } from './notification-step.ts';
import { OutageBuffer } from './outage-buffer.ts';

function notification(title: string): Notification {
  return {
    _v: 1,
    id: title,
    kind: 'queue_full',
    level: 'critical',
    status: 'firing',
    title,
    message: '',
    details: {},
    subject: { node_id: null, portfolio_id: 'p1' },
    source: { app: 'test', node_id: null },
    created_at: '2026-12-01T00:00:00.000Z',
  };
}

const subject = { nodeId: null, portfolioId: 'p1' };
const raise = (title: string): Step => ({
  op: 'raise',
  kind: 'queue_full',
  level: 'critical',
  group: 'queue',
  subject,
  notification: notification(title),
});
const resolve = (title: string): Step => ({
  op: 'resolve',
  group: 'queue',
  subject,
  kinds: [{ kind: 'queue_full', level: 'critical' }],
  title,
  message: '',
  details: {},
});
const name = (step: Step): string =>
  step.op === 'resolve' ? `resolve ${step.title}` : `${step.op} ${step.notification.title}`;

/**
 * A buffer over a scripted Redis: `down` fails every step as a lost connection would;
 * `failSend` makes the queue add fail after the dedupe was claimed. Records what was done.
 */
function setup(capacity = 10) {
  const redis = { down: false, failSend: false, connected: false, bugs: new Set<string>() };
  const done: string[] = [];
  let unreachable = 0;
  const work: Promise<void>[] = [];
  const logs = new MemoryTransport();
  const buffer = new OutageBuffer({
    capacity,
    perform: (step) => {
      if (redis.down) return Promise.reject(new Error('Connection is closed.'));
      if (step.op !== 'resolve' && redis.bugs.has(step.notification.title))
        return Promise.reject(new PayloadEncodeError('details: invalid'));
      if (redis.failSend && step.op === 'raise')
        return Promise.reject(
          new SendFailed(step.notification, new Error('Connection is closed.')),
        );
      done.push(name(step));
      return Promise.resolve();
    },
    isConnected: () => redis.connected,
    onUnreachable: () => (unreachable += 1),
    track: (w) => work.push(w),
    retryMs: 10,
    logger: createLogger({ app: 'test', transports: [logs] }),
  });
  return { redis, done, buffer, unreachable: () => unreachable, work, logs };
}

describe('OutageBuffer', () => {
  it('does a step at once while Redis answers, and holds nothing', async () => {
    const { done, buffer } = setup();
    await buffer.attempt(raise('a'));
    expect(done).toEqual(['raise a']);
    expect(buffer.size).toBe(0);
  });

  it('holds steps while Redis is away, in order, says the outage began, and does them oldest first when it answers', async () => {
    const { redis, done, buffer, unreachable } = setup();
    redis.down = true;
    await buffer.attempt(raise('a'));
    await buffer.attempt(resolve('a'));
    await buffer.attempt(raise('b'));
    expect(buffer.summary()).toEqual({
      lines: ['critical queue_full: a', 'resolved queue: a', 'critical queue_full: b'],
      dropped: 0,
    });
    expect(unreachable()).toBe(1);
    redis.down = false;
    await buffer.replay();
    expect(done).toEqual(['raise a', 'resolve a', 'raise b']);
    expect(buffer.size).toBe(0);
  });

  it('makes a new step wait behind those held, even once Redis answers: a resolve never overtakes its raise', async () => {
    const { redis, done, buffer } = setup();
    redis.down = true;
    await buffer.attempt(raise('a'));
    redis.down = false;
    await buffer.attempt(resolve('a'));
    expect(done).toEqual([]);
    await buffer.replay();
    expect(done).toEqual(['raise a', 'resolve a']);
  });

  it('drops the oldest beyond its capacity and counts them until a replay', async () => {
    const { redis, done, buffer } = setup(2);
    redis.down = true;
    for (const t of ['a', 'b', 'c']) await buffer.attempt(raise(t));
    expect(buffer.summary()).toEqual({
      lines: ['critical queue_full: b', 'critical queue_full: c'],
      dropped: 1,
    });
    redis.down = false;
    await buffer.replay();
    expect(done).toEqual(['raise b', 'raise c']);
    expect(buffer.summary().dropped).toBe(0);
  });

  it('after a dedupe claimed but a queue add failed, holds only the send: the claim is not made again', async () => {
    const { redis, done, buffer } = setup();
    redis.failSend = true;
    await buffer.attempt(raise('a'));
    expect(buffer.summary().lines).toEqual(['critical queue_full: a']);
    redis.failSend = false;
    await buffer.replay();
    expect(done).toEqual(['send a']);
  });

  it('keeps a step that fails again at the head, reduced to what is left of it, and the rest behind it', async () => {
    const { redis, done, buffer } = setup();
    redis.down = true;
    await buffer.attempt(raise('a'));
    await buffer.attempt(raise('b'));
    redis.down = false;
    redis.failSend = true;
    await buffer.replay();
    expect(done).toEqual([]);
    expect(buffer.size).toBe(2);
    redis.failSend = false;
    await buffer.replay();
    expect(done).toEqual(['send a', 'raise b']);
  });

  it('throws a bug instead of holding it (it would fail the same way forever)', async () => {
    const { redis, buffer } = setup();
    redis.bugs.add('a');
    await expect(buffer.attempt(raise('a'))).rejects.toBeInstanceOf(PayloadEncodeError);
    expect(buffer.size).toBe(0);
  });

  it('drops a bug met in a replay, logged, and goes on with the steps behind it', async () => {
    const { redis, done, buffer, logs } = setup();
    redis.down = true;
    await buffer.attempt(raise('a'));
    await buffer.attempt(raise('b'));
    redis.down = false;
    redis.bugs.add('a');
    await buffer.replay();
    expect(done).toEqual(['raise b']);
    expect(buffer.size).toBe(0);
    expect(logs.entries.filter((e) => e.message === 'Notification lost to a bug')).toHaveLength(1);
  });

  it('on a connection that stays up (a timeout, no reconnect to wait for), tries the replay again by itself', async () => {
    const { redis, done, buffer, work } = setup();
    redis.connected = true;
    redis.down = true;
    await buffer.attempt(raise('a'));
    redis.down = false;
    await new Promise((r) => setTimeout(r, 30));
    await Promise.all(work);
    expect(done).toEqual(['raise a']);
    buffer.stop();
  });

  it('runs the hook before each pass (the "back" notice goes first) and says whether it replayed', async () => {
    const order: string[] = [];
    const replayed: boolean[] = [];
    const buffer = new OutageBuffer({
      capacity: 10,
      perform: (step) => {
        order.push(name(step));
        return Promise.resolve();
      },
      isConnected: () => false,
      onUnreachable: () => undefined,
      beforeReplay: () => {
        order.push('back');
        return Promise.resolve();
      },
      afterReplay: (r) => replayed.push(r),
      track: () => undefined,
      logger: createLogger({ app: 'test', transports: [new MemoryTransport()] }),
    });
    await buffer.replay();
    expect(order).toEqual(['back']);
    expect(replayed).toEqual([false]);
  });

  it('folds replays asked while one runs into one more pass, never two at once', async () => {
    let running = 0;
    let most = 0;
    let passes = 0;
    const buffer = new OutageBuffer({
      capacity: 10,
      perform: () => Promise.resolve(),
      isConnected: () => false,
      onUnreachable: () => undefined,
      beforeReplay: async () => {
        passes += 1;
        running += 1;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 5));
        running -= 1;
      },
      track: () => undefined,
      logger: createLogger({ app: 'test', transports: [new MemoryTransport()] }),
    });
    await Promise.all([buffer.replay(), buffer.replay(), buffer.replay()]);
    expect(most).toBe(1);
    expect(passes).toBe(2);
  });
});
