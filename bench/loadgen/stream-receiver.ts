import type { Histogram } from "../stats/histogram.js";
import type { StreamSender } from "./stream-sender.js";

/** Quiet frames that must precede a talk onset. */
const MIN_QUIET_RUN = 5;
/** A mapped latency this negative means the mapping slipped (frames inserted or dropped in between). */
const SLIP_MS = -1;

export interface ReceiverCounters {
  received: number;
  /** Sequence-number gaps: packets that never arrived. */
  lost: number;
  /** Packets whose latency was recorded. */
  mapped: number;
  /** Onsets that confirmed the current mapping. */
  confirmed: number;
  /** Onsets that moved it (the far end inserted or dropped frames). */
  reanchored: number;
  /** Packets seen while no mapping held. */
  unmapped: number;
}

/**
 * The other end of a StreamSender, on the far leg: maps each packet back to the frame that was
 * sent and records arrival minus send time. The mapping comes from talk onsets (see speech.ts)
 * and then from RTP timestamps, which every system under test keeps continuous within a stream.
 */
export class StreamReceiver {
  private quietRun = 0;
  private anchor: { frame: number; timestamp: number } | undefined;
  private highestSeq: number | undefined;
  /** Latencies recorded in the open window, for this stream's own delay-variation figure. */
  private windowSamples: number[] = [];
  readonly counters: ReceiverCounters = { received: 0, lost: 0, mapped: 0, confirmed: 0, reanchored: 0, unmapped: 0 };

  constructor(
    private readonly source: StreamSender,
    private readonly tsStep: number,
    private readonly isQuiet: (payload: Buffer) => boolean,
    /** Where latencies go; undefined outside measurement windows. */
    private readonly sink: () => Histogram | undefined,
  ) {}

  get anchored(): boolean {
    return this.anchor !== undefined;
  }

  onPacket(sequenceNumber: number, timestamp: number, payload: Buffer, arrivalMs: number): void {
    this.countSequence(sequenceNumber);
    if (this.isQuiet(payload)) {
      this.quietRun++;
    } else {
      // The first frame with any talk in it is the onset frame: codec delay only thins it.
      if (this.quietRun >= MIN_QUIET_RUN) this.onOnset(timestamp, arrivalMs);
      this.quietRun = 0;
    }
    const anchor = this.anchor;
    if (!anchor) {
      this.counters.unmapped++;
      return;
    }
    const delta = (timestamp - anchor.timestamp) | 0;
    const frame = anchor.frame + Math.round(delta / this.tsStep);
    const sent = this.source.sentTime(frame);
    if (sent === undefined || delta % this.tsStep !== 0) {
      this.counters.unmapped++;
      return;
    }
    const latency = arrivalMs - sent;
    if (latency < SLIP_MS) {
      this.anchor = undefined;
      this.counters.unmapped++;
      return;
    }
    const sink = this.sink();
    if (sink) {
      sink.add(latency);
      this.windowSamples.push(latency);
      this.counters.mapped++;
    }
  }

  /**
   * Takes the latencies recorded since the last call: how many there were and how many lie
   * within `budgetMs` of this stream's own median (what a receiver's jitter buffer would absorb
   * after a fixed hold).
   */
  takeWindow(budgetMs: number): { samples: number; withinBudget: number } {
    const samples = this.windowSamples;
    this.windowSamples = [];
    if (samples.length === 0) return { samples: 0, withinBudget: 0 };
    const sorted = Float64Array.from(samples).sort();
    const limit = (sorted[Math.floor(sorted.length / 2)] as number) + budgetMs;
    let within = 0;
    for (const v of sorted) if (v <= limit) within++;
    return { samples: sorted.length, withinBudget: within };
  }

  private onOnset(timestamp: number, arrivalMs: number): void {
    const frame = this.source.onsetSentBefore(arrivalMs);
    if (frame === undefined) return;
    const current = this.anchor;
    if (current) {
      const predicted = current.frame + Math.round(((timestamp - current.timestamp) | 0) / this.tsStep);
      if (predicted === frame) this.counters.confirmed++;
      else this.counters.reanchored++;
    }
    this.anchor = { frame, timestamp };
  }

  private countSequence(seq: number): void {
    this.counters.received++;
    if (this.highestSeq === undefined) {
      this.highestSeq = seq;
      return;
    }
    const step = ((((seq - this.highestSeq) & 0xffff) + 0x8000) & 0xffff) - 0x8000;
    if (step > 0) {
      if (step > 1) this.counters.lost += step - 1;
      this.highestSeq = seq;
    } else if (step < 0 && this.counters.lost > 0) {
      // A late packet filling a gap already counted as lost.
      this.counters.lost--;
    }
  }
}
