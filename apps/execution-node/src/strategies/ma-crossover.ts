import type { PriceTick } from '@ginkgo-live/state-keys';
import type { BookView, Order, Strategy, StrategyResult } from './strategy.ts';

type Params = Record<string, number | string | boolean>;

interface SymbolMemory {
  prices: number[];
  /** Was the fast average above the slow one at the last tick? null before the windows fill. */
  fastAbove: boolean | null;
}

function positiveInt(params: Params, name: string, fallback: number): number | string {
  const value = params[name] ?? fallback;
  return typeof value === 'number' && Number.isInteger(value) && value > 0
    ? value
    : `param ${name} must be a positive integer, got ${JSON.stringify(value)}`;
}

const mean = (values: readonly number[]): number =>
  values.reduce((sum, v) => sum + v, 0) / values.length;

/**
 * Moving-average crossover, per symbol: buy `quantity` when the fast average crosses above the slow
 * one and nothing is held; sell everything when it crosses below. Params: `fast` (default 5),
 * `slow` (default 20, larger than fast), `quantity` (default 1).
 */
export class MovingAverageCrossover implements Strategy {
  readonly name = 'ma-crossover';

  private constructor(
    private readonly fast: number,
    private readonly slow: number,
    private readonly quantity: number,
    private readonly memory: Map<string, SymbolMemory>,
  ) {}

  /** Builds the strategy from its params and, when resuming, its saved memory. */
  static create(params: Params, saved: Record<string, unknown> = {}): StrategyResult {
    const fast = positiveInt(params, 'fast', 5);
    const slow = positiveInt(params, 'slow', 20);
    const quantity = params['quantity'] ?? 1;
    if (typeof fast === 'string') return { ok: false, reason: fast };
    if (typeof slow === 'string') return { ok: false, reason: slow };
    if (slow <= fast)
      return { ok: false, reason: `param slow (${slow}) must exceed fast (${fast})` };
    if (typeof quantity !== 'number' || !(quantity > 0)) {
      return {
        ok: false,
        reason: `param quantity must be a positive number, got ${JSON.stringify(quantity)}`,
      };
    }
    const memory = new Map<string, SymbolMemory>();
    for (const [symbol, value] of Object.entries(saved)) {
      const m = value as Partial<SymbolMemory> | null;
      if (m && Array.isArray(m.prices) && m.prices.every((p) => typeof p === 'number')) {
        memory.set(symbol, {
          prices: m.prices.slice(-slow),
          fastAbove: typeof m.fastAbove === 'boolean' ? m.fastAbove : null,
        });
      }
    }
    return { ok: true, strategy: new MovingAverageCrossover(fast, slow, quantity, memory) };
  }

  onTick(tick: PriceTick, book: BookView): Order[] {
    const memory = this.memory.get(tick.symbol) ?? { prices: [], fastAbove: null };
    this.memory.set(tick.symbol, memory);
    memory.prices.push(tick.price);
    if (memory.prices.length > this.slow) memory.prices.shift();
    if (memory.prices.length < this.slow) return [];
    const fastAbove = mean(memory.prices.slice(-this.fast)) > mean(memory.prices);
    const previous = memory.fastAbove;
    memory.fastAbove = fastAbove;
    if (previous === null || previous === fastAbove) return [];
    const held = book.positionOf(tick.symbol);
    if (fastAbove && held === 0)
      return [{ symbol: tick.symbol, side: 'buy', quantity: this.quantity }];
    if (!fastAbove && held > 0) return [{ symbol: tick.symbol, side: 'sell', quantity: held }];
    return [];
  }

  snapshot(): Record<string, unknown> {
    return Object.fromEntries(
      [...this.memory].map(([symbol, m]) => [
        symbol,
        { prices: [...m.prices], fastAbove: m.fastAbove },
      ]),
    );
  }
}
