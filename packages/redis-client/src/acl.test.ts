import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { aclFile, aclUsers } from './acl.ts';

const passwords = (names: string[]): Record<string, string> =>
  Object.fromEntries(names.map((n) => [n, `pw-${n}`]));
const APPS = [
  'livecore-scheduler',
  'api-gateway',
  'market-feed',
  'notification-worker',
  'ginkgo-ctl',
];

describe('aclFile', () => {
  it('turns the default user off and writes every user with a SHA-256 password, never in clear', () => {
    const file = aclFile({
      nodes: ['node-1'],
      passwords: passwords([...APPS, 'execution-node.node-1']),
    });
    const lines = file.trimEnd().split('\n');
    expect(lines[0]).toBe('user default off resetkeys resetchannels -@all');
    expect(lines.map((l) => l.split(' ')[1])).toEqual([
      'default',
      ...APPS,
      'execution-node.node-1',
    ]);
    const hash = createHash('sha256').update('pw-api-gateway').digest('hex');
    expect(lines[2]).toMatch(new RegExp(`^user api-gateway reset on #${hash} `));
    expect(file).not.toContain('pw-');
  });

  it('refuses a user without a password, naming it', () => {
    expect(() => aclFile({ nodes: ['node-1'], passwords: passwords(APPS) })).toThrow(
      'aclFile: no password for the Redis user "execution-node.node-1"',
    );
  });

  it('adds admin, sentinel and replica only when their password is given', () => {
    const names = (extra: string[]) =>
      aclFile({ nodes: [], passwords: passwords([...APPS, ...extra]) })
        .trimEnd()
        .split('\n')
        .map((l) => l.split(' ')[1]);
    expect(names([])).not.toContain('admin');
    expect(names(['admin', 'sentinel', 'replica']).slice(-3)).toEqual([
      'admin',
      'sentinel',
      'replica',
    ]);
  });

  it('puts the prefix in every key pattern, its glob characters escaped', () => {
    const users = aclUsers({ nodes: ['node-1'], passwords: {}, prefix: 'a*b:' });
    for (const user of users) {
      for (const rule of user.rules.filter((r) => r.startsWith('~') || r.startsWith('%R~'))) {
        expect(rule, `${user.name} ${rule}`).toMatch(/^(%R)?~a\\\*b:/);
      }
    }
  });

  it("gives a node its own heartbeat and info only; '*' is one user for every node", () => {
    const [node1, shared] = aclUsers({ nodes: ['node-1', '*'], passwords: {} }).slice(-2);
    expect(node1?.name).toBe('execution-node.node-1');
    expect(node1?.rules).toContain('~heartbeat:node:{node-1}');
    expect(node1?.rules).toContain('%R~{scheduler}:execution_node:node-1:assignment');
    expect(shared?.name).toBe('execution-node');
    expect(shared?.rules).toContain('~heartbeat:node:{*}');
  });
});

describe('the README ACL table', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

  it('names every app user and every key pattern it may write', () => {
    const legacy = new Set(
      [
        'execution_node_registry',
        'execution_nodes',
        'portfolio_assignments',
        'scheduler:plan_meta',
      ].concat(['portfolio_catalog', 'scheduler:control', 'scheduler:control_results']),
    );
    for (const user of aclUsers({ nodes: [], passwords: {} })) {
      expect(readme).toContain(`| \`${user.name}\``);
      for (const rule of user.rules.filter((r) => r.startsWith('~'))) {
        const pattern = rule.slice(1);
        if (legacy.has(pattern)) continue;
        expect(readme, `${user.name}: ${pattern}`).toContain(`\`${pattern}\``);
      }
    }
  });
});
