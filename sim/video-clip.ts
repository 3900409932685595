import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { h264NalType, h265NalType, H264_NAL, H265_NAL, joinAnnexB, splitAnnexB } from "../transcode/video/annexb.js";
import { resolveFfmpegPath } from "../transcode/video/ffmpeg-binary.js";
import { SimStateError } from "./errors.js";
import type { SimVideoCodec } from "./video-codecs.js";

/** What the consumer's camera shows: ffmpeg's testsrc2 pattern, encoded once and looped. */
export interface VideoClipSpec {
  codec: SimVideoCodec;
  width: number;
  height: number;
  fps: number;
  /** Length of the loop; the clip's only keyframe is its first frame. */
  seconds: number;
}

export interface VideoClipFrame {
  /** IVF frame payload (VP8/VP9/AV1) or one Annex-B access unit without AUD (H.264/H.265). */
  data: Buffer;
  keyframe: boolean;
}

export interface VideoClip {
  spec: VideoClipSpec;
  frames: readonly VideoClipFrame[];
}

export const DEFAULT_CLIP: Omit<VideoClipSpec, "codec"> = { width: 640, height: 360, fps: 30, seconds: 4 };

const clips = new Map<string, Promise<VideoClip>>();

/**
 * The encoded test pattern for `spec`, from cache when this process encoded it before. Every frame but the
 * first is predicted (one GOP per loop), so a keyframe only ever appears at the loop start or when the
 * sender jumps back there on a PLI/FIR: a test then knows where a keyframe came from.
 */
export function loadVideoClip(spec: VideoClipSpec): Promise<VideoClip> {
  const key = `${spec.codec}-${spec.width}x${spec.height}@${spec.fps}x${spec.seconds}`;
  let clip = clips.get(key);
  if (!clip) {
    clip = encodeClip(spec);
    clips.set(key, clip);
    clip.catch(() => clips.delete(key));
  }
  return clip;
}

async function encodeClip(spec: VideoClipSpec): Promise<VideoClip> {
  if (![spec.width, spec.height, spec.fps, spec.seconds].every((n) => Number.isFinite(n) && n > 0)) {
    throw new SimStateError(`invalid video clip ${JSON.stringify(spec)}`);
  }
  if (spec.width % 2 !== 0 || spec.height % 2 !== 0) throw new SimStateError("video width and height must be even (4:2:0)");
  const dir = await mkdtemp(join(tmpdir(), "sim-video-"));
  try {
    const { format, args } = encoderArgs(spec);
    const file = join(dir, `clip.${format}`);
    const ffmpeg = resolveFfmpegPath();
    await run(ffmpeg, [
      ...["-hide_banner", "-loglevel", "error", "-nostdin", "-y"],
      ...["-f", "lavfi", "-i", `testsrc2=size=${spec.width}x${spec.height}:rate=${spec.fps}`],
      ...["-t", String(spec.seconds), "-an", "-pix_fmt", "yuv420p"],
      ...args,
      ...["-f", format, file],
    ]);
    const bytes = await readFile(file);
    const payloads = format === "ivf" ? ivfFrames(bytes) : annexBAccessUnits(bytes, format === "hevc" ? "H265" : "H264");
    const keyflags = await keyframeFlags(ffprobePath(ffmpeg), file, format);
    if (keyflags.length !== payloads.length) {
      throw new SimStateError(`${spec.codec} clip: split into ${payloads.length} frames but ffprobe counts ${keyflags.length}`);
    }
    if (!keyflags[0]) throw new SimStateError(`${spec.codec} clip does not start with a keyframe`);
    return { spec, frames: payloads.map((data, i) => ({ data, keyframe: keyflags[i] === true })) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function encoderArgs(spec: VideoClipSpec): { format: "ivf" | "h264" | "hevc"; args: string[] } {
  const gop = String(Math.round(spec.fps * spec.seconds) + 1);
  // About 0.1 bit per pixel: 600-700 kbit/s at 640x360, what a phone sends on a decent network.
  const bitrate = `${Math.max(100, Math.round((spec.width * spec.height * spec.fps * 0.1) / 1000))}k`;
  const realtime = ["-lag-in-frames", "0", "-g", gop, "-keyint_min", gop, "-b:v", bitrate];
  switch (spec.codec) {
    case "VP8":
      return { format: "ivf", args: ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-auto-alt-ref", "0", ...realtime] };
    case "VP9":
      return { format: "ivf", args: ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1", ...realtime] };
    case "AV1":
      return { format: "ivf", args: ["-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", ...realtime] };
    case "H264":
      return {
        format: "h264",
        args: [
          ...["-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-preset", "veryfast", "-tune", "zerolatency"],
          ...["-g", gop, "-x264-params", "scenecut=0", "-b:v", bitrate],
          // AUDs mark where one access unit ends; they are dropped again before packetizing.
          ...["-bsf:v", "h264_metadata=aud=insert"],
        ],
      };
    case "H265":
      return {
        format: "hevc",
        args: [
          ...["-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency", "-b:v", bitrate],
          ...["-x265-params", `log-level=error:keyint=${gop}:min-keyint=${gop}:scenecut=0:open-gop=0:bframes=0:repeat-headers=1`],
          ...["-bsf:v", "hevc_metadata=aud=insert"],
        ],
      };
  }
}

/** Frame payloads of an IVF file (32-byte file header, then 12-byte size+pts header per frame). */
export function ivfFrames(file: Buffer): Buffer[] {
  if (file.length < 32 || file.toString("ascii", 0, 4) !== "DKIF") throw new SimStateError("not an IVF file");
  const headerSize = file.readUInt16LE(6);
  const frames: Buffer[] = [];
  let offset = headerSize;
  while (offset + 12 <= file.length) {
    const size = file.readUInt32LE(offset);
    const start = offset + 12;
    if (start + size > file.length) break;
    frames.push(file.subarray(start, start + size));
    offset = start + size;
  }
  return frames;
}

/** Access units of an Annex-B stream with AUDs, each re-joined with 4-byte start codes and without its AUD. */
export function annexBAccessUnits(stream: Buffer, codec: "H264" | "H265"): Buffer[] {
  const isAud = codec === "H265" ? (nal: Uint8Array) => h265NalType(nal) === H265_NAL.aud : (nal: Uint8Array) => h264NalType(nal) === H264_NAL.aud;
  const units: Uint8Array[][] = [];
  for (const nal of splitAnnexB(stream)) {
    if (isAud(nal)) {
      units.push([]);
      continue;
    }
    if (units.length === 0) units.push([]);
    units.at(-1)?.push(nal);
  }
  return units.filter((u) => u.length > 0).map((u) => joinAnnexB(u));
}

function ffprobePath(ffmpeg: string): string {
  const configured = process.env.FFPROBE_PATH?.trim();
  if (configured) return configured;
  return ffmpeg.includes("/") ? join(dirname(ffmpeg), "ffprobe") : "ffprobe";
}

/** Keyframe flag of every packet, as ffprobe's parsers see it (independent of our own bitstream reading). */
async function keyframeFlags(ffprobe: string, file: string, format: string): Promise<boolean[]> {
  const out = await run(ffprobe, ["-v", "error", "-f", format, "-i", file, "-show_entries", "packet=flags", "-of", "csv=p=0"]);
  return out
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((flags) => flags.startsWith("K"));
}

function run(binary: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { timeout: 120_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        reject(new SimStateError(`${binary} failed: ${stderr.trim() || error.message}`, { cause: error }));
        return;
      }
      resolve(stdout);
    });
  });
}
