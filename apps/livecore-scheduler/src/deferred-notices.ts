import type { NoticeSink } from './notices.ts';

/**
 * A notice sink that holds what it is told until the real one is attached, then passes all of it
 * on in order. The scheduler's first tick does not wait for the notifier: building it opens a
 * BullMQ queue (its connection handshake and some forty Lua scripts hashed), none of which the
 * tick needs before it has something to say.
 */
export class DeferredNoticeSink {
  private target: NoticeSink | undefined;
  private held: ((target: NoticeSink) => void)[] = [];

  /** The sink to hand the scheduler. */
  readonly sink = {
    raise: (...args: unknown[]): void => {
      this.send((target) => {
        Reflect.apply(target.raise, target, args);
      });
    },
    resolve: (...args: unknown[]): void => {
      this.send((target) => {
        Reflect.apply(target.resolve, target, args);
      });
    },
  } as unknown as NoticeSink;

  /** From now on everything goes to `target`, what was held first. */
  attach(target: NoticeSink): void {
    this.target = target;
    const held = this.held;
    this.held = [];
    for (const send of held) send(target);
  }

  /** Notices told and not passed on yet. */
  get holding(): number {
    return this.held.length;
  }

  private send(call: (target: NoticeSink) => void): void {
    if (this.target === undefined) this.held.push(call);
    else call(this.target);
  }
}
