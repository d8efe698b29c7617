import { bySlot, LuaScript, type RedisLike } from '@ginkgo-live/redis-client';
import { readControlRecord, readTradingRecords } from '@ginkgo-live/fleet';
import { portfolioQueueLayout } from '@ginkgo-live/portfolio-queue';
import {
  type BookFence,
  decodePayload,
  encodePayload,
  type Decoded,
  type NodeAssignment,
  type NodeInfo,
  type PortfolioBook,
  type PortfolioSpec,
  type PortfolioState,
  type StateKeys,
} from '@ginkgo-live/state-keys';
import type { SeenRecord, TradingControlsSeen } from './trading-hold.ts';

/**
 * Whether a book write continues the book's fence (Lua, shared by the beat and the commit): the
 * fence in Redis was written by this lease token (so this process's memory is at or ahead of it),
 * or it is the fence the holder loaded (or an earlier one of that writer: Redis rolled back past
 * the load), or there is no fence and the holder may re-assert a book Redis lost (its lease has
 * not expired by its own clock since it was last renewed) — or, for a commit only, nothing had been loaded (the
 * first commit of a new portfolio). Anything else means another process wrote since: this
 * process's memory is stale and must be dropped.
 * ft, fv: fence token (false when absent) and version; token, loadedToken, loadedVersion,
 * mayReassert ('1'/'0'), fresh (true when a missing fence with nothing loaded is acceptable).
 */
const CONTINUES = `
local function continues(ft, fv, token, loadedToken, loadedVersion, mayReassert, fresh)
  if ft == token then return true end
  if ft and ft == loadedToken and fv <= loadedVersion then return true end
  if not ft then return mayReassert == '1' or (fresh and loadedToken == '') end
  return false
end
`;

/**
 * The no-book marker `portfolio:{p}:nobook` (Lua, shared by the acquire and the beat's claim):
 * since when this Redis process has seen the portfolio without a fence, by its own clock (TIME).
 * Uptime is how long the process has run, not how long its data has existed — a replica promoted
 * after copying an empty master, a Redis frozen past the window after an empty restart, a forward
 * clock step all look old — so \`first\` counts only in the process that wrote it (\`run\`, its
 * run_id: a promoted replica holds its master's copy, a restart may reload one) and only while it
 * is written again at least every \`gap\` ms: a marker missing, last written longer ago (or in the
 * future), or of another run starts \`first\` again, so a freeze, a clock step or a failover starts
 * the wait over. It expires \`ttl\` ms after its last write (an expired marker means what a stale
 * one means). Returns uptime (ms) and how long the portfolio has been seen without a fence (ms).
 */
const NOBOOK = `
local function nobook_seen(marker, gap, ttl)
  local info = redis.call('INFO', 'server')
  -- Missing (a Redis that leaves it out): taken as just started, the side that waits.
  local uptime = (tonumber(string.match(info, 'uptime_in_seconds:(%d+)')) or 0) * 1000
  local run = string.match(info, 'run_id:(%x+)') or ''
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local m = redis.call('HMGET', marker, 'first', 'last', 'run')
  local first, last = tonumber(m[1]), tonumber(m[2])
  if first == nil or last == nil or m[3] ~= run or now < last or now - last > gap then
    first = now
  end
  redis.call('HSET', marker, 'first', string.format('%d', first), 'last', string.format('%d', now), 'run', run)
  redis.call('PEXPIRE', marker, ttl)
  return uptime, now - first
end
`;

/**
 * The claims \`portfolio:{p}:claims\` (Lua, shared by the acquire and the beat): books that holders
 * whose lease had expired kept in memory when Redis lost lease and fence (\`v:<token>\` version,
 * \`b:<token>\` book). Settling them writes the book and fence of the highest version (equal
 * versions: the greater token, so every caller picks the same) and deletes the claims, in one
 * step. Returns the winning token and version, or nil when there is no claim.
 */
const CLAIMS = `
local function settle_claims(claims, fence, book)
  local all = redis.call('HGETALL', claims)
  local best, bestVersion = nil, -1
  for j = 1, #all, 2 do
    local field = all[j]
    if string.sub(field, 1, 2) == 'v:' then
      local t, v = string.sub(field, 3), tonumber(all[j + 1]) or -1
      if v > bestVersion or (v == bestVersion and t > best) then best, bestVersion = t, v end
    end
  end
  if best == nil then return nil end
  local payload = redis.call('HGET', claims, 'b:' .. best)
  if not payload then return nil end
  redis.call('SET', book, payload)
  redis.call('DEL', fence)
  redis.call('HSET', fence, 'token', best, 'version', string.format('%d', bestVersion))
  redis.call('DEL', claims)
  return best, bestVersion
end
`;

/**
 * The heartbeat: one round trip that refreshes everything the node owns in Redis. On a Redis
 * Cluster a script may only touch one hash slot, so the beat is run once per slot its keys fall in
 * (the node's own keys, the registry, each portfolio's); on one Redis it is one call with all.
 * KEYS: heartbeat:node:{id} and execution_node:{id}:info when ARGV[6] = 1; then the registry when
 * ARGV[9] = 1; then, for each of the n portfolios, its lease, state, fence, claims, no-book marker
 * and book.
 * ARGV[1] node id   ARGV[2] now (ms)   ARGV[3] heartbeat and lease TTL (ms)   ARGV[4] info TTL (ms)
 * ARGV[5] state TTL (ms)   ARGV[6] 1 when this call writes the node's own keys
 * ARGV[7] heartbeat payload   ARGV[8] info payload   ARGV[9] 1 when it writes the registry   ARGV[10] n
 * ARGV[11] fresh-start window (ms; 0: none)   ARGV[12] largest gap that keeps the marker's wait going
 * (ms)   ARGV[13] marker TTL (ms)
 * then per portfolio 11 values: state payload, lease token ('' while waiting for it), loaded fence
 * token, loaded fence version, may re-assert (1: its lease has not expired by its own clock; 0),
 * releasing (1 while its final commit is on the way: no resync), the version and payload of the
 * book it would claim with ('' when its lease is current), how much longer (ms) its lease stays
 * current by its clock ('' : not checked), whether its state is due (1: changed, or its last write
 * is old; 0), and the identity of the Redis in which a beat last found its fence, not long ago
 * ('': a fence check is due).
 * Returns { lost, resync, claiming, late, written, checked, identity }: indices of portfolios whose
 * lease another process holds or whose book another process wrote (they must stop here), of those
 * whose book must be written again (the lease had vanished and was taken back, or the fence is
 * missing), and of those whose book waits in Redis as a claim (not renewed, not lost), and of those
 * that may re-assert but whose beat reached Redis later than their lease stays current (ARGV[2]
 * against Redis's TIME: a command resent after a reconnect; nothing taken, not renewed); of those
 * whose state it wrote, and of those whose fence it found; and this Redis's identity ('' when not
 * read).
 * A lease renewed (still held by its token) has its fence checked (EXISTS) and its state written
 * unless the node says this very Redis showed the fence lately (and the state is not due): the
 * identity (run_id and master_replid, INFO) changes with a restart, even one that reloads an older
 * snapshot, and with a promotion (a replica that may lag its master), so a Redis that may have lost
 * a fence or a state behind a lease it kept is checked, and written, at its first beat as before;
 * within one Redis process the node still checks each fence at least once a lease TTL (a fence
 * deleted by hand or evicted). The identity is read once per call, and only when a portfolio needs
 * it; where INFO is denied or renamed it is '', and every beat checks and writes as before. A vanished lease (expired while this
 * process was away, or Redis restarted empty) is taken back only when the book's fence says nobody
 * wrote since and no final commit released it — for a releasing runner too: its final commit needs
 * the lease, and a final commit that landed marked the fence released, so a beat that raced it
 * takes nothing back. With the fence gone too, it is taken back at once only while this holder's
 * lease has not expired by its own clock: until then nobody else could take the portfolio, so its
 * book is the newest. A holder whose lease expired (it may have been cut off from Redis alone, and
 * another node may have run the portfolio since and hold newer books) claims instead: its book goes
 * to the claims, and the no-book marker times the contest in Redis. Once the marker has stood a
 * fresh-start window (every live holder has beaten since, a current one has taken its lease back
 * and a cut-off one has claimed), the claims are settled (CLAIMS): the highest version's book and
 * fence are written, and its claimant holds the lease; any other claimant is lost. States are
 * written for leases held, and for a portfolio waiting for its lease only where no other node's is.
 */
const BEAT = new LuaScript(
  CONTINUES +
    NOBOOK +
    CLAIMS +
    `
local k = 0
if ARGV[6] == '1' then
  redis.call('SET', KEYS[1], ARGV[7], 'PX', ARGV[3])
  redis.call('SET', KEYS[2], ARGV[8], 'PX', ARGV[4])
  k = 2
end
if ARGV[9] == '1' then
  k = k + 1
  redis.call('ZADD', KEYS[k], ARGV[2], ARGV[1])
end
local n = tonumber(ARGV[10])
local window = tonumber(ARGV[11])
local lost = {}
local resync = {}
local claiming = {}
local late = {}
local written = {}
local checked = {}
-- How long ago this beat was built (ms), by Redis's clock against the sender's: a client may send a
-- command again after a reconnect, long after its may-re-assert was decided. Read when first
-- needed (a vanished lease): later in the same atomic call, so it only comes out longer.
local age = nil
local function beat_age()
  if age == nil then
    local t = redis.call('TIME')
    age = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[2])
  end
  return age
end
-- This Redis: its run (a restart), its replication history (a promotion) and how many keys it has
-- evicted (a fence, a book or a state dropped under maxmemory while the process and its lease
-- lived on). Read when first needed.
-- INFO denied or renamed: '' — no fence check is skipped, no state write either, as before.
local identity = nil
local function redis_identity()
  if identity == nil then
    local info = redis.pcall('INFO', 'server', 'replication', 'stats')
    local run = type(info) == 'string' and string.match(info, 'run_id:(%x+)')
    if run then
      identity = run .. ':' .. (string.match(info, 'master_replid:(%x+)') or '') .. ':' ..
        (string.match(info, 'evicted_keys:(%d+)') or '')
    else
      identity = ''
    end
  end
  return identity
end
for i = 1, n do
  local a = 13 + (i - 1) * 11
  local b = k + 6 * (i - 1)
  local lease, state, fence = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3]
  local token = ARGV[a + 2]
  local holds = false
  -- Whether its state is written: always, but for a lease renewed in the Redis that showed its
  -- fence lately, whose state is not due.
  local quiet = false
  local holder = nil
  if token ~= '' then holder = redis.call('GET', lease) end
  if token == '' then
    -- Waiting for the lease: its state says so only where the holder writes none (it died, or
    -- holds the lease without running), never over the holder's.
    local current = redis.call('GET', state)
    local ok, decoded = pcall(cjson.decode, current or '{}')
    holds = not current or (ok and type(decoded) == 'table' and decoded['node_id'] == ARGV[1])
  elseif holder == token then
    redis.call('PEXPIRE', lease, ARGV[3])
    holds = true
    if ARGV[a + 11] ~= '' and ARGV[a + 11] == redis_identity() and identity ~= '' then
      quiet = ARGV[a + 10] ~= '1'
    elseif ARGV[a + 6] ~= '1' then
      if redis.call('EXISTS', fence) == 0 then
        table.insert(resync, i)
      else
        -- Found in this Redis: the node may skip the next checks while it stays the same.
        table.insert(checked, i)
        redis_identity()
      end
    end
  elseif holder then
    table.insert(lost, i)
  else
    -- Releasing or not: a final commit that finds the lease gone must not wait for ever, and the
    -- fence says whether it landed (released by this token: nothing to take back).
    local f = redis.call('HMGET', fence, 'token', 'version', 'released')
    if f[3] == '1' and f[1] == token then
      -- Released by this very token's final commit: nothing to take back.
    elseif not f[1] and ARGV[a + 5] == '1' and ARGV[a + 9] ~= '' and beat_age() >= tonumber(ARGV[a + 9]) then
      -- Its lease may have expired by its clock since the beat was built: take nothing; the next
      -- beat decides with what it knows then.
      table.insert(late, i)
    elseif not f[1] and ARGV[a + 5] ~= '1' and ARGV[a + 8] ~= '' then
      local claims = KEYS[b + 4]
      -- No expiry: the claim may be the only copy of the book, and nobody may acquire the
      -- portfolio for a long while (scheduler down, fleet restarted). The settle, or the first
      -- fence a commit writes, deletes it.
      redis.call('HSET', claims, 'v:' .. token, ARGV[a + 7], 'b:' .. token, ARGV[a + 8])
      local uptime, seen = nobook_seen(KEYS[b + 5], tonumber(ARGV[12]), ARGV[13])
      if uptime < window or seen < window then
        table.insert(claiming, i)
      elseif settle_claims(claims, fence, KEYS[b + 6]) == token then
        redis.call('SET', lease, token, 'PX', ARGV[3])
        holds = true
        if ARGV[a + 6] ~= '1' then table.insert(resync, i) end
      else
        table.insert(lost, i)
      end
    elseif continues(f[1], tonumber(f[2] or '0'), token, ARGV[a + 3], tonumber(ARGV[a + 4]), ARGV[a + 5], false) then
      redis.call('SET', lease, token, 'PX', ARGV[3])
      holds = true
      -- A releasing runner's final commit writes the book anyway.
      if ARGV[a + 6] ~= '1' then table.insert(resync, i) end
    else
      table.insert(lost, i)
    end
  end
  if holds and not quiet then
    redis.call('SET', state, ARGV[a + 1], 'PX', ARGV[5])
    table.insert(written, i)
  end
end
return { lost, resync, claiming, late, written, checked, identity or '' }
`,
);

/**
 * Writes states of portfolios this process holds the lease of (books are written by commits).
 * KEYS[2i-1] lease, KEYS[2i] state of portfolio i   ARGV[1] state TTL (ms)
 * ARGV[2i] lease token, ARGV[2i+1] state payload of portfolio i.
 * Returns the indices of portfolios whose lease another process holds (nothing written). A lease
 * that vanished is not lost: nothing is written, and the next beat decides whether to take it back.
 */
const FLUSH = new LuaScript(`
local lost = {}
for i = 1, #KEYS / 2 do
  local holder = redis.call('GET', KEYS[2 * i - 1])
  if holder == ARGV[2 * i] then
    redis.call('SET', KEYS[2 * i], ARGV[2 * i + 1], 'PX', ARGV[1])
  elseif holder then
    table.insert(lost, i)
  end
end
return lost
`);

/**
 * Takes a portfolio's lease for a new token when it is free, and reads the book with its fence in
 * the same step (so the fence the holder continues is the one of the book it loaded). Puts back at
 * the head of the queue, oldest first, any job a BullMQ worker of an earlier release still held
 * (their locks deleted, so that worker can no longer complete them).
 * A free lease of a portfolio with no fence and no book is not taken while this Redis has been up
 * less than ARGV[4] ms: it may have come back empty, and the node holding the portfolio in memory
 * writes it back meanwhile (its beat and commits fail 'lost' while another token holds the lease,
 * so a lease taken only to be given back could make it drop the only copy of the book). The uptime
 * is read in the same step, from the Redis that holds the keys.
 * Nor while the portfolio has been seen without fence and book for less than ARGV[4] ms, by this
 * Redis's clock: the no-book marker KEYS[6] (see NOBOOK) is written whenever the acquire finds no
 * fence and no book, with ARGV[5] the largest gap that keeps the wait going. It is the marker,
 * never the lease, that is written. Past the wait, claims (see CLAIMS) are settled first: the
 * portfolio is loaded from the highest claim's book, so a claimant that died or stopped during the
 * contest loses nothing; only without a claim does it start fresh.
 * KEYS[1] lease  KEYS[2] fence  KEYS[3] active  KEYS[4] wait  KEYS[5] book  KEYS[6] no-book marker
 * KEYS[7] claims
 * ARGV[1] token  ARGV[2] TTL (ms)  ARGV[3] job key prefix  ARGV[4] fresh-start wait (ms; 0: none)
 * ARGV[5] largest gap between two acquires that keeps the wait going (ms)  ARGV[6] marker TTL (ms).
 * Returns { 1, fence token, fence version, jobs put back, book or '', claim token loaded or '' },
 * { 0, holder }, or
 * { 2, uptime (ms), seen without a book for (ms) } when refused as too young.
 */
const ACQUIRE = new LuaScript(
  NOBOOK +
    CLAIMS +
    `
local holder = redis.call('GET', KEYS[1])
if holder then return { 0, holder } end
local wait = tonumber(ARGV[4])
local claimed = ''
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[5]) == 0 then
  if wait > 0 then
    local uptime, seen = nobook_seen(KEYS[6], tonumber(ARGV[5]), ARGV[6])
    if uptime < wait or seen < wait then
      return { 2, string.format('%d', uptime), string.format('%d', seen) }
    end
  end
  -- A holder cut off from Redis left its book as a claim: load the highest, not a fresh start.
  claimed = settle_claims(KEYS[7], KEYS[2], KEYS[5]) or ''
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local held = redis.call('LRANGE', KEYS[3], 0, -1)
for i = 1, #held do
  redis.call('RPUSH', KEYS[4], held[i])
  redis.call('DEL', ARGV[3] .. held[i] .. ':lock')
end
if #held > 0 then redis.call('DEL', KEYS[3]) end
local f = redis.call('HMGET', KEYS[2], 'token', 'version')
return { 1, f[1] or '', f[2] or '0', #held, redis.call('GET', KEYS[5]) or '', claimed }
`,
);

/**
 * The commit: the one way a book changes in Redis. In one atomic step, only while this token holds
 * the lease and the write continues the book's fence: the jobs applied are removed from the queue,
 * the malformed ones moved to its failed set with their reasons, the book and its fence (token,
 * new version) and the state written — so an event is in the book exactly when it has left the
 * queue. A retry of a commit that landed (its reply was lost) answers `done`, even when the
 * landed commit was a final one that released the lease. With ARGV[12] = 1 it
 * also releases the lease (the final commit of a clean stop) and marks the fence released, so a
 * beat of the same token that was already on its way cannot take the lease back.
 * KEYS[1] lease  KEYS[2] fence  KEYS[3] book  KEYS[4] state  KEYS[5] wait  KEYS[6] failed
 * KEYS[7] claims (deleted by a commit that writes the first fence)
 * ARGV[1] token  ARGV[2] loaded fence token  ARGV[3] loaded fence version  ARGV[4] may re-assert
 * ARGV[5] new version  ARGV[6] book  ARGV[7] state  ARGV[8] state TTL (ms)  ARGV[9] job key prefix
 * ARGV[10] now (ms)  ARGV[11] failed jobs kept  ARGV[12] release  ARGV[13] n applied
 * ARGV[13+i] applied job id, then m failed, then m pairs (job id, reason).
 * Returns { 'ok', jobs no longer in the queue } | { 'done' } | { 'nolease' } | { 'lost', holder }
 * | { 'fenced', fence token, fence version }.
 */
const COMMIT = new LuaScript(
  CONTINUES +
    `
local token = ARGV[1]
local holder = redis.call('GET', KEYS[1])
if holder ~= token then
  if holder then return { 'lost', holder } end
  -- A retry of a commit that landed: a final one deleted the lease it released.
  local g = redis.call('HMGET', KEYS[2], 'token', 'version')
  if g[1] == token and tonumber(g[2] or '0') >= tonumber(ARGV[5]) then return { 'done' } end
  return { 'nolease' }
end
local f = redis.call('HMGET', KEYS[2], 'token', 'version')
local fv = tonumber(f[2] or '0')
if f[1] == token and fv >= tonumber(ARGV[5]) then
  -- This commit landed already (its reply was lost), or it is a stale copy of one older than
  -- what landed since: either way nothing is written.
  if ARGV[12] == '1' and fv == tonumber(ARGV[5]) then redis.call('DEL', KEYS[1]) end
  return { 'done' }
end
if not continues(f[1], fv, token, ARGV[2], tonumber(ARGV[3]), ARGV[4], true) then
  return { 'fenced', f[1] or '', tostring(fv) }
end
local prefix = ARGV[9]
local missing = 0
local n = tonumber(ARGV[13])
for i = 1, n do
  local id = ARGV[13 + i]
  if redis.call('LREM', KEYS[5], -1, id) == 0 then missing = missing + 1 end
  redis.call('DEL', prefix .. id)
end
local b = 13 + n
local m = tonumber(ARGV[b + 1])
for j = 1, m do
  local id, reason = ARGV[b + 2 * j], ARGV[b + 2 * j + 1]
  if redis.call('LREM', KEYS[5], -1, id) == 0 then missing = missing + 1 end
  if redis.call('EXISTS', prefix .. id) == 1 then
    redis.call('HSET', prefix .. id, 'failedReason', reason, 'finishedOn', ARGV[10], 'attemptsMade', 1)
    redis.call('ZADD', KEYS[6], ARGV[10], id)
  end
end
if m > 0 then
  local extra = redis.call('ZCARD', KEYS[6]) - tonumber(ARGV[11])
  if extra > 0 then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[6], 0, extra - 1)) do
      redis.call('DEL', prefix .. id)
    end
    redis.call('ZREMRANGEBYRANK', KEYS[6], 0, extra - 1)
  end
end
redis.call('SET', KEYS[3], ARGV[6])
-- Claims are written only while there is no fence: the first fence written ends their contest.
if not f[1] then redis.call('DEL', KEYS[7]) end
redis.call('HSET', KEYS[2], 'token', token, 'version', ARGV[5], 'released', ARGV[12])
redis.call('SET', KEYS[4], ARGV[7], 'PX', ARGV[8])
if ARGV[12] == '1' then redis.call('DEL', KEYS[1]) end
return { 'ok', tostring(missing) }
`,
);

/** Deletes a lease only while `ARGV[1]` holds it.  KEYS[1] lease. */
const GIVE_BACK = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

/**
 * The no-book marker's TTL: a few windows, longer than any gap that keeps a wait going, so its
 * expiry changes nothing.
 */
function markerTtlMs(windowMs: number): number {
  return Math.max(1, 3 * windowMs);
}

/** Failed (malformed) jobs kept per portfolio queue, with their reasons. */
const KEEP_FAILED = 1_000;

export interface NodeStoreOptions {
  redis: RedisLike;
  keys: StateKeys;
  nodeId: string;
  heartbeatTtlMs: number;
  nodeInfoTtlMs: number;
  portfolioStateTtlMs: number;
  /**
   * The fresh-start window and the marker's gap for a beat's claim (see BEAT): a claim is settled
   * once the portfolio has gone this long without a fence. Without it, a claim is settled at once.
   */
  claimWindow?: { afterMs: number; gapMs: number };
  /** The wall clock a beat is stamped with (ms); Date.now by default. */
  clock?: () => number;
}

/** A lease a runner holds, and what it needs to take it back or continue the book's fence. */
export interface LeaseClaim {
  token: string;
  /** The fence of the book the runner loaded (`''` / 0 when there was none). */
  loadedToken: string;
  loadedVersion: number;
  /**
   * Its lease has not expired by this process's clock since the beat that last renewed it was
   * sent: nobody else can have taken the portfolio, so it may re-assert a book Redis lost at once.
   */
  mayReassert: boolean;
  /**
   * How much longer (ms, from when this was built) the lease stays current by this process's
   * clock: a beat that reaches Redis later than that (a command resent after a reconnect) takes
   * nothing back on `mayReassert`. Left out: not checked.
   */
  currentForMs?: number;
  /**
   * The book it holds, with its version: what it claims with when lease and fence are gone and
   * its lease has expired by its own clock (see BEAT). Null (or left out) while `mayReassert`.
   */
  claim?: { version: number; book: PortfolioBook } | null;
  /**
   * Its final commit is on the way: a vanished lease is taken back as for any runner (unless the
   * fence says the final commit released it), but no resync is asked for.
   */
  releasing: boolean;
}

/** What one beat writes for one portfolio. */
export interface BeatPortfolio {
  portfolioId: string;
  state: PortfolioState;
  /** The lease the portfolio runs under here (renewed or taken back); null when it holds none. */
  lease: LeaseClaim | null;
  /**
   * False: the state need not be written on a lease renewed in the Redis named by `fenceSeenIn`
   * (it has not changed since the last beat wrote it, and that write is recent). Default true.
   */
  writeState?: boolean;
  /**
   * The Redis (`BeatFence.redis`) in which a beat found this lease's fence, lately: while the lease
   * is renewed in that same Redis, its fence is not checked again (see BEAT). Left out: checked.
   */
  fenceSeenIn?: string;
}

/** A lease whose fence the beat found, and in which Redis (its run and replication ids). */
export interface BeatFence extends BeatLease {
  redis: string;
}

/** A portfolio named in a beat's outcome, with the lease token the beat was sent for. */
export interface BeatLease {
  portfolioId: string;
  token: string;
}

/** What the beat found about the leases. */
export interface BeatOutcome {
  /** Held by another process, or the book was written by one: stop them here. */
  lost: BeatLease[];
  /** Taken back after they vanished, or held without a fence: write the book again. */
  resync: BeatLease[];
  /** Their book waits in Redis as a claim (see BEAT): not renewed, not lost. */
  claiming: BeatClaim[];
  /**
   * Left out when empty. The beat reached Redis later than their lease stays current by their
   * clock while lease and fence were gone: nothing taken back, not renewed (see BEAT).
   */
  late?: BeatLease[];
  /** The portfolios whose state the beat wrote. */
  stateWritten: string[];
  /** The leases renewed whose fence the beat checked and found. */
  fenceFound: BeatFence[];
}

/** A portfolio whose book the beat left as a claim, with the version claimed. */
export interface BeatClaim extends BeatLease {
  version: number;
}

/** What a flush writes for one portfolio. */
export interface FlushPortfolio {
  portfolioId: string;
  state: PortfolioState;
  token: string;
}

export type AcquireOutcome =
  | {
      ok: true;
      loaded: BookFence | null;
      /** The book read with the fence; null when there is none (under its tagged name). */
      book: Decoded<PortfolioBook> | null;
      reclaimedJobs: number;
      /** The lease token of the claim whose book was loaded (see CLAIMS); absent when none. */
      claimOf?: string;
    }
  | { ok: false; holder: string }
  /**
   * Not taken: no fence and no book, and Redis up, or the portfolio seen without a book, for less
   * than the fresh-start wait.
   */
  | { ok: false; redisUptimeMs: number; noBookSeenMs: number };

/** One commit: the jobs applied (and failed) since the last, and the book they led to. */
export interface CommitRequest {
  portfolioId: string;
  lease: LeaseClaim;
  version: number;
  book: PortfolioBook;
  state: PortfolioState;
  applied: readonly string[];
  failed: readonly { jobId: string; reason: string }[];
  /** Release the lease in the same step (the final commit of a clean stop). */
  release: boolean;
}

export type CommitOutcome =
  | { kind: 'ok'; missing: number }
  | { kind: 'done' }
  | { kind: 'nolease' }
  | { kind: 'lost'; holder: string }
  | { kind: 'fenced'; fence: BookFence };

/**
 * The execution node's Redis adapter: every read and write of the node, each in one round trip.
 * Every method rejects when Redis fails; callers decide what a failure means.
 */
export class NodeStore {
  constructor(private readonly options: NodeStoreOptions) {}

  private get redis(): RedisLike {
    return this.options.redis;
  }

  private get keys(): StateKeys {
    return this.options.keys;
  }

  /**
   * Claims the node id with the first heartbeat (`SET NX`). Fails, with the remaining TTL, when a
   * live node already holds the id.
   */
  async claimNodeId(heartbeat: string): Promise<{ ok: true } | { ok: false; pttlMs: number }> {
    const key = this.keys.heartbeat(this.options.nodeId);
    const set = await this.redis.set(key, heartbeat, 'PX', this.options.heartbeatTtlMs, 'NX');
    if (set === 'OK') return { ok: true };
    return { ok: false, pttlMs: await this.redis.pttl(key) };
  }

  /** One beat: heartbeat, info, registry, every state; leases renewed or taken back. */
  async beat(
    heartbeat: string,
    info: NodeInfo,
    portfolios: readonly BeatPortfolio[],
  ): Promise<BeatOutcome> {
    const { nodeId } = this.options;
    const k = this.keys;
    type Part =
      { kind: 'node' } | { kind: 'registry' } | { kind: 'portfolio'; portfolio: BeatPortfolio };
    const parts: Part[] = [
      { kind: 'node' },
      { kind: 'registry' },
      ...portfolios.map((portfolio) => ({ kind: 'portfolio' as const, portfolio })),
    ];
    const keyOf = (part: Part): string =>
      part.kind === 'node'
        ? k.heartbeat(nodeId)
        : part.kind === 'registry'
          ? k.nodeRegistry()
          : k.portfolioLease(part.portfolio.portfolioId);
    const infoPayload = encodePayload('nodeInfo', info);
    const now = (this.options.clock ?? Date.now)();
    const window = this.options.claimWindow;
    const outcomes = await Promise.all(
      bySlot(this.redis, parts, keyOf).map(async (group) => {
        const writesNode = group.some((p) => p.kind === 'node');
        const writesRegistry = group.some((p) => p.kind === 'registry');
        const mine = group.flatMap((p) => (p.kind === 'portfolio' ? [p.portfolio] : []));
        const keys = [
          ...(writesNode ? [k.heartbeat(nodeId), k.nodeInfo(nodeId)] : []),
          ...(writesRegistry ? [k.nodeRegistry()] : []),
          ...mine.flatMap((p) => [
            k.portfolioLease(p.portfolioId),
            k.portfolioState(p.portfolioId),
            k.portfolioFence(p.portfolioId),
            k.portfolioClaims(p.portfolioId),
            k.portfolioNoBook(p.portfolioId),
            k.portfolioBook(p.portfolioId),
          ]),
        ];
        const args = [
          nodeId,
          now,
          this.options.heartbeatTtlMs,
          this.options.nodeInfoTtlMs,
          this.options.portfolioStateTtlMs,
          writesNode ? '1' : '0',
          writesNode ? heartbeat : '',
          writesNode ? infoPayload : '',
          writesRegistry ? '1' : '0',
          mine.length,
          window?.afterMs ?? 0,
          window?.gapMs ?? 0,
          markerTtlMs(window?.afterMs ?? 0),
          ...mine.flatMap((p) => [
            encodePayload('portfolioState', p.state),
            p.lease?.token ?? '',
            p.lease?.loadedToken ?? '',
            p.lease?.loadedVersion ?? 0,
            p.lease?.mayReassert === true ? '1' : '0',
            p.lease?.releasing === true ? '1' : '0',
            p.lease?.claim?.version ?? 0,
            p.lease?.claim == null ? '' : encodePayload('portfolioBook', p.lease.claim.book),
            p.lease?.currentForMs === undefined ? '' : Math.floor(p.lease.currentForMs),
            p.writeState === false ? '0' : '1',
            p.fenceSeenIn ?? '',
          ]),
        ];
        const [lost, resync, claiming, late, written, checked, identity] = (await BEAT.run(
          this.redis,
          keys,
          args,
        )) as [number[], number[], number[], number[], number[], number[], string];
        const named = (indices: number[]): BeatLease[] =>
          indices.flatMap((i) => {
            const p = mine[i - 1];
            return p?.lease == null ? [] : [{ portfolioId: p.portfolioId, token: p.lease.token }];
          });
        const claimed = claiming.flatMap((i) => {
          const p = mine[i - 1];
          return p?.lease?.claim == null
            ? []
            : [
                {
                  portfolioId: p.portfolioId,
                  token: p.lease.token,
                  version: p.lease.claim.version,
                },
              ];
        });
        return {
          lost: named(lost),
          resync: named(resync),
          claiming: claimed,
          late: named(late),
          written: written.flatMap((i) => mine[i - 1]?.portfolioId ?? []),
          fenceFound: named(checked).map((l) => ({ ...l, redis: identity })),
        };
      }),
    );
    const late = outcomes.flatMap((o) => o.late);
    return {
      lost: outcomes.flatMap((o) => o.lost),
      resync: outcomes.flatMap((o) => o.resync),
      claiming: outcomes.flatMap((o) => o.claiming),
      ...(late.length === 0 ? {} : { late }),
      stateWritten: outcomes.flatMap((o) => o.written),
      fenceFound: outcomes.flatMap((o) => o.fenceFound),
    };
  }

  /** Writes changed states. Returns the portfolios whose lease another process holds. */
  async flush(portfolios: readonly FlushPortfolio[]): Promise<string[]> {
    if (portfolios.length === 0) return [];
    const k = this.keys;
    const lostPerGroup = await Promise.all(
      bySlot(this.redis, portfolios, (p) => k.portfolioLease(p.portfolioId)).map(async (group) => {
        const keys = group.flatMap((p) => [
          k.portfolioLease(p.portfolioId),
          k.portfolioState(p.portfolioId),
        ]);
        const args = [
          this.options.portfolioStateTtlMs,
          ...group.flatMap((p) => [p.token, encodePayload('portfolioState', p.state)]),
        ];
        const lost = (await FLUSH.run(this.redis, keys, args)) as number[];
        return lost.map((i) => group[i - 1]?.portfolioId ?? '');
      }),
    );
    return lostPerGroup.flat();
  }

  /**
   * Reads this node's assignment (null when none was ever written) with the trading controls, in
   * one transaction (all three keys are in the `{scheduler}` slot): the halt and the paused
   * portfolios are known before anything the assignment names is loaded.
   */
  async readOrders(): Promise<{
    assignment: Decoded<NodeAssignment> | null;
    trading: TradingControlsSeen;
  }> {
    const k = this.keys;
    const key = k.nodeAssignment(this.options.nodeId);
    const replies = await this.redis
      .multi()
      .get(key)
      .get(k.tradingHalt())
      .hgetall(k.pausedPortfolios())
      .exec();
    if (replies === null) throw new Error('Transaction aborted');
    for (const [err] of replies) if (err) throw err;
    const [raw, haltRaw, pausedRaw] = replies.map(([, v]) => v) as [
      string | null,
      string | null,
      Record<string, string>,
    ];
    return {
      assignment: raw === null ? null : decodePayload('nodeAssignment', key, raw),
      trading: this.seen(haltRaw, pausedRaw),
    };
  }

  /** Reads the trading controls alone (the halt record and every pause record), in one transaction. */
  async readTrading(): Promise<TradingControlsSeen> {
    const { haltRaw, pausedRaw } = await readTradingRecords(this.redis, this.keys);
    return this.seen(haltRaw, pausedRaw);
  }

  /**
   * The records as the node goes by them: id and lift read loosely (`readControlRecord`, as the
   * change script writes them), so an unreadable record still holds; who and why only for the log.
   */
  private seen(haltRaw: string | null, pausedRaw: Record<string, string>): TradingControlsSeen {
    const k = this.keys;
    const record = (
      name: 'tradingHalt' | 'portfolioPause',
      where: string,
      raw: string,
    ): SeenRecord => {
      const { id, lifted } = readControlRecord(raw);
      const decoded = decodePayload(name, where, raw);
      return decoded.ok
        ? { id, lifted, by: decoded.value.by, reason: decoded.value.reason }
        : { id, lifted, by: null, reason: decoded.error.problem };
    };
    return {
      halt: haltRaw === null ? null : record('tradingHalt', k.tradingHalt(), haltRaw),
      pauses: new Map(
        Object.entries(pausedRaw).map(([id, raw]) => [
          id,
          record('portfolioPause', `${k.pausedPortfolios()}[${id}]`, raw),
        ]),
      ),
    };
  }

  /** Reads a portfolio's catalog entry: null when the catalog does not have it. */
  async readSpec(portfolioId: string): Promise<Decoded<PortfolioSpec> | null> {
    const key = this.keys.portfolioCatalog();
    const raw = await this.redis.hget(key, portfolioId);
    return raw === null ? null : decodePayload('portfolioSpec', `${key}[${portfolioId}]`, raw);
  }

  /**
   * Reads a portfolio's book written before the hash tags (0.1), for a portfolio that has no book
   * under its tagged name: null when there is none. The next write is under the new name.
   */
  async readLegacyBook(portfolioId: string): Promise<Decoded<PortfolioBook> | null> {
    const key = this.keys.legacyPortfolioBook(portfolioId);
    const raw = await this.redis.get(key);
    return raw === null ? null : decodePayload('portfolioBook', key, raw);
  }

  /**
   * Takes a portfolio's lease for `token` when it is free; returns the fence of the book it will
   * load (null when there is none). Jobs an earlier release's BullMQ worker held go back to the head.
   * With `freshStart`, a portfolio with no fence and no book is refused, its lease not taken,
   * while Redis has been up less than `afterMs`, or while it has been seen without a book for less
   * than that in acquires no more than `gapMs` apart (see ACQUIRE); without it, it never refuses.
   */
  async acquireLease(
    portfolioId: string,
    token: string,
    { freshStart }: { freshStart?: { afterMs: number; gapMs: number } } = {},
  ): Promise<AcquireOutcome> {
    const layout = portfolioQueueLayout(this.keys, portfolioId);
    const reply = (await ACQUIRE.run(
      this.redis,
      [
        this.keys.portfolioLease(portfolioId),
        this.keys.portfolioFence(portfolioId),
        layout.active,
        layout.wait,
        this.keys.portfolioBook(portfolioId),
        this.keys.portfolioNoBook(portfolioId),
        this.keys.portfolioClaims(portfolioId),
      ],
      [
        token,
        this.options.heartbeatTtlMs,
        layout.jobPrefix,
        freshStart?.afterMs ?? 0,
        freshStart?.gapMs ?? 0,
        markerTtlMs(freshStart?.afterMs ?? 0),
      ],
    )) as [number, string, string?, string?, string?, string?];
    if (reply[0] === 2)
      return { ok: false, redisUptimeMs: Number(reply[1]), noBookSeenMs: Number(reply[2]) };
    if (reply[0] !== 1) return { ok: false, holder: reply[1] };
    const fenceToken = reply[1];
    const rawBook = reply[4] ?? '';
    const bookKey = this.keys.portfolioBook(portfolioId);
    return {
      ok: true,
      loaded: fenceToken === '' ? null : { token: fenceToken, version: Number(reply[2] ?? 0) },
      book: rawBook === '' ? null : decodePayload('portfolioBook', bookKey, rawBook),
      reclaimedJobs: Number(reply[3] ?? 0),
      ...(reply[5] === undefined || reply[5] === '' ? {} : { claimOf: reply[5] }),
    };
  }

  /** Commits applied jobs with the book they led to (see COMMIT). Rejects when Redis fails. */
  async commit(request: CommitRequest): Promise<CommitOutcome> {
    const id = request.portfolioId;
    const k = this.keys;
    const layout = portfolioQueueLayout(k, id);
    const reply = (await COMMIT.run(
      this.redis,
      [
        k.portfolioLease(id),
        k.portfolioFence(id),
        k.portfolioBook(id),
        k.portfolioState(id),
        layout.wait,
        layout.failed,
        k.portfolioClaims(id),
      ],
      [
        request.lease.token,
        request.lease.loadedToken,
        request.lease.loadedVersion,
        request.lease.mayReassert ? '1' : '0',
        request.version,
        encodePayload('portfolioBook', request.book),
        encodePayload('portfolioState', request.state),
        this.options.portfolioStateTtlMs,
        layout.jobPrefix,
        Date.now(),
        KEEP_FAILED,
        request.release ? '1' : '0',
        request.applied.length,
        ...request.applied,
        request.failed.length,
        ...request.failed.flatMap((f) => [f.jobId, f.reason]),
      ],
    )) as [string, string?, string?];
    switch (reply[0]) {
      case 'ok':
        return { kind: 'ok', missing: Number(reply[1] ?? 0) };
      case 'done':
        return { kind: 'done' };
      case 'nolease':
        return { kind: 'nolease' };
      case 'lost':
        return { kind: 'lost', holder: reply[1] ?? '' };
      default:
        return { kind: 'fenced', fence: { token: reply[1] ?? '', version: Number(reply[2] ?? 0) } };
    }
  }

  /** Gives a lease back that `token` holds (a load that could not finish). */
  async giveBack(portfolioId: string, token: string): Promise<void> {
    await GIVE_BACK.run(this.redis, [this.keys.portfolioLease(portfolioId)], [token]);
  }

  /** Deletes the node's heartbeat and info, then its registry entry (clean stop). */
  async forgetNode(): Promise<void> {
    const { nodeId } = this.options;
    // Two slots on a cluster: the node's keys, then the registry. A stop between the two leaves
    // a registry entry without a heartbeat, which readers see as a lost node and the scheduler prunes.
    await this.redis.del(this.keys.heartbeat(nodeId), this.keys.nodeInfo(nodeId));
    await this.redis.zrem(this.keys.nodeRegistry(), nodeId);
  }
}
