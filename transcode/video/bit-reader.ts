/** MSB-first bit reader for codec headers; reading past the end yields zeros (callers bound their reads). */
export class BitReader {
  private bitOffset = 0;

  constructor(private readonly data: Uint8Array, byteOffset = 0) {
    this.bitOffset = byteOffset * 8;
  }

  get bitsLeft(): number {
    return Math.max(0, this.data.length * 8 - this.bitOffset);
  }

  bit(): number {
    const byte = this.data[this.bitOffset >> 3] ?? 0;
    const value = (byte >> (7 - (this.bitOffset & 7))) & 1;
    this.bitOffset++;
    return value;
  }

  bits(count: number): number {
    let value = 0;
    for (let i = 0; i < count; i++) value = value * 2 + this.bit();
    return value;
  }

  /** Exp-Golomb unsigned (H.264/H.265 ue(v)). */
  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) {
      if (++zeros > 31 || this.bitsLeft === 0) return 0;
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }
}
