// A small seeded PRNG for the fuzz test: the same seed gives the same calls on every machine and
// every Node version (Math.random cannot be seeded). Each call gets a generator of its own, derived
// from the run's seed and the call's index, so one call can be replayed alone (--only N) without
// generating the ones before it.

/** splitmix32: spreads a 32-bit state into a well-mixed 32-bit output (used to seed and to step). */
function splitmix32(state: number): number {
  let z = (state + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = splitmix32(seed >>> 0);
  }

  /** The generator of call `index` of the run seeded with `seed`. */
  static forCall(seed: number, index: number): Prng {
    return new Prng(splitmix32(seed >>> 0) ^ Math.imul(index + 1, 0x27d4eb2d));
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    return splitmix32(this.state);
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  /** A uniform integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Prng.pick: no items');
    return items[this.int(items.length)]!;
  }

  /** One of `choices`, each as likely as its weight. */
  weighted<T>(choices: readonly (readonly [number, T])[]): T {
    const total = choices.reduce((sum, [w]) => sum + w, 0);
    let r = (this.next() / 0x1_0000_0000) * total;
    for (const [weight, value] of choices) {
      if ((r -= weight) < 0) return value;
    }
    return choices[choices.length - 1]![1];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}
