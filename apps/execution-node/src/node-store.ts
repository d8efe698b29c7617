import { bySlot, LuaScript, type RedisLike } from '@ginkgo-live/redis-client';
import {
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

/**
 * The heartbeat: one round trip that refreshes everything the node owns in Redis. On a Redis
 * Cluster a script may only touch one hash slot, so the beat is run once per slot its keys fall in
 * (the node's own keys, the registry, each portfolio's); on one Redis it is one call with all.
 * KEYS: heartbeat:node:{id} and execution_node:{id}:info when ARGV[6] = 1; then the registry when
 * ARGV[9] = 1; then n leases of the portfolios; then their n state keys.
 * ARGV[1] node id   ARGV[2] now (ms)   ARGV[3] heartbeat and lease TTL (ms)   ARGV[4] info TTL (ms)
 * ARGV[5] state TTL (ms)   ARGV[6] 1 when this call writes the node's own keys
 * ARGV[7] heartbeat payload   ARGV[8] info payload   ARGV[9] 1 when it writes the registry   ARGV[10] n
 * ARGV[10+i] state payload of portfolio i   ARGV[10+n+i] 1 when portfolio i must hold its lease
 * Returns the indices i of portfolios whose lease another node holds: they must stop here.
 * A lease that vanished (Redis restarted empty) is taken back.
 */
const BEAT = new LuaScript(`
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
local lost = {}
for i = 1, n do
  local mayWrite = true
  if ARGV[10 + n + i] == '1' then
    local lease = KEYS[k + i]
    local holder = redis.call('GET', lease)
    if holder == ARGV[1] then
      redis.call('PEXPIRE', lease, ARGV[3])
    elseif not holder then
      redis.call('SET', lease, ARGV[1], 'PX', ARGV[3])
    else
      mayWrite = false
      table.insert(lost, i)
    end
  end
  if mayWrite then
    redis.call('SET', KEYS[k + n + i], ARGV[10 + i], 'PX', ARGV[5])
  end
end
return lost
`);

/**
 * Writes states and books of portfolios this node holds the lease of.
 * KEYS[3i-2] lease, KEYS[3i-1] state, KEYS[3i] book of portfolio i, i = 1..n
 * ARGV[1] node id   ARGV[2] state TTL (ms)   ARGV[2+2i-1] state payload   ARGV[2+2i] book payload
 * Returns the indices of portfolios whose lease this node no longer holds (nothing written).
 */
const FLUSH = new LuaScript(`
local lost = {}
for i = 1, #KEYS / 3 do
  if redis.call('GET', KEYS[3 * i - 2]) == ARGV[1] then
    redis.call('SET', KEYS[3 * i - 1], ARGV[2 + 2 * i - 1], 'PX', ARGV[2])
    redis.call('SET', KEYS[3 * i], ARGV[2 + 2 * i])
  else
    table.insert(lost, i)
  end
end
return lost
`);

/**
 * Releases a portfolio: final state and book written, lease deleted — only while this node holds
 * the lease, so a node that lost it cannot overwrite the new owner's data.
 * KEYS[1] lease  KEYS[2] state  KEYS[3] book   ARGV[1] node id  ARGV[2] state payload
 * ARGV[3] state TTL (ms)  ARGV[4] book payload.   Returns 1 when released, 0 when not held.
 */
const RELEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[3], ARGV[4])
redis.call('DEL', KEYS[1])
return 1
`);

export interface NodeStoreOptions {
  redis: RedisLike;
  keys: StateKeys;
  nodeId: string;
  heartbeatTtlMs: number;
  nodeInfoTtlMs: number;
  portfolioStateTtlMs: number;
}

/** What one beat writes for one portfolio. */
export interface BeatPortfolio {
  portfolioId: string;
  state: PortfolioState;
  /** The portfolio runs here, so its lease must be held (renewed or taken back). */
  holdsLease: boolean;
}

/** What a flush writes for one portfolio. */
export interface FlushPortfolio {
  portfolioId: string;
  state: PortfolioState;
  book: PortfolioBook;
}

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

  /** One beat. Returns the portfolios whose lease another node holds. */
  async beat(
    heartbeat: string,
    info: NodeInfo,
    portfolios: readonly BeatPortfolio[],
  ): Promise<string[]> {
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
    const now = Date.now();
    const lostPerGroup = await Promise.all(
      bySlot(this.redis, parts, keyOf).map(async (group) => {
        const writesNode = group.some((p) => p.kind === 'node');
        const writesRegistry = group.some((p) => p.kind === 'registry');
        const mine = group.flatMap((p) => (p.kind === 'portfolio' ? [p.portfolio] : []));
        const keys = [
          ...(writesNode ? [k.heartbeat(nodeId), k.nodeInfo(nodeId)] : []),
          ...(writesRegistry ? [k.nodeRegistry()] : []),
          ...mine.map((p) => k.portfolioLease(p.portfolioId)),
          ...mine.map((p) => k.portfolioState(p.portfolioId)),
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
          ...mine.map((p) => encodePayload('portfolioState', p.state)),
          ...mine.map((p) => (p.holdsLease ? '1' : '0')),
        ];
        const lost = (await BEAT.run(this.redis, keys, args)) as number[];
        return lost.map((i) => mine[i - 1]?.portfolioId ?? '');
      }),
    );
    return lostPerGroup.flat();
  }

  /** Writes changed states and books. Returns the portfolios whose lease is gone. */
  async flush(portfolios: readonly FlushPortfolio[]): Promise<string[]> {
    if (portfolios.length === 0) return [];
    const k = this.keys;
    const lostPerGroup = await Promise.all(
      bySlot(this.redis, portfolios, (p) => k.portfolioLease(p.portfolioId)).map(async (group) => {
        const keys = group.flatMap((p) => [
          k.portfolioLease(p.portfolioId),
          k.portfolioState(p.portfolioId),
          k.portfolioBook(p.portfolioId),
        ]);
        const args = [
          this.options.nodeId,
          this.options.portfolioStateTtlMs,
          ...group.flatMap((p) => [
            encodePayload('portfolioState', p.state),
            encodePayload('portfolioBook', p.book),
          ]),
        ];
        const lost = (await FLUSH.run(this.redis, keys, args)) as number[];
        return lost.map((i) => group[i - 1]?.portfolioId ?? '');
      }),
    );
    return lostPerGroup.flat();
  }

  /** Reads this node's assignment: null when none was ever written. */
  async readAssignment(): Promise<Decoded<NodeAssignment> | null> {
    const key = this.keys.nodeAssignment(this.options.nodeId);
    const raw = await this.redis.get(key);
    return raw === null ? null : decodePayload('nodeAssignment', key, raw);
  }

  /** Reads a portfolio's catalog entry: null when the catalog does not have it. */
  async readSpec(portfolioId: string): Promise<Decoded<PortfolioSpec> | null> {
    const key = this.keys.portfolioCatalog();
    const raw = await this.redis.hget(key, portfolioId);
    return raw === null ? null : decodePayload('portfolioSpec', `${key}[${portfolioId}]`, raw);
  }

  /**
   * Reads a portfolio's book: null when it never ran anywhere. A book written before the hash
   * tags (0.1) is read from its old name when the new one is missing; the next write is under the
   * new name.
   */
  async readBook(portfolioId: string): Promise<Decoded<PortfolioBook> | null> {
    for (const key of [
      this.keys.portfolioBook(portfolioId),
      this.keys.legacyPortfolioBook(portfolioId),
    ]) {
      const raw = await this.redis.get(key);
      if (raw !== null) return decodePayload('portfolioBook', key, raw);
    }
    return null;
  }

  /** Takes a portfolio's lease if it is free or already ours. */
  async acquireLease(portfolioId: string): Promise<boolean> {
    const key = this.keys.portfolioLease(portfolioId);
    const { nodeId, heartbeatTtlMs } = this.options;
    if ((await this.redis.set(key, nodeId, 'PX', heartbeatTtlMs, 'NX')) === 'OK') return true;
    return (await this.redis.get(key)) === nodeId;
  }

  /** Writes the final state and book and releases the lease, if this node still holds it. */
  async release(state: PortfolioState, book: PortfolioBook): Promise<boolean> {
    const id = state.portfolio_id;
    const released = await RELEASE.run(
      this.redis,
      [this.keys.portfolioLease(id), this.keys.portfolioState(id), this.keys.portfolioBook(id)],
      [
        this.options.nodeId,
        encodePayload('portfolioState', state),
        this.options.portfolioStateTtlMs,
        encodePayload('portfolioBook', book),
      ],
    );
    return released === 1;
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
