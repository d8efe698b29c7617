/**
 * Writes what compose's Redis needs for its ACL users (docker/compose.yaml), from the one
 * definition in packages/redis-client/src/acl.ts:
 *
 *   <dir>/secrets/<user>     one password per user (made once, random, kept on later runs):
 *                            each container gets only its own, as a Docker secret
 *   <dir>/users.acl          every user with its rules, passwords as SHA-256, the default user off
 *   <dir>/replication.conf   masteruser/masterauth, so a replica (and a demoted master) can sync
 *
 *   pnpm redis-acl [--dir docker/redis] [--nodes node-1,node-2] [--prefix PREFIX]
 *
 * `--nodes` gives each named node its own user (`execution-node.<id>`, each allowed only its own
 * heartbeat and info; run the nodes with NODE_ID and that user). Without it, one user
 * `execution-node` serves every node (compose's `--scale`, whose node ids are not known ahead).
 * Passwords are never printed. Exit 2 on a bad argument.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { aclFile, aclUsers } from '@ginkgo-live/redis-client';

/** Users outside the apps that compose runs: operators, the sentinels, the replica. */
const SUPPORT_USERS = ['admin', 'sentinel', 'replica'];

function fail(message: string): never {
  process.stderr.write(`redis-acl: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): { dir: string; nodes: string[]; prefix: string } {
  let dir = fileURLToPath(new URL('../docker/redis', import.meta.url));
  let nodes = ['*'];
  let prefix = '';
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) fail(`${flag ?? ''} needs a value`);
    if (flag === '--dir') dir = path.resolve(value);
    else if (flag === '--nodes') nodes = value.split(',').filter((n) => n !== '');
    else if (flag === '--prefix') prefix = value;
    else fail(`unknown argument ${flag ?? ''} (--dir, --nodes, --prefix)`);
  }
  return { dir, nodes, prefix };
}

/** The user's password, made and kept in its secret file on the first run. */
function secret(dir: string, user: string): string {
  const file = path.join(dir, 'secrets', user);
  if (existsSync(file)) return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  const password = randomBytes(24).toString('base64url');
  // Readable inside the container by the app's user; the folder (0700) keeps it from others here.
  writeFileSync(file, `${password}\n`, { mode: 0o644 });
  return password;
}

function main(): void {
  const { dir, nodes, prefix } = parseArgs(process.argv.slice(2));
  mkdirSync(path.join(dir, 'secrets'), { recursive: true });
  chmodSync(path.join(dir, 'secrets'), 0o700);
  let names: string[];
  try {
    names = [...aclUsers({ nodes, passwords: {}, prefix }).map((u) => u.name), ...SUPPORT_USERS];
  } catch (err) {
    fail((err as Error).message);
  }
  const passwords = Object.fromEntries(names.map((name) => [name, secret(dir, name)]));
  writeFileSync(
    path.join(dir, 'users.acl'),
    aclFile({ nodes, passwords, prefix, healthcheck: true }),
    { mode: 0o644 },
  );
  writeFileSync(
    path.join(dir, 'replication.conf'),
    `masteruser replica\nmasterauth ${passwords['replica'] ?? ''}\n`,
    { mode: 0o644 },
  );
  process.stdout.write(
    `redis-acl: wrote ${path.join(dir, 'users.acl')} (${names.length} users: ${names.join(', ')}, healthcheck; default off), replication.conf and secrets/<user>\n`,
  );
}

main();
