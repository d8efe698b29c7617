import { describe, expect, it } from 'vitest';
import { DEFAULTS, runCampaign } from '../../chaos/campaign.ts';
import { parseArgs, writeOutputs } from '../../chaos/cli.ts';
import { kindTable } from '../../chaos/report.ts';

/**
 * The short form of `pnpm chaos` for CI: faults with a fixed seed for a minute, on the whole stack
 * as processes (Redis with its AOF, two schedulers, four nodes, the gateway, the notification
 * worker), a numbered feed of eight portfolios, then the checker over every book. Every fault kind
 * of the campaign comes up at least once (the kinds are dealt from a shuffled deck of eight, and the
 * fault phase runs until eight were injected). Results, timeline and every process's log:
 * test-artifacts/chaos-seed-7/.
 */
const SEED = 7;

describe('the fault campaign (short form)', () => {
  it('loses no accepted event outside a declared window, applies none twice or out of order, and no process exits', async ({
    annotate,
  }) => {
    const out = `test-artifacts/chaos-seed-${SEED}`;
    // At least one fault of each kind (they are dealt from a deck of eight), however slow the machine.
    const args = parseArgs(
      ['--seed', String(SEED), '--minutes', '1', '--min-faults', '8', '--out', out],
      () => SEED,
    );
    const log: string[] = [];
    const result = await runCampaign({
      ...DEFAULTS,
      ...args.options,
      drainTimeoutMs: 90_000,
      log: (line) => log.push(line),
    });
    const { history } = await writeOutputs(args, result, out, false);
    const v = result.verdict;
    const table = kindTable(v).join('\n');
    await annotate(`seed ${SEED}, ${result.input.faults.length} faults\n${table}`);
    const why = `\n${table}\n\n${v.failures.join('\n')}\n\n${history.join('\n')}`;

    // Every fault kind was injected.
    expect(new Set(result.input.faults.map((f) => f.kind)).size, why).toBe(DEFAULTS.kinds.length);
    // Every book could be checked exactly (an applied record, no forgotten gaps).
    expect(
      v.portfolios.map((p) => [p.portfolioId, p.mode]),
      why,
    ).toEqual(v.portfolios.map((p) => [p.portfolioId, 'exact']));
    expect(v.total.lostDurable, why).toBe(0);
    expect(v.total.duplicates, why).toBe(0);
    expect(v.total.outOfOrder, why).toBe(0);
    expect(v.total.exits, why).toBe(0);
    expect(
      v.portfolios.reduce((n, p) => n + p.phantom.length, 0),
      why,
    ).toBe(0);
    expect(v.failures, why).toEqual([]);
  }, 600_000);
});
