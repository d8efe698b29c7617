import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import {
  FAST,
  freePort,
  logEntries,
  type RedisServer,
  StackFixture,
  tick,
  waitFor,
  type ManagedProcess,
} from '@ginkgo-live/testing';

/**
 * A TCP relay to Redis that can cut its clients off, as a network partition does to one node while
 * Redis stays up for the others: cut, every connection through it stops answering (nothing is
 * closed, so the client only sees its commands time out) and new ones are accepted and never
 * answered; healed, those dead connections are closed (the client dials again) and new ones reach
 * Redis. Without iptables in the test environment, this is how one node alone is partitioned.
 */
class Partition {
  private isCut = false;
  private readonly links = new Map<Socket, Socket | null>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<Partition> {
    const port = await freePort('127.0.0.1');
    const server = createServer();
    const partition = new Partition(server, port);
    server.on('connection', (client) => partition.accept(client, target));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return partition;
  }

  private accept(client: Socket, target: { host: string; port: number }): void {
    client.on('error', () => undefined);
    client.on('close', () => {
      this.links.get(client)?.destroy();
      this.links.delete(client);
    });
    if (this.isCut) {
      this.links.set(client, null);
      client.resume();
      return;
    }
    const upstream = connect(target.port, target.host);
    upstream.on('error', () => undefined);
    upstream.on('close', () => {
      // Redis went away (restarted): so does this client's connection — unless it is cut off.
      if (this.links.get(client) === upstream) client.destroy();
    });
    this.links.set(client, upstream);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Every client stops hearing from Redis (and Redis from it), without a close. */
  cut(): void {
    this.isCut = true;
    for (const [client, upstream] of this.links) {
      if (upstream === null) continue;
      this.links.set(client, null);
      client.unpipe(upstream);
      upstream.unpipe(client);
      upstream.destroy();
      client.resume();
    }
  }

  /** Dead connections are closed (their clients dial again), new ones reach Redis. */
  heal(): void {
    this.isCut = false;
    for (const [client, upstream] of this.links) if (upstream === null) client.destroy();
  }

  async close(): Promise<void> {
    for (const client of this.links.keys()) client.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let fx: StackFixture;
let server: RedisServer;

beforeEach(async () => {
  fx = await StackFixture.start();
  server = fx.server;
});
afterEach(() => fx.close());

function producer(): PortfolioQueues {
  return fx.track(new PortfolioQueues({ connection: fx.redis, keys: fx.keys }));
}

async function add(queues: PortfolioQueues, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    const result = await queues.add('p1', tick(i));
    if (!result.ok) throw new Error(`refused: ${result.reason}`);
  }
}

/** The book Redis holds now, as committed: its processed count and fence token ('' when none). */
async function committed(): Promise<{ processed: number; token: string } | null> {
  const book = await fx.book('p1');
  if (book === null) return null;
  return {
    processed: book.processed_count,
    token: (await fx.redis.hget(fx.keys.portfolioFence('p1'), 'token')) ?? '',
  };
}

const CLAIM_LINE =
  'Portfolio lease and book gone from Redis after this node lost its lease; its book waits in Redis as a claim (the highest version is loaded after a fresh-start window)';

function loadedToken(node: ManagedProcess): string {
  const loaded = logEntries(node, 'Portfolio loaded');
  return String(loaded[loaded.length - 1]?.['token']);
}

describe('a holder cut off from Redis alone past its lease, then Redis restarted empty', () => {
  it('does not put its old book back over the newer one of the node that took the portfolio over: B keeps v+k, A drops', async () => {
    // A lease TTL long enough that B, frozen below while A comes back, keeps its lease current.
    const timings = { HEARTBEAT_TTL_MS: '6000', STOP_TIMEOUT_MS: '1500' };
    const partition = await Partition.start({ host: server.host, port: server.port });
    fx.track(partition);
    await fx.addToCatalog('p1');
    await fx.seedBook('p1');
    const a = await fx.startNode('a', { ...timings, REDIS_PORT: String(partition.port) });
    const b = await fx.startNode('b', timings);
    await fx.assign('a', ['p1']);
    const queues = producer();
    await add(queues, 0, 5);
    await waitFor(async () => (await committed())?.processed === 5, {
      timeoutMs: 10_000,
      description: 'a commits 5 events',
    });

    // A alone is cut off; its lease expires; the portfolio moves to B, which applies 10 more.
    partition.cut();
    await a.waitForLine('Heartbeat failed', 10_000);
    await waitFor(async () => (await fx.redis.exists(fx.keys.portfolioLease('p1'))) === 0, {
      timeoutMs: 10_000,
      description: "a's lease expired in Redis",
    });
    await fx.assign('a', []);
    await fx.assign('b', ['p1']);
    await add(queues, 5, 15);
    await waitFor(async () => (await committed())?.processed === 15, {
      timeoutMs: 10_000,
      description: 'b commits 10 more events',
    });
    const bToken = loadedToken(b);
    expect((await committed())?.token).toBe(bToken);

    // Redis restarts empty and A's partition heals while B is frozen (under its lease TTL): A's beat
    // comes first, deterministically. Before the fix it took the lease back with its 5-event book.
    b.signal('SIGSTOP');
    try {
      await server.restart({ keepData: false });
      partition.heal();
      await waitFor(
        () =>
          logEntries(a, CLAIM_LINE).length > 0 ||
          logEntries(a, 'Portfolio book missing or its lease had vanished; writing the book again')
            .length > 0,
        { timeoutMs: 5_000, description: "a's first beat on the restarted Redis" },
      );
    } finally {
      b.signal('SIGCONT');
    }
    // At b's next beat, its lease current (were b frozen past it on a stalled machine, b would
    // claim too, and its higher claim would win after the window: the same end).
    await waitFor(async () => (await committed())?.token === bToken, {
      timeoutMs: 15_000,
      description: "b's book written back",
    });
    await a.waitForLine('Portfolio lease held by another process; stopping it here', 10_000);
    expect(await committed()).toEqual({ processed: 15, token: bToken });
    expect(await fx.redis.exists(fx.keys.portfolioClaims('p1'))).toBe(0);
    expect(logEntries(b, 'Portfolio lease held by another process; stopping it here')).toEqual([]);

    // B goes on from 15, in order.
    await add(queues, 15, 20);
    await waitFor(async () => (await fx.state('p1'))?.processed_count === 20, {
      timeoutMs: 5_000,
      description: 'b applies what arrives after the restart',
    });
    expect((await fx.state('p1'))?.node_id).toBe('b');
  }, 90_000);
});

describe('a holder whose lease expired while Redis was away for everyone, back empty', () => {
  /** A runs p1 with 5 events committed; Redis is killed past A's lease, and restarts empty. */
  async function claimantAfterEmptyRestart(): Promise<{
    a: ManagedProcess;
    claimedAt: number;
    version: number;
  }> {
    await fx.addToCatalog('p1');
    await fx.seedBook('p1');
    const a = await fx.startNode('a');
    await fx.assign('a', ['p1']);
    await add(producer(), 0, 5);
    await waitFor(async () => (await committed())?.processed === 5, { timeoutMs: 10_000 });
    const version = Number(await fx.redis.hget(fx.keys.portfolioFence('p1'), 'version'));
    await server.kill();
    await a.waitForLine('Heartbeat failed', 5_000);
    // Past the lease TTL by A's own clock, with room for a loaded machine.
    await new Promise((resolve) => setTimeout(resolve, Number(FAST.HEARTBEAT_TTL_MS) + 500));
    await server.restart({ keepData: false });
    await a.waitForLine(CLAIM_LINE, 5_000);
    const claimedAt = Date.now();
    expect(await fx.redis.hget(fx.keys.portfolioClaims('p1'), `v:${loadedToken(a)}`)).toBe(
      String(version),
    );
    return { a, claimedAt, version };
  }

  /** B, assigned p1 on the restarted Redis, loads A's claim: 5 events, not a fresh start. */
  async function assignedNodeLoadsTheClaim(a: ManagedProcess, version: number): Promise<void> {
    const aToken = loadedToken(a);
    await fx.addToCatalog('p1');
    const b = await fx.startNode('b');
    await fx.assign('b', ['p1']);
    // Listed as loading by b meanwhile: its state says b before it runs.
    await waitFor(() => logEntries(b, 'Portfolio loaded').length > 0, {
      timeoutMs: 20_000,
      description: 'b loads p1 after the window',
    });
    await waitFor(async () => (await fx.state('p1'))?.status === 'running', { timeoutMs: 5_000 });
    expect(logEntries(b, 'Portfolio loaded')).toEqual([
      expect.objectContaining({ portfolioId: 'p1', resumed: true, version, claimOf: aToken }),
    ]);
    expect((await fx.state('p1'))?.processed_count).toBe(5);
    await add(producer(), 5, 8);
    await waitFor(async () => (await fx.state('p1'))?.processed_count === 8, { timeoutMs: 5_000 });
  }

  it('alone, it waits a fresh-start window, then puts its book back and goes on', async () => {
    const { a, claimedAt } = await claimantAfterEmptyRestart();
    await waitFor(async () => (await committed())?.processed === 5, {
      timeoutMs: 10_000,
      description: "a's book back",
    });
    const pausedMs = Date.now() - claimedAt;
    const windowMs = Number(FAST.HEARTBEAT_TTL_MS) + 2 * Number(FAST.HEARTBEAT_INTERVAL_MS);
    // The window counts from its first claim, a beat or so before the line was read here.
    expect(pausedMs).toBeGreaterThanOrEqual(windowMs - 1_000);
    expect(await fx.redis.get(fx.keys.portfolioLease('p1'))).toBe(loadedToken(a));
    await add(producer(), 5, 8);
    await waitFor(async () => (await fx.state('p1'))?.processed_count === 8, { timeoutMs: 5_000 });
  }, 60_000);

  it('killed during the contest: the node assigned the portfolio loads its claim, not a fresh start', async () => {
    const { a, version } = await claimantAfterEmptyRestart();
    await a.stop('SIGKILL');
    await assignedNodeLoadsTheClaim(a, version);
  }, 60_000);

  it('stopped during the contest: it exits once a beat has written its claim again after its final commit found no lease (within a beat), dropping nothing, and the node assigned the portfolio loads its claim', async () => {
    const { a, version } = await claimantAfterEmptyRestart();
    const exit = await a.stop('SIGTERM');
    expect(exit.code).toBe(0);
    expect(logEntries(a, 'Portfolio unloaded')).toEqual([
      expect.objectContaining({ portfolioId: 'p1', released: false, leftAsClaim: true }),
    ]);
    expect(a.lines.some((line) => line.includes('Stop budget exceeded'))).toBe(false);
    await assignedNodeLoadsTheClaim(a, version);
  }, 60_000);
});
