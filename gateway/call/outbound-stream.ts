/**
 * Numbers one outbound RTP stream: consecutive sequence numbers, and timestamps that keep the
 * spacing of the source while staying continuous when the source changes (a new SSRC, a restart).
 */
export class OutboundStream {
  private seq = Math.floor(Math.random() * 0x10000);
  private tsBase = Math.floor(Math.random() * 0x100000000);
  private lastSourceTs: number | undefined;
  private lastOutTs: number;

  constructor(private readonly frameSamples: number) {
    this.lastOutTs = this.tsBase;
  }

  /**
   * Numbering for a packet that is not audio (telephone-event): the next sequence number, and the
   * timestamp the audio has reached, so the event lines up with the audio around it.
   */
  nextEventNumbers(): { sequenceNumber: number; timestamp: number } {
    this.seq = (this.seq + 1) & 0xffff;
    return { sequenceNumber: this.seq, timestamp: this.lastOutTs };
  }

  /** Returns the sequence number and timestamp for the next packet, given the source's timestamp. */
  next(sourceTs: number): { sequenceNumber: number; timestamp: number } {
    let ts: number;
    if (this.lastSourceTs === undefined) {
      ts = this.lastOutTs;
    } else {
      const delta = (sourceTs - this.lastSourceTs) >>> 0;
      // A jump of more than 10 s is a new source, not elapsed time: continue one frame on.
      const step = delta > 0 && delta < 48000 * 10 ? delta : this.frameSamples;
      ts = (this.lastOutTs + step) >>> 0;
    }
    this.lastSourceTs = sourceTs;
    this.lastOutTs = ts;
    this.seq = (this.seq + 1) & 0xffff;
    return { sequenceNumber: this.seq, timestamp: ts };
  }
}
