/**
 * H.264 passthrough from Meta to the PBX: the payload is forwarded byte for byte; only the RTP header is
 * rewritten (SSRC, payload type, sequence number and timestamp moved onto the outgoing stream's own
 * numbering). Header extensions and CSRCs are left behind: their ids were negotiated with Meta, not the PBX.
 *
 * Sequence numbers and timestamps keep their spacing, so a loss on the Meta leg stays visible to the PBX as a
 * gap. When the source changes (new SSRC from Meta, or a jump no sender makes within one stream), the offsets
 * are re-based so the outgoing stream continues without a jump.
 */
import { EventEmitter } from "node:events";
import { RtpHeader, RtpPacket } from "werift";
import { h264NalType, H264_NAL } from "./annexb.js";
import type { RtpPacketLike } from "./depacketizer.js";

export interface PassthroughKeyframe {
  /** Outgoing RTP timestamp of the IDR picture. */
  timestamp: number;
  sequenceNumber: number;
  /** Whether SPS and PPS travelled with this IDR (a PBX decoder that joined late needs them in-band). */
  withParameterSets: boolean;
}

export interface H264PassthroughEvents {
  keyframe: [PassthroughKeyframe];
  "source-change": [{ ssrc: number }];
}

export interface H264PassthroughOptions {
  payloadType: number;
  ssrc: number;
  /** Random by default (RFC 3550 §5.1). */
  initialSequenceNumber?: number;
  /** Random by default (RFC 3550 §5.1). */
  initialTimestamp?: number;
  /** Forward nothing until the first IDR (default false: the caller decides, e.g. after sending a PLI). */
  waitForKeyframe?: boolean;
}

export interface H264PassthroughStats {
  packetsIn: number;
  packetsOut: number;
  /** Not forwarded because they came before the first IDR. */
  packetsHeld: number;
  keyframes: number;
  sourceChanges: number;
}

/** A sequence jump beyond this within one SSRC is a sender restart, not loss. */
const MAX_SEQUENCE_JUMP = 3000;
/** Timestamp gap assumed across a source change when no wall-clock time is known (one 30 fps frame). */
const DEFAULT_FRAME_TICKS = 3000;

export class H264Passthrough extends EventEmitter<H264PassthroughEvents> {
  private readonly payloadType: number;
  private readonly ssrc: number;
  private readonly waitForKeyframe: boolean;
  private seqOffset: number | undefined;
  private tsOffset: number | undefined;
  private sourceSsrc: number | undefined;
  private lastInSeq: number | undefined;
  private lastOut: { seq: number; ts: number; atMs: number } | undefined;
  private nextSeq: number;
  private nextTs: number;
  private seenKeyframe = false;
  private held: RtpPacketLike[] = [];
  private lastKeyframeTs: number | undefined;
  private parameterSetsTs: number | undefined;
  private readonly counters: H264PassthroughStats = {
    packetsIn: 0,
    packetsOut: 0,
    packetsHeld: 0,
    keyframes: 0,
    sourceChanges: 0,
  };

  constructor(options: H264PassthroughOptions) {
    super();
    this.payloadType = options.payloadType;
    this.ssrc = options.ssrc >>> 0;
    this.waitForKeyframe = options.waitForKeyframe ?? false;
    this.nextSeq = (options.initialSequenceNumber ?? Math.floor(Math.random() * 0x10000)) & 0xffff;
    this.nextTs = (options.initialTimestamp ?? Math.floor(Math.random() * 0x100000000)) >>> 0;
  }

  /**
   * The packets to send to the PBX for this incoming one: normally exactly one; none while waiting for the
   * first keyframe; on that keyframe, the packets of its access unit held so far (SPS/PPS) and the packet.
   */
  rewrite(packet: RtpPacketLike, nowMs: number = performance.now()): RtpPacket[] {
    this.counters.packetsIn++;
    const { header } = packet;
    if (this.sourceSsrc !== header.ssrc || this.isSequenceJump(header.sequenceNumber)) {
      if (this.sourceSsrc !== undefined) {
        this.counters.sourceChanges++;
        this.emit("source-change", { ssrc: header.ssrc });
      }
      this.sourceSsrc = header.ssrc;
      this.rebase(header.sequenceNumber, header.timestamp, nowMs);
    }
    this.lastInSeq = header.sequenceNumber;

    const types = payloadNalTypes(packet.payload);
    if (types.includes(H264_NAL.sps) && types.includes(H264_NAL.pps)) this.parameterSetsTs = header.timestamp;
    const idr = types.includes(H264_NAL.idr);

    if (this.waitForKeyframe && !this.seenKeyframe) {
      if (!idr) {
        // Parameter sets usually come in their own packet just before the IDR slice: keep this access unit's
        // packets until it is clear whether it is the keyframe.
        if (this.held[0] && this.held[0].header.timestamp !== header.timestamp) {
          this.counters.packetsHeld += this.held.length;
          this.held = [];
        }
        this.held.push(packet);
        return [];
      }
      this.seenKeyframe = true;
      const earlier = this.held.filter((p) => p.header.timestamp === header.timestamp);
      this.counters.packetsHeld += this.held.length - earlier.length;
      this.held = [];
      return [...earlier.map((p) => this.forward(p, nowMs)), this.forward(packet, nowMs)];
    }
    if (idr) this.seenKeyframe = true;
    return [this.forward(packet, nowMs)];
  }

  private forward(packet: RtpPacketLike, nowMs: number): RtpPacket {
    const { header, payload } = packet;
    const seq = (header.sequenceNumber + this.seqOffset!) & 0xffff;
    const ts = (header.timestamp + this.tsOffset!) >>> 0;
    if (carriesIdr(payload) && this.lastKeyframeTs !== header.timestamp) {
      this.lastKeyframeTs = header.timestamp;
      this.counters.keyframes++;
      this.emit("keyframe", {
        timestamp: ts,
        sequenceNumber: seq,
        withParameterSets: this.parameterSetsTs === header.timestamp,
      });
    }
    this.lastOut = { seq, ts, atMs: nowMs };
    this.counters.packetsOut++;
    return new RtpPacket(
      new RtpHeader({ payloadType: this.payloadType, sequenceNumber: seq, timestamp: ts, ssrc: this.ssrc, marker: header.marker }),
      payload,
    );
  }

  stats(): H264PassthroughStats {
    return { ...this.counters };
  }

  private isSequenceJump(seq: number): boolean {
    if (this.lastInSeq === undefined) return false;
    const forward = (seq - this.lastInSeq) & 0xffff;
    const backward = (this.lastInSeq - seq) & 0xffff;
    return Math.min(forward, backward) > MAX_SEQUENCE_JUMP;
  }

  /** Offsets that put the incoming (seq, ts) right after the last packet sent. */
  private rebase(inSeq: number, inTs: number, nowMs: number): void {
    let outSeq = this.nextSeq;
    let outTs = this.nextTs;
    if (this.lastOut) {
      outSeq = (this.lastOut.seq + 1) & 0xffff;
      const elapsedTicks = Math.round(Math.max(0, nowMs - this.lastOut.atMs) * 90);
      outTs = (this.lastOut.ts + Math.max(elapsedTicks, DEFAULT_FRAME_TICKS)) >>> 0;
    }
    this.seqOffset = (outSeq - inSeq) & 0xffff;
    this.tsOffset = (outTs - inTs) >>> 0;
  }
}

/** Whether an H.264 RTP payload carries (the start of) an IDR slice. */
export function carriesIdr(payload: Uint8Array): boolean {
  return payloadNalTypes(payload).includes(H264_NAL.idr);
}

/** NAL types in a single NAL unit, STAP-A or FU-A start packet (FU-A continuations report nothing). */
export function payloadNalTypes(payload: Uint8Array): number[] {
  const type = h264NalType(payload);
  if (type >= 1 && type <= 23) return [type];
  if (type === H264_NAL.stapA) {
    const types: number[] = [];
    let offset = 1;
    while (offset + 2 < payload.length) {
      const size = (payload[offset]! << 8) | payload[offset + 1]!;
      types.push(h264NalType(payload.subarray(offset + 2)));
      offset += 2 + size;
    }
    return types;
  }
  if (type === H264_NAL.fuA && payload.length > 1 && (payload[1]! & 0x80) !== 0) return [payload[1]! & 0x1f];
  return [];
}
