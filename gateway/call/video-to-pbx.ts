import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { H264Packetizer } from "../../transcode/video/h264-packetizer.js";
import { VideoDepacketizer, type RtpPacketLike } from "../../transcode/video/depacketizer.js";
import { VideoTranscoder } from "../../transcode/video/transcoder.js";
import type { VideoCodec } from "../../transcode/video/video-codec.js";

export interface VideoPacketOut {
  payload: Buffer;
  /** 90 kHz RTP timestamp. */
  timestamp: number;
  marker: boolean;
}

export interface VideoToPbxEvents {
  /** An H.264 RTP payload for the PBX. */
  packet: [VideoPacketOut];
  /** Our side needs a keyframe from the consumer (PLI toward Meta). */
  keyframeNeeded: [];
  closed: [];
}

export interface VideoToPbxStats {
  codec: VideoCodec;
  state: VideoToPbxState;
  packetsIn: number;
  packetsOut: number;
  transcoder: ReturnType<VideoTranscoder["stats"]> | undefined;
}

/** Named states: `passthrough` (H.264 from Meta as is), `transcoding` (ffmpeg), `closed`. */
export type VideoToPbxState = "passthrough" | "transcoding" | "closed";

/**
 * The consumer's video on its way to a SIP phone, which takes H.264. H.264 from Meta goes
 * through untouched (only the RTP header is renumbered, by the PBX's RTP endpoint); any other
 * codec is reassembled into frames and re-encoded by one ffmpeg process for this stream.
 */
export class VideoToPbx extends EventEmitter<VideoToPbxEvents> {
  private _state: VideoToPbxState;
  private readonly depacketizer: VideoDepacketizer | undefined;
  private readonly transcoder: VideoTranscoder | undefined;
  private readonly packetizer: H264Packetizer | undefined;
  private packetsIn = 0;
  private packetsOut = 0;

  constructor(
    readonly codec: VideoCodec,
    private readonly log: Logger,
  ) {
    super();
    if (codec === "H264") {
      this._state = "passthrough";
      return;
    }
    this._state = "transcoding";
    this.depacketizer = new VideoDepacketizer({ codec });
    this.transcoder = new VideoTranscoder({ codec });
    // The PBX's RTP endpoint sets SSRC and sequence numbers; only payloads and markers matter here.
    this.packetizer = new H264Packetizer({ payloadType: 0, ssrc: 0 });
    this.depacketizer.on("frame", (f) => this.transcoder?.write({ data: f.data, timestamp: f.timestamp, keyframe: f.keyframe, arrivalMs: f.arrivalMs }));
    this.depacketizer.on("keyframe-request", () => this.emit("keyframeNeeded"));
    this.transcoder.on("keyframe-needed", () => this.emit("keyframeNeeded"));
    this.transcoder.on("access-unit", (au) => {
      for (const p of this.packetizer!.packetize(au.data, au.timestamp)) this.out(p.payload, p.header.timestamp, p.header.marker);
    });
    this.transcoder.on("failed", (err) => this.log.error({ err }, "video transcoder gave up"));
  }

  get state(): VideoToPbxState {
    return this._state;
  }

  /** Starts the transcoder (no-op for passthrough); rejects when ffmpeg is missing. */
  async start(): Promise<void> {
    await this.transcoder?.start();
    this.log.info({ codec: this.codec, mode: this._state }, "video toward the PBX started");
  }

  /** One RTP packet of the consumer's video. */
  push(packet: RtpPacketLike, arrivalMs: number): void {
    if (this._state === "closed") return;
    this.packetsIn++;
    if (this._state === "passthrough") {
      this.out(packet.payload, packet.header.timestamp, packet.header.marker);
      return;
    }
    this.depacketizer!.push(packet, arrivalMs);
  }

  /** The PBX asked for a keyframe (PLI/FIR or SIP INFO): our encoder makes one, or the consumer does. */
  requestKeyframe(): void {
    if (this._state === "transcoding") this.transcoder!.requestKeyframe();
    else if (this._state === "passthrough") this.emit("keyframeNeeded");
  }

  /**
   * The PBX's bandwidth limit (TMMBR/REMB). Our encoder follows it when transcoding; passthrough
   * video is the consumer's own bitrate, which Meta's sender sets from our REMB.
   */
  setBitrateLimit(bps: number): void {
    if (this._state !== "transcoding") return;
    const kbps = Math.max(100, Math.min(4000, Math.floor(bps / 1000)));
    this.transcoder!.setTargetBitrate(kbps);
  }

  /** Timer work of the depacketizer (waiting for late packets). */
  tick(nowMs: number): void {
    this.depacketizer?.tick(nowMs);
  }

  stats(): VideoToPbxStats {
    return { codec: this.codec, state: this._state, packetsIn: this.packetsIn, packetsOut: this.packetsOut, transcoder: this.transcoder?.stats() };
  }

  async close(): Promise<void> {
    if (this._state === "closed") return;
    this._state = "closed";
    this.emit("closed");
    this.removeAllListeners();
    await this.transcoder?.close();
  }

  private out(payload: Buffer, timestamp: number, marker: boolean): void {
    this.packetsOut++;
    this.emit("packet", { payload, timestamp, marker });
  }
}
