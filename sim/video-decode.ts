import { spawn } from "node:child_process";
import { resolveFfmpegPath } from "../transcode/video/ffmpeg-binary.js";
import { SimStateError } from "./errors.js";
import type { SimVideoCodec } from "./video-codecs.js";

export interface EncodedFrameLike {
  data: Buffer;
}

export interface DecodeResult {
  /** Pictures ffmpeg decoded and output (one framemd5 line each). */
  frames: number;
  /** ffmpeg's error lines (a decoder complaining about a frame, a broken stream). */
  errors: string[];
}

const FOURCC: Readonly<Record<"VP8" | "VP9" | "AV1", string>> = { VP8: "VP80", VP9: "VP90", AV1: "AV01" };

/**
 * The frames as a file ffmpeg can read: Annex-B concatenated for H.264/H.265, IVF (time base 1/30, one
 * pts per frame) for VP8/VP9/AV1.
 */
export function videoFramesAsFile(codec: SimVideoCodec, frames: readonly EncodedFrameLike[]): { format: string; bytes: Buffer } {
  if (codec === "H264") return { format: "h264", bytes: Buffer.concat(frames.map((f) => f.data)) };
  if (codec === "H265") return { format: "hevc", bytes: Buffer.concat(frames.map((f) => f.data)) };
  const header = Buffer.alloc(32);
  header.write("DKIF", 0, "ascii");
  header.writeUInt16LE(0, 4);
  header.writeUInt16LE(32, 6);
  header.write(FOURCC[codec], 8, "ascii");
  header.writeUInt32LE(30, 16);
  header.writeUInt32LE(1, 20);
  header.writeUInt32LE(frames.length, 24);
  const parts: Buffer[] = [header];
  frames.forEach((frame, i) => {
    const frameHeader = Buffer.alloc(12);
    frameHeader.writeUInt32LE(frame.data.length, 0);
    frameHeader.writeBigUInt64LE(BigInt(i), 4);
    parts.push(frameHeader, frame.data);
  });
  return { format: "ivf", bytes: Buffer.concat(parts) };
}

/**
 * Decodes the frames with ffmpeg and counts the pictures that came out: what a receiving endpoint could
 * show, as opposed to how many packets or frames arrived.
 */
export function decodeVideoFrames(codec: SimVideoCodec, frames: readonly EncodedFrameLike[] | Buffer, timeoutMs = 30_000): Promise<DecodeResult> {
  const { format, bytes } = Buffer.isBuffer(frames)
    ? { format: codec === "H265" ? "hevc" : codec === "H264" ? "h264" : "ivf", bytes: frames }
    : videoFramesAsFile(codec, frames);
  const args = ["-hide_banner", "-nostdin", "-v", "error", "-f", format, "-i", "pipe:0", "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "framemd5", "pipe:1"];
  return new Promise((resolve, reject) => {
    const child = spawn(resolveFfmpegPath(), args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new SimStateError(`ffmpeg did not decode ${codec} within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new SimStateError(`ffmpeg could not start: ${error.message}`, { cause: error }));
    });
    child.on("close", () => {
      clearTimeout(timer);
      const frameLines = stdout.split("\n").filter((line) => line.length > 0 && !line.startsWith("#"));
      resolve({ frames: frameLines.length, errors: stderr.split("\n").filter((line) => line.trim().length > 0) });
    });
    // ffmpeg may exit before reading everything (a broken stream); that is reported through `errors`.
    child.stdin.on("error", () => undefined);
    child.stdin.end(bytes);
  });
}
