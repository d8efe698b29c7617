import { describe, expect, it } from 'vitest';
import { DEFAULTS } from './campaign.ts';
import { commandOf, parseArgs } from './cli.ts';

describe('pnpm chaos arguments', () => {
  it('default to five minutes of every kind, a random seed and .chaos/', () => {
    const args = parseArgs([], () => 4242);
    expect(args).toMatchObject({ out: '.chaos', writeDocs: false, seedGiven: false });
    expect(args.options).toEqual({ ...DEFAULTS, seed: 4242 });
    expect(commandOf(args)).toBe('pnpm chaos -- --seed 4242 --minutes 5');
  });

  it('take a seed, minutes, rate, kinds and the docs flag (after the -- pnpm may pass on)', () => {
    const args = parseArgs(
      [
        '--',
        '--seed',
        '7',
        '--minutes',
        '30',
        '--rate',
        '40',
        '--kinds',
        'node-kill,redis-empty',
        '--write-docs',
        '--out',
        'x',
      ],
      () => 1,
    );
    expect(args).toMatchObject({ out: 'x', writeDocs: true, seedGiven: true });
    expect(args.options).toMatchObject({
      seed: 7,
      minutes: 30,
      ratePerSecond: 40,
      kinds: ['node-kill', 'redis-empty'],
    });
    expect(commandOf(args)).toBe(
      'pnpm chaos -- --seed 7 --minutes 30 --rate 40 --kinds node-kill,redis-empty',
    );
  });

  it('refuses what it does not know', () => {
    expect(() => parseArgs(['--minutes'], () => 1)).toThrow('--minutes needs a value');
    expect(() => parseArgs(['--minutes', '-1'], () => 1)).toThrow(
      '--minutes takes a positive number',
    );
    expect(() => parseArgs(['--seed', '1.5'], () => 1)).toThrow('--seed takes an integer');
    expect(() => parseArgs(['--kinds', 'node-kill,meteor'], () => 1)).toThrow(
      /unknown fault kind "meteor"/,
    );
    expect(() => parseArgs(['--fast'], () => 1)).toThrow('unknown argument --fast');
  });
});
