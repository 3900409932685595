/**
 * One ffmpeg process as the transcoder sees it: the frames it has been given and not yet answered, and the pts
 * each was written with, so every output packet can be matched to its input frame. VideoTranscoder runs one
 * (or two during a bitrate handover) and decides what goes in.
 */
import type { EncodedPacket } from "./encoded-output-reader.js";
import { buildFfmpegArgs, type EncoderSettings } from "./ffmpeg-args.js";
import { FfmpegProcess } from "./ffmpeg-process.js";
import { ANNEXB_FRAME_RATE, createInputFramer, type InputFramer, type InputFraming } from "./input-framing.js";
import { VIDEO_CLOCK_RATE, type VideoCodec } from "./video-codec.js";

export interface InFlightFrame {
  /** pts as written (or the frame's position for raw Annex-B input). */
  key: number;
  /** RTP timestamp of the input frame. */
  timestamp: number;
  /** Position on the transcoder's internal 90 kHz timeline. */
  ext: number;
  writtenAtMs: number;
  arrivalMs: number | undefined;
}

export interface SlotFrame {
  data: Buffer;
  timestamp: number;
  arrivalMs?: number;
}

export class EncoderSlot {
  readonly proc: FfmpegProcess;
  readonly bitrateKbps: number;
  readonly spawnedAtMs = performance.now();
  lastOutputAtMs = performance.now();
  /** Until a keyframe has been written, nothing else can be. */
  started = false;
  /** Input skipped because this process fell behind; resumes at a keyframe once it has caught up. */
  overloaded = false;
  /** Standby only: has produced output, so its switch-over IDR can be forced. */
  warm = false;
  /** Standby only: the frame forced as its switch-over IDR. */
  switchAt: { key: number; ext: number } | undefined;
  /** After a restart with replay: force an IDR on the first frame newer than this (the receiver's last). */
  idrAfterExt: number | undefined;

  private readonly framer: InputFramer;
  private readonly inFlight: InFlightFrame[] = [];
  private lastPts = Number.NEGATIVE_INFINITY;
  private nextIndex = 0;

  constructor(ffmpegPath: string, codec: VideoCodec, framing: InputFraming, settings: EncoderSettings) {
    this.bitrateKbps = settings.bitrateKbps;
    this.framer = createInputFramer(codec, framing);
    this.proc = FfmpegProcess.spawn(ffmpegPath, buildFfmpegArgs(this.framer, settings));
    this.proc.write([this.framer.header()]);
  }

  get framesInFlight(): number {
    return this.inFlight.length;
  }

  get oldestInFlight(): InFlightFrame | undefined {
    return this.inFlight[0];
  }

  /**
   * Writes one frame: pts from its timeline position, made even and rising, odd when it must become an IDR.
   * Returns the key its output packet will carry.
   */
  write(frame: SlotFrame, ext: number, keyframe: boolean, forceIdr: boolean, nowMs: number): number {
    let key: number;
    let pts = 0;
    const ticks = this.framer.ticksPerSecond;
    if (ticks === undefined) {
      key = this.nextIndex++;
    } else {
      pts = Math.round((ext * ticks) / VIDEO_CLOCK_RATE);
      pts -= pts % 2;
      if (pts <= this.lastPts) pts = this.lastPts + 2 - ((this.lastPts + 2) % 2);
      this.lastPts = pts;
      if (forceIdr) pts += 1;
      key = pts;
    }
    this.inFlight.push({ key, timestamp: frame.timestamp >>> 0, ext, writtenAtMs: nowMs, arrivalMs: frame.arrivalMs });
    this.proc.write(this.framer.frame(frame.data, pts, keyframe));
    return key;
  }

  /**
   * The input frame an output packet came from. Output follows input order, so frames written before it that
   * are still waiting produced nothing (dropped or hidden by the decoder); they are counted in `skipped`.
   */
  match(packet: EncodedPacket): { frame: InFlightFrame | undefined; skipped: number } {
    const ticks = this.framer.ticksPerSecond ?? ANNEXB_FRAME_RATE;
    const key = Math.round((packet.pts * packet.timeBase.num * ticks) / packet.timeBase.den);
    let skipped = 0;
    while (this.inFlight.length > 0 && this.inFlight[0]!.key <= key) {
      const candidate = this.inFlight.shift()!;
      if (candidate.key === key) {
        this.lastOutputAtMs = performance.now();
        return { frame: candidate, skipped };
      }
      skipped++;
    }
    return { frame: undefined, skipped };
  }
}
