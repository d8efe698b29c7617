import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStateKeys } from '@ginkgo-live/state-keys';
import { RedisServer } from '@ginkgo-live/testing';
import { aclFile } from './index.ts';

/** A prefix, as a deployment's REDIS_KEY_PREFIX, so the rules are shown to carry it. */
const PREFIX = 'acl:';
const keys = createStateKeys(PREFIX);
const USERS = [
  'api-gateway',
  'livecore-scheduler',
  'execution-node.node-1',
  'market-feed',
  'notification-worker',
  'ginkgo-ctl',
] as const;
type User = (typeof USERS)[number];
const PASSWORDS: Record<string, string> = Object.fromEntries(
  [...USERS, 'execution-node.node-2', 'admin'].map((u) => [u, `secret-of-${u}`]),
);

let server: RedisServer;
const clients = new Map<User, Redis>();

beforeAll(async () => {
  server = await RedisServer.start({
    aclFile: aclFile({ nodes: ['node-1', 'node-2'], passwords: PASSWORDS, prefix: PREFIX }),
    auth: { username: 'admin', password: PASSWORDS['admin'] ?? '' },
  });
  for (const user of USERS) {
    const client = new Redis({
      host: server.host,
      port: server.port,
      username: user,
      password: PASSWORDS[user],
      maxRetriesPerRequest: 0,
    });
    clients.set(user, client);
  }
});
afterAll(async () => {
  for (const client of clients.values()) client.disconnect();
  await server.cleanup();
});

function as(user: User): Redis {
  const client = clients.get(user);
  if (client === undefined) throw new Error(`no client for ${user}`);
  return client;
}

type Command = [string, ...string[]];
const hb = (node: string): Command => ['SET', keys.heartbeat(node), '{}', 'PX', '5000'];
const info = (node: string): Command => ['SET', keys.nodeInfo(node), '{}'];
const plan: Command = ['HSET', keys.portfolioAssignments(), 'p1', '{}'];
const catalog: Command = ['HSET', keys.portfolioCatalog(), 'p1', '{}'];
const records: Command = ['HSET', keys.executionNodes(), 'node-1', '{}'];
const planMeta: Command = ['SET', keys.planMeta(), '{}'];
const assignment = (node: string): Command => ['SET', keys.nodeAssignment(node), '{}'];
const control: Command = ['RPUSH', keys.controlRequests(), '{}'];
const audit: Command = ['XADD', keys.auditLog(), '*', 'entry', '{}'];
const halt: Command = ['SET', keys.tradingHalt(), '{}'];
const pause: Command = ['HSET', keys.pausedPortfolios(), 'p1', '{}'];
const book: Command = ['SET', keys.portfolioBook('p1'), '{}'];
const lease: Command = ['SET', keys.portfolioLease('p1'), 'node-1/x/1', 'PX', '5000'];
const queue: Command = ['LPUSH', `${keys.queuePrefix()}:${keys.portfolioQueue('p1')}:wait`, '1'];
const refusals: Command = ['HINCRBY', keys.queueRefusals(), 'p1', '1'];
const registry: Command = ['ZADD', keys.nodeRegistry(), '1', 'node-1'];
const history: Command = ['LPUSH', keys.notificationHistory(), '{}'];
const cooldown: Command = [
  'SET',
  keys.notificationCooldown('queue', { nodeId: null, portfolioId: 'p1' }, 'warning'),
  '1',
];
const notifyQueue: Command = [
  'HSET',
  `${keys.queuePrefix()}:${keys.notificationsQueue()}:meta`,
  'x',
  '1',
];
const leader: Command = ['SET', keys.schedulerLeader(), 's1', 'PX', '5000'];

const name = (c: Command): string => `${c[0]} ${c[1]}`;

/** For each app's user: writes it must be refused, then writes it needs. */
const CASES: Record<User, { forbidden: Command[]; allowed: Command[] }> = {
  'api-gateway': {
    forbidden: [
      plan,
      records,
      planMeta,
      assignment('node-1'),
      catalog,
      book,
      hb('node-1'),
      queue,
      leader,
    ],
    allowed: [control, audit, halt, pause, cooldown, notifyQueue],
  },
  'livecore-scheduler': {
    forbidden: [halt, pause, hb('node-1'), info('node-1'), book, lease, queue],
    allowed: [
      plan,
      records,
      planMeta,
      assignment('node-1'),
      catalog,
      leader,
      registry,
      control,
      audit,
    ],
  },
  'execution-node.node-1': {
    forbidden: [
      hb('node-2'),
      info('node-2'),
      plan,
      catalog,
      assignment('node-1'),
      halt,
      pause,
      control,
      refusals,
      history,
    ],
    allowed: [hb('node-1'), info('node-1'), registry, lease, book, queue, cooldown, notifyQueue],
  },
  'market-feed': {
    forbidden: [book, lease, plan, catalog, hb('node-1'), halt, history],
    allowed: [queue, refusals, cooldown],
  },
  'notification-worker': {
    forbidden: [plan, book, queue, hb('node-1'), halt, control],
    allowed: [history, cooldown, notifyQueue],
  },
  'ginkgo-ctl': {
    forbidden: [plan, catalog, records, book, hb('node-1'), queue, cooldown],
    allowed: [control, audit, halt, pause],
  },
};

describe('Redis ACL: one user per app, from aclFile (a real redis-server with --aclfile)', () => {
  it('turns the default user off: no command without a user', async () => {
    const anonymous = new Redis({
      host: server.host,
      port: server.port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
    });
    anonymous.on('error', () => {
      // Asserted through the rejection.
    });
    try {
      await anonymous.connect().catch(() => undefined);
      await expect(anonymous.call('SET', `${PREFIX}x`, '1')).rejects.toThrow(/^NOAUTH/);
      expect(await server.command('ACL', 'LIST')).toMatch(/(^|,)user default off /);
    } finally {
      anonymous.disconnect();
    }
  });

  it('refuses a wrong password', async () => {
    const intruder = new Redis({
      host: server.host,
      port: server.port,
      username: 'api-gateway',
      password: PASSWORDS['ginkgo-ctl'],
      lazyConnect: true,
      retryStrategy: () => null,
    });
    intruder.on('error', () => {
      // Asserted through the rejection.
    });
    const errors: string[] = [];
    intruder.on('error', (err: Error) => errors.push(err.message));
    await intruder.connect().catch(() => undefined);
    intruder.disconnect();
    expect(errors.join('\n')).toMatch(/^WRONGPASS invalid username-password pair/m);
  });

  describe.each(USERS)('%s', (user) => {
    const { forbidden, allowed } = CASES[user];
    it.each(forbidden.map((c) => [name(c), c] as const))(
      'may not %s (NOPERM)',
      async (_, command) => {
        await expect(as(user).call(...command)).rejects.toThrow(
          /^NOPERM this user has no permissions to access one of the keys used as arguments/,
        );
      },
    );
    it.each(allowed.map((c) => [name(c), c] as const))('may %s', async (_, command) => {
      await expect(as(user).call(...command)).resolves.not.toBeInstanceOf(Error);
    });
    it('may not administer the server: FLUSHALL, KEYS, CONFIG, CLIENT KILL, ACL, SCRIPT FLUSH', async () => {
      for (const command of [
        ['FLUSHALL'],
        ['KEYS', '*'],
        ['CONFIG', 'SET', 'appendonly', 'no'],
        ['CLIENT', 'KILL', 'ID', '1'],
        ['ACL', 'LIST'],
        ['SCRIPT', 'FLUSH'],
      ] as [string, ...string[]][]) {
        await expect(as(user).call(...command), command.join(' ')).rejects.toThrow(
          /^NOPERM this user has no permissions to run the/,
        );
      }
      // What every connection needs: ioredis's ready check (INFO) and client names.
      await expect(as(user).call('INFO', 'server')).resolves.toMatch(/redis_version/);
      await expect(as(user).call('CLIENT', 'SETNAME', `ginkgo:${user}`)).resolves.toBe('OK');
      // And Redis's clock: the node's acquire reads it (a users.acl from before lacks it, and then
      // no portfolio without a book could ever start).
      await expect(as(user).call('TIME')).resolves.toHaveLength(2);
      // And a Cluster client's slot map: allowed (this server, not a cluster, answers with an
      // error of its own, not NOPERM).
      await expect(as(user).call('CLUSTER', 'SLOTS')).rejects.toThrow(/cluster support disabled/);
      await expect(as(user).call('CLUSTER', 'INFO')).rejects.toThrow(/cluster support disabled/);
      await expect(as(user).call('CLUSTER', 'NODES')).rejects.toThrow(/^NOPERM/);
    });
  });

  it('checks the commands inside a script too: node-1 cannot reach node-2 through an undeclared key', async () => {
    const node1 = as('execution-node.node-1');
    const script = "return redis.call('SET', ARGV[1], 'x')";
    await expect(
      node1.call('EVAL', script, '1', keys.heartbeat('node-1'), keys.heartbeat('node-1')),
    ).resolves.toBe('OK');
    await expect(
      node1.call('EVAL', script, '1', keys.heartbeat('node-1'), keys.heartbeat('node-2')),
    ).rejects.toThrow(/The user executing the script can't access at least one of the keys/);
    // Declaring a key it may only read is refused as well: a script's keys need read and write.
    await expect(node1.call('EVAL', 'return 1', '1', keys.portfolioAssignments())).rejects.toThrow(
      /^NOPERM/,
    );
  });

  it('keys outside the deployment prefix belong to nobody', async () => {
    await expect(
      as('livecore-scheduler').call('SET', '{scheduler}:plan_meta', '{}'),
    ).rejects.toThrow(/^NOPERM/);
    await expect(as('api-gateway').call('GET', 'other:thing')).rejects.toThrow(/^NOPERM/);
  });

  describe('channels: the writers of a change publish, a node subscribes to its own and the fleet-wide one', () => {
    const nodeChannel = (node: string): string => keys.nodeOrdersChannel(node);
    const trading = keys.tradingChannel();
    /** A connection of its own: SSUBSCRIBE turns it into a subscriber. */
    const connect = (user: User): Redis => {
      const client = new Redis({
        host: server.host,
        port: server.port,
        username: user,
        password: PASSWORDS[user],
        maxRetriesPerRequest: 0,
      });
      extra.push(client);
      return client;
    };
    const extra: Redis[] = [];
    afterAll(() => {
      for (const client of extra) client.disconnect();
    });
    /** SPUBLISH from inside a script, as the plan write and the trading change send it. */
    const publishFromScript = (user: User, key: string, channel: string): Promise<unknown> =>
      as(user).call('EVAL', "return redis.call('SPUBLISH', ARGV[1], 'x')", '1', key, channel);
    const refusedChannel =
      /The user executing the script can't publish to the channel mentioned in the command/;
    const refusedCommand =
      /^NOPERM this user has no permissions to run the '(s?publish|s?subscribe)' command/;

    it('the scheduler publishes on node channels from its plan write, nowhere else', async () => {
      await expect(
        publishFromScript('livecore-scheduler', keys.planMeta(), nodeChannel('node-1')),
      ).resolves.toBe(0);
      await expect(
        publishFromScript('livecore-scheduler', keys.planMeta(), trading),
      ).rejects.toThrow(refusedChannel);
      await expect(
        as('livecore-scheduler').call('PUBLISH', nodeChannel('node-1'), 'x'),
      ).rejects.toThrow(refusedCommand);
      await expect(connect('livecore-scheduler').ssubscribe(nodeChannel('node-1'))).rejects.toThrow(
        refusedCommand,
      );
    });

    it.each(['api-gateway', 'ginkgo-ctl'] as const)(
      '%s publishes on the trading channel from its change script, not on a node channel',
      async (user) => {
        await expect(publishFromScript(user, keys.tradingHalt(), trading)).resolves.toBe(0);
        await expect(
          publishFromScript(user, keys.tradingHalt(), nodeChannel('node-1')),
        ).rejects.toThrow(refusedChannel);
        await expect(connect(user).ssubscribe(trading)).rejects.toThrow(refusedCommand);
      },
    );

    it("a node subscribes to its own channel and the trading one, not another node's, and publishes only its probe on its own", async () => {
      const sub = connect('execution-node.node-1');
      await expect(sub.ssubscribe(nodeChannel('node-1'), trading)).resolves.toBe(2);
      const got: [string, string][] = [];
      sub.on('smessage', (channel: string, message: string) => got.push([channel, message]));
      await expect(
        connect('execution-node.node-1').ssubscribe(nodeChannel('node-2')),
      ).rejects.toThrow(
        /^NOPERM this user has no permissions to access one of the channels used as arguments/,
      );
      await expect(connect('execution-node.node-1').subscribe(trading)).rejects.toThrow(
        refusedCommand,
      );
      // Its probe: on its own channel (the subscriber above hears it), on no other.
      await expect(
        as('execution-node.node-1').call('SPUBLISH', nodeChannel('node-1'), 'probe'),
      ).resolves.toBe(1);
      await expect(as('execution-node.node-1').call('SPUBLISH', trading, 'x')).rejects.toThrow(
        /^NOPERM/,
      );
      await expect(
        as('execution-node.node-1').call('SPUBLISH', nodeChannel('node-2'), 'x'),
      ).rejects.toThrow(/^NOPERM/);
      await expect(
        as('execution-node.node-1').call('PUBLISH', nodeChannel('node-1'), 'x'),
      ).rejects.toThrow(refusedCommand);
      await expect(
        publishFromScript('execution-node.node-1', keys.heartbeat('node-1'), trading),
      ).rejects.toThrow(/^NOPERM|can't/);
      // And what the writers send reaches it.
      await publishFromScript('livecore-scheduler', keys.planMeta(), nodeChannel('node-1'));
      await publishFromScript('api-gateway', keys.tradingHalt(), trading);
      await expect
        .poll(() => got)
        .toEqual([
          [nodeChannel('node-1'), 'probe'],
          [nodeChannel('node-1'), 'x'],
          [trading, 'x'],
        ]);
    });

    it.each(['market-feed', 'notification-worker'] as const)(
      '%s neither publishes nor subscribes',
      async (user) => {
        await expect(as(user).call('SPUBLISH', trading, 'x')).rejects.toThrow(refusedCommand);
        await expect(connect(user).ssubscribe(trading)).rejects.toThrow(refusedCommand);
      },
    );
  });
});
