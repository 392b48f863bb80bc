// numpy's legacy RandomState: MT19937 seeded with init_genrand and the polar Gaussian with a
// cached second value. z for seed N is exactly `np.random.RandomState(N).randn(zDim)`, the
// way NVIDIA's generate.py seeds, so a seed gives the same image here as in the Python tools.
import { EngineError } from './types.ts';

const N = 624;
const M = 397;

export class RandomState {
  private readonly mt = new Uint32Array(N);
  private index = N;
  private cachedGauss: number | null = null;

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new EngineError('bad_seed', `seed must be an integer in 0..4294967295, got ${seed}`);
    }
    this.mt[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = this.mt[i - 1] ^ (this.mt[i - 1] >>> 30);
      // 1812433253 * prev + i, modulo 2^32 (Math.imul keeps it exact).
      this.mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  private refill(): void {
    const mt = this.mt;
    for (let i = 0; i < N; i++) {
      const y = (mt[i] & 0x80000000) | (mt[(i + 1) % N] & 0x7fffffff);
      mt[i] = mt[(i + M) % N] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }

  /** Next tempered 32-bit output. */
  uint32(): number {
    if (this.index >= N) this.refill();
    let y = this.mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Uniform [0, 1) with 53 bits, as numpy's random_sample. */
  double(): number {
    const a = this.uint32() >>> 5;
    const b = this.uint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Standard normal, numpy's legacy polar method. */
  gauss(): number {
    if (this.cachedGauss !== null) {
      const g = this.cachedGauss;
      this.cachedGauss = null;
      return g;
    }
    let x1: number, x2: number, r2: number;
    do {
      x1 = 2 * this.double() - 1;
      x2 = 2 * this.double() - 1;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1 || r2 === 0);
    const f = Math.sqrt((-2 * Math.log(r2)) / r2);
    this.cachedGauss = f * x1;
    return f * x2;
  }

  randn(n: number): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = this.gauss();
    return out;
  }
}

/** z for a seed: `np.random.RandomState(seed).randn(dim)` as float32. */
export function seedToZ(seed: number, dim: number): Float32Array {
  return Float32Array.from(new RandomState(seed).randn(dim));
}
