import type { ReportBlock } from "./rtcp-packet.js";

const MAX_DROPOUT = 3000;
const MAX_MISORDER = 100;
const SEQ_MOD = 0x10000;

/**
 * Reception statistics for one remote source, as RFC 3550 appendix A.1/A.3/A.8 computes them:
 * extended highest sequence number, cumulative and interval loss, interarrival jitter, and the
 * LSR/DLSR pair that lets the sender measure round-trip time.
 */
export class ReceptionStats {
  private baseSeq = 0;
  private maxSeq = 0;
  private cycles = 0;
  private badSeq = SEQ_MOD + 1;
  private started = false;
  private received = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private transit: number | undefined;
  private jitterUnits = 0;
  private lastSr: { middle32: number; arrivedAtMs: number } | undefined;
  private lastFraction = 0;

  constructor(private readonly clockRate: number) {}

  /**
   * Accounts for one packet. `arrivalMs` is a monotonic time in ms. Returns false when the
   * packet is a stray far outside the sequence (it is then not counted, per A.1).
   */
  onPacket(sequenceNumber: number, rtpTimestamp: number, arrivalMs: number): boolean {
    if (!this.started) {
      this.started = true;
      this.baseSeq = sequenceNumber;
      this.maxSeq = sequenceNumber;
      this.badSeq = SEQ_MOD + 1;
    } else {
      const udelta = (sequenceNumber - this.maxSeq + SEQ_MOD) % SEQ_MOD;
      if (udelta < MAX_DROPOUT) {
        if (sequenceNumber < this.maxSeq) this.cycles += SEQ_MOD;
        this.maxSeq = sequenceNumber;
      } else if (udelta <= SEQ_MOD - MAX_MISORDER) {
        // A big jump: take it as a restarted sender only when the next packet confirms it.
        if (sequenceNumber === this.badSeq) {
          this.restart(sequenceNumber);
        } else {
          this.badSeq = (sequenceNumber + 1) % SEQ_MOD;
          return false;
        }
      }
      // else: duplicate or reordered within MAX_MISORDER; counted as received.
    }
    this.received++;
    this.updateJitter(rtpTimestamp, arrivalMs);
    return true;
  }

  private restart(sequenceNumber: number): void {
    this.baseSeq = sequenceNumber;
    this.maxSeq = sequenceNumber;
    this.cycles = 0;
    this.badSeq = SEQ_MOD + 1;
    this.received = 0;
    this.expectedPrior = 0;
    this.receivedPrior = 0;
    this.transit = undefined;
  }

  private updateJitter(rtpTimestamp: number, arrivalMs: number): void {
    const arrival = (arrivalMs * this.clockRate) / 1000;
    const transit = arrival - rtpTimestamp;
    if (this.transit !== undefined) {
      let d = Math.abs(transit - this.transit);
      // RTP timestamps wrap at 2^32; a wrap looks like a huge transit change.
      if (d > 2 ** 31) d = Math.abs(d - 2 ** 32);
      this.jitterUnits += (d - this.jitterUnits) / 16;
    }
    this.transit = transit;
  }

  /** Records an SR from the source (for LSR/DLSR in our next report). */
  onSenderReport(ntpMiddle32: number, arrivalMs: number): void {
    this.lastSr = { middle32: ntpMiddle32, arrivedAtMs: arrivalMs };
  }

  get packetsReceived(): number {
    return this.received;
  }

  get extendedHighestSequence(): number {
    return this.cycles + this.maxSeq;
  }

  get expected(): number {
    return this.started ? this.extendedHighestSequence - this.baseSeq + 1 : 0;
  }

  /** Cumulative loss; negative when duplicates outnumber losses. */
  get cumulativeLost(): number {
    return this.expected - this.received;
  }

  /** Jitter in RTP timestamp units. */
  get jitter(): number {
    return this.jitterUnits;
  }

  get jitterMs(): number {
    return (this.jitterUnits * 1000) / this.clockRate;
  }

  /** Loss fraction (0–1) of the last reported interval in which packets were expected. */
  get fractionLost(): number {
    return this.lastFraction;
  }

  get hasReceived(): boolean {
    return this.started;
  }

  /** The report block for our next SR/RR; advances the interval used for the fraction lost. */
  reportBlock(ssrc: number, nowMs: number): ReportBlock {
    const expected = this.expected;
    const expectedInterval = expected - this.expectedPrior;
    const receivedInterval = this.received - this.receivedPrior;
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    const lostInterval = expectedInterval - receivedInterval;
    const fractionLost = expectedInterval <= 0 || lostInterval <= 0 ? 0 : Math.floor((lostInterval * 256) / expectedInterval);
    if (expectedInterval > 0) this.lastFraction = Math.min(255, fractionLost) / 256;
    return {
      ssrc,
      fractionLost: Math.min(255, fractionLost),
      cumulativeLost: this.cumulativeLost,
      highestSequence: this.extendedHighestSequence >>> 0,
      jitter: Math.floor(this.jitterUnits),
      lastSenderReport: this.lastSr?.middle32 ?? 0,
      delaySinceLastSenderReport: this.lastSr ? Math.floor(((nowMs - this.lastSr.arrivedAtMs) / 1000) * 65536) >>> 0 : 0,
    };
  }
}
