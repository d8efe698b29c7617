import { createHash } from 'node:crypto';
import { createStateKeys, type StateKeys } from '@ginkgo-live/state-keys';

/**
 * Redis ACL users, one per app, each allowed only the commands and keys that app needs — the one
 * definition behind the tests' ACL-enabled servers and compose's `docker/redis/users.acl`.
 *
 * Two facts of Redis 7 shape the rules:
 * - `EVAL`/`EVALSHA`/`FCALL` need read AND write permission on every key a script declares (Redis
 *   cannot tell what the script will do), and every command inside the script is checked again.
 *   So a key that a script of an app declares is read-write for that app even when the script only
 *   reads it (BullMQ's scripts declare their queue's keys; the node's beat declares the registry).
 * - A key pattern cannot say "except": the scheduler's keys are listed one by one so that a user
 *   that may write `{scheduler}:control` may not write `{scheduler}:portfolio_assignments`.
 */

/** The users of the apps. A node's user is `execution-node.<nodeId>`. */
export type AclUserName =
  'livecore-scheduler' | 'api-gateway' | 'market-feed' | 'notification-worker' | 'ginkgo-ctl';

export interface AclOptions {
  /**
   * The execution nodes, one user each (`execution-node.<nodeId>`), each allowed only its own
   * heartbeat and info. `*` instead makes one user `execution-node` for every node id (compose's
   * `--scale`, where node ids are not known in advance): then a node can write other nodes' keys.
   */
  nodes: string[];
  /**
   * A password per user name (the app users, each node's user, and optionally `admin`, `sentinel`
   * and `replica`). Written as SHA-256 (`#…`), never in clear.
   */
  passwords: Record<string, string>;
  /** `REDIS_KEY_PREFIX` of the deployment, `''` by default. */
  prefix?: string;
  /**
   * Adds `healthcheck`: any password, PING only — for a container healthcheck (`redis-cli --user
   * healthcheck --pass - ping`) that holds no secret.
   */
  healthcheck?: boolean;
}

/** One user: its rules, and what it may write, in words, for the README's table. */
export interface AclUser {
  name: string;
  rules: string[];
}

/**
 * The commands of every app user: data commands (reads, writes, transactions, scripts, blocking
 * pops), nothing that administers the server — then what ioredis's ready check and client names
 * need. Order matters: Redis applies the rules left to right.
 */
const COMMANDS = [
  '-@all',
  '+@connection',
  '+@read',
  '+@write',
  '+@transaction',
  '+@scripting',
  '+@blocking',
  // KEYS, SORT, FLUSHALL, MIGRATE, RESTORE, CONFIG, CLIENT KILL/LIST, MONITOR, …
  '-@dangerous',
  '-@admin',
  '-script|flush',
  '-script|kill',
  '-function|flush',
  '-function|delete',
  '-function|load',
  '-function|kill',
  '-function|restore',
  '+info',
  // Only @fast, but no data and no state: the node's acquire script reads Redis's clock with it.
  '+time',
  '+client|setname',
  '+client|getname',
  '+client|id',
  // A Redis Cluster client learns which master serves which slot from SLOTS, and checks the
  // cluster is up with INFO before it is ready (both @slow, so none of the categories above grant
  // them); without them an app user cannot connect to a cluster at all.
  '+cluster|slots',
  '+cluster|info',
];

/** Redis glob characters in a literal part of a pattern (the prefix) are escaped. */
function literal(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** A key builder's name with `*` for the id: `heartbeat:node:{*}`. */
const ANY = '__acl_any__';
function anyId(build: (id: string) => string): string {
  return build(ANY);
}

const readWrite = (key: string): string => `~${key}`;
const readOnly = (key: string): string => `%R~${key}`;

/** Escapes the prefix, then turns the placeholder id into `*`. */
function pattern(prefix: string, key: string): string {
  if (!key.startsWith(prefix)) return key.split(ANY).join('*');
  return literal(prefix) + key.slice(prefix.length).split(ANY).join('*');
}

function rules(prefix: string, rw: string[], ro: string[]): string[] {
  return [
    ...rw.map((k) => readWrite(pattern(prefix, k))),
    ...ro.map((k) => readOnly(pattern(prefix, k))),
  ];
}

/** The keys every app that raises notifications writes: cooldowns, conditions, the queue. */
function notificationKeys(keys: StateKeys): string[] {
  return [`${keys.prefix}notify:*`, `${keys.queuePrefix()}:${keys.notificationsQueue()}:*`];
}

/** The scheduler slot's keys the scheduler owns (everything there but the operators' switches). */
function schedulerOwned(keys: StateKeys): string[] {
  return [
    keys.nodeRegistry(),
    keys.executionNodes(),
    keys.portfolioAssignments(),
    anyId((id) => keys.nodeAssignment(id)),
    keys.planMeta(),
    keys.schedulerLeader(),
    keys.portfolioCatalog(),
    keys.controlRequests(),
    keys.controlResults(),
    keys.auditLog(),
  ];
}

/** The operators' keys: control requests, the audit trail, the halt and the pauses. */
function operatorKeys(keys: StateKeys): string[] {
  return [keys.controlRequests(), keys.auditLog(), keys.tradingHalt(), keys.pausedPortfolios()];
}

function portfolioQueueKeys(keys: StateKeys): string {
  return `${keys.queuePrefix()}:${anyId((id) => keys.portfolioQueue(id))}:*`;
}

/**
 * Pub/sub: who may publish or subscribe to which channel (`&pattern`), and with which command.
 * Redis's channel rules do not tell publishing from subscribing, so the command rules do: the
 * writers of a change may only `SPUBLISH` (from inside their scripts: Redis checks the script's
 * caller for both), a node may only `SSUBSCRIBE` to its own channel and the fleet-wide one (and
 * `SPUBLISH` its probe on its own, `nodeProbe`). Every other user keeps `resetchannels` and no
 * pub/sub command.
 */
interface Channels {
  channels: string[];
  commands: string[];
}

const PUBLISH = ['+spublish'];
const SUBSCRIBE = ['+ssubscribe', '+sunsubscribe'];

function channelRules(prefix: string, { channels, commands }: Channels): string[] {
  return [...channels.map((c) => `&${pattern(prefix, c)}`), ...commands];
}

function nodeChannels(keys: StateKeys, nodeId: string): Channels {
  return {
    channels: [
      nodeId === '*' ? anyId((id) => keys.nodeOrdersChannel(id)) : keys.nodeOrdersChannel(nodeId),
      keys.tradingChannel(),
    ],
    commands: SUBSCRIBE,
  };
}

/**
 * A node's probe: it `SPUBLISH`es on its own channel and expects the message back on its
 * subscriber, so a subscription that stopped delivering is noticed (apps/execution-node
 * orders-push.ts). Redis's channel rules cannot tell the channels a user may publish on from those
 * it may subscribe to, so the publish is a selector of its own: `+spublish` on the node's channel
 * only, never the fleet-wide one every node hears.
 */
function nodeProbe(prefix: string, keys: StateKeys, nodeId: string): string {
  const own =
    nodeId === '*' ? anyId((id) => keys.nodeOrdersChannel(id)) : keys.nodeOrdersChannel(nodeId);
  return `(resetchannels &${pattern(prefix, own)} -@all ${PUBLISH.join(' ')})`;
}

function appChannels(keys: StateKeys): Partial<Record<AclUserName, Channels>> {
  const trading = { channels: [keys.tradingChannel()], commands: PUBLISH };
  return {
    // The plan write tells each node whose assignment it changed.
    'livecore-scheduler': {
      channels: [anyId((id) => keys.nodeOrdersChannel(id))],
      commands: PUBLISH,
    },
    // The halt, unhalt, pause and resume script tells every node.
    'api-gateway': trading,
    'ginkgo-ctl': trading,
  };
}

function nodeUser(keys: StateKeys, nodeId: string): AclUser {
  const own = (build: (id: string) => string): string =>
    nodeId === '*' ? anyId(build) : build(nodeId);
  return {
    name: nodeId === '*' ? 'execution-node' : `execution-node.${nodeId}`,
    rules: rules(
      keys.prefix,
      [
        own((id) => keys.heartbeat(id)),
        own((id) => keys.nodeInfo(id)),
        // The beat script declares the registry: one ZADD of the node's own entry.
        keys.nodeRegistry(),
        // Every portfolio it may be given: its lease, book, fence and state, and its queue. Which
        // portfolio a node may write is decided by the lease and the fence inside the scripts.
        `${keys.prefix}portfolio:*`,
        portfolioQueueKeys(keys),
        ...notificationKeys(keys),
      ],
      [
        own((id) => keys.nodeAssignment(id)),
        keys.portfolioAssignments(),
        keys.portfolioCatalog(),
        keys.tradingHalt(),
        keys.pausedPortfolios(),
        keys.queueRefusals(),
      ],
    ),
  };
}

function appUsers(keys: StateKeys): Record<AclUserName, string[]> {
  const everything = `${keys.prefix}*`;
  return {
    'livecore-scheduler': rules(
      keys.prefix,
      [
        ...schedulerOwned(keys),
        // Renamed once at its start to the tagged names (legacySchedulerKeys).
        ...keys.legacySchedulerKeys().map((k) => k.from),
        ...notificationKeys(keys),
      ],
      [everything],
    ),
    'api-gateway': rules(
      keys.prefix,
      [...operatorKeys(keys), ...notificationKeys(keys)],
      [everything],
    ),
    'market-feed': rules(
      keys.prefix,
      [portfolioQueueKeys(keys), keys.queueRefusals(), ...notificationKeys(keys)],
      [keys.portfolioCatalog()],
    ),
    'notification-worker': rules(
      keys.prefix,
      [...notificationKeys(keys), keys.notificationHistory()],
      [],
    ),
    'ginkgo-ctl': rules(keys.prefix, operatorKeys(keys), [everything]),
  };
}

/** Every user of a deployment, app users first, then one per node. */
export function aclUsers(options: AclOptions): AclUser[] {
  const keys = createStateKeys(options.prefix ?? '');
  const prefix = keys.prefix;
  const channels = appChannels(keys);
  const withChannels = (keyRules: string[], own: Channels | undefined): string[] => {
    const rules = own === undefined ? [] : channelRules(prefix, own);
    // Channel patterns before the commands, and the commands after -@all, which they add to.
    return [
      'resetchannels',
      ...rules.filter((r) => r.startsWith('&')),
      ...keyRules,
      ...COMMANDS,
      ...rules.filter((r) => !r.startsWith('&')),
    ];
  };
  const users: AclUser[] = Object.entries(appUsers(keys)).map(([name, keyRules]) => ({
    name,
    rules: withChannels(keyRules, channels[name as AclUserName]),
  }));
  for (const nodeId of options.nodes) {
    const user = nodeUser(keys, nodeId);
    users.push({
      name: user.name,
      rules: [
        ...withChannels(user.rules, nodeChannels(keys, nodeId)),
        nodeProbe(prefix, keys, nodeId),
      ],
    });
  }
  return users;
}

/** Users outside the apps, each only when its password is given. */
const EXTRA_USERS: Record<string, string[]> = {
  // Operators and the test harness: everything.
  admin: ['~*', '&*', '+@all'],
  // What Redis's documentation lists for a Sentinel watching this server.
  sentinel: [
    'resetchannels',
    '&__sentinel__:hello',
    '-@all',
    '+client',
    '+subscribe',
    '+publish',
    '+ping',
    '+info',
    '+multi',
    '+slaveof',
    '+config',
    '+exec',
  ],
  // A replica syncing from this server.
  replica: ['resetchannels', '-@all', '+psync', '+replconf', '+ping'],
};

/** The lines of a Redis ACL file (`aclfile`): the default user off, then every user. */
export function aclFile(options: AclOptions): string {
  const lines = ['user default off resetkeys resetchannels -@all'];
  const users = aclUsers(options);
  for (const [name, extra] of Object.entries(EXTRA_USERS)) {
    if (options.passwords[name] !== undefined) users.push({ name, rules: extra });
  }
  for (const user of users) {
    const password = options.passwords[user.name];
    if (password === undefined || password === '') {
      throw new Error(`aclFile: no password for the Redis user "${user.name}"`);
    }
    const hash = createHash('sha256').update(password).digest('hex');
    lines.push(['user', user.name, 'reset', 'on', `#${hash}`, ...user.rules].join(' '));
  }
  if (options.healthcheck === true) {
    lines.push('user healthcheck reset on nopass resetchannels -@all +ping');
  }
  return `${lines.join('\n')}\n`;
}
