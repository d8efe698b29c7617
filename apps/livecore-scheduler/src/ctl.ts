/**
 * ginkgo-ctl: operator requests, through Redis.
 *
 *   ginkgo-ctl drain <node>            ginkgo-ctl undrain <node>
 *   ginkgo-ctl migrate <portfolio> <node>
 *   ginkgo-ctl catalog-add '<spec json>'   ginkgo-ctl catalog-remove <portfolio>
 *   ginkgo-ctl halt [reason]           ginkgo-ctl unhalt
 *   ginkgo-ctl pause <portfolio> [reason]   ginkgo-ctl resume <portfolio>
 *
 * The first five queue the request on `{scheduler}:control` (with a `queued` audit entry, in one
 * script: `queueControlRequest`, as the gateway does), wait for the leader's answer on `{scheduler}:control_results` (at most CTL_TIMEOUT_MS,
 * default 15000) and print it. Halt and pause are written directly (`TradingControls`: they must
 * work with every scheduler dead); one whose answer never came (a timeout) prints "Outcome unknown —
 * check GET /api/fleet/trading" (Redis may still run it), and a change no replica acknowledged
 * (the master has replicas) prints a warning. Every request is made as `ginkgo-ctl:<os user>`.
 * Exits 0 when accepted, 1 when refused, unanswered or of unknown outcome, 2 on bad usage or
 * configuration.
 */
import { randomUUID } from 'node:crypto';
import { userInfo } from 'node:os';
import {
  encodeAuditEntry,
  queueControlRequest,
  replicationWarning,
  TRADING_OUTCOME_UNKNOWN,
  TradingControls,
  type TradingActor,
  type TradingOutcome,
} from '@ginkgo-live/fleet';
import { CONFIG_EXIT_CODE, createLogger, formatConfigIssues } from '@ginkgo-live/runtime';
import { loadRedisConfig, RedisConnections } from '@ginkgo-live/redis-client';
import {
  createStateKeys,
  decodePayload,
  encodePayload,
  type ControlRequest,
} from '@ginkgo-live/state-keys';

function usage(message: string): never {
  process.stderr.write(
    `ginkgo-ctl: ${message}\nusage: ginkgo-ctl drain|undrain <node> | migrate <portfolio> <node> | catalog-add '<json>' | catalog-remove <portfolio> | halt [reason] | unhalt | pause <portfolio> [reason] | resume <portfolio>\n`,
  );
  process.exit(CONFIG_EXIT_CODE);
}

type Queued = Omit<ControlRequest, '_v' | 'id' | 'requested_by' | 'requested_at'>;
type Direct =
  | { action: 'halt'; reason: string | null }
  | { action: 'unhalt' }
  | { action: 'pause'; portfolioId: string; reason: string | null }
  | { action: 'resume'; portfolioId: string };

/** The reason words after the command, or null; bounded as the payloads are. */
function reasonOf(words: string[]): string | null {
  const reason = words.join(' ').trim();
  if (reason === '') return null;
  if (reason.length > 500) usage('the reason is longer than 500 characters');
  return reason;
}

function request(args: string[]): { queued: Queued } | { direct: Direct } {
  const [command, a] = args;
  switch (command) {
    case 'halt':
      return { direct: { action: 'halt', reason: reasonOf(args.slice(1)) } };
    case 'unhalt':
      if (a !== undefined) usage('unhalt takes no argument');
      return { direct: { action: 'unhalt' } };
    case 'pause':
      if (a === undefined) usage('pause needs a portfolio id');
      return { direct: { action: 'pause', portfolioId: a, reason: reasonOf(args.slice(2)) } };
    case 'resume':
      if (a === undefined) usage('resume needs a portfolio id');
      if (args.length > 2) usage('resume takes a portfolio id only');
      return { direct: { action: 'resume', portfolioId: a } };
    case undefined:
    default:
      return { queued: queuedRequest(args) };
  }
}

function queuedRequest(args: string[]): Queued {
  const [command, a, b] = args;
  if (command === undefined) usage('no command given');
  switch (command) {
    case 'drain':
    case 'undrain':
      if (a === undefined) usage(`${command} needs a node id`);
      return { action: command, node_id: a };
    case 'migrate':
      if (a === undefined || b === undefined) usage('migrate needs a portfolio id and a node id');
      return { action: 'migrate', portfolio_id: a, target_node_id: b };
    case 'catalog-add': {
      if (a === undefined) usage('catalog-add needs a spec as JSON');
      let spec: unknown;
      try {
        spec = JSON.parse(a);
      } catch {
        usage('catalog-add: the spec is not JSON');
      }
      return { action: 'catalog_add', spec };
    }
    case 'catalog-remove':
      if (a === undefined) usage('catalog-remove needs a portfolio id');
      return { action: 'catalog_remove', portfolio_id: a };
    default:
      usage(`unknown command ${command}`);
  }
}

const redisConfig = loadRedisConfig(process.env);
if (!redisConfig.ok) {
  process.stderr.write(
    `ginkgo-ctl: invalid configuration\n${formatConfigIssues(redisConfig.issues)}\n`,
  );
  process.exit(CONFIG_EXIT_CODE);
}
const body = request(process.argv.slice(2));
const timeoutMs = Number(process.env['CTL_TIMEOUT_MS'] ?? 15_000);
const logger = createLogger({ app: 'ginkgo-ctl', level: 'error' });
const connections = new RedisConnections({
  config: redisConfig.value,
  app: 'ginkgo-ctl',
  instanceId: String(process.pid),
  logger,
});
const keys = createStateKeys(redisConfig.value.keyPrefix);
const actor: TradingActor = {
  name: `ginkgo-ctl:${osUser()}`.slice(0, 128),
  via: 'ginkgo-ctl',
  address: null,
};

/** The operator's login name, for the audit trail (never a secret). */
function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env['USER'] ?? process.env['LOGNAME'] ?? 'unknown';
  }
}

async function direct(order: Direct): Promise<number> {
  const controls = new TradingControls(connections.main, keys);
  const options = { requestId: randomUUID() };
  let outcome: TradingOutcome;
  try {
    outcome =
      order.action === 'halt'
        ? await controls.halt(actor, order.reason, options)
        : order.action === 'unhalt'
          ? await controls.unhalt(actor, options)
          : order.action === 'pause'
            ? await controls.pause(order.portfolioId, actor, order.reason, options)
            : await controls.resume(order.portfolioId, actor, options);
  } catch (err) {
    // Refused by Redis (a script error comes before any write): nothing changed.
    if (err instanceof Error && err.name === 'ReplyError') throw err;
    // Sent, and no answer (a timeout): Redis may still run it.
    process.stdout.write(`${TRADING_OUTCOME_UNKNOWN} (request ${options.requestId})\n`);
    return 1;
  }
  if (!outcome.ok) {
    process.stdout.write(`refused: ${outcome.reason}\n`);
    return 1;
  }
  const done = {
    halt: 'halted: no portfolio applies events until unhalt',
    unhalt: 'unhalted: portfolios go on in queue order',
    pause: 'paused',
    resume: 'resumed',
  }[order.action];
  process.stdout.write(`${done}\n`);
  const warning = replicationWarning(outcome.replication);
  if (warning !== null) process.stdout.write(`warning: ${warning}\n`);
  return 0;
}

async function queued(queuedBody: Queued): Promise<number> {
  const id = randomUUID();
  let payload: string;
  try {
    payload = encodePayload('controlRequest', {
      _v: 1,
      id,
      ...queuedBody,
      requested_by: actor.name,
      requested_at: new Date().toISOString(),
    });
  } catch (err) {
    usage((err as Error).message);
  }
  // The request and its `queued` entry in one script (not a MULTI: Redis runs the rest of a
  // MULTI when one command fails, so a refused XADD would leave the request queued unaudited).
  await queueControlRequest(
    connections.main,
    keys,
    payload,
    encodeAuditEntry({
      actor: actor.name,
      via: actor.via,
      action: queuedBody.action,
      target: {
        node_id: queuedBody.node_id ?? null,
        portfolio_id: queuedBody.portfolio_id ?? specId(queuedBody.spec),
        target_node_id: queuedBody.target_node_id ?? null,
      },
      outcome: 'queued',
      reason: null,
      request_id: id,
      address: null,
    }),
  );
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const raw = await connections.main.hget(keys.controlResults(), id);
    if (raw !== null) {
      const result = decodePayload('controlResult', keys.controlResults(), raw);
      if (result.ok && result.value.ok) {
        process.stdout.write(`accepted (${queuedBody.action})\n`);
        return 0;
      }
      process.stdout.write(
        `refused: ${result.ok ? (result.value.reason ?? 'no reason') : result.error.problem}\n`,
      );
      return 1;
    }
    if (Date.now() > deadline) {
      process.stdout.write(`no answer within ${timeoutMs} ms (is a scheduler leading?)\n`);
      return 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The portfolio a catalog_add names, when its spec names one (bounded as the audit entry is). */
function specId(spec: unknown): string | null {
  const id =
    typeof spec === 'object' && spec !== null
      ? (spec as { portfolio_id?: unknown }).portfolio_id
      : undefined;
  return typeof id === 'string' ? id.slice(0, 128) : null;
}

if (!(await connections.waitUntilReady(redisConfig.value.connectTimeoutMs))) {
  process.stderr.write('ginkgo-ctl: Redis unreachable\n');
  process.exit(1);
}
let code: number;
try {
  code = 'direct' in body ? await direct(body.direct) : await queued(body.queued);
} catch (err) {
  process.stderr.write(`ginkgo-ctl: ${(err as Error).message}\n`);
  code = 1;
}
await connections.close();
process.exit(code);
