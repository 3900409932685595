import { dePacketizeRtpPackets, type DepacketizerCodec, type RtpPacket } from "werift";
import type { SimVideoCodec } from "./video-codecs.js";

export interface ReceivedVideoFrame {
  codec: SimVideoCodec;
  /** Annex-B access unit (H.264/H.265) or raw frame (VP8/VP9/AV1), as werift's depacketizer produces it. */
  data: Buffer;
  timestamp: number;
  keyframe: boolean;
  receivedAt: number;
}

export interface ReceivedVideoStats {
  /** Codec of the latest packet; undefined before any video arrived. */
  codec: SimVideoCodec | undefined;
  packetsReceived: number;
  bytesReceived: number;
  framesDepacketized: number;
  keyframes: number;
  /** Frames whose packets had a sequence gap; they are dropped, not stored. */
  framesIncomplete: number;
  /** Packets whose payload type named no video codec we negotiated. */
  unknownPayloadPackets: number;
  depacketizeErrors: number;
  ssrcs: number[];
  firstPacketAt: number | undefined;
  lastPacketAt: number | undefined;
}

/**
 * werift's depacketizer names H.264 after WebM ("MPEG4/ISO/AVC"); "H264" throws an empty Error
 * (werift-notes §1), which its own callback pipeline would swallow into zero frames.
 */
const DEPACKETIZER_NAME: Readonly<Record<SimVideoCodec, DepacketizerCodec>> = {
  H264: "MPEG4/ISO/AVC",
  H265: "H265",
  VP8: "VP8",
  VP9: "VP9",
  AV1: "AV1",
};

interface FrameInAssembly {
  ssrc: number;
  timestamp: number;
  codec: SimVideoCodec;
  packets: RtpPacket[];
}

/**
 * Turns the business's video RTP into frames: packets are grouped by timestamp up to the marker bit and
 * handed to werift's depacketizer. Loopback media does not reorder, so a frame with a sequence gap is
 * counted and dropped rather than waited for.
 */
export class VideoFrameCollector {
  private readonly frames: ReceivedVideoFrame[] = [];
  private assembling: FrameInAssembly | undefined;
  private readonly counters = {
    codec: undefined as SimVideoCodec | undefined,
    packetsReceived: 0,
    bytesReceived: 0,
    framesDepacketized: 0,
    keyframes: 0,
    framesIncomplete: 0,
    unknownPayloadPackets: 0,
    depacketizeErrors: 0,
    ssrcs: new Set<number>(),
    firstPacketAt: undefined as number | undefined,
    lastPacketAt: undefined as number | undefined,
  };
  private readonly waiters = new Set<{ count: number; resolve: () => void }>();

  constructor(private readonly keepFrames: number) {}

  get stats(): ReceivedVideoStats {
    const c = this.counters;
    return { ...c, ssrcs: [...c.ssrcs] };
  }

  /** Frames kept so far (the most recent `keepFrames`). */
  get kept(): readonly ReceivedVideoFrame[] {
    return this.frames;
  }

  push(rtp: RtpPacket, codec: SimVideoCodec | undefined): void {
    const c = this.counters;
    const now = Date.now();
    c.packetsReceived++;
    c.bytesReceived += rtp.payload.length;
    c.firstPacketAt ??= now;
    c.lastPacketAt = now;
    c.ssrcs.add(rtp.header.ssrc);
    if (!codec) {
      c.unknownPayloadPackets++;
      return;
    }
    c.codec = codec;
    const current = this.assembling;
    if (current && (current.timestamp !== rtp.header.timestamp || current.ssrc !== rtp.header.ssrc)) {
      // The previous frame never got its marker: it ends here.
      this.finish(current);
      this.assembling = undefined;
    }
    const frame = this.assembling ?? { ssrc: rtp.header.ssrc, timestamp: rtp.header.timestamp, codec, packets: [] };
    this.assembling = frame;
    frame.packets.push(rtp);
    if (rtp.header.marker) {
      this.finish(frame);
      this.assembling = undefined;
    }
  }

  /** Resolves once `count` frames were depacketized in total. */
  waitForFrames(count: number): { promise: Promise<void>; cancel: () => void } {
    let waiter: { count: number; resolve: () => void } | undefined;
    const promise = new Promise<void>((resolve) => {
      if (this.counters.framesDepacketized >= count) {
        resolve();
        return;
      }
      waiter = { count, resolve };
      this.waiters.add(waiter);
    });
    return { promise, cancel: () => waiter && this.waiters.delete(waiter) };
  }

  clear(): void {
    this.frames.length = 0;
    this.waiters.clear();
  }

  private finish(frame: FrameInAssembly): void {
    const c = this.counters;
    const packets = [...frame.packets].sort((a, b) => seqDelta(b.header.sequenceNumber, a.header.sequenceNumber));
    for (let i = 1; i < packets.length; i++) {
      if (seqDelta(packets[i - 1]!.header.sequenceNumber, packets[i]!.header.sequenceNumber) !== 1) {
        c.framesIncomplete++;
        return;
      }
    }
    let result: { isKeyframe: boolean; data: Buffer };
    try {
      result = dePacketizeRtpPackets(DEPACKETIZER_NAME[frame.codec], packets);
    } catch {
      c.depacketizeErrors++;
      return;
    }
    if (result.data.length === 0) {
      c.depacketizeErrors++;
      return;
    }
    c.framesDepacketized++;
    if (result.isKeyframe) c.keyframes++;
    this.frames.push({ codec: frame.codec, data: result.data, timestamp: frame.timestamp, keyframe: result.isKeyframe, receivedAt: Date.now() });
    if (this.frames.length > this.keepFrames) this.frames.splice(0, this.frames.length - this.keepFrames);
    for (const waiter of this.waiters) {
      if (c.framesDepacketized >= waiter.count) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }
}

/** b - a on the 16-bit sequence circle, in -32768..32767. */
function seqDelta(a: number, b: number): number {
  return ((((b - a) & 0xffff) + 0x8000) & 0xffff) - 0x8000;
}
