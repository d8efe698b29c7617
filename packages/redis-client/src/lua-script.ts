import { createHash } from 'node:crypto';
import type { RedisLike } from './slots.ts';

/**
 * A Lua script run by its SHA1 (`EVALSHA`), loaded on first use and again after a Redis restart
 * forgot it (`NOSCRIPT`). Scripts open with a header listing every KEYS and ARGV.
 */
export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** Runs the script atomically with `keys` and `args` (on a cluster: keys of one hash slot). */
  async run(
    redis: RedisLike,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    // One array, never spread into the call: a plan write for 10,000 nodes carries hundreds of
    // thousands of values, past what a JavaScript call's arguments may hold (RangeError).
    const values = [...keys, ...args.map(String)];
    try {
      return await redis.evalsha(this.sha, keys.length, values);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.source, keys.length, values);
    }
  }
}
