import { spawn } from "node:child_process";
import { resolveFfmpegPath } from "../transcode/video/ffmpeg-binary.js";
import { SimStateError } from "./errors.js";
import type { SimVideoCodec } from "./video-codecs.js";
import { videoFramesAsFile, type EncodedFrameLike } from "./video-decode.js";

/** Encoded video as a consumer holds it: depacketized frames, or one Annex-B stream (H.264/H.265). */
export type EncodedVideo = readonly EncodedFrameLike[] | Buffer;

export interface Thumbnails {
  width: number;
  height: number;
  /** One 8-bit grey picture per decoded frame, in decode order. */
  frames: Buffer[];
}

function asFile(codec: SimVideoCodec, video: EncodedVideo): { format: string; bytes: Buffer } {
  if (!Buffer.isBuffer(video)) return videoFramesAsFile(codec, video);
  if (codec === "H264") return { format: "h264", bytes: video };
  if (codec === "H265") return { format: "hevc", bytes: video };
  return { format: "ivf", bytes: video };
}

/**
 * Decodes `video` with ffmpeg and writes one decoded frame as a PNG: the last one by default, so the
 * picture shows the stream after it settled rather than its first keyframe.
 */
export async function writeVideoFramePng(
  codec: SimVideoCodec,
  video: EncodedVideo,
  file: string,
  options: { frame?: "last" | number; timeoutMs?: number } = {},
): Promise<void> {
  const { format, bytes } = asFile(codec, video);
  const which = options.frame ?? "last";
  // `-update 1` keeps overwriting one image file, leaving the last frame; a numbered frame is picked by select.
  const pick = which === "last" ? ["-update", "1"] : ["-vf", `select=eq(n\\,${which})`, "-frames:v", "1"];
  await runFfmpeg(
    ["-f", format, "-i", "pipe:0", "-map", "0:v:0", "-fps_mode", "passthrough", ...pick, "-y", "-f", "image2", file],
    bytes,
    options.timeoutMs,
  );
}

/** Every decoded frame of `video`, scaled down to grey thumbnails, e.g. to tell which frame a picture shows. */
export async function videoThumbnails(codec: SimVideoCodec, video: EncodedVideo, width: number, height: number, timeoutMs?: number): Promise<Thumbnails> {
  const { format, bytes } = asFile(codec, video);
  const { stdout } = await runFfmpeg(
    ["-f", format, "-i", "pipe:0", "-map", "0:v:0", "-fps_mode", "passthrough", ...thumbnailOutput(width, height)],
    bytes,
    timeoutMs,
  );
  return { width, height, frames: splitFrames(stdout, width * height) };
}

/** An image file (PNG, JPEG) as one grey thumbnail of the same kind as videoThumbnails() makes. */
export async function imageThumbnail(file: string, width: number, height: number, timeoutMs?: number): Promise<Buffer> {
  const { stdout } = await runFfmpeg(["-i", file, ...thumbnailOutput(width, height)], undefined, timeoutMs);
  const frame = splitFrames(stdout, width * height)[0];
  if (!frame) throw new SimStateError(`ffmpeg could not read ${file}`);
  return frame;
}

/** An image file averaged down to `columns` x `rows` RGB cells (3 bytes each, row by row): its coarse colours. */
export async function imageColours(file: string, columns: number, rows: number, timeoutMs?: number): Promise<Buffer> {
  const { stdout } = await runFfmpeg(
    ["-i", file, "-vf", `scale=${columns}:${rows}:flags=area`, "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"],
    undefined,
    timeoutMs,
  );
  if (stdout.length < columns * rows * 3) throw new SimStateError(`ffmpeg could not read ${file}`);
  return stdout.subarray(0, columns * rows * 3);
}

/**
 * How far apart two thumbnails of the same size are: the mean absolute difference once each is scaled to
 * zero mean and unit variance, so a brightness or contrast shift (two YUV to RGB conversions on the way)
 * does not count, only what the pictures show. 0 is identical; unrelated pictures are near 1.
 */
export function thumbnailDistance(a: Buffer, b: Buffer): number {
  if (a.length !== b.length || a.length === 0) throw new SimStateError("thumbnails differ in size");
  const na = standardize(a);
  const nb = standardize(b);
  let sum = 0;
  for (let i = 0; i < na.length; i++) sum += Math.abs(na[i]! - nb[i]!);
  return sum / na.length;
}

function standardize(pixels: Buffer): Float64Array {
  let mean = 0;
  for (const v of pixels) mean += v;
  mean /= pixels.length;
  let variance = 0;
  for (const v of pixels) variance += (v - mean) ** 2;
  // A flat picture has no contrast to scale; leaving it centred keeps it comparable instead of dividing by 0.
  const sd = Math.sqrt(variance / pixels.length) || 1;
  return Float64Array.from(pixels, (v) => (v - mean) / sd);
}

function thumbnailOutput(width: number, height: number): string[] {
  // Area averaging, so that coding noise and scaling artefacts weigh less than what the picture shows.
  return ["-vf", `scale=${width}:${height}:flags=area`, "-pix_fmt", "gray", "-f", "rawvideo", "pipe:1"];
}

function splitFrames(raw: Buffer, size: number): Buffer[] {
  const frames: Buffer[] = [];
  for (let offset = 0; offset + size <= raw.length; offset += size) frames.push(raw.subarray(offset, offset + size));
  return frames;
}

function runFfmpeg(args: string[], input: Buffer | undefined, timeoutMs = 30_000): Promise<{ stdout: Buffer; stderr: string }> {
  const full = ["-hide_banner", "-nostdin", "-v", "error", ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(resolveFfmpegPath(), full, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new SimStateError(`ffmpeg did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new SimStateError(`ffmpeg could not start: ${error.message}`, { cause: error }));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new SimStateError(`ffmpeg failed (${code}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`));
        return;
      }
      resolve({ stdout: Buffer.concat(out), stderr });
    });
    // ffmpeg may stop reading early on a broken stream; its exit status reports that.
    child.stdin.on("error", () => undefined);
    if (input) child.stdin.end(input);
    else child.stdin.end();
  });
}
