import { randomInt } from "node:crypto";
import { Av1Packetizer, H264Packetizer, H265Packetizer, Vp8Packetizer, Vp9Packetizer, type RtpPacket, type RTCRtpTransceiver } from "werift";
import { VIDEO_CLOCK_RATE, type SimVideoCodec } from "./video-codecs.js";
import type { VideoClip } from "./video-clip.js";
import { keyframeRequestFor, type KeyframeRequestKind } from "./video-feedback.js";

/** Largest RTP payload, as Meta's and werift's senders use. */
export const VIDEO_MAX_PAYLOAD = 1200;
/** Frames sent in one timer tick at most; a longer stall skips ahead instead of bursting. */
const MAX_CATCH_UP_FRAMES = 3;

export interface SentVideoStats {
  codec: SimVideoCodec;
  width: number;
  height: number;
  fps: number;
  framesSent: number;
  packetsSent: number;
  bytesSent: number;
  keyframesSent: number;
  /** Keyframe requests from the business that named our SSRC. */
  plisReceived: number;
  firsReceived: number;
  /** Epoch ms of the latest keyframe request, and of the keyframe that answered it. */
  lastKeyframeRequestAt: number | undefined;
  lastRequestedKeyframeSentAt: number | undefined;
  /** RTP timestamp of the last keyframe sent. */
  lastKeyframeTimestamp: number | undefined;
  /** How often the clip started over. */
  loops: number;
}

export type Packetize = (frame: Buffer, timestamp: number, keyframe: boolean) => RtpPacket[];

/**
 * werift's packetizers for each codec, at MTU 1200. VP9 and AV1 take the keyframe flag from the caller
 * (they never inspect the bitstream; without it the receiver sees P=1 / N=0 on keyframes too).
 */
export function packetizerFor(codec: SimVideoCodec, payloadType: number): Packetize {
  const base = { maxPayloadSize: VIDEO_MAX_PAYLOAD, payloadType };
  switch (codec) {
    case "VP8": {
      const p = new Vp8Packetizer(base);
      return (frame, ts) => p.packetize(frame, ts);
    }
    case "VP9": {
      const p = new Vp9Packetizer(base);
      return (frame, ts, keyframe) => p.packetize(frame, ts, { isKeyframe: keyframe });
    }
    case "AV1": {
      const p = new Av1Packetizer(base);
      return (frame, ts, keyframe) => p.packetize(frame, ts, { isKeyframe: keyframe });
    }
    case "H264": {
      const p = new H264Packetizer({ ...base, inputFormat: "annexb" });
      return (frame, ts, keyframe) => p.packetize(frame, ts, { isKeyframe: keyframe });
    }
    case "H265": {
      const p = new H265Packetizer({ ...base, inputFormat: "annexb" });
      return (frame, ts) => p.packetize(frame, ts);
    }
  }
}

/**
 * Plays a pre-encoded clip as a camera on one transceiver: 90 kHz timestamps at the clip's frame rate, the
 * clip looped from its keyframe, and a jump back to that keyframe whenever the business asks for one.
 */
export class VideoClipSender {
  private timer: NodeJS.Timeout | undefined;
  private readonly packetize: Packetize;
  private readonly firstTimestamp = randomInt(0, 2 ** 32);
  private startedAt = 0;
  /** Frames sent since start: drives the RTP timestamp. */
  private sent = 0;
  /** Position in the clip of the next frame. */
  private index = 0;
  private keyframeWanted = false;
  private rtcpSubscription: { unSubscribe: () => void } | undefined;
  private readonly counters: SentVideoStats;

  constructor(
    private readonly clip: VideoClip,
    private readonly transceiver: RTCRtpTransceiver,
    payloadType: number,
  ) {
    this.packetize = packetizerFor(clip.spec.codec, payloadType);
    const { codec, width, height, fps } = clip.spec;
    this.counters = {
      codec,
      width,
      height,
      fps,
      framesSent: 0,
      packetsSent: 0,
      bytesSent: 0,
      keyframesSent: 0,
      plisReceived: 0,
      firsReceived: 0,
      lastKeyframeRequestAt: undefined,
      lastRequestedKeyframeSentAt: undefined,
      lastKeyframeTimestamp: undefined,
      loops: 0,
    };
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  get stats(): SentVideoStats {
    return { ...this.counters };
  }

  start(): void {
    if (this.timer) return;
    const sender = this.transceiver.sender;
    this.rtcpSubscription = this.transceiver.dtlsTransport.onRtcp.subscribe((packet) => {
      const kind = keyframeRequestFor(packet, sender.ssrc);
      if (kind) this.onKeyframeRequest(kind);
    });
    this.startedAt = performance.now();
    this.index = 0;
    this.tick();
    this.timer = setInterval(() => this.tick(), 1000 / this.clip.spec.fps / 2);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.rtcpSubscription?.unSubscribe();
    this.rtcpSubscription = undefined;
  }

  /** Send the clip's keyframe with the next frame. */
  requestKeyframe(kind: KeyframeRequestKind): void {
    this.onKeyframeRequest(kind);
  }

  private onKeyframeRequest(kind: KeyframeRequestKind): void {
    if (kind === "pli") this.counters.plisReceived++;
    else this.counters.firsReceived++;
    this.counters.lastKeyframeRequestAt = Date.now();
    this.keyframeWanted = true;
    // Answer at once rather than on the next tick: the business measures how long a keyframe takes.
    if (this.timer) this.sendFrame();
  }

  private tick(): void {
    const fps = this.clip.spec.fps;
    const due = Math.floor(((performance.now() - this.startedAt) * fps) / 1000) + 1;
    if (due - this.sent > MAX_CATCH_UP_FRAMES) this.sent = due - MAX_CATCH_UP_FRAMES;
    while (this.sent < due) this.sendFrame();
  }

  private sendFrame(): void {
    const frames = this.clip.frames;
    const requested = this.keyframeWanted;
    if (requested || this.index >= frames.length) {
      if (!requested) this.counters.loops++;
      this.index = 0;
      this.keyframeWanted = false;
    }
    const frame = frames[this.index];
    if (!frame) return;
    this.index++;
    const timestamp = (this.firstTimestamp + Math.round((this.sent * VIDEO_CLOCK_RATE) / this.clip.spec.fps)) >>> 0;
    this.sent++;
    const packets = this.packetize(frame.data, timestamp, frame.keyframe);
    const c = this.counters;
    c.framesSent++;
    if (frame.keyframe) {
      c.keyframesSent++;
      c.lastKeyframeTimestamp = timestamp;
      if (requested) c.lastRequestedKeyframeSentAt = Date.now();
    }
    for (const packet of packets) {
      c.packetsSent++;
      c.bytesSent += packet.payload.length;
      this.transceiver.sender.sendRtp(packet).catch(() => undefined);
    }
  }
}
