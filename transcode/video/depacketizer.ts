/**
 * RTP packets of one video stream → complete frames, in order.
 *
 * Packets are held only while a gap in sequence numbers blocks the next frame; a frame is released as soon as
 * every packet from its first to its marker (or to the first packet of the next timestamp) is here. A gap that
 * stays open for `maxWaitMs` after later packets arrived (NACK retransmissions get that long) is declared
 * lost: the broken frame is dropped rather than passed on half-decoded, and the decoder then waits for a
 * keyframe, asking for one through the `keyframe-request` event (the caller sends a PLI). Keyframes are
 * recognised from the bitstream, not from RTP-level flags.
 *
 * Time is the caller's (`nowMs` arguments) so tests can drive it; nothing here starts a timer.
 */
import { EventEmitter } from "node:events";
import { PayloadFormatError } from "./errors.js";
import { isKeyframe } from "./keyframe.js";
import { payloadFormatFor, type PayloadFormat } from "./payload-format.js";
import { sequenceUnwrapper } from "./rtp-unwrap.js";
import type { VideoCodec } from "./video-codec.js";

/** The part of an RTP packet the depacketizer reads; werift's RtpPacket satisfies it. */
export interface RtpPacketLike {
  header: { sequenceNumber: number; timestamp: number; marker: boolean; ssrc: number };
  payload: Buffer;
}

export interface EncodedVideoFrame {
  codec: VideoCodec;
  /** IVF frame payload for VP8/VP9/AV1; Annex-B access unit (4-byte start codes) for H.264/H.265. */
  data: Buffer;
  /** RTP timestamp, 90 kHz. */
  timestamp: number;
  keyframe: boolean;
  /** When the packet that completed the frame arrived, on the caller's clock. */
  arrivalMs: number;
}

export type KeyframeRequestReason = "startup" | "loss" | "corrupt" | "still-waiting";

export interface KeyframeRequest {
  reason: KeyframeRequestReason;
  atMs: number;
}

export type FrameDropReason = "loss" | "corrupt" | "awaiting-keyframe";

export interface FrameDrop {
  reason: FrameDropReason;
  /** RTP timestamp of the dropped frame; undefined when whole frames vanished in a gap. */
  timestamp: number | undefined;
  packets: number;
  atMs: number;
}

export type DepacketizerState = "awaiting-keyframe" | "streaming";

export interface VideoDepacketizerEvents {
  frame: [EncodedVideoFrame];
  "keyframe-request": [KeyframeRequest];
  "frame-dropped": [FrameDrop];
  "state-change": [DepacketizerState];
}

export interface VideoDepacketizerOptions {
  codec: VideoCodec;
  /** How long a gap may stay open once later packets have arrived; default 80 ms (room for one NACK). */
  maxWaitMs?: number;
  /** Packets held at most; past this the oldest gap is declared lost at once. Default 2000. */
  maxPendingPackets?: number;
  /** Minimum spacing of keyframe requests while waiting for one; default 500 ms. */
  keyframeRequestIntervalMs?: number;
  /**
   * After a loss, drop frames until a keyframe (default true): a frame predicted from a lost one decodes to
   * garbage, and a frozen picture until the keyframe looks better to the far end than smeared blocks.
   */
  awaitKeyframeAfterLoss?: boolean;
}

export interface VideoDepacketizerStats {
  state: DepacketizerState;
  packetsIn: number;
  duplicates: number;
  /** Arrived after their frame had been released or declared lost. */
  late: number;
  /** Packets never received before their gap was declared lost. */
  packetsLost: number;
  framesOut: number;
  keyframesOut: number;
  framesDropped: Record<FrameDropReason, number>;
  keyframeRequests: number;
  streamResets: number;
  pendingPackets: number;
}

interface PendingPacket {
  ext: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
  arrivalMs: number;
}

/** A step back this far (in sequence numbers) means the sender restarted its sequence, not reordering. */
const RESTART_DISTANCE = 3000;

export class VideoDepacketizer extends EventEmitter<VideoDepacketizerEvents> {
  readonly codec: VideoCodec;
  private readonly format: PayloadFormat;
  private readonly maxWaitMs: number;
  private readonly maxPendingPackets: number;
  private readonly keyframeRequestIntervalMs: number;
  private readonly awaitKeyframeAfterLoss: boolean;

  private readonly pending = new Map<number, PendingPacket>();
  private seq = sequenceUnwrapper();
  private ssrc: number | undefined;
  /** The last packet released or dropped: the next frame starts right after it. */
  private last: { ext: number; timestamp: number; marker: boolean } | undefined;
  private state: DepacketizerState = "awaiting-keyframe";
  private lastKeyframeRequestMs = Number.NEGATIVE_INFINITY;

  private readonly counters = {
    packetsIn: 0,
    duplicates: 0,
    late: 0,
    packetsLost: 0,
    framesOut: 0,
    keyframesOut: 0,
    keyframeRequests: 0,
    streamResets: 0,
  };
  private readonly drops: Record<FrameDropReason, number> = { loss: 0, corrupt: 0, "awaiting-keyframe": 0 };

  constructor(options: VideoDepacketizerOptions) {
    super();
    this.codec = options.codec;
    this.format = payloadFormatFor(options.codec);
    this.maxWaitMs = options.maxWaitMs ?? 80;
    this.maxPendingPackets = options.maxPendingPackets ?? 2000;
    this.keyframeRequestIntervalMs = options.keyframeRequestIntervalMs ?? 500;
    this.awaitKeyframeAfterLoss = options.awaitKeyframeAfterLoss ?? true;
  }

  get currentState(): DepacketizerState {
    return this.state;
  }

  push(packet: RtpPacketLike, nowMs: number = performance.now()): void {
    const { header } = packet;
    this.counters.packetsIn++;
    if (this.ssrc !== header.ssrc) {
      if (this.ssrc !== undefined) this.resetStream();
      this.ssrc = header.ssrc;
    }
    let ext = this.seq.unwrap(header.sequenceNumber);
    const floor = this.last ? this.last.ext + 1 : undefined;
    if (floor !== undefined && ext < floor) {
      if (floor - ext > RESTART_DISTANCE) {
        this.resetStream();
        ext = this.seq.unwrap(header.sequenceNumber);
      } else {
        this.counters.late++;
        return;
      }
    }
    if (this.pending.has(ext)) {
      this.counters.duplicates++;
      return;
    }
    this.pending.set(ext, {
      ext,
      timestamp: header.timestamp,
      marker: header.marker,
      payload: packet.payload,
      arrivalMs: nowMs,
    });
    this.drain(nowMs);
  }

  /** Re-evaluate open gaps without a new packet (call from the caller's timer if packets may stop). */
  tick(nowMs: number = performance.now()): void {
    this.drain(nowMs);
    this.maybeRepeatKeyframeRequest(nowMs);
  }

  /** Forget everything: the next packets start a new stream that must begin with a keyframe. */
  reset(): void {
    this.resetStream();
    this.ssrc = undefined;
  }

  stats(): VideoDepacketizerStats {
    return {
      state: this.state,
      ...this.counters,
      framesDropped: { ...this.drops },
      pendingPackets: this.pending.size,
    };
  }

  /* ---------------------------------------------------------------------------------------------------------- */

  private resetStream(): void {
    this.pending.clear();
    this.seq = sequenceUnwrapper();
    this.last = undefined;
    this.counters.streamResets++;
    this.setState("awaiting-keyframe");
  }

  private drain(nowMs: number): void {
    while (this.pending.size > 0) {
      const expected = this.last ? this.last.ext + 1 : this.lowestPendingSeq();
      let head = this.pending.get(expected);
      let skippedGap = false;
      if (!head) {
        // Packets are missing right where the next frame should start.
        if (!this.gapTimedOut(expected, nowMs)) return;
        head = this.pending.get(this.lowestPendingSeq())!;
        this.counters.packetsLost += head.ext - expected;
        skippedGap = true;
      }

      if (!this.startsFrame(head)) {
        // Before the first frame, a packet may be overtaken by its predecessors: give them the usual wait.
        if (!this.last && !skippedGap && nowMs - head.arrivalMs < this.maxWaitMs) return;
        // The tail of a frame whose beginning is gone.
        const run = this.collectRun(head);
        this.consume(run.packets);
        this.markLoss(head.timestamp, run.packets.length, nowMs);
        continue;
      }
      if (skippedGap) this.markLoss(undefined, 0, nowMs);

      const run = this.collectRun(head);
      if (run.complete) {
        this.consume(run.packets);
        this.release(run.packets, nowMs);
        continue;
      }
      // Incomplete: either more packets of this frame are on their way, or some are lost.
      const nextMissing = head.ext + run.packets.length;
      if (!this.gapTimedOut(nextMissing, nowMs)) return;
      const broken = [...run.packets, ...this.laterPacketsOf(head.timestamp, nextMissing)];
      this.counters.packetsLost += this.missingBefore(nextMissing);
      this.consume(broken);
      this.markLoss(head.timestamp, broken.length, nowMs);
    }
  }

  /** Whether `head` begins a frame: certain after a marker or a timestamp change, else the payload decides. */
  private startsFrame(head: PendingPacket): boolean {
    const last = this.last;
    if (last && head.ext === last.ext + 1) return last.marker || head.timestamp !== last.timestamp;
    if (last && head.timestamp === last.timestamp && !last.marker) return false;
    try {
      return this.format.startsFrame(head.payload) === true;
    } catch {
      return false;
    }
  }

  /** Consecutive packets from `head` with its timestamp, up to the marker. */
  private collectRun(head: PendingPacket): { packets: PendingPacket[]; complete: boolean } {
    const packets: PendingPacket[] = [head];
    if (head.marker) return { packets, complete: true };
    for (let ext = head.ext + 1; ; ext++) {
      const p = this.pending.get(ext);
      if (!p) return { packets, complete: false };
      // A new timestamp without a marker before it: the sender did not set the marker; the frame ended.
      if (p.timestamp !== head.timestamp) return { packets, complete: true };
      packets.push(p);
      if (p.marker) return { packets, complete: true };
    }
  }

  private laterPacketsOf(timestamp: number, fromExt: number): PendingPacket[] {
    const out: PendingPacket[] = [];
    for (const p of this.pending.values()) if (p.ext >= fromExt && p.timestamp === timestamp) out.push(p);
    return out.sort((a, b) => a.ext - b.ext);
  }

  /** How many sequence numbers are missing from `fromExt` up to the next pending packet. */
  private missingBefore(fromExt: number): number {
    let next = Number.POSITIVE_INFINITY;
    for (const ext of this.pending.keys()) if (ext >= fromExt && ext < next) next = ext;
    return Number.isFinite(next) ? next - fromExt : 0;
  }

  /**
   * A gap at `missingExt` is lost once a later packet has waited `maxWaitMs` for it (or too much is held).
   * Without any later packet there is no evidence of loss yet: the packets may simply not have been sent.
   */
  private gapTimedOut(missingExt: number, nowMs: number): boolean {
    if (this.pending.size > this.maxPendingPackets) return true;
    let oldestBeyond = Number.POSITIVE_INFINITY;
    for (const p of this.pending.values()) {
      if (p.ext > missingExt && p.arrivalMs < oldestBeyond) oldestBeyond = p.arrivalMs;
    }
    return nowMs - oldestBeyond >= this.maxWaitMs;
  }

  private lowestPendingSeq(): number {
    let lowest = Number.POSITIVE_INFINITY;
    for (const ext of this.pending.keys()) if (ext < lowest) lowest = ext;
    return lowest;
  }

  private consume(packets: readonly PendingPacket[]): void {
    for (const p of packets) this.pending.delete(p.ext);
    const tail = packets.at(-1);
    if (tail && (!this.last || tail.ext > this.last.ext)) {
      this.last = { ext: tail.ext, timestamp: tail.timestamp, marker: tail.marker };
    }
  }

  private release(packets: readonly PendingPacket[], nowMs: number): void {
    const first = packets[0]!;
    let data: Buffer;
    try {
      data = this.format.assemble(packets.map((p) => p.payload));
    } catch (err) {
      if (!(err instanceof PayloadFormatError)) throw err;
      this.drop("corrupt", first.timestamp, packets.length, nowMs);
      this.enterAwaitingKeyframe("corrupt", nowMs);
      return;
    }
    const keyframe = isKeyframe(this.codec, data);
    if (this.state === "awaiting-keyframe" && !keyframe) {
      this.drop("awaiting-keyframe", first.timestamp, packets.length, nowMs);
      this.requestKeyframe(this.counters.keyframeRequests === 0 ? "startup" : "still-waiting", nowMs);
      return;
    }
    if (keyframe) this.setState("streaming");
    this.counters.framesOut++;
    if (keyframe) this.counters.keyframesOut++;
    this.emit("frame", {
      codec: this.codec,
      data,
      timestamp: first.timestamp,
      keyframe,
      arrivalMs: packets.reduce((latest, p) => Math.max(latest, p.arrivalMs), first.arrivalMs),
    });
  }

  private markLoss(timestamp: number | undefined, packets: number, nowMs: number): void {
    this.drop("loss", timestamp, packets, nowMs);
    if (this.counters.keyframesOut === 0) {
      // Joining mid-stream: nothing decodable yet either way.
      this.requestKeyframe(this.counters.keyframeRequests === 0 ? "startup" : "still-waiting", nowMs);
    } else if (this.awaitKeyframeAfterLoss) {
      this.enterAwaitingKeyframe("loss", nowMs);
    }
  }

  private drop(reason: FrameDropReason, timestamp: number | undefined, packets: number, nowMs: number): void {
    this.drops[reason]++;
    this.emit("frame-dropped", { reason, timestamp, packets, atMs: nowMs });
  }

  private enterAwaitingKeyframe(reason: KeyframeRequestReason, nowMs: number): void {
    this.setState("awaiting-keyframe");
    this.requestKeyframe(reason, nowMs);
  }

  private maybeRepeatKeyframeRequest(nowMs: number): void {
    if (this.state === "awaiting-keyframe" && this.counters.keyframeRequests > 0) {
      this.requestKeyframe("still-waiting", nowMs);
    }
  }

  private requestKeyframe(reason: KeyframeRequestReason, nowMs: number): void {
    if (nowMs - this.lastKeyframeRequestMs < this.keyframeRequestIntervalMs) return;
    this.lastKeyframeRequestMs = nowMs;
    this.counters.keyframeRequests++;
    this.emit("keyframe-request", { reason, atMs: nowMs });
  }

  private setState(state: DepacketizerState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit("state-change", state);
  }
}
