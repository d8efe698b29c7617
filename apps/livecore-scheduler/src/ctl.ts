/**
 * ginkgo-ctl: operator requests to the scheduler, through Redis.
 *
 *   ginkgo-ctl drain <node>            ginkgo-ctl undrain <node>
 *   ginkgo-ctl migrate <portfolio> <node>
 *   ginkgo-ctl catalog-add '<spec json>'   ginkgo-ctl catalog-remove <portfolio>
 *
 * Queues the request on `{scheduler}:control`, waits for the leader's answer on
 * `{scheduler}:control_results` (at most CTL_TIMEOUT_MS, default 15000), prints it, and exits 0 when
 * accepted, 1 when refused or unanswered, 2 on bad usage or configuration.
 */
import { randomUUID } from 'node:crypto';
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
    `ginkgo-ctl: ${message}\nusage: ginkgo-ctl drain|undrain <node> | migrate <portfolio> <node> | catalog-add '<json>' | catalog-remove <portfolio>\n`,
  );
  process.exit(CONFIG_EXIT_CODE);
}

function request(
  args: string[],
): Omit<ControlRequest, '_v' | 'id' | 'requested_by' | 'requested_at'> {
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
const id = randomUUID();
let payload: string;
try {
  payload = encodePayload('controlRequest', {
    _v: 1,
    id,
    ...body,
    requested_by: 'ginkgo-ctl',
    requested_at: new Date().toISOString(),
  });
} catch (err) {
  usage((err as Error).message);
}
if (!(await connections.waitUntilReady(redisConfig.value.connectTimeoutMs))) {
  process.stderr.write('ginkgo-ctl: Redis unreachable\n');
  process.exit(1);
}
await connections.main.rpush(keys.controlRequests(), payload);
const deadline = Date.now() + timeoutMs;
let code = 1;
for (;;) {
  const raw = await connections.main.hget(keys.controlResults(), id);
  if (raw !== null) {
    const result = decodePayload('controlResult', keys.controlResults(), raw);
    if (result.ok && result.value.ok) {
      process.stdout.write(`accepted (${body.action})\n`);
      code = 0;
    } else {
      process.stdout.write(
        `refused: ${result.ok ? (result.value.reason ?? 'no reason') : result.error.problem}\n`,
      );
    }
    break;
  }
  if (Date.now() > deadline) {
    process.stdout.write(`no answer within ${timeoutMs} ms (is a scheduler leading?)\n`);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}
await connections.close();
process.exit(code);
