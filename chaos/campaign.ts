/**
 * One fault campaign, start to verdict: the stack as processes, the numbered feed, the sampler and
 * the nemesis for `minutes`; then the feed stops, the queues drain, every book is read and checked.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createLogger } from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import type { Notification } from '@ginkgo-live/state-keys';
import {
  MemoryTransport,
  REPO_ROOT,
  WebhookReceiver,
  waitFor,
  type LogEntry,
} from '@ginkgo-live/testing';
import path from 'node:path';
import { checkCampaign, type CampaignInput, type CampaignVerdict } from './checker.ts';
import { ChaosFeed } from './feed.ts';
import {
  FAULT_KINDS,
  FaultSchedule,
  type BookView,
  type FaultKind,
  type NoticeRecord,
} from './model.ts';
import { Nemesis } from './nemesis.ts';
import { Sampler } from './sampler.ts';
import { ChaosStack } from './stack.ts';

export const PRODUCER_ID = 'chaos-feed';

export interface CampaignOptions {
  seed: number;
  /** How long faults are injected; the drain comes after. */
  minutes: number;
  /** Events per portfolio per second. */
  ratePerSecond: number;
  nodes: number;
  schedulers: number;
  /** Catalog file (JSON array of specs); default the sample catalog's 8 portfolios. */
  catalogFile: string;
  /** Quiet time between faults, ms. */
  gapMs: [number, number];
  /** Quiet time before the first fault, ms. */
  warmupMs: number;
  /** appendfsync everysec: events accepted this long before a Redis SIGKILL may be lost. */
  fsyncWindowMs: number;
  /** How long to wait for the queues to drain after the feed stops. */
  drainTimeoutMs: number;
  bundled: boolean;
  kinds: readonly FaultKind[];
  /** Progress line every this many ms. */
  progressMs: number;
  /** The fault phase goes on past `minutes` until this many faults were injected. */
  minFaults: number;
  log: (message: string) => void;
}

export const DEFAULTS: Omit<CampaignOptions, 'log'> = {
  seed: 1,
  minutes: 5,
  ratePerSecond: 20,
  nodes: 4,
  schedulers: 2,
  catalogFile: path.join(REPO_ROOT, 'config', 'sample-catalog.json'),
  gapMs: [4_000, 8_000],
  warmupMs: 5_000,
  fsyncWindowMs: 2_000,
  drainTimeoutMs: 120_000,
  bundled: false,
  kinds: FAULT_KINDS,
  progressMs: 5_000,
  minFaults: 0,
};

/** Lease / heartbeat TTL of the harness's FAST timings. */
const TTL_MS = 2_000;

export interface CampaignResult {
  verdict: CampaignVerdict;
  input: CampaignInput;
  startedAt: Date;
  /** Faults ran from 0 to this (ms); the drain took `drainMs` after. */
  faultPhaseMs: number;
  /** When the feed stopped (the last fault's recovery may run past the fault phase). */
  faultPhaseEndMs: number;
  drainMs: number;
  /** Redis's version, the stack's prefix. */
  redisVersion: string;
  logsOf: (dir: string) => void;
}

/** What the campaign's own Redis clients logged, the last 20,000 entries (for the logs folder). */
class TailTransport extends MemoryTransport {
  override log(info: LogEntry, next: () => void): void {
    this.entries.push({ ...info });
    if (this.entries.length > 20_000) this.entries.shift();
    next();
  }
}

const secs = (ms: number): string => `${(ms / 1_000).toFixed(1)} s`;
const clockText = (ms: number): string => {
  const s = Math.floor(ms / 1_000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

function readCatalog(file: string): { id: string; symbol: string }[] {
  const specs = JSON.parse(readFileSync(file, 'utf8')) as {
    portfolio_id: string;
    symbols: string[];
  }[];
  return specs.map((s) => ({ id: s.portfolio_id, symbol: s.symbols[0] ?? 'BTCUSDT' }));
}

/** Runs a campaign and checks it. Never throws for what the stack does; only for setup. */
export async function runCampaign(options: CampaignOptions): Promise<CampaignResult> {
  const { log } = options;
  const catalog = readCatalog(options.catalogFile);
  const portfolios = catalog.map((c) => c.id);
  let t0 = Date.now();
  const clock = (): number => Date.now() - t0;
  const startedAt = new Date();

  const receiver = new WebhookReceiver<Notification>();
  const webhookUrl = await receiver.start();
  log(
    `starting the stack: redis (AOF), ${options.schedulers} schedulers, ${options.nodes} nodes, gateway, notification worker; ${portfolios.length} portfolios`,
  );
  let stack: ChaosStack;
  try {
    stack = await ChaosStack.start(
      {
        nodes: options.nodes,
        schedulers: options.schedulers,
        catalogFile: options.catalogFile,
        webhookUrl,
        bundled: options.bundled,
        clock,
        log,
      },
      portfolios,
    );
  } catch (err) {
    await receiver.stop();
    throw err;
  }
  const redisVersion = /redis_version:(\S+)/.exec(await stack.fx.redis.info('server'))?.[1] ?? '?';

  const clientLog = new TailTransport();
  const redisConfig = loadRedisConfig({
    ...stack.server.env,
    REDIS_KEY_PREFIX: stack.fx.keys.prefix,
    REDIS_COMMAND_TIMEOUT_MS: '500',
    REDIS_RECONNECT_MAX_DELAY_MS: '200',
  });
  if (!redisConfig.ok) throw new Error('chaos: Redis configuration refused');
  const connections = new RedisConnections({
    config: redisConfig.value,
    app: 'chaos',
    instanceId: String(process.pid),
    logger: createLogger({ app: 'chaos', level: 'info', format: 'json', transports: [clientLog] }),
  });
  const feedConnection = connections.connection('feed', 'request');
  const samplerConnection = connections.connection('sampler', 'request');
  // Both ready before the first add (a request connection fails at once while it connects).
  await waitFor(() => feedConnection.status === 'ready' && samplerConnection.status === 'ready', {
    timeoutMs: 10_000,
    description: "the campaign's Redis connections",
  });
  const keys = stack.fx.keys;
  const feed = new ChaosFeed({
    connection: feedConnection,
    keys,
    producerId: PRODUCER_ID,
    portfolios: catalog,
    ratePerSecond: options.ratePerSecond,
    clock,
  });
  const sampler = new Sampler({
    redis: samplerConnection,
    keys,
    feed,
    producerId: PRODUCER_ID,
    portfolios,
    intervalMs: 250,
    clock,
  });
  const nemesis = new Nemesis({ stack, sampler, portfolios, clock, log });
  const schedule = new FaultSchedule(
    options.seed,
    { ttlMs: TTL_MS, gapMs: options.gapMs },
    options.kinds,
  );
  const faultPhaseMs = Math.round(options.minutes * 60_000);
  const problems: string[] = [];

  t0 = Date.now();
  sampler.start();
  feed.start();
  log(`campaign started: seed ${options.seed}, ${options.minutes} min of faults`);
  let nextAt = options.warmupMs;
  let next = schedule.next();
  const progress = setInterval(() => {
    const now = clock();
    const t = feed.totals();
    const current = nemesis.current;
    const doing =
      current === undefined
        ? now < faultPhaseMs
          ? `next: ${next.kind} in ${secs(Math.max(0, nextAt - now))}`
          : 'draining'
        : `now: #${current.id} ${current.plan.kind} (${secs(now - current.startMs)} in)`;
    const latest = sampler.latest();
    const applied =
      latest === undefined
        ? '?'
        : String(Object.values(latest.portfolios).reduce((sum, p) => sum + (p.progress ?? 0), 0));
    log(
      `${clockText(now)} / ${clockText(faultPhaseMs)} · faults ${nemesis.faults.length} · ${doing} · accepted ${t.accepted}, unknown ${t.unknown}, refused ${t.refused}, applied ${applied}`,
    );
  }, options.progressMs);

  try {
    // Faults until the time is up (none starts in its last two seconds) and at least `minFaults`
    // were injected: a slow machine runs longer rather than skip kinds.
    const enough = (): boolean => nemesis.faults.length >= options.minFaults;
    for (;;) {
      const wait = nextAt - clock();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (clock() >= faultPhaseMs - 2_000 && enough()) break;
      await nemesis.inject(next);
      nextAt = clock() + next.gapMs;
      next = schedule.next();
      if (nextAt >= faultPhaseMs && enough()) {
        const rest = faultPhaseMs - clock();
        if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
        break;
      }
    }
    await feed.stop();
    const feedStoppedMs = clock();
    log(`feed stopped at ${secs(feedStoppedMs)}; waiting for every queue to drain`);
    // Drained: every queue empty and every book unchanged for a second.
    let stableSince: number | undefined;
    let lastKey = '';
    const drained = await waitFor(
      () => {
        const s = sampler.latest();
        if (s === undefined || s.atMs < clock() - 1_000) return false;
        const parts = portfolios.map((p) => s.portfolios[p]);
        const key = parts.map((p) => String(p?.progress)).join(',');
        const empty = parts.every((p) => p?.depth === 0);
        if (!empty || key !== lastKey) {
          stableSince = undefined;
          lastKey = key;
          return false;
        }
        stableSince ??= clock();
        return clock() - stableSince >= 1_000;
      },
      { timeoutMs: options.drainTimeoutMs, intervalMs: 250 },
    ).then(
      () => true,
      () => false,
    );
    const drainMs = clock() - feedStoppedMs;
    if (!drained) {
      const s = sampler.latest();
      const left = portfolios.map((p) => `${p}: ${s?.portfolios[p]?.depth ?? '?'}`).join(', ');
      problems.push(
        `the queues did not drain within ${secs(options.drainTimeoutMs)} after the feed stopped (depths ${left})`,
      );
    }
    log(drained ? `drained in ${secs(drainMs)}` : `NOT drained after ${secs(drainMs)}`);
    clearInterval(progress);
    await sampler.stop();
    let books: Map<string, BookView> | undefined;
    await waitFor(
      async () => {
        books = await sampler.readBooks();
        return true;
      },
      { timeoutMs: 10_000, intervalMs: 250, description: 'the final books' },
    );
    const endMs = clock();
    await stack.close();
    await connections.close();
    await receiver.stop();
    const notices: NoticeRecord[] = receiver.received.map((r) => {
      const n = r.body;
      const created = Date.parse(n.created_at);
      return {
        atMs: (Number.isNaN(created) ? r.at : created) - t0,
        kind: n.kind,
        status: n.status,
        title: n.title,
        nodeId: n.subject.node_id,
        portfolioId: n.subject.portfolio_id,
        source: `${n.source.app}${n.source.node_id === null ? '' : ` ${n.source.node_id}`}`,
      };
    });
    const input: CampaignInput = {
      portfolios,
      feeds: feed.records,
      books: books ?? new Map(),
      faults: nemesis.faults,
      samples: sampler.samples,
      detections: sampler.detections,
      rollbacks: sampler.rollbacks(),
      exits: stack.exits,
      notices,
      endMs,
      fsyncWindowMs: options.fsyncWindowMs,
      problems,
    };
    return {
      verdict: checkCampaign(input),
      input,
      startedAt,
      faultPhaseMs,
      faultPhaseEndMs: feedStoppedMs,
      drainMs,
      redisVersion,
      logsOf: (dir) => {
        stack.writeLogs(dir);
        writeFileSync(
          path.join(dir, 'chaos-clients.log'),
          clientLog.entries.map((e) => JSON.stringify(e)).join('\n') + '\n',
        );
      },
    };
  } catch (err) {
    clearInterval(progress);
    await sampler.stop().catch(() => undefined);
    await stack.close().catch(() => undefined);
    await connections.close().catch(() => undefined);
    await receiver.stop().catch(() => undefined);
    throw err;
  }
}
