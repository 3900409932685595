/**
 * Low-level white noise for a leg that must never fall silent: Meta and WhatsApp end calls whose audio stops,
 * and a PBX that is ringing or muted sends nothing. Deterministic (seeded) so tests and captures repeat.
 *
 * Levels use tone.ts's convention: dBFS of the RMS relative to full scale (32768).
 */

export class ComfortNoise {
  readonly levelDbfs: number;
  /** Peak of a uniform distribution whose RMS is the requested level (uniform RMS = peak / √3). */
  readonly #peak: number;
  #state: number;

  constructor(levelDbfs = -60, seed = 0x2545f491) {
    if (!(levelDbfs <= 0)) throw new RangeError(`comfort noise level must be at most 0 dBFS, got ${levelDbfs}`);
    this.levelDbfs = levelDbfs;
    this.#peak = Math.min(32767, 32768 * 10 ** (levelDbfs / 20) * Math.sqrt(3));
    this.#state = seed >>> 0 || 1;
  }

  fill(out: Int16Array): Int16Array {
    for (let i = 0; i < out.length; i++) {
      // xorshift32: fast, good enough spectrally flat noise for a background hiss.
      let x = this.#state;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.#state = x >>> 0;
      out[i] = Math.round((this.#state / 0x100000000) * 2 * this.#peak - this.#peak);
    }
    return out;
  }

  frame(samples: number): Int16Array {
    return this.fill(new Int16Array(samples));
  }
}
