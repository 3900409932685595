/**
 * What we tell Meta we can receive (REMB), from what we actually receive: a loss-based controller
 * in the spirit of WebRTC's own. Little loss: grow toward more than what arrives, so the sender
 * can ramp up; heavy loss: back off in proportion. Pure, driven once per interval.
 */
export class ReceiveBandwidthEstimator {
  private estimateBps: number;
  private bytes = 0;
  private received = 0;
  private highestSeq: number | undefined;
  private firstSeq: number | undefined;
  private cycles = 0;

  constructor(
    private readonly minBps = 150_000,
    private readonly maxBps = 2_500_000,
    startBps = 1_000_000,
  ) {
    this.estimateBps = startBps;
  }

  /** One received video packet (sequence number and payload size). */
  onPacket(sequenceNumber: number, bytes: number): void {
    this.bytes += bytes;
    this.received++;
    if (this.highestSeq === undefined) {
      this.highestSeq = sequenceNumber;
      this.firstSeq = sequenceNumber;
      return;
    }
    const delta = (sequenceNumber - this.highestSeq) & 0xffff;
    if (delta !== 0 && delta < 0x8000) {
      if (sequenceNumber < this.highestSeq) this.cycles += 0x10000;
      this.highestSeq = sequenceNumber;
    }
  }

  /** Closes an interval of `intervalMs` and returns the new estimate in bits per second. */
  update(intervalMs: number): number {
    if (this.received === 0 || this.firstSeq === undefined || this.highestSeq === undefined) return this.estimateBps;
    const expected = this.cycles + this.highestSeq - this.firstSeq + 1;
    const loss = expected > 0 ? Math.max(0, 1 - this.received / expected) : 0;
    const incomingBps = (this.bytes * 8 * 1000) / intervalMs;
    let next = this.estimateBps;
    if (loss > 0.1) next = this.estimateBps * (1 - 0.5 * loss);
    else if (loss < 0.02) next = Math.max(this.estimateBps * 1.08, incomingBps * 1.5);
    this.estimateBps = Math.round(Math.min(this.maxBps, Math.max(this.minBps, next)));
    this.bytes = 0;
    this.received = 0;
    this.cycles = 0;
    this.firstSeq = undefined;
    this.highestSeq = undefined;
    return this.estimateBps;
  }

  get bps(): number {
    return this.estimateBps;
  }
}

/** REMB's exponent/mantissa form (18-bit mantissa), which werift's serializer needs spelled out. */
export function rembFields(bps: number): { brExp: number; brMantissa: number } {
  let mantissa = Math.max(0, Math.floor(bps));
  let exp = 0;
  while (mantissa > 0x3ffff) {
    mantissa >>= 1;
    exp++;
  }
  return { brExp: exp, brMantissa: mantissa };
}
