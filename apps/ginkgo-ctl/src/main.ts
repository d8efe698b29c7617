#!/usr/bin/env -S node --import tsx
/**
 * ginkgo-ctl: the fleet from a terminal or a script, over the gateway's HTTP API.
 *
 *   ginkgo-ctl status | nodes | portfolios | notifications | plan | silences   [--json] [--watch [s]]
 *   ginkgo-ctl silence --node <n> --for 2h [--comment why]   ginkgo-ctl unsilence <id>
 *
 * The gateway is `GINKGO_URL` (or `--url`; default http://127.0.0.1:8000) and the key
 * `GINKGO_API_KEY` or the file `GINKGO_API_KEY_FILE` (a `read` key for these, `operate` to
 * silence). Exit codes: 0
 * healthy, 1 degraded (status: a problem listed; nodes: a node lost; portfolios: one orphaned or
 * in error; plan: orphans or no leader) or no answer from the gateway, 2 usage or a key refused.
 */
import { readSecretFile } from '@ginkgo-live/runtime';
import { CtlError, GatewayClient } from './client.ts';
import { COMMANDS, type CommandName, type Outcome } from './commands.ts';

const USAGE = `usage: ginkgo-ctl <command> [options]

commands:
  status          the fleet in a few lines; exit 1 when something needs an operator
  nodes           every node (--status online|draining|lost)
  portfolios      every portfolio (--status <status>, --node <node>)
  notifications   the latest notifications (--limit N, default 20; --level, --kind)
  plan            the scheduler's plan
  silences        the silences: active ones, and those ended in the last week
  silence         silence notifications (--node, --portfolio, --kind, --level: names, commas;
                  --for 30m|2h|7d; --comment "why"); an operate key
  unsilence <id>  end a silence now; an operate key

changes (an operate key; catalog changes an admin key; each audited under the key's name):
  drain <node> | undrain <node>         move portfolios off a node, or let it take them again
  migrate <portfolio> <node>            move one portfolio
  catalog-add '<spec json>'             add a portfolio to the catalog
  catalog-remove <portfolio>            take one out
    (these four wait for the scheduler's answer, --timeout seconds, default 15)
  halt [reason] | unhalt                stop every portfolio applying events, or lift it
  pause <portfolio> [reason] | resume <portfolio>

options:
  --json          the gateway's data as JSON, for scripts
  --watch [s]     again every s seconds (default 2) until Ctrl-C
  --url <url>     the gateway (default GINKGO_URL, else http://127.0.0.1:8000)

The key: GINKGO_API_KEY, or GINKGO_API_KEY_FILE naming a file that holds it.
Exit codes: 0 healthy or done, 1 degraded, refused or no answer, 2 usage or a refused key.`;

/** Options each command takes (besides --json, --watch, --url). */
const OPTIONS: Record<CommandName, string[]> = {
  status: [],
  nodes: ['status'],
  portfolios: ['status', 'node'],
  notifications: ['limit', 'level', 'kind'],
  plan: [],
  silences: [],
  silence: ['node', 'portfolio', 'kind', 'level', 'for', 'comment'],
  unsilence: [],
  drain: ['timeout'],
  undrain: ['timeout'],
  migrate: ['timeout'],
  'catalog-add': ['timeout'],
  'catalog-remove': ['timeout'],
  halt: [],
  unhalt: [],
  pause: [],
  resume: [],
};

/**
 * The words a command takes after its name, in order; a last name ending in `...` takes the rest
 * (a reason). Missing ones are a usage error, named.
 */
const POSITIONAL: Partial<Record<CommandName, string[]>> = {
  unsilence: ['id'],
  drain: ['node'],
  undrain: ['node'],
  migrate: ['portfolio', 'node'],
  'catalog-add': ['spec'],
  'catalog-remove': ['portfolio'],
  halt: ['reason...'],
  pause: ['portfolio', 'reason...'],
  resume: ['portfolio'],
};

function usage(message: string): never {
  process.stderr.write(`ginkgo-ctl: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

interface Parsed {
  command: CommandName;
  json: boolean;
  watchSeconds: number | undefined;
  url: string | undefined;
  options: Record<string, string | undefined>;
}

function parse(argv: string[]): Parsed {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === 'help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    process.exit(command === undefined ? 2 : 0);
  }
  if (!(command in COMMANDS)) usage(`unknown command "${command}"`);
  const name = command as CommandName;
  const parsed: Parsed = {
    command: name,
    json: false,
    watchSeconds: undefined,
    url: undefined,
    options: {},
  };
  const positional = [...(POSITIONAL[name] ?? [])];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    const value = (): string => {
      const v = rest[i + 1];
      if (v === undefined || v.startsWith('--')) usage(`${arg} needs a value`);
      i += 1;
      return v;
    };
    if (arg === '--json') parsed.json = true;
    else if (arg === '--url') parsed.url = value();
    else if (arg === '--watch') {
      const next = rest[i + 1];
      parsed.watchSeconds = 2;
      if (next !== undefined && /^\d+(\.\d+)?$/.test(next)) {
        parsed.watchSeconds = Number(next);
        i += 1;
      }
      if (parsed.watchSeconds < 0.5) usage('--watch takes at least 0.5 seconds');
    } else if (arg.startsWith('--') && OPTIONS[name].includes(arg.slice(2)))
      parsed.options[arg.slice(2)] = value();
    else if (!arg.startsWith('--') && positional.length > 0) {
      const slot = positional[0] ?? '';
      if (slot.endsWith('...')) {
        const key = slot.slice(0, -3);
        parsed.options[key] = [parsed.options[key], arg].filter((w) => w !== undefined).join(' ');
      } else {
        parsed.options[slot] = arg;
        positional.shift();
      }
    } else usage(`${name} takes no "${arg}"`);
  }
  const missing = positional.find((slot) => !slot.endsWith('...'));
  if (missing !== undefined) usage(`${name} needs <${missing}>`);
  if (parsed.options['limit'] !== undefined && !/^[1-9]\d{0,3}$/.test(parsed.options['limit']))
    usage('--limit takes a number from 1 to 1000');
  return parsed;
}

function apiKey(): string | undefined {
  const file = process.env['GINKGO_API_KEY_FILE'];
  const inline = process.env['GINKGO_API_KEY'];
  if (file !== undefined && file !== '') {
    if (inline !== undefined && inline !== '')
      usage('GINKGO_API_KEY and GINKGO_API_KEY_FILE are both set: set one of them');
    const read = readSecretFile(file);
    if ('problem' in read) usage(`GINKGO_API_KEY_FILE: ${read.problem.replace('password', 'key')}`);
    return read.value;
  }
  return inline === '' ? undefined : inline;
}

/** The terminal's width; a pipe or a script has none (whatever the types say): 120. */
function terminalWidth(): number {
  const columns: unknown = process.stdout.columns;
  return typeof columns === 'number' && columns > 0 ? columns : 120;
}

function show(outcome: Outcome, json: boolean): void {
  process.stdout.write(`${json ? JSON.stringify(outcome.json, null, 2) : outcome.text}\n`);
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const url = args.url ?? process.env['GINKGO_URL'] ?? 'http://127.0.0.1:8000';
  if (!/^https?:\/\/[^\s/]+/.test(url)) usage(`the gateway address "${url}" is not an http(s) URL`);
  const client = new GatewayClient({ url, apiKey: apiKey(), timeoutMs: 10_000 });
  const run = () =>
    COMMANDS[args.command]({
      client,
      width: terminalWidth(),
      options: args.options,
    });
  if (args.watchSeconds === undefined) {
    const outcome = await run();
    show(outcome, args.json);
    process.exitCode = outcome.exitCode;
    return;
  }
  const clear = process.stdout.isTTY && !args.json ? '\x1b[2J\x1b[H' : '';
  process.on('SIGINT', () => process.exit(0));
  for (;;) {
    try {
      const outcome = await run();
      process.stdout.write(clear);
      if (!args.json)
        process.stdout.write(`${new Date().toISOString()}  every ${args.watchSeconds}s\n\n`);
      show(outcome, args.json);
    } catch (err) {
      if (!(err instanceof CtlError) || err.exitCode === 2) throw err;
      // A gateway away for a moment is shown, and watched until it answers again.
      process.stdout.write(`${clear}${new Date().toISOString()}  ${err.message}\n`);
    }
    await new Promise((resolve) => setTimeout(resolve, (args.watchSeconds ?? 2) * 1_000));
  }
}

main().catch((err: unknown) => {
  if (err instanceof CtlError) {
    process.stderr.write(`ginkgo-ctl: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`ginkgo-ctl: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
