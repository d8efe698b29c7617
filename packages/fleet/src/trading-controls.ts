import { randomUUID } from 'node:crypto';
import { connectionForKey, LuaScript, type RedisLike } from '@ginkgo-live/redis-client';
import {
  decodePayload,
  encodePayload,
  type PayloadProblem,
  type PortfolioPause,
  type StateKeys,
  type TradingHalt,
} from '@ginkgo-live/state-keys';
import { AUDIT_MAX_ENTRIES, AuditLog, encodeAuditEntry, type AuditInput } from './audit.ts';

/** Who acts: the key's name (or `ginkgo-ctl:<os user>`), the program, the client address if any. */
export interface TradingActor {
  name: string;
  /** `api-gateway` or `ginkgo-ctl`. */
  via: string;
  address: string | null;
}

/** What a change's write reached: how many replicas the master has and how many acknowledged. */
export interface Replication {
  /** Replicas connected to the master at the time (`INFO replication`). */
  replicas: number;
  /**
   * Replicas that acknowledged the write within the wait (`WAIT`); 0 with replicas means a
   * failover now could promote a replica without it.
   */
  acknowledged: number;
}

/** What became of a halt, unhalt, pause or resume. */
export type TradingOutcome =
  | {
      ok: true;
      /** The same request (by id) had made this change already: nothing was written again. */
      repeated: boolean;
      /** null when not known: the check failed (or a cluster client knew no master for the slot). */
      replication: Replication | null;
    }
  | {
      ok: false;
      /** `no_change`: already in the state asked for; `unknown_portfolio`: not in the catalog. */
      code: 'no_change' | 'unknown_portfolio';
      reason: string;
    };

/** The fleet's trading controls as they stand. */
export interface TradingReading {
  /**
   * The halt in force, or null when the fleet trades (no record, or the halt was lifted). A halt
   * record that cannot be decoded still halts.
   */
  halted: TradingHalt | null;
  /** Paused portfolios, by id (an unreadable entry still pauses: it reads as by `(unreadable)`). */
  paused: PortfolioPause[];
  /** Entries that could not be decoded (the halt's included), reported beside the rest. */
  problems: PayloadProblem[];
}

/** Who set a halt whose payload could not be decoded (the key exists, so the fleet is halted). */
export const UNREADABLE_BY = '(unreadable)';
/** The id of a halt or pause record that has none readable (its lift or resume names this id). */
export const UNREADABLE_ID = '(unreadable)';

/**
 * A halt or pause record read loosely, as nodes and the change script read it: its id (when a
 * string of 1-64 characters, else `UNREADABLE_ID`) and whether it is a lift (`state` lifted or
 * resumed). Anything else — an unreadable record included — holds: a record is only ever a lift
 * when it says so.
 */
export interface ControlRecord {
  id: string;
  lifted: boolean;
  /** The lift's request id, when it is a lift (to answer a repeated request). */
  liftRequestId: string | null;
}

export function readControlRecord(raw: string): ControlRecord {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = null;
  }
  const r = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  const id =
    typeof r['id'] === 'string' && r['id'].length >= 1 && r['id'].length <= 64
      ? r['id']
      : UNREADABLE_ID;
  const lifted = r['state'] === 'lifted' || r['state'] === 'resumed';
  const liftId = r['lift_request_id'] ?? r['resume_request_id'];
  return { id, lifted, liftRequestId: lifted && typeof liftId === 'string' ? liftId : null };
}

/**
 * One check and one change, with its audit entry, in one atomic step: a no-op (halting a halted
 * fleet, pausing a paused portfolio) changes nothing and says why, and a change is never written
 * without its entry. A script rather than WATCH/MULTI: the gateway shares one connection between
 * concurrent requests, and a WATCH on a shared connection is anybody's.
 * A lift is written as a record (state lifted/resumed, the lifted record's id kept), never a DEL:
 * a node that saw a halt lifts it only on reading its lift, so a key Redis lost lifts nothing.
 * Every change carries its request id: the same request run again (ioredis resends a command
 * whose reply was lost to a reconnect, after the caller was told it timed out) answers 'repeat'
 * and changes nothing, instead of a refusal for a change it made itself.
 * KEYS[1] trading_halt   KEYS[2] paused_portfolios   KEYS[3] audit
 * ARGV[1] op (halt | unhalt | pause | resume)   ARGV[2] portfolio id ('' for the fleet)
 * ARGV[3] record to write (halt, pause; '' otherwise)   ARGV[4] the accepted audit entry
 * ARGV[5] audit cap (XADD MAXLEN ~)   ARGV[6] portfolio_catalog, only read: Redis's ACL wants
 * read and write on every key a script declares, and the gateway's and ginkgo-ctl's users may
 * not write the catalog (packages/redis-client/src/acl.ts); it is in the {scheduler} slot with
 * the others, so a cluster still runs the script on one shard.
 * ARGV[7] request id   ARGV[8] now (ISO, the lift's time)   ARGV[9] who (the lift's by)
 * ARGV[10] the trading push channel (tradingChannel): a change, once written, `SPUBLISH`es
 * `<op>:<request id>` there, so every node re-reads the controls at once instead of at its next
 * safety read; a refusal or a repeat changed nothing and sends nothing. Every node, a pause too:
 * the portfolio's holder is known only by its lease, in the portfolio's own slot (out of this
 * script's reach on a cluster), and a pause is rare — one read per node per operator action. A
 * refused SPUBLISH is ignored: the change stands, and the nodes read it within a beat.
 * Returns 'ok', 'repeat', or the refusal: 'already halted', 'not halted', 'already paused',
 * 'not paused', 'unknown portfolio'.
 */
const CHANGE = new LuaScript(`
local op, pid, rid = ARGV[1], ARGV[2], ARGV[7]
local fleet = op == 'halt' or op == 'unhalt'
-- The loose reading of readControlRecord: an id (else '${UNREADABLE_ID}'), a lift only when it says so.
local raw
if fleet then raw = redis.call('GET', KEYS[1]) else raw = redis.call('HGET', KEYS[2], pid) end
local cur = nil
if raw then
  local ok, r = pcall(cjson.decode, raw)
  if not ok or type(r) ~= 'table' then r = {} end
  if type(r.id) ~= 'string' or #r.id < 1 or #r.id > 64 then r.id = '${UNREADABLE_ID}' end
  cur = r
end
local lifted = cur ~= nil and (cur.state == 'lifted' or cur.state == 'resumed')
local active = cur ~= nil and not lifted
-- Every check first, then the entry, then the change: Redis does not undo a script that fails
-- half way, and a change must never land without its entry.
if op == 'halt' or op == 'pause' then
  if cur ~= nil and cur.id == rid then return 'repeat' end
  if active then
    if fleet then return 'already halted' end
    return 'already paused'
  end
  if not fleet and redis.call('HEXISTS', ARGV[6], pid) == 0 then return 'unknown portfolio' end
else
  if lifted and (cur.lift_request_id == rid or cur.resume_request_id == rid) then return 'repeat' end
  if not active then
    if fleet then return 'not halted' end
    if cur == nil and redis.call('HEXISTS', ARGV[6], pid) == 0 then return 'unknown portfolio' end
    return 'not paused'
  end
end
local kind = redis.call('TYPE', KEYS[3]).ok
if kind ~= 'stream' and kind ~= 'none' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[3] .. ' is a ' .. kind .. ', not a stream')
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'entry', ARGV[4])
if op == 'halt' then redis.call('SET', KEYS[1], ARGV[3])
elseif op == 'pause' then redis.call('HSET', KEYS[2], pid, ARGV[3])
else
  -- The lift keeps what it lifts (decodable even when the record was not: the blanks filled).
  local function text(v, default) if type(v) == 'string' then return v end return default end
  cur['_v'] = 1
  local since = text(cur.halted_at or cur.paused_at, '1970-01-01T00:00:00.000Z')
  local by = text(cur.by, '${UNREADABLE_BY}')
  if type(cur.reason) ~= 'string' then cur.reason = cjson.null end
  cur.by = by
  if fleet then
    cur.state = 'lifted'; cur.halted_at = since
    cur.lifted_at = ARGV[8]; cur.lifted_by = ARGV[9]; cur.lift_request_id = rid
    redis.call('SET', KEYS[1], cjson.encode(cur))
  else
    cur.state = 'resumed'; cur.portfolio_id = pid; cur.paused_at = since
    cur.resumed_at = ARGV[8]; cur.resumed_by = ARGV[9]; cur.resume_request_id = rid
    redis.call('HSET', KEYS[2], pid, cjson.encode(cur))
  end
end
-- pcall: the kill switch must not fail for its push (an ACL from before the channels, a Redis
-- without SPUBLISH); the nodes find it at their safety read.
redis.pcall('SPUBLISH', ARGV[10], op .. ':' .. rid)
return 'ok'
`);

type Op = 'halt' | 'unhalt' | 'pause' | 'resume';

/** Options of one change. */
export interface ChangeOptions {
  /**
   * The request's id (a UUID, or 1-64 of [A-Za-z0-9_.:-]): the halt's or pause's id, and what makes
   * a repeat of the same request answer ok. Random when not given.
   */
  requestId?: string;
}

/**
 * What a caller says of a change whose reply never came (a timeout, a dropped connection): Redis
 * may have run it (it runs the bytes it received, and ioredis resends after a reconnect), so
 * neither "done" nor "failed" is true. Sent again with the same request id, it answers ok.
 */
export const TRADING_OUTCOME_UNKNOWN = 'Outcome unknown — check GET /api/fleet/trading';

/** The line a caller shows when the master has replicas and none acknowledged the change. */
export function replicationWarning(replication: Replication | null): string | null {
  if (replication === null || replication.replicas === 0 || replication.acknowledged > 0)
    return null;
  return `No replica acknowledged the change (${replication.replicas} connected): a failover now could lose it — check GET /api/fleet/trading`;
}

/** How long a change waits for a replica to acknowledge it (`WAIT 1 <ms>`), by default. */
export const REPLICA_WAIT_MS = 500;

/**
 * The trading desk's controls: the fleet-wide halt (`{scheduler}:trading_halt`) and per-portfolio
 * pauses (`{scheduler}:paused_portfolios`), written directly by the gateway and `ginkgo-ctl` — not
 * through the scheduler's control queue, so a kill switch works with every scheduler dead. Each
 * change is pushed to every node (`tradingChannel`), which re-reads both at once (and every beat
 * anyway) and stops applying events while either names it.
 */
export class TradingControls {
  private readonly audit: AuditLog;

  constructor(
    private readonly redis: RedisLike,
    private readonly keys: StateKeys,
    private readonly replicaWaitMs = REPLICA_WAIT_MS,
  ) {
    this.audit = new AuditLog(redis, keys);
  }

  /** Halts the whole fleet; refused (nothing changes) when it is halted already. */
  async halt(
    by: TradingActor,
    reason: string | null,
    options: ChangeOptions = {},
  ): Promise<TradingOutcome> {
    const id = requestIdOf(options);
    const halt: TradingHalt = {
      _v: 1,
      id,
      state: 'halted',
      halted_at: new Date().toISOString(),
      by: by.name,
      reason,
      lifted_at: null,
      lifted_by: null,
      lift_request_id: null,
    };
    return this.change('halt', null, encodePayload('tradingHalt', halt), by, reason, id);
  }

  /** Lifts the halt; refused when the fleet is not halted. */
  async unhalt(by: TradingActor, options: ChangeOptions = {}): Promise<TradingOutcome> {
    return this.change('unhalt', null, '', by, null, requestIdOf(options));
  }

  /** Pauses one catalogued portfolio; refused when it is paused already or not in the catalog. */
  async pause(
    portfolioId: string,
    by: TradingActor,
    reason: string | null,
    options: ChangeOptions = {},
  ): Promise<TradingOutcome> {
    const id = requestIdOf(options);
    const pause: PortfolioPause = {
      _v: 1,
      id,
      state: 'paused',
      portfolio_id: portfolioId,
      paused_at: new Date().toISOString(),
      by: by.name,
      reason,
      resumed_at: null,
      resumed_by: null,
      resume_request_id: null,
    };
    return this.change(
      'pause',
      portfolioId,
      encodePayload('portfolioPause', pause),
      by,
      reason,
      id,
    );
  }

  /** Resumes a paused portfolio; refused when it is not paused. */
  async resume(
    portfolioId: string,
    by: TradingActor,
    options: ChangeOptions = {},
  ): Promise<TradingOutcome> {
    return this.change('resume', portfolioId, '', by, null, requestIdOf(options));
  }

  /** The halt and the pauses, in one round trip. */
  async read(): Promise<TradingReading> {
    const { haltRaw, pausedRaw } = await readTradingRecords(this.redis, this.keys);
    return decodeTrading(this.keys, haltRaw, pausedRaw);
  }

  private async change(
    op: Op,
    portfolioId: string | null,
    payload: string,
    by: TradingActor,
    reason: string | null,
    requestId: string,
  ): Promise<TradingOutcome> {
    const k = this.keys;
    const entry = (outcome: 'accepted' | 'refused', why: string | null): AuditInput => ({
      actor: by.name,
      via: by.via,
      action: op,
      target: { node_id: null, portfolio_id: portfolioId, target_node_id: null },
      outcome,
      reason: why,
      request_id: requestId,
      address: by.address,
    });
    const reply = (await CHANGE.run(
      this.redis,
      [k.tradingHalt(), k.pausedPortfolios(), k.auditLog()],
      [
        op,
        portfolioId ?? '',
        payload,
        encodeAuditEntry(entry('accepted', reason)),
        AUDIT_MAX_ENTRIES,
        k.portfolioCatalog(),
        requestId,
        new Date().toISOString(),
        by.name,
        k.tradingChannel(),
      ],
    )) as string;
    if (reply === 'ok' || reply === 'repeat') {
      // The change stands whatever the check says: a failed check is no failed change.
      const replication = await this.replication().catch(() => null);
      return { ok: true, repeated: reply === 'repeat', replication };
    }
    const refusal =
      reply === 'unknown portfolio' ? `unknown portfolio ${portfolioId ?? ''}` : reply;
    // Nothing changed, so nothing to keep atomic with: the refusal is recorded on its own.
    await this.audit.append(entry('refused', refusal));
    return {
      ok: false,
      code: reply === 'unknown portfolio' ? 'unknown_portfolio' : 'no_change',
      reason: refusal,
    };
  }

  /**
   * Waits (at most `replicaWaitMs`) for a replica to acknowledge the change when the master has
   * replicas: a failover to a replica that missed it would lose the halt (nodes that saw it keep
   * it, new ones would not). `WAIT` covers every write its connection sent before it: on a Redis
   * Cluster, the client's connection to the master of the `{scheduler}` slot, which took the change
   * (a random node's `INFO` and `WAIT` would say nothing about it).
   */
  private async replication(): Promise<Replication | null> {
    const master = connectionForKey(this.redis, this.keys.tradingHalt());
    if (master === undefined) return null;
    const info = await master.info('replication');
    const replicas = Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0);
    if (replicas === 0) return { replicas, acknowledged: 0 };
    const acknowledged = await master.wait(1, this.replicaWaitMs);
    return { replicas, acknowledged };
  }
}

/** ASCII only: the script measures an id in bytes, the nodes in characters, and they must agree. */
const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

function requestIdOf(options: ChangeOptions): string {
  const id = options.requestId ?? randomUUID();
  if (!REQUEST_ID.test(id))
    throw new Error(
      `requestId must be 1-64 characters of [A-Za-z0-9_.:-], got "${id.slice(0, 80)}"`,
    );
  return id;
}

/**
 * The halt record and every pause record as stored, in one transaction (both keys in the
 * `{scheduler}` slot), for readers that decode them their own way (the nodes go by id and lift).
 */
export async function readTradingRecords(
  redis: RedisLike,
  keys: StateKeys,
): Promise<{ haltRaw: string | null; pausedRaw: Record<string, string> }> {
  const replies = await redis
    .multi()
    .get(keys.tradingHalt())
    .hgetall(keys.pausedPortfolios())
    .exec();
  if (replies === null) throw new Error('Transaction aborted');
  for (const [err] of replies) if (err) throw err;
  const [haltRaw, pausedRaw] = replies.map(([, v]) => v) as [string | null, Record<string, string>];
  return { haltRaw, pausedRaw };
}

/**
 * The halt and pauses from their raw values (for readers that fetch them in their own round trip).
 * A halt that cannot be decoded is still a halt, unless it says it is a lift: that is how the
 * nodes read it (`readControlRecord`). Lifts and resumes are not listed.
 */
export function decodeTrading(
  keys: StateKeys,
  haltRaw: string | null,
  pausedRaw: Record<string, string>,
): TradingReading {
  const problems: PayloadProblem[] = [];
  let halted: TradingHalt | null = null;
  if (haltRaw !== null) {
    const decoded = decodePayload('tradingHalt', keys.tradingHalt(), haltRaw);
    if (decoded.ok) halted = decoded.value.state === 'halted' ? decoded.value : null;
    else {
      problems.push(decoded.error);
      const record = readControlRecord(haltRaw);
      if (!record.lifted) {
        halted = {
          _v: 1,
          id: record.id,
          state: 'halted',
          halted_at: new Date(0).toISOString(),
          by: UNREADABLE_BY,
          reason: decoded.error.problem.slice(0, 500),
          lifted_at: null,
          lifted_by: null,
          lift_request_id: null,
        };
      }
    }
  }
  const paused: PortfolioPause[] = [];
  for (const [id, raw] of Object.entries(pausedRaw).sort(([a], [b]) => a.localeCompare(b))) {
    const decoded = decodePayload('portfolioPause', `${keys.pausedPortfolios()}[${id}]`, raw);
    if (decoded.ok) {
      if (decoded.value.state === 'paused') paused.push(decoded.value);
    } else {
      // Paused all the same, unless it says it was resumed: nodes read it so.
      problems.push(decoded.error);
      const record = readControlRecord(raw);
      if (!record.lifted) paused.push(unreadablePause(id, record.id, decoded.error.problem));
    }
  }
  return { halted, paused, problems };
}

/**
 * What `{scheduler}:trading_halt` holds: no record (never halted — or Redis lost it), a halt, or
 * a lift. Only a lift says the halt is over; a missing key says nothing.
 */
export function haltRecordState(haltRaw: string | null): 'missing' | 'halted' | 'lifted' {
  if (haltRaw === null) return 'missing';
  return readControlRecord(haltRaw).lifted ? 'lifted' : 'halted';
}

function unreadablePause(portfolioId: string, id: string, problem: string): PortfolioPause {
  return {
    _v: 1,
    id,
    state: 'paused',
    portfolio_id: portfolioId,
    paused_at: new Date(0).toISOString(),
    by: UNREADABLE_BY,
    reason: problem.slice(0, 500),
    resumed_at: null,
    resumed_by: null,
    resume_request_id: null,
  };
}
