/** Extends wrapping RTP counters (16-bit sequence numbers, 32-bit timestamps) to monotonic numbers. */
export class CounterUnwrapper {
  private last: number | undefined;
  private readonly half: number;

  constructor(private readonly modulus: number) {
    this.half = modulus / 2;
  }

  /** The extended value nearest to the last one (a step back of up to half the range is a step back). */
  unwrap(value: number): number {
    if (this.last === undefined) {
      this.last = value;
      return value;
    }
    let diff = (value - this.last) % this.modulus;
    if (diff < 0) diff += this.modulus;
    if (diff >= this.half) diff -= this.modulus;
    const extended = this.last + diff;
    // Keep the reference at the highest value seen so a late packet does not drag it backwards.
    if (diff > 0) this.last = extended;
    return extended;
  }

  reset(): void {
    this.last = undefined;
  }
}

export const sequenceUnwrapper = (): CounterUnwrapper => new CounterUnwrapper(0x10000);
export const timestampUnwrapper = (): CounterUnwrapper => new CounterUnwrapper(0x100000000);
