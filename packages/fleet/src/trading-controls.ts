import { LuaScript, type RedisLike } from '@ginkgo-live/redis-client';
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

/** What became of a halt, unhalt, pause or resume. */
export type TradingOutcome =
  | { ok: true }
  | {
      ok: false;
      /** `no_change`: already in the state asked for; `unknown_portfolio`: not in the catalog. */
      code: 'no_change' | 'unknown_portfolio';
      reason: string;
    };

/** The fleet's trading controls as they stand. */
export interface TradingReading {
  /** The halt, or null when the fleet trades. A halt key that cannot be decoded still halts. */
  halted: TradingHalt | null;
  /** Paused portfolios, by id (an unreadable entry still pauses: it reads as by `(unreadable)`). */
  paused: PortfolioPause[];
  /** Entries that could not be decoded (the halt's included), reported beside the rest. */
  problems: PayloadProblem[];
}

/** Who set a halt whose payload could not be decoded (the key exists, so the fleet is halted). */
export const UNREADABLE_BY = '(unreadable)';

/**
 * One check and one change, with its audit entry, in one atomic step: a no-op (halting a halted
 * fleet, pausing a paused portfolio) changes nothing and says why, and a change is never written
 * without its entry. A script rather than WATCH/MULTI: the gateway shares one connection between
 * concurrent requests, and a WATCH on a shared connection is anybody's.
 * KEYS[1] trading_halt   KEYS[2] paused_portfolios   KEYS[3] audit
 * ARGV[1] op (halt | unhalt | pause | resume)   ARGV[2] portfolio id ('' for the fleet)
 * ARGV[3] payload to write (halt, pause; '' otherwise)   ARGV[4] the accepted audit entry
 * ARGV[5] audit cap (XADD MAXLEN ~)   ARGV[6] portfolio_catalog, only read: Redis's ACL wants
 * read and write on every key a script declares, and the gateway's and ginkgo-ctl's users may
 * not write the catalog (packages/redis-client/src/acl.ts); it is in the {scheduler} slot with
 * the others, so a cluster still runs the script on one shard.
 * Returns 'ok', or the refusal: 'already halted', 'not halted', 'already paused', 'not paused',
 * 'unknown portfolio'.
 */
const CHANGE = new LuaScript(`
local op, id = ARGV[1], ARGV[2]
-- Every check first (they also fail on a key of the wrong type), then the entry, then the change:
-- Redis does not undo a script that fails half way, and a change must never land without its entry.
if op == 'halt' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 'already halted' end
elseif op == 'unhalt' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 'not halted' end
elseif op == 'pause' then
  if redis.call('HEXISTS', KEYS[2], id) == 1 then return 'already paused' end
  if redis.call('HEXISTS', ARGV[6], id) == 0 then return 'unknown portfolio' end
elseif redis.call('HEXISTS', KEYS[2], id) == 0 then
  -- A paused portfolio removed from the catalog since can still be resumed (its entry goes).
  if redis.call('HEXISTS', ARGV[6], id) == 0 then return 'unknown portfolio' end
  return 'not paused'
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'entry', ARGV[4])
if op == 'halt' then redis.call('SET', KEYS[1], ARGV[3])
elseif op == 'unhalt' then redis.call('DEL', KEYS[1])
elseif op == 'pause' then redis.call('HSET', KEYS[2], id, ARGV[3])
else redis.call('HDEL', KEYS[2], id) end
return 'ok'
`);

type Op = 'halt' | 'unhalt' | 'pause' | 'resume';

/**
 * The trading desk's controls: the fleet-wide halt (`{scheduler}:trading_halt`) and per-portfolio
 * pauses (`{scheduler}:paused_portfolios`), written directly by the gateway and `ginkgo-ctl` — not
 * through the scheduler's control queue, so a kill switch works with every scheduler dead. Nodes
 * read both at every assignment poll and stop applying events while either names them.
 */
export class TradingControls {
  private readonly audit: AuditLog;

  constructor(
    private readonly redis: RedisLike,
    private readonly keys: StateKeys,
  ) {
    this.audit = new AuditLog(redis, keys);
  }

  /** Halts the whole fleet; refused (nothing changes) when it is halted already. */
  halt(by: TradingActor, reason: string | null): Promise<TradingOutcome> {
    const halt: TradingHalt = {
      _v: 1,
      halted_at: new Date().toISOString(),
      by: by.name,
      reason,
    };
    return this.change('halt', null, encodePayload('tradingHalt', halt), by, reason);
  }

  /** Lifts the halt; refused when the fleet is not halted. */
  unhalt(by: TradingActor): Promise<TradingOutcome> {
    return this.change('unhalt', null, '', by, null);
  }

  /** Pauses one catalogued portfolio; refused when it is paused already or not in the catalog. */
  pause(portfolioId: string, by: TradingActor, reason: string | null): Promise<TradingOutcome> {
    const pause: PortfolioPause = {
      _v: 1,
      portfolio_id: portfolioId,
      paused_at: new Date().toISOString(),
      by: by.name,
      reason,
    };
    return this.change('pause', portfolioId, encodePayload('portfolioPause', pause), by, reason);
  }

  /** Resumes a paused portfolio; refused when it is not paused. */
  resume(portfolioId: string, by: TradingActor): Promise<TradingOutcome> {
    return this.change('resume', portfolioId, '', by, null);
  }

  /** The halt and the pauses, in one round trip. */
  async read(): Promise<TradingReading> {
    const k = this.keys;
    const replies = await this.redis
      .multi()
      .get(k.tradingHalt())
      .hgetall(k.pausedPortfolios())
      .exec();
    if (replies === null) throw new Error('Transaction aborted');
    for (const [err] of replies) if (err) throw err;
    const [haltRaw, pausedRaw] = replies.map(([, v]) => v) as [
      string | null,
      Record<string, string>,
    ];
    return decodeTrading(k, haltRaw, pausedRaw);
  }

  private async change(
    op: Op,
    portfolioId: string | null,
    payload: string,
    by: TradingActor,
    reason: string | null,
  ): Promise<TradingOutcome> {
    const k = this.keys;
    const entry = (outcome: 'accepted' | 'refused', why: string | null): AuditInput => ({
      actor: by.name,
      via: by.via,
      action: op,
      target: { node_id: null, portfolio_id: portfolioId, target_node_id: null },
      outcome,
      reason: why,
      request_id: null,
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
      ],
    )) as string;
    if (reply === 'ok') return { ok: true };
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
}

/**
 * The halt and pauses from their raw values (for readers that fetch them in their own round trip).
 * A halt that cannot be decoded is still a halt: its key exists, and that is what stops the nodes.
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
    if (decoded.ok) halted = decoded.value;
    else {
      problems.push(decoded.error);
      halted = {
        _v: 1,
        halted_at: new Date(0).toISOString(),
        by: UNREADABLE_BY,
        reason: decoded.error.problem.slice(0, 500),
      };
    }
  }
  const paused: PortfolioPause[] = [];
  for (const [id, raw] of Object.entries(pausedRaw).sort(([a], [b]) => a.localeCompare(b))) {
    const decoded = decodePayload('portfolioPause', `${keys.pausedPortfolios()}[${id}]`, raw);
    if (decoded.ok) paused.push(decoded.value);
    else {
      // Paused all the same: nodes go by the entry's presence.
      problems.push(decoded.error);
      paused.push(unreadablePause(id, decoded.error.problem));
    }
  }
  return { halted, paused, problems };
}

function unreadablePause(portfolioId: string, problem: string): PortfolioPause {
  return {
    _v: 1,
    portfolio_id: portfolioId,
    paused_at: new Date(0).toISOString(),
    by: UNREADABLE_BY,
    reason: problem.slice(0, 500),
  };
}
