/**
 * The ffmpeg command line for one transcoding process: frames on stdin, libx264 constrained baseline out as
 * raw H.264 on fd 1 plus a framecrc listing on fd 3 (see encoded-output-reader.ts). Settings follow the
 * low-delay measurements in media-notes.md; each one is there because leaving it out broke latency or output.
 */
import type { InputFramer } from "./input-framing.js";

export interface EncoderSettings {
  bitrateKbps: number;
  /** Nominal input frame rate: x264's rate control budgets bits per frame from it. */
  frameRate: number;
  /** Longest GOP; IDRs normally come on demand only. */
  gopFrames: number;
  /** Decoder and encoder threads each; 1 is cheapest per stream and adds no frame-threading delay. */
  threads: number;
  /** x264 slice-max-size: every slice NAL fits one RTP packet of `sliceMaxSize + 12` bytes. */
  sliceMaxSize: number;
  /** VBV buffer in milliseconds of the target bitrate: small keeps frame sizes (and queueing delay) even. */
  vbvBufferMs: number;
  /** Scale every picture to this size (the first frame's size is kept otherwise). */
  outputSize?: { width: number; height: number };
}

export const DEFAULT_ENCODER_SETTINGS: EncoderSettings = {
  bitrateKbps: 1000,
  frameRate: 30,
  gopFrames: 100_000,
  threads: 1,
  sliceMaxSize: 1188,
  vbvBufferMs: 500,
};

export function buildFfmpegArgs(framer: InputFramer, settings: EncoderSettings): string[] {
  const kbps = Math.max(16, Math.round(settings.bitrateKbps));
  const bufferKbits = Math.max(16, Math.round((kbps * settings.vbvBufferMs) / 1000));
  const args = [
    "-hide_banner",
    "-nostats",
    "-loglevel",
    "error",
    // Input: no probing beyond the first bytes, and no frame held for reordering in the decoder.
    "-threads",
    String(settings.threads),
    "-flags",
    "low_delay",
    "-probesize",
    "32",
    "-analyzeduration",
    "0",
    ...framer.inputArgs,
    "-i",
    "pipe:0",
    "-map",
    "0:v:0",
    "-an",
  ];
  if (settings.outputSize) {
    args.push("-vf", `scale=${settings.outputSize.width}:${settings.outputSize.height}`);
  }
  args.push(
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
    "-profile:v",
    "baseline",
    // Baseline is 8-bit 4:2:0 only; VP9 profile 2 or HEVC Main 10 input would otherwise fail to encode.
    "-pix_fmt",
    "yuv420p",
    "-bf",
    "0",
    "-g",
    String(settings.gopFrames),
    "-keyint_min",
    "1",
    "-sc_threshold",
    "0",
    "-x264-params",
    `slice-max-size=${settings.sliceMaxSize}`,
    "-threads",
    String(settings.threads),
    "-b:v",
    `${kbps}k`,
    "-maxrate",
    `${kbps}k`,
    "-bufsize",
    `${bufferKbits}k`,
    // Timestamps pass through untouched, so each output packet names its input frame by pts.
    "-fps_mode",
    "passthrough",
    "-copyts",
    "-enc_time_base",
    "-1",
    // Without a nominal rate x264 assumes the 90 kHz time base is the frame rate and starves every frame.
    "-r",
    String(settings.frameRate),
  );
  if (framer.ticksPerSecond !== undefined) {
    // The keyframe side channel: frames are written with even pts, the one to become an IDR with pts + 1.
    args.push("-force_key_frames", `expr:eq(mod(round(t*${framer.ticksPerSecond}),2),1)`);
  } else {
    args.push("-force_key_frames", "source");
  }
  args.push("-flush_packets", "1", "-f", "tee", "[f=h264]pipe\\:1|[f=framecrc]pipe\\:3");
  return args;
}
