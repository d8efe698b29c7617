import type { PriceTick } from '@ginkgo-live/state-keys';

/** An order a strategy wants filled. */
export interface Order {
  symbol: string;
  side: 'buy' | 'sell';
  quantity: number;
}

/** What a strategy may see of its portfolio. */
export interface BookView {
  cash: number;
  positionOf(symbol: string): number;
}

/** A trading strategy behind the smallest interface that lets a portfolio run it. */
export interface Strategy {
  readonly name: string;
  /** Decides on one tick; returns the orders to fill (paper fills at the tick price). */
  onTick(tick: PriceTick, book: BookView): Order[];
  /** The strategy's memory as plain JSON, saved in the portfolio book so it survives a move. */
  snapshot(): Record<string, unknown>;
}

/** A strategy, or why none could be built from a spec. */
export type StrategyResult = { ok: true; strategy: Strategy } | { ok: false; reason: string };
