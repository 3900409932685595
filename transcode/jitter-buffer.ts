/**
 * A small adaptive jitter buffer for one incoming RTP stream, built to add as little latency as possible:
 * it never delays a packet that arrives in order. Only a gap in sequence numbers makes it hold the packets
 * after the gap, and only for an adaptive wait (how late reordered packets have recently been), after which
 * the missing packets are declared lost and the held ones released.
 *
 * It knows nothing of codecs beyond `durationOf` (how many clock ticks a payload lasts), so it can tell a
 * DTX pause (sequence numbers continue, the timestamp jumps further than the last packet lasted) from loss.
 *
 * Time is whatever the caller says it is: `push(packet, nowMs)` and `tick(nowMs)`. The caller owns the timer
 * and can ask {@link JitterBuffer.nextDeadlineMs} when the next `tick` matters.
 */

export interface JitterPacket {
  /** 16-bit RTP sequence number. */
  seq: number;
  /** 32-bit RTP timestamp. */
  timestamp: number;
  ssrc?: number;
  payload: Uint8Array;
}

export type JitterResetReason = "ssrc-change" | "sequence-jump";

export type JitterEvent =
  /** A packet to decode, in order. `arrivalMs` is when it reached us (for latency accounting). */
  | { kind: "frame"; packet: JitterPacket; timestamp: number; arrivalMs: number }
  /**
   * One packet that will not come: conceal `samples` (clock ticks) starting at `timestamp`. `fecFrom` is the
   * packet right after it when that one is already here (its in-band FEC describes the lost frame).
   */
  | { kind: "lost"; timestamp: number; samples: number; declaredAtMs: number; fecFrom?: JitterPacket }
  /**
   * Time with no audio that must not be concealed: a DTX pause (sequence numbers continued) or the part of a
   * long outage beyond what concealment should cover.
   */
  | { kind: "silence"; timestamp: number; samples: number; cause: "dtx" | "outage"; atMs: number }
  /** The stream restarted; earlier state (decoder history, timestamps) no longer applies. */
  | { kind: "reset"; reason: JitterResetReason };

export interface JitterStats {
  received: number;
  released: number;
  duplicates: number;
  /** Arrived after their slot had already been concealed (or far too old to place). */
  late: number;
  lost: number;
  /** Arrived after a later packet but in time to be used. */
  reordered: number;
  silences: number;
  resets: number;
  held: number;
  /** Current wait before a gap is declared lost. */
  waitMs: number;
  /** RFC 3550 interarrival jitter, in ms. */
  jitterMs: number;
}

export interface JitterBufferOptions {
  /** RTP clock rate of the stream (48000 for Opus). */
  clockRate: number;
  /** Duration of a payload in clock ticks (for Opus: the TOC says). Return 0 if unknown. */
  durationOf: (payload: Uint8Array) => number;
  onEvent: (event: JitterEvent) => void;
  /** Shortest wait for a missing packet; default 5 ms. */
  minWaitMs?: number;
  /** Longest wait for a missing packet; default 60 ms. */
  maxWaitMs?: number;
  /** Wait before anything has been observed; default 20 ms. */
  initialWaitMs?: number;
  /** Consecutive missing packets concealed per gap; the rest is reported as silence. Default 10. */
  maxConcealedPerGap?: number;
  /** Packets held while waiting; past this the gap is declared lost at once. Default 16. */
  maxHeldPackets?: number;
  /** A packet this far behind the expected sequence number starts a probation for a restart. Default 100. */
  maxMisorder?: number;
  /** A packet this far ahead starts a probation for a restart (otherwise it is a gap). Default 1000. */
  maxDropout?: number;
}

interface Held {
  packet: JitterPacket;
  arrivalMs: number;
}

/** How many recent sequence numbers are remembered to tell a duplicate from a late packet. */
const HISTORY = 256;
/** Time constant with which the reordering estimate decays once reordering stops. */
const WAIT_DECAY_MS = 8000;
/** Added to the largest recent reordering delay so a packet as late as the worst recent one still makes it. */
const WAIT_MARGIN_MS = 2;
const DEFAULT_FRAME_TICKS_PER_SECOND = 50;

/** What became of a recently expected sequence number, to tell a duplicate from a late arrival. */
const SlotFate = { released: 1, lost: 2 } as const;

type StreamState =
  | { name: "idle" }
  | { name: "playing"; ssrc: number | undefined; nextSeq: number; nextTimestamp: number; lastDuration: number };

function seqDelta(seq: number, reference: number): number {
  return ((((seq - reference) & 0xffff) + 0x8000) & 0xffff) - 0x8000;
}

function tsDelta(timestamp: number, reference: number): number {
  return (timestamp - reference) | 0;
}

export class JitterBuffer {
  readonly #clockRate: number;
  readonly #durationOf: (payload: Uint8Array) => number;
  readonly #emit: (event: JitterEvent) => void;
  readonly #minWaitMs: number;
  readonly #maxWaitMs: number;
  readonly #maxConcealedPerGap: number;
  readonly #maxHeld: number;
  readonly #maxMisorder: number;
  readonly #maxDropout: number;

  #state: StreamState = { name: "idle" };
  /** Held packets by extended sequence number (nextSeq + offset), so wrap-around needs no special case. */
  #held = new Map<number, Held>();
  /** Sequence number counted from the stream start (not wrapped) of the next packet to release. */
  #nextExt = 0;
  /** Per recent extended sequence number: released (duplicate if seen again) or lost (late if seen again). */
  #history = new Int32Array(HISTORY).fill(-1);
  #historyKind = new Uint8Array(HISTORY);
  #historyGapOpenedMs = new Float64Array(HISTORY);
  #probation: { packet: JitterPacket; arrivalMs: number } | undefined;

  #reorderEstimateMs: number;
  #estimateUpdatedMs: number | undefined;
  #jitterMs = 0;
  #lastTransit: { arrivalMs: number; timestamp: number } | undefined;

  #stats = { received: 0, released: 0, duplicates: 0, late: 0, lost: 0, reordered: 0, silences: 0, resets: 0 };

  constructor(options: JitterBufferOptions) {
    if (!(options.clockRate > 0)) throw new RangeError(`clockRate must be positive, got ${options.clockRate}`);
    this.#clockRate = options.clockRate;
    this.#durationOf = options.durationOf;
    this.#emit = options.onEvent;
    this.#minWaitMs = options.minWaitMs ?? 5;
    this.#maxWaitMs = options.maxWaitMs ?? 60;
    if (!(this.#minWaitMs >= 0 && this.#maxWaitMs >= this.#minWaitMs)) {
      throw new RangeError(`need 0 <= minWaitMs <= maxWaitMs, got ${this.#minWaitMs} and ${this.#maxWaitMs}`);
    }
    this.#reorderEstimateMs = options.initialWaitMs ?? 20;
    this.#maxConcealedPerGap = options.maxConcealedPerGap ?? 10;
    this.#maxHeld = options.maxHeldPackets ?? 16;
    this.#maxMisorder = options.maxMisorder ?? 100;
    this.#maxDropout = options.maxDropout ?? 1000;
  }

  push(packet: JitterPacket, nowMs: number): void {
    this.#stats.received++;
    this.#decay(nowMs);
    this.#accept(packet, nowMs);
  }

  /** Declares overdue gaps lost. Call at {@link nextDeadlineMs} (or on any timer; extra calls are harmless). */
  tick(nowMs: number): void {
    this.#decay(nowMs);
    this.#expire(nowMs);
  }

  /** When the oldest gap will be declared lost, or undefined while nothing is held. */
  nextDeadlineMs(): number | undefined {
    if (this.#held.size === 0) return undefined;
    return this.#oldestHeldArrival() + this.#waitMs();
  }

  /** Releases everything held (declaring its gaps lost), e.g. when the call ends or the stream is replaced. */
  flush(nowMs: number): void {
    while (this.#held.size > 0) this.#declareGapLost(nowMs);
  }

  /** How long a gap is currently waited for before it is declared lost. */
  currentWaitMs(): number {
    return this.#waitMs();
  }

  stats(): JitterStats {
    return { ...this.#stats, held: this.#held.size, waitMs: this.#waitMs(), jitterMs: this.#jitterMs };
  }

  #accept(packet: JitterPacket, nowMs: number): void {
    const state = this.#state;
    if (state.name === "idle") {
      this.#start(packet, nowMs);
      return;
    }
    if (packet.ssrc !== undefined && state.ssrc !== undefined && packet.ssrc !== state.ssrc) {
      this.#restart(packet, nowMs, "ssrc-change");
      return;
    }
    const offset = seqDelta(packet.seq, state.nextSeq);
    if (offset < -this.#maxMisorder || offset > this.#maxDropout) {
      this.#probe(packet, nowMs);
      return;
    }
    this.#probation = undefined;
    const ext = this.#nextExt + offset;
    if (offset < 0) {
      this.#dropOld(ext, nowMs);
      return;
    }
    if (this.#held.has(ext)) {
      this.#stats.duplicates++;
      return;
    }
    this.#observeTransit(packet.timestamp, nowMs);
    if (offset === 0) {
      if (this.#held.size > 0) {
        this.#stats.reordered++;
        this.#observeReorder(nowMs - this.#oldestHeldArrival());
      }
      this.#release(packet, nowMs);
      this.#releaseConsecutive();
    } else {
      this.#held.set(ext, { packet, arrivalMs: nowMs });
    }
    this.#expire(nowMs);
  }

  #start(packet: JitterPacket, nowMs: number): void {
    this.#state = {
      name: "playing",
      ssrc: packet.ssrc,
      nextSeq: packet.seq & 0xffff,
      nextTimestamp: packet.timestamp >>> 0,
      lastDuration: this.#clockRate / DEFAULT_FRAME_TICKS_PER_SECOND,
    };
    this.#nextExt = 0;
    this.#lastTransit = undefined;
    this.#observeTransit(packet.timestamp, nowMs);
    this.#release(packet, nowMs);
  }

  #restart(packet: JitterPacket, nowMs: number, reason: JitterResetReason): void {
    this.flush(nowMs);
    this.#history.fill(-1);
    this.#probation = undefined;
    this.#stats.resets++;
    this.#emit({ kind: "reset", reason });
    this.#start(packet, nowMs);
  }

  /**
   * A packet far from where the stream is: a stray, or the first packet of a restarted stream (same SSRC, new
   * sequence numbers). Only a second packet that continues it proves a restart (RFC 3550 A.1 does the same).
   */
  #probe(packet: JitterPacket, nowMs: number): void {
    const previous = this.#probation;
    if (previous !== undefined && seqDelta(packet.seq, previous.packet.seq) === 1) {
      this.#probation = undefined;
      this.#restart(previous.packet, previous.arrivalMs, "sequence-jump");
      this.#accept(packet, nowMs);
      return;
    }
    this.#probation = { packet, arrivalMs: nowMs };
  }

  #dropOld(ext: number, nowMs: number): void {
    const slot = ext & (HISTORY - 1);
    if (this.#history[slot] === ext && this.#historyKind[slot] === SlotFate.released) {
      this.#stats.duplicates++;
      return;
    }
    this.#stats.late++;
    if (this.#history[slot] === ext && this.#historyKind[slot] === SlotFate.lost) {
      // It did come, just later than we waited: wait that long next time.
      this.#observeReorder(nowMs - (this.#historyGapOpenedMs[slot] as number));
    }
  }

  #release(packet: JitterPacket, arrivalMs: number): void {
    const state = this.#playing();
    const gap = tsDelta(packet.timestamp, state.nextTimestamp);
    if (gap > 0) {
      // Sequence numbers continued but time moved on: the sender paused (DTX), nothing to conceal.
      this.#stats.silences++;
      this.#emit({ kind: "silence", timestamp: state.nextTimestamp, samples: gap, cause: "dtx", atMs: arrivalMs });
    }
    const duration = this.#durationOf(packet.payload);
    if (duration > 0) state.lastDuration = duration;
    this.#stats.released++;
    this.#remember(this.#nextExt, SlotFate.released, 0);
    this.#emit({ kind: "frame", packet, timestamp: packet.timestamp >>> 0, arrivalMs });
    state.nextSeq = (packet.seq + 1) & 0xffff;
    state.nextTimestamp = (packet.timestamp + state.lastDuration) >>> 0;
    this.#nextExt++;
  }

  #releaseConsecutive(): void {
    for (let held = this.#held.get(this.#nextExt); held !== undefined; held = this.#held.get(this.#nextExt)) {
      this.#held.delete(this.#nextExt);
      this.#release(held.packet, held.arrivalMs);
    }
  }

  #expire(nowMs: number): void {
    while (this.#held.size > 0) {
      const overdue = nowMs >= this.#oldestHeldArrival() + this.#waitMs();
      if (!overdue && this.#held.size <= this.#maxHeld) return;
      this.#declareGapLost(nowMs);
    }
  }

  /** Gives up on the packets missing before the first held one, then releases what is now in order. */
  #declareGapLost(nowMs: number): void {
    const state = this.#playing();
    let firstExt = Infinity;
    for (const ext of this.#held.keys()) firstExt = Math.min(firstExt, ext);
    const first = this.#held.get(firstExt);
    if (first === undefined) return;
    const gapOpenedMs = this.#oldestHeldArrival();
    const missing = firstExt - this.#nextExt;
    const span = tsDelta(first.packet.timestamp, state.nextTimestamp);
    // Without a usable timestamp span, assume the missing packets lasted as long as the last one did.
    const perPacket = span > 0 ? Math.min(state.lastDuration, Math.floor(span / missing)) : state.lastDuration;
    const concealed = Math.min(missing, this.#maxConcealedPerGap);
    let timestamp = state.nextTimestamp;
    for (let i = 0; i < concealed; i++) {
      const isLast = i === missing - 1;
      this.#stats.lost++;
      this.#remember(this.#nextExt + i, SlotFate.lost, gapOpenedMs);
      this.#emit({
        kind: "lost",
        timestamp,
        samples: perPacket,
        declaredAtMs: nowMs,
        ...(isLast ? { fecFrom: first.packet } : {}),
      });
      timestamp = (timestamp + perPacket) >>> 0;
    }
    this.#stats.lost += missing - concealed;
    for (let i = concealed; i < missing; i++) this.#remember(this.#nextExt + i, SlotFate.lost, gapOpenedMs);
    const rest = tsDelta(first.packet.timestamp, timestamp);
    if (rest > 0) {
      this.#stats.silences++;
      const cause = concealed < missing ? "outage" : "dtx";
      this.#emit({ kind: "silence", timestamp, samples: rest, cause, atMs: nowMs });
    }
    state.nextTimestamp = first.packet.timestamp >>> 0;
    this.#nextExt = firstExt;
    this.#releaseConsecutive();
  }

  #remember(ext: number, kind: number, gapOpenedMs: number): void {
    const slot = ext & (HISTORY - 1);
    this.#history[slot] = ext;
    this.#historyKind[slot] = kind;
    this.#historyGapOpenedMs[slot] = gapOpenedMs;
  }

  #oldestHeldArrival(): number {
    let oldest = Infinity;
    for (const held of this.#held.values()) oldest = Math.min(oldest, held.arrivalMs);
    return oldest;
  }

  #waitMs(): number {
    const wanted = Math.max(this.#reorderEstimateMs + WAIT_MARGIN_MS, 2 * this.#jitterMs);
    return Math.min(this.#maxWaitMs, Math.max(this.#minWaitMs, wanted));
  }

  #observeReorder(delayMs: number): void {
    if (delayMs > this.#reorderEstimateMs) this.#reorderEstimateMs = delayMs;
  }

  #decay(nowMs: number): void {
    const last = this.#estimateUpdatedMs;
    this.#estimateUpdatedMs = nowMs;
    if (last === undefined || nowMs <= last) return;
    this.#reorderEstimateMs *= Math.exp(-(nowMs - last) / WAIT_DECAY_MS);
  }

  /** RFC 3550 §6.4.1 interarrival jitter, kept in ms. */
  #observeTransit(timestamp: number, arrivalMs: number): void {
    const last = this.#lastTransit;
    this.#lastTransit = { arrivalMs, timestamp };
    if (last === undefined) return;
    const d = arrivalMs - last.arrivalMs - (tsDelta(timestamp, last.timestamp) * 1000) / this.#clockRate;
    this.#jitterMs += (Math.abs(d) - this.#jitterMs) / 16;
  }

  #playing(): Extract<StreamState, { name: "playing" }> {
    if (this.#state.name !== "playing") throw new Error("jitter buffer used before its first packet");
    return this.#state;
  }
}

