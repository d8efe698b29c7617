import type { PortfolioBook, PriceTick } from '@ginkgo-live/state-keys';
import type { BookView, Order } from './strategies/index.ts';

interface Position {
  quantity: number;
  avg_price: number;
}

/**
 * A portfolio's cash and positions with paper fills at the tick price. A buy the cash cannot pay
 * for is not filled (and counted); a sell never exceeds what is held.
 */
export class Book implements BookView {
  cash: number;
  readonly positions = new Map<string, Position>();
  readonly lastPrices = new Map<string, number>();
  rejectedOrders = 0;

  constructor(cash: number) {
    this.cash = cash;
  }

  /** Rebuilds a book from its saved form. */
  static from(saved: PortfolioBook): Book {
    const book = new Book(saved.cash);
    for (const [symbol, p] of Object.entries(saved.positions)) book.positions.set(symbol, { ...p });
    for (const [symbol, price] of Object.entries(saved.last_prices))
      book.lastPrices.set(symbol, price);
    return book;
  }

  positionOf(symbol: string): number {
    return this.positions.get(symbol)?.quantity ?? 0;
  }

  /** Records the last price of the tick's symbol (for valuation). */
  mark(tick: PriceTick): void {
    this.lastPrices.set(tick.symbol, tick.price);
  }

  /** Fills an order at `price`. */
  fill(order: Order, price: number): boolean {
    const held = this.positions.get(order.symbol) ?? { quantity: 0, avg_price: 0 };
    if (order.side === 'buy') {
      const cost = order.quantity * price;
      if (cost > this.cash) {
        this.rejectedOrders += 1;
        return false;
      }
      const quantity = held.quantity + order.quantity;
      this.positions.set(order.symbol, {
        quantity,
        avg_price: (held.quantity * held.avg_price + cost) / quantity,
      });
      this.cash -= cost;
      return true;
    }
    const quantity = Math.min(order.quantity, held.quantity);
    if (quantity <= 0) {
      this.rejectedOrders += 1;
      return false;
    }
    this.cash += quantity * price;
    if (quantity === held.quantity) this.positions.delete(order.symbol);
    else this.positions.set(order.symbol, { ...held, quantity: held.quantity - quantity });
    return true;
  }

  /** Positions held (non-zero). */
  get positionCount(): number {
    return this.positions.size;
  }

  /** Cash plus every position at its last price. */
  get totalValue(): number {
    let value = this.cash;
    for (const [symbol, p] of this.positions) {
      value += p.quantity * (this.lastPrices.get(symbol) ?? p.avg_price);
    }
    return value;
  }

  /** The saved form's positions and prices. */
  toJSON(): Pick<PortfolioBook, 'cash' | 'positions' | 'last_prices'> {
    return {
      cash: this.cash,
      positions: Object.fromEntries(this.positions),
      last_prices: Object.fromEntries(this.lastPrices),
    };
  }
}
