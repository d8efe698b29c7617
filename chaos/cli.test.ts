import { describe, expect, it } from 'vitest';
import { DEFAULTS, type CampaignResult } from './campaign.ts';
import { checkCampaign, type CampaignInput } from './checker.ts';
import { commandOf, historyLines, parseArgs, readHistory } from './cli.ts';

describe('pnpm chaos arguments', () => {
  it('default to five minutes of every kind, a random seed and .chaos/', () => {
    const args = parseArgs([], () => 4242);
    expect(args).toMatchObject({
      out: '.chaos',
      writeDocs: false,
      seedGiven: false,
      recheck: undefined,
    });
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
        '--min-faults',
        '8',
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
      minFaults: 8,
    });
    expect(commandOf(args)).toBe(
      'pnpm chaos -- --seed 7 --minutes 30 --rate 40 --kinds node-kill,redis-empty --min-faults 8',
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

describe('a run’s history', () => {
  it('reads back into the same input and the same verdict', () => {
    const range = {
      first: 1,
      last: 3,
      count: 3,
      checksum: ((1 * 31 + 2) * 31 + 3) % 4_294_967_291,
      gaps: [] as [number, number][],
    };
    const input: CampaignInput = {
      portfolios: ['p1'],
      feeds: new Map([
        [
          'p1',
          {
            portfolioId: 'p1',
            refused: 2,
            anomalies: [],
            seqs: new Map([
              [1, { outcome: 'accepted' as const, atMs: 100 }],
              [2, { outcome: 'unknown' as const, atMs: 200 }],
              [3, { outcome: 'accepted' as const, atMs: 300 }],
              [4, { outcome: 'accepted' as const, atMs: 400 }],
            ]),
          },
        ],
      ]),
      books: new Map([['p1', { present: true, processedCount: 3, applied: range }]]),
      faults: [
        {
          id: 1,
          kind: 'redis-kill',
          target: 'redis',
          startMs: 410,
          endMs: 900,
          notes: ['x'],
          restartedMs: 800,
        },
      ],
      samples: [
        {
          atMs: 250,
          ok: true,
          portfolios: {
            p1: { progress: 1, depth: 0, accepted: 1, node: 'node-1', status: 'running' },
          },
        },
      ],
      detections: [],
      rollbacks: [
        { atMs: 950, portfolioId: 'p1', before: { ...range, last: 4, count: 4 }, after: range },
      ],
      exits: [],
      notices: [
        {
          atMs: 500,
          kind: 'redis_unavailable',
          status: 'firing',
          title: 't',
          nodeId: null,
          portfolioId: null,
          source: 'gateway',
        },
      ],
      endMs: 1_000,
      fsyncWindowMs: 2_000,
      problems: [],
    };
    const args = parseArgs(['--seed', '9', '--minutes', '1'], () => 1);
    const result: CampaignResult = {
      verdict: checkCampaign(input),
      input,
      startedAt: new Date('2026-12-01T20:00:00.000Z'),
      faultPhaseMs: 60_000,
      faultPhaseEndMs: 60_000,
      drainMs: 1_500,
      redisVersion: '7.0.15',
      logsOf: () => undefined,
    };
    // Seq 4 accepted inside the kill's window and taken by its rollback: a declared-window loss.
    expect(result.verdict.portfolios[0]?.lostWindow).toEqual([{ seq: 4, faultId: 1 }]);
    const back = readHistory(historyLines(args, result).join('\n'));
    expect(back.args.options).toEqual(args.options);
    expect(back.result.input).toEqual(input);
    expect(back.result.verdict).toEqual(result.verdict);
    expect(back.result.startedAt).toEqual(result.startedAt);
    expect(back.result.drainMs).toBe(1_500);
  });

  it('refuses a file without its meta line', () => {
    expect(() => readHistory('{"type":"fault"}\n')).toThrow('no meta line');
  });
});
