import type { PortfolioSpec } from '@ginkgo-live/state-keys';
import { MovingAverageCrossover } from './ma-crossover.ts';
import type { StrategyResult } from './strategy.ts';

export type { BookView, Order, Strategy, StrategyResult } from './strategy.ts';

/** Strategy names this node can run. */
export const STRATEGY_NAMES = ['ma-crossover'] as const;

/** Builds the strategy a catalog entry names, resuming from its saved memory. */
export function createStrategy(
  spec: PortfolioSpec['strategy'],
  saved: Record<string, unknown> = {},
): StrategyResult {
  switch (spec.name) {
    case 'ma-crossover':
      return MovingAverageCrossover.create(spec.params, saved);
    default:
      return {
        ok: false,
        reason: `unknown strategy "${spec.name}" (known: ${STRATEGY_NAMES.join(', ')})`,
      };
  }
}
