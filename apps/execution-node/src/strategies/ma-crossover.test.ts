import { describe, expect, it } from 'vitest';
import type { PriceTick } from '@ginkgo-live/state-keys';
import { Book } from '../portfolio-book.ts';
import { createStrategy } from './index.ts';

const tick = (price: number, symbol = 'BTC'): PriceTick => ({
  _v: 1,
  symbol,
  price,
  volume: 1,
  event_time: '2026-11-28T06:00:00.000Z',
});

function run(prices: number[], params = { fast: 2, slow: 4, quantity: 1 }) {
  const result = createStrategy({ name: 'ma-crossover', params });
  if (!result.ok) throw new Error(result.reason);
  const book = new Book(1_000);
  const fills: string[] = [];
  for (const price of prices) {
    const t = tick(price);
    book.mark(t);
    for (const order of result.strategy.onTick(t, book)) {
      if (book.fill(order, price)) fills.push(`${order.side}@${price}`);
    }
  }
  return { book, fills, strategy: result.strategy };
}

describe('MovingAverageCrossover', () => {
  it('buys on a cross up and sells everything on a cross down', () => {
    // falling (fast below), then rising (cross up), then falling (cross down)
    const { book, fills } = run([10, 9, 8, 7, 8, 10, 12, 9, 6, 5]);
    expect(fills).toEqual(['buy@10', 'sell@6']);
    expect(book.cash).toBe(1_000 - 10 + 6);
    expect(book.positionCount).toBe(0);
    expect(book.totalValue).toBe(996);
  });

  it('trades nothing before the slow window is full', () => {
    expect(run([1, 2, 3]).fills).toEqual([]);
  });

  it('values open positions at the last price', () => {
    const { book, fills } = run([10, 9, 8, 7, 8, 10, 12, 13]);
    expect(fills).toEqual(['buy@10']);
    expect(book.totalValue).toBe(990 + 13);
  });

  it('resumes from its snapshot with the same decisions', () => {
    const prices = [10, 9, 8, 7, 8, 10, 12, 9, 6, 5];
    const first = run(prices.slice(0, 5));
    const resumed = createStrategy(
      { name: 'ma-crossover', params: { fast: 2, slow: 4, quantity: 1 } },
      first.strategy.snapshot(),
    );
    if (!resumed.ok) throw new Error(resumed.reason);
    const orders = prices.slice(5).flatMap((p) => resumed.strategy.onTick(tick(p), first.book));
    expect(orders[0]).toEqual({ symbol: 'BTC', side: 'buy', quantity: 1 });
  });

  it('refuses bad params and unknown strategies with the reason', () => {
    expect(createStrategy({ name: 'ma-crossover', params: { fast: 5, slow: 5 } })).toEqual({
      ok: false,
      reason: 'param slow (5) must exceed fast (5)',
    });
    expect(createStrategy({ name: 'ma-crossover', params: { fast: -1 } })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('param fast') as unknown,
    });
    expect(createStrategy({ name: 'martingale', params: {} })).toEqual({
      ok: false,
      reason: 'unknown strategy "martingale" (known: ma-crossover)',
    });
  });
});

describe('Book', () => {
  it('refuses a buy it cannot pay for and a sell of nothing', () => {
    const book = new Book(50);
    expect(book.fill({ symbol: 'X', side: 'buy', quantity: 1 }, 100)).toBe(false);
    expect(book.fill({ symbol: 'X', side: 'sell', quantity: 1 }, 100)).toBe(false);
    expect(book.rejectedOrders).toBe(2);
    book.cash = 100;
    expect(book.fill({ symbol: 'X', side: 'buy', quantity: 2 }, 10)).toBe(true);
    expect(book.fill({ symbol: 'X', side: 'buy', quantity: 2 }, 20)).toBe(true);
    expect(book.positions.get('X')).toEqual({ quantity: 4, avg_price: 15 });
    expect(book.cash).toBe(100 - 20 - 40);
  });

  it('round-trips through its saved form', () => {
    const book = new Book(100);
    book.fill({ symbol: 'X', side: 'buy', quantity: 1 }, 10);
    book.mark(tick(12, 'X'));
    const saved = book.toJSON();
    const again = Book.from({
      _v: 1,
      portfolio_id: 'p',
      node_id: 'n',
      strategy_state: {},
      processed_count: 0,
      failed_count: 0,
      updated_at: '2026-11-28T06:00:00.000Z',
      ...saved,
    });
    expect(again.toJSON()).toEqual(saved);
    expect(again.totalValue).toBe(102);
  });
});
