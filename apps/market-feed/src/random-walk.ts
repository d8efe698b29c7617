/** A geometric random walk: each step multiplies the price by exp(σ·z), z standard normal. */
export class RandomWalk {
  constructor(
    private price: number,
    private readonly sigma: number,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    // Box–Muller: two uniforms to one standard normal.
    const u = 1 - this.random();
    const v = this.random();
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    this.price *= Math.exp(this.sigma * z);
    return Math.round(this.price * 100) / 100 || 0.01;
  }
}

/** A plausible starting price for a symbol, stable per name. */
export function startingPrice(symbol: string): number {
  let hash = 0;
  for (const char of symbol) hash = (hash * 31 + char.charCodeAt(0)) % 10_000;
  return 50 + hash;
}
