/**
 * What arrived of one RTP direction, for quality reporting: packets, loss, how loss clusters
 * (runs of consecutive lost packets, and G.107's BurstR from a two-state Markov fit of the loss
 * pattern), and RFC 3550 interarrival jitter. Pure: the caller passes arrival times.
 *
 * A packet is only judged lost once `window` later sequence numbers have arrived, so reordering
 * inside that window is not loss; a packet older than that is counted `late` (a jitter buffer
 * would have concealed it by then). A new SSRC, or a sequence jump too large to be loss, starts a
 * new stream whose counts add to the previous ones.
 */

export interface ReceptionSnapshot {
  /** Distinct packets received (duplicates and late arrivals excluded). */
  packetsReceived: number;
  /** Packets the sequence numbers say were sent. */
  packetsExpected: number;
  packetsLost: number;
  /** packetsLost / packetsExpected, 0 when nothing was expected. */
  lossRatio: number;
  /** Runs of one or more consecutive lost packets. */
  lossBursts: number;
  /** Longest run of consecutive lost packets. */
  maxBurstPackets: number;
  /** Mean length of a run of lost packets (0 without loss). */
  meanBurstPackets: number;
  /**
   * G.107's BurstR = 1/(p+q): p = P(lost | previous received), q = P(received | previous lost).
   * 1 for random loss, above 1 when losses cluster; 1 without loss.
   */
  burstRatio: number;
  /** Arrived after their slot was judged lost. */
  late: number;
  duplicates: number;
  /** RFC 3550 interarrival jitter of the current stream, and the highest it reached. */
  jitterMs: number;
  maxJitterMs: number;
  /** SSRC changes and sequence restarts seen. */
  streams: number;
}

interface LossCounters {
  received: number;
  lost: number;
  bursts: number;
  maxBurst: number;
  /** Length of the run of lost packets the last judged packet belongs to (0 if it was received). */
  run: number;
  /** Judged packets that had a judged successor, by their own fate, and the transitions between fates. */
  receivedThenAny: number;
  lostThenAny: number;
  receivedThenLost: number;
  lostThenReceived: number;
  /** Fate of the last judged packet, undefined before the first. */
  last: "received" | "lost" | undefined;
}

const SEQ_MOD = 0x10000;
/** A jump this large (in packets) is a restarted sender, not loss (RFC 3550 A.1 uses the same bound). */
const MAX_DROPOUT = 3000;

function emptyCounters(): LossCounters {
  return { received: 0, lost: 0, bursts: 0, maxBurst: 0, run: 0, receivedThenAny: 0, lostThenAny: 0, receivedThenLost: 0, lostThenReceived: 0, last: undefined };
}

function judge(c: LossCounters, fate: "received" | "lost"): void {
  if (c.last === "received") {
    c.receivedThenAny++;
    if (fate === "lost") c.receivedThenLost++;
  } else if (c.last === "lost") {
    c.lostThenAny++;
    if (fate === "received") c.lostThenReceived++;
  }
  if (fate === "lost") {
    c.lost++;
    c.run = c.last === "lost" ? c.run + 1 : 1;
    if (c.run === 1) c.bursts++;
    if (c.run > c.maxBurst) c.maxBurst = c.run;
  } else {
    c.received++;
    c.run = 0;
  }
  c.last = fate;
}

/** Adds one stream's judged counts to the totals (the run does not continue across streams). */
function addCounters(into: LossCounters, from: LossCounters): void {
  into.received += from.received;
  into.lost += from.lost;
  into.bursts += from.bursts;
  into.maxBurst = Math.max(into.maxBurst, from.maxBurst);
  into.receivedThenAny += from.receivedThenAny;
  into.lostThenAny += from.lostThenAny;
  into.receivedThenLost += from.receivedThenLost;
  into.lostThenReceived += from.lostThenReceived;
}

class Stream {
  /** Extended sequence number of the first packet, and the highest seen. */
  readonly base: number;
  highest: number;
  /** Every extended sequence number up to this one has been judged. */
  judgedUpTo: number;
  /** Arrivals not judged yet, by extended sequence number modulo the window. */
  readonly seen: Int32Array;
  readonly counters = emptyCounters();
  late = 0;
  duplicates = 0;
  jitterTicks = 0;
  maxJitterTicks = 0;
  private lastTransit: number | undefined;

  constructor(
    readonly ssrc: number,
    seq: number,
    private readonly window: number,
  ) {
    this.base = seq;
    this.highest = seq - 1;
    this.judgedUpTo = seq - 1;
    this.seen = new Int32Array(window).fill(-1);
  }

  /** Extended sequence number of `seq` relative to the highest so far, or undefined for a jump too large to be loss. */
  extend(seq: number): number | undefined {
    const ref = this.highest & 0xffff;
    const delta = ((((seq - ref) & 0xffff) + 0x8000) & 0xffff) - 0x8000;
    if (delta > MAX_DROPOUT || delta < -MAX_DROPOUT) return undefined;
    return this.highest + delta;
  }

  add(ext: number, timestamp: number, arrivalTicks: number): void {
    if (ext <= this.judgedUpTo) {
      this.late++;
      return;
    }
    const slot = ext % this.window;
    if (this.seen[slot] === ext) {
      this.duplicates++;
      return;
    }
    if (ext > this.highest) {
      // Slots about to be reused are judged first; nothing above the old highest has arrived.
      this.judgeThrough(ext - this.window);
      this.highest = ext;
    }
    this.seen[slot] = ext;
    this.updateJitter(timestamp, arrivalTicks);
  }

  /**
   * Judges every sequence number after the last judged one up to `upTo` (received if it arrived,
   * else lost), into the stream's counters, or into `into` without moving the stream on.
   */
  judgeThrough(upTo: number, into?: LossCounters): void {
    const c = into ?? this.counters;
    for (let ext = this.judgedUpTo + 1; ext <= upTo; ext++) judge(c, this.seen[ext % this.window] === ext ? "received" : "lost");
    if (!into && upTo > this.judgedUpTo) this.judgedUpTo = upTo;
  }

  /** The counts as if every pending sequence number were judged now (the stream itself is unchanged). */
  provisional(): LossCounters {
    const c = { ...this.counters };
    this.judgeThrough(this.highest, c);
    return c;
  }

  private updateJitter(timestamp: number, arrivalTicks: number): void {
    const transit = arrivalTicks - timestamp;
    if (this.lastTransit !== undefined) {
      let d = Math.abs(transit - this.lastTransit);
      // RTP timestamps wrap at 2^32.
      if (d > 2 ** 31) d = Math.abs(d - 2 ** 32);
      this.jitterTicks += (d - this.jitterTicks) / 16;
      if (this.jitterTicks > this.maxJitterTicks) this.maxJitterTicks = this.jitterTicks;
    }
    this.lastTransit = transit;
  }
}

export class StreamReception {
  private stream: Stream | undefined;
  /** Judged counts of streams that ended (an SSRC change or a restart). */
  private readonly previous = emptyCounters();
  private previousLate = 0;
  private previousDuplicates = 0;
  private maxJitterTicks = 0;
  private streams = 0;

  /** `window`: how many later packets a missing one waits for before it counts as lost. */
  constructor(
    private readonly clockRate: number,
    private readonly window = 64,
  ) {
    if (!(clockRate > 0)) throw new RangeError(`clockRate must be positive, got ${clockRate}`);
    if (!(window >= 1)) throw new RangeError(`window must be at least 1, got ${window}`);
  }

  /** One RTP packet as it arrived; `arrivalMs` on any monotonic clock. */
  onPacket(ssrc: number, sequenceNumber: number, timestamp: number, arrivalMs: number): void {
    const seq = sequenceNumber & 0xffff;
    let stream = this.stream;
    let ext = stream && stream.ssrc === ssrc ? stream.extend(seq) : undefined;
    if (!stream || ext === undefined) {
      if (stream) this.retire(stream);
      stream = new Stream(ssrc, seq + SEQ_MOD, this.window);
      this.stream = stream;
      this.streams++;
      ext = seq + SEQ_MOD;
    }
    stream.add(ext, timestamp >>> 0, (arrivalMs * this.clockRate) / 1000);
  }

  snapshot(): ReceptionSnapshot {
    const totals = { ...this.previous };
    let late = this.previousLate;
    let duplicates = this.previousDuplicates;
    let jitterTicks = 0;
    let maxJitterTicks = this.maxJitterTicks;
    const s = this.stream;
    if (s) {
      addCounters(totals, s.provisional());
      late += s.late;
      duplicates += s.duplicates;
      jitterTicks = s.jitterTicks;
      maxJitterTicks = Math.max(maxJitterTicks, s.maxJitterTicks);
    }
    const expected = totals.received + totals.lost;
    const p = totals.receivedThenAny > 0 ? totals.receivedThenLost / totals.receivedThenAny : 0;
    const q = totals.lostThenAny > 0 ? totals.lostThenReceived / totals.lostThenAny : 1;
    const toMs = (ticks: number): number => (ticks * 1000) / this.clockRate;
    return {
      packetsReceived: totals.received,
      packetsExpected: expected,
      packetsLost: totals.lost,
      lossRatio: expected > 0 ? totals.lost / expected : 0,
      lossBursts: totals.bursts,
      maxBurstPackets: totals.maxBurst,
      meanBurstPackets: totals.bursts > 0 ? totals.lost / totals.bursts : 0,
      burstRatio: totals.lost > 0 && p + q > 0 ? Math.max(1, 1 / (p + q)) : 1,
      late,
      duplicates,
      jitterMs: toMs(jitterTicks),
      maxJitterMs: toMs(maxJitterTicks),
      streams: this.streams,
    };
  }

  private retire(stream: Stream): void {
    addCounters(this.previous, stream.provisional());
    this.previousLate += stream.late;
    this.previousDuplicates += stream.duplicates;
    this.maxJitterTicks = Math.max(this.maxJitterTicks, stream.maxJitterTicks);
  }
}

/** An empty snapshot, for a direction that has not received anything. */
export function emptyReception(): ReceptionSnapshot {
  return new StreamReception(8000).snapshot();
}
