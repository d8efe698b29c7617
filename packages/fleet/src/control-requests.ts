import { LuaScript, type RedisLike } from '@ginkgo-live/redis-client';
import type { StateKeys } from '@ginkgo-live/state-keys';
import { AUDIT_MAX_ENTRIES } from './audit.ts';

/**
 * Queues a request with its `queued` audit entry. KEYS[1] the audit stream, KEYS[2] the control
 * queue; ARGV[1] the audit cap (XADD MAXLEN ~), ARGV[2] the entry, ARGV[3] the request.
 * Redis does not undo a script that fails half way (nor a MULTI whose command fails): the queue's
 * type is checked first, then the entry is written, and only then the request — so a request is
 * never queued without its entry (an XADD refused, by a wrong type or the ACL, stops the script).
 */
const QUEUE = new LuaScript(`
local kind = redis.call('TYPE', KEYS[2]).ok
if kind ~= 'list' and kind ~= 'none' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' is a ' .. kind .. ', not a list')
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'entry', ARGV[2])
return redis.call('RPUSH', KEYS[2], ARGV[3])
`);

/**
 * Queues an encoded `controlRequest` on `{scheduler}:control` with its encoded `queued` audit
 * entry, in one script (both keys in the `{scheduler}` slot): when the entry cannot be written,
 * nothing is queued and the call rejects. The gateway and `ginkgo-ctl` both queue through here.
 */
export async function queueControlRequest(
  redis: RedisLike,
  keys: StateKeys,
  request: string,
  entry: string,
): Promise<void> {
  await QUEUE.run(
    redis,
    [keys.auditLog(), keys.controlRequests()],
    [AUDIT_MAX_ENTRIES, entry, request],
  );
}
