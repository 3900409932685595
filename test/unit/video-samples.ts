/**
 * Real encoded video for the video tests: ffmpeg encodes testsrc2 to each codec, and the result is split into
 * frames (IVF payloads, or Annex-B access units cut at the encoder's access unit delimiters), then optionally
 * packetized into RTP with werift's packetizers. Tests fail loudly when ffmpeg is missing.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Av1Packetizer, H264Packetizer, H265Packetizer, RtpPacket, Vp8Packetizer, Vp9Packetizer } from "werift";
import { h264NalType, h265NalType, H264_NAL, H265_NAL, joinAnnexB, splitAnnexB } from "../../transcode/video/annexb.js";
import type { VideoCodec } from "../../transcode/video/video-codec.js";

const run = promisify(execFile);

export const FFMPEG = process.env.FFMPEG_PATH?.trim() || "ffmpeg";
export const FFPROBE = process.env.FFPROBE_PATH?.trim() || "ffprobe";

/** Throws with instructions if ffmpeg/ffprobe cannot run: these tests must not pass by skipping. */
export function requireFfmpeg(): void {
  for (const bin of [FFMPEG, FFPROBE]) {
    try {
      execFileSync(bin, ["-hide_banner", "-version"], { stdio: "ignore" });
    } catch (err) {
      throw new Error(`${bin} is required by the video tests and could not be run (apt-get install ffmpeg): ${String(err)}`);
    }
  }
}

export interface SampleOptions {
  width: number;
  height: number;
  /** Frames at 30 fps. */
  frames: number;
  /** Keyframe interval in frames. */
  gop: number;
  bitrateKbps?: number;
}

export interface EncodedSample {
  codec: VideoCodec;
  /** IVF payloads (VP8/VP9/AV1) or Annex-B access units (H.264/H.265), one per picture. */
  frames: Buffer[];
  /** Keyframe flags as ffprobe reads them from the encoded file (independent of our bitstream parsing). */
  encoderKeyframes: boolean[];
}

function encoderArgs(codec: VideoCodec, gop: number, kbps: number): { args: string[]; ext: string; format: string } {
  const rate = ["-b:v", `${kbps}k`];
  switch (codec) {
    case "VP8":
      return { args: ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", "-g", String(gop), ...rate], ext: "ivf", format: "ivf" };
    case "VP9":
      return { args: ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", "-g", String(gop), ...rate], ext: "ivf", format: "ivf" };
    case "AV1":
      return { args: ["-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", "-g", String(gop), ...rate], ext: "ivf", format: "ivf" };
    case "H264":
      return {
        args: ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0", "-g", String(gop), "-x264-params", "aud=1", ...rate],
        ext: "h264",
        format: "h264",
      };
    case "H265":
      return {
        args: ["-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency", "-x265-params", `log-level=error:aud=1:bframes=0:keyint=${gop}:min-keyint=${gop}`, ...rate],
        ext: "hevc",
        format: "hevc",
      };
  }
}

export async function encodeSample(codec: VideoCodec, options: SampleOptions): Promise<EncodedSample> {
  const dir = mkdtempSync(join(tmpdir(), "video-sample-"));
  try {
    const { args, ext, format } = encoderArgs(codec, options.gop, options.bitrateKbps ?? 800);
    const file = join(dir, `sample.${ext}`);
    await run(FFMPEG, [
      "-hide_banner", "-loglevel", "error", "-y",
      "-f", "lavfi", "-i", `testsrc2=size=${options.width}x${options.height}:rate=30`,
      "-frames:v", String(options.frames), "-pix_fmt", "yuv420p", "-threads", "1",
      ...args, "-f", format, file,
    ]);
    const data = readFileSync(file);
    const frames = format === "ivf" ? splitIvf(data) : splitAccessUnits(codec, data);
    const encoderKeyframes = await probeKeyframeFlags(file, format);
    if (encoderKeyframes.length !== frames.length) {
      throw new Error(`${codec} sample: ffprobe saw ${encoderKeyframes.length} packets, split gave ${frames.length}`);
    }
    return { codec, frames, encoderKeyframes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function probeKeyframeFlags(file: string, format: string): Promise<boolean[]> {
  const { stdout } = await run(FFPROBE, [
    "-hide_banner", "-loglevel", "error", "-f", format, "-select_streams", "v:0",
    "-show_entries", "packet=flags", "-of", "csv=p=0", file,
  ]);
  return stdout.split("\n").filter((l) => l.trim() !== "").map((l) => l.startsWith("K"));
}

export function splitIvf(data: Buffer): Buffer[] {
  const headerSize = data.readUInt16LE(6);
  const frames: Buffer[] = [];
  let offset = headerSize;
  while (offset + 12 <= data.length) {
    const size = data.readUInt32LE(offset);
    frames.push(data.subarray(offset + 12, offset + 12 + size));
    offset += 12 + size;
  }
  return frames;
}

/** Access units of an Annex-B stream whose encoder put an AUD at the start of each. */
export function splitAccessUnits(codec: "H264" | "H265" | VideoCodec, data: Buffer): Buffer[] {
  const isAud = (nal: Uint8Array): boolean =>
    codec === "H264" ? h264NalType(nal) === H264_NAL.aud : h265NalType(nal) === H265_NAL.aud;
  const aus: Uint8Array[][] = [];
  for (const nal of splitAnnexB(data)) {
    if (isAud(nal) || aus.length === 0) aus.push([]);
    aus.at(-1)!.push(nal);
  }
  return aus.map((nalus) => joinAnnexB(nalus));
}

export interface PacketizedFrame {
  timestamp: number;
  packets: RtpPacket[];
}

/** RTP packets per frame with werift's packetizers (MTU 1200), 3000 ticks apart. */
export function packetizeSample(sample: EncodedSample, startTimestamp = 1000, ssrc = 0x1234): PacketizedFrame[] {
  const common = { maxPayloadSize: 1200, payloadType: 96, ssrc, sequenceNumber: 65_450 };
  const out: PacketizedFrame[] = [];
  const vp8 = new Vp8Packetizer(common);
  const vp9 = new Vp9Packetizer(common);
  const av1 = new Av1Packetizer(common);
  const h264 = new H264Packetizer({ ...common, inputFormat: "annexb" });
  const h265 = new H265Packetizer({ ...common, inputFormat: "annexb" });
  sample.frames.forEach((frame, i) => {
    const timestamp = (startTimestamp + i * 3000) >>> 0;
    const isKey = sample.encoderKeyframes[i] ?? false;
    let packets: RtpPacket[];
    switch (sample.codec) {
      case "VP8":
        packets = vp8.packetize(frame, timestamp);
        break;
      case "VP9":
        packets = vp9.packetize(frame, timestamp, { isKeyframe: isKey });
        break;
      case "AV1":
        packets = av1.packetize(frame, timestamp, { isKeyframe: isKey });
        break;
      case "H264":
        packets = h264.packetize(frame, timestamp);
        break;
      case "H265":
        packets = h265.packetize(frame, timestamp);
        break;
    }
    out.push({ timestamp, packets });
  });
  return out;
}

export interface ProbeResult {
  codec: string;
  profile: string;
  width: number;
  height: number;
  frames: number;
}

/** Decodes a whole file with ffprobe and counts the frames that came out. */
export async function probeVideo(file: string, format?: string): Promise<ProbeResult> {
  const { stdout } = await run(FFPROBE, [
    "-hide_banner", "-loglevel", "error",
    ...(format ? ["-f", format] : []),
    "-count_frames", "-select_streams", "v:0",
    "-show_entries", "stream=codec_name,profile,width,height,nb_read_frames",
    "-of", "json", file,
  ]);
  const stream = (JSON.parse(stdout) as { streams: Array<Record<string, string | number>> }).streams[0] ?? {};
  return {
    codec: String(stream.codec_name ?? ""),
    profile: String(stream.profile ?? ""),
    width: Number(stream.width ?? 0),
    height: Number(stream.height ?? 0),
    frames: Number(stream.nb_read_frames ?? 0),
  };
}
