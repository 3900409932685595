/**
 * Video transcoding cost and latency, per input codec at 360p30 and 720p30:
 * - our path: RTP (werift packetizers, MTU 1200) → VideoDepacketizer → VideoTranscoder → H264Packetizer, fed
 *   in real time; CPU of the ffmpeg child (/proc) and of this Node process, latency from the frame's last
 *   packet in to its last H.264 packet out, and the transcoder's own write → access unit latency;
 * - bare ffmpeg: the same decoder and the same libx264 settings reading the same frames from a file at native
 *   rate (-re), writing to /dev/null.
 * Both are measured over the same window after the same warm-up (start-up excluded), CPU from /proc. The input
 * RTP is packetized before the clock starts: its cost belongs to the WebRTC stack, not to this path.
 * Runs one stream at a time (the machine is shared; see otherLoadCores in the results).
 *
 *   npm run build && node dist/bench/video.js [--quick] [--seconds N] [--codecs VP8,H264] [--out file]
 *   (results: bench/results/video.json, or video-quick.json with --quick)
 */
import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import {
  Av1Packetizer,
  H264Packetizer as WeriftH264Packetizer,
  H265Packetizer,
  RtpHeader,
  RtpPacket,
  Vp8Packetizer,
  Vp9Packetizer,
} from "werift";
import { H264_NAL, H265_NAL, h264NalType, h265NalType, joinAnnexB, splitAnnexB } from "../transcode/video/annexb.js";
import { buildFfmpegArgs, DEFAULT_ENCODER_SETTINGS } from "../transcode/video/ffmpeg-args.js";
import { checkFfmpeg, resolveFfmpegPath } from "../transcode/video/ffmpeg-binary.js";
import { H264Packetizer } from "../transcode/video/h264-packetizer.js";
import { createInputFramer } from "../transcode/video/input-framing.js";
import { readProcessUsage } from "../transcode/video/proc-stat.js";
import { isKeyframe } from "../transcode/video/keyframe.js";
import { VideoDepacketizer } from "../transcode/video/depacketizer.js";
import { VideoTranscoder } from "../transcode/video/transcoder.js";
import { VIDEO_CODECS, type VideoCodec } from "../transcode/video/video-codec.js";

const run = promisify(execFile);
const FFMPEG = resolveFfmpegPath();
const FRAME_MS = 1000 / 30;

interface Resolution {
  name: "360p" | "720p";
  width: number;
  height: number;
  kbps: number;
}

const RESOLUTIONS: readonly Resolution[] = [
  { name: "360p", width: 640, height: 360, kbps: 800 },
  { name: "720p", width: 1280, height: 720, kbps: 2000 },
];

interface Args {
  seconds: number;
  warmupSeconds: number;
  codecs: VideoCodec[];
  out: string;
  quick: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const quick = argv.includes("--quick");
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const codecs = (value("--codecs")?.split(",") ?? [...VIDEO_CODECS]).map((c) => c.trim().toUpperCase()) as VideoCodec[];
  for (const c of codecs) if (!VIDEO_CODECS.includes(c)) throw new Error(`unknown codec ${c}`);
  return {
    quick,
    seconds: Number(value("--seconds") ?? (quick ? 1.5 : 6)),
    warmupSeconds: quick ? 0.5 : 1,
    codecs,
    out: value("--out") ?? (quick ? "bench/results/video-quick.json" : "bench/results/video.json"),
  };
}

/* Samples ----------------------------------------------------------------------------------------------------- */

interface Sample {
  codec: VideoCodec;
  /** Encoded file for bare ffmpeg, and how to read it. */
  file: string;
  inputArgs: string[];
  frames: Buffer[];
}

function encoderArgs(codec: VideoCodec, kbps: number, frames: number): { args: string[]; ext: string; format: string } {
  const common = ["-g", String(frames), "-b:v", `${kbps}k`];
  switch (codec) {
    case "VP8":
      return { args: ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", ...common], ext: "ivf", format: "ivf" };
    case "VP9":
      return { args: ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", ...common], ext: "ivf", format: "ivf" };
    case "AV1":
      return { args: ["-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", ...common], ext: "ivf", format: "ivf" };
    case "H264":
      return { args: ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-bf", "0", "-x264-params", "aud=1", ...common], ext: "h264", format: "h264" };
    case "H265":
      return {
        args: ["-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency", "-x265-params", `log-level=error:aud=1:bframes=0:keyint=${frames}`, "-b:v", `${kbps}k`],
        ext: "hevc",
        format: "hevc",
      };
  }
}

async function encodeSample(dir: string, codec: VideoCodec, res: Resolution, frameCount: number): Promise<Sample> {
  const { args, ext, format } = encoderArgs(codec, res.kbps, frameCount);
  const file = join(dir, `${codec}-${res.name}.${ext}`);
  await run(FFMPEG, [
    "-hide_banner", "-loglevel", "error", "-y",
    "-f", "lavfi", "-i", `testsrc2=size=${res.width}x${res.height}:rate=30`,
    "-frames:v", String(frameCount), "-pix_fmt", "yuv420p", ...args, "-f", format, file,
  ]);
  const data = readFileSync(file);
  let frames: Buffer[];
  if (format === "ivf") {
    frames = [];
    for (let offset = data.readUInt16LE(6); offset + 12 <= data.length; ) {
      const size = data.readUInt32LE(offset);
      frames.push(data.subarray(offset + 12, offset + 12 + size));
      offset += 12 + size;
    }
  } else {
    const isAud = (n: Uint8Array): boolean => (codec === "H264" ? h264NalType(n) === H264_NAL.aud : h265NalType(n) === H265_NAL.aud);
    const aus: Uint8Array[][] = [];
    for (const nal of splitAnnexB(data)) {
      if (isAud(nal) || aus.length === 0) aus.push([]);
      aus.at(-1)!.push(nal);
    }
    frames = aus.map((a) => joinAnnexB(a));
  }
  if (!isKeyframe(codec, frames[0]!)) throw new Error(`${codec} sample does not start with a keyframe`);
  // Bare ffmpeg loops the sample with -stream_loop, which raw Annex-B input cannot do (no seeking): remux.
  const looped = join(dir, `${codec}-${res.name}.mkv`);
  const rawInput = format === "ivf" ? ["-f", "ivf"] : ["-f", format, "-framerate", "30"];
  await run(FFMPEG, ["-hide_banner", "-loglevel", "error", "-y", ...rawInput, "-i", file, "-c", "copy", "-f", "matroska", looped]);
  return { codec, file: looped, inputArgs: ["-f", "matroska"], frames };
}

function rtpPacketizer(codec: VideoCodec): (frame: Buffer, timestamp: number, key: boolean) => RtpPacket[] {
  const options = { maxPayloadSize: 1200, payloadType: 96, ssrc: 7 };
  switch (codec) {
    case "VP8": {
      const p = new Vp8Packetizer(options);
      return (f, ts) => p.packetize(f, ts);
    }
    case "VP9": {
      const p = new Vp9Packetizer(options);
      return (f, ts, key) => p.packetize(f, ts, { isKeyframe: key });
    }
    case "AV1": {
      const p = new Av1Packetizer(options);
      return (f, ts, key) => p.packetize(f, ts, { isKeyframe: key });
    }
    case "H264": {
      const p = new WeriftH264Packetizer({ ...options, inputFormat: "annexb" });
      return (f, ts) => p.packetize(f, ts);
    }
    case "H265": {
      const p = new H265Packetizer({ ...options, inputFormat: "annexb" });
      return (f, ts) => p.packetize(f, ts);
    }
  }
}

/* Measurements ----------------------------------------------------------------------------------------------- */

function systemBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100;
}

function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

interface OursResult {
  ffmpegCores: number;
  nodeCores: number;
  pathLatencyMs: { p50: number | undefined; p99: number | undefined };
  transcoderLatencyMs: { p50: number | undefined; p99: number | undefined };
  framesIn: number;
  framesOut: number;
  rtpPacketsOut: number;
  rssMB: number;
  otherLoadCores: number;
}

/** One loop of the sample as RTP; later loops reuse the payloads under shifted sequence numbers and timestamps. */
function packetizeLoop(sample: Sample): RtpPacket[][] {
  const packetize = rtpPacketizer(sample.codec);
  return sample.frames.map((frame, i) => packetize(frame, i * 3000, i === 0));
}

function shifted(packet: RtpPacket, loop: number, packetsPerLoop: number, framesPerLoop: number): RtpPacket {
  const h = packet.header;
  return new RtpPacket(
    new RtpHeader({
      payloadType: h.payloadType,
      ssrc: h.ssrc,
      marker: h.marker,
      sequenceNumber: (h.sequenceNumber + loop * packetsPerLoop) & 0xffff,
      timestamp: (h.timestamp + loop * framesPerLoop * 3000) >>> 0,
    }),
    packet.payload,
  );
}

async function measureOurs(sample: Sample, res: Resolution, seconds: number, warmupSeconds: number): Promise<OursResult> {
  const loopPackets = packetizeLoop(sample);
  const packetsPerLoop = loopPackets.reduce((n, f) => n + f.length, 0);
  const depacketizer = new VideoDepacketizer({ codec: sample.codec });
  const transcoder = new VideoTranscoder({ codec: sample.codec, bitrateKbps: res.kbps });
  const h264 = new H264Packetizer({ payloadType: 102, ssrc: 9 });
  const pushedAt = new Map<number, number>();
  const pathLatency: number[] = [];
  const transcoderLatency: number[] = [];
  let rtpPacketsOut = 0;
  let rssBytes = 0;
  const warmupMs = warmupSeconds * 1000;
  let measuring = false;

  depacketizer.on("frame", (frame) => transcoder.write(frame));
  transcoder.on("access-unit", (au) => {
    const packets = h264.packetize(au.data, au.timestamp);
    rtpPacketsOut += packets.length;
    const pushed = pushedAt.get(au.timestamp);
    pushedAt.delete(au.timestamp);
    if (measuring && pushed !== undefined) {
      pathLatency.push(performance.now() - pushed);
      transcoderLatency.push(au.latencyMs);
    }
  });

  const total = Math.round((seconds + warmupSeconds) * 30);
  const schedule = Array.from({ length: total }, (_, i) => {
    const loop = Math.floor(i / sample.frames.length);
    return loopPackets[i % sample.frames.length]!.map((p) => shifted(p, loop, packetsPerLoop, sample.frames.length));
  });
  await transcoder.start();
  const t0 = performance.now();
  let cpu0 = process.cpuUsage();
  let ffmpegCpu0 = 0;
  let busy0 = systemBusySeconds();
  let measureStart = t0;
  for (let i = 0; i < total; i++) {
    const due = t0 + i * FRAME_MS;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    if (!measuring && performance.now() - t0 >= warmupMs) {
      measuring = true;
      measureStart = performance.now();
      cpu0 = process.cpuUsage();
      ffmpegCpu0 = transcoder.stats().cpuSeconds;
      busy0 = systemBusySeconds();
    }
    const packets = schedule[i]!;
    pushedAt.set(packets[0]!.header.timestamp, performance.now());
    for (const packet of packets) depacketizer.push(packet);
  }
  await sleep(150);
  const wall = (performance.now() - measureStart) / 1000;
  const stats = transcoder.stats();
  rssBytes = stats.rssBytes;
  const cpu = process.cpuUsage(cpu0);
  const busy = systemBusySeconds() - busy0;
  const ffmpegCores = (stats.cpuSeconds - ffmpegCpu0) / wall;
  const nodeCores = (cpu.user + cpu.system) / 1e6 / wall;
  await transcoder.close();
  return {
    ffmpegCores,
    nodeCores,
    pathLatencyMs: { p50: percentile(pathLatency, 50), p99: percentile(pathLatency, 99) },
    transcoderLatencyMs: { p50: percentile(transcoderLatency, 50), p99: percentile(transcoderLatency, 99) },
    framesIn: stats.framesIn,
    framesOut: stats.framesOut,
    rtpPacketsOut,
    rssMB: rssBytes / 1e6,
    otherLoadCores: Math.max(0, busy / wall - ffmpegCores - nodeCores),
  };
}

interface BareResult {
  cores: number;
  otherLoadCores: number;
}

/** The same decode + encode in a bare ffmpeg reading the file at native rate; CPU from /proc after warm-up. */
async function measureBare(sample: Sample, res: Resolution, seconds: number, warmupSeconds: number): Promise<BareResult> {
  const framer = createInputFramer(sample.codec);
  const encoderArgs = buildFfmpegArgs(framer, { ...DEFAULT_ENCODER_SETTINGS, bitrateKbps: res.kbps });
  // The encoder half of our command line (from -map up to the keyframe side channel), without -copyts.
  const encodeOnly = encoderArgs.slice(encoderArgs.indexOf("-map"), encoderArgs.indexOf("-force_key_frames")).filter((a) => a !== "-copyts");
  const args = [
    "-hide_banner", "-nostats", "-loglevel", "error",
    "-threads", "1", "-flags", "low_delay",
    "-re", "-stream_loop", "-1", ...sample.inputArgs, "-i", sample.file,
    ...encodeOnly, "-f", "h264", "-y", "/dev/null",
  ];
  const child = spawn(FFMPEG, args, { stdio: ["ignore", "ignore", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await sleep(warmupSeconds * 1000);
    const t0 = performance.now();
    const cpu0 = readProcessUsage(child.pid!)?.cpuSeconds ?? 0;
    const busy0 = systemBusySeconds();
    await sleep(seconds * 1000);
    const cpu1 = readProcessUsage(child.pid!)?.cpuSeconds;
    if (cpu1 === undefined) throw new Error(`bare ffmpeg for ${sample.codec} ${res.name} exited early`);
    const wall = (performance.now() - t0) / 1000;
    const cores = (cpu1 - cpu0) / wall;
    return { cores, otherLoadCores: Math.max(0, (systemBusySeconds() - busy0) / wall - cores) };
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}

/* Main ------------------------------------------------------------------------------------------------------- */

interface Row {
  resolution: Resolution["name"];
  codec: VideoCodec;
  ours: OursResult;
  bare: BareResult;
  /** (ffmpeg + Node) of our path over bare ffmpeg. */
  ratio: number;
}

function fmt(n: number | undefined, digits = 3): string {
  return n === undefined ? "-" : n.toFixed(digits);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const ffmpeg = await checkFfmpeg(FFMPEG);
  const dir = mkdtempSync(join(tmpdir(), "bench-video-"));
  const started = performance.now();
  const rows: Row[] = [];
  try {
    for (const res of RESOLUTIONS) {
      for (const codec of args.codecs) {
        const sample = await encodeSample(dir, codec, res, 60);
        const ours = await measureOurs(sample, res, args.seconds, args.warmupSeconds);
        const bare = await measureBare(sample, res, args.seconds, args.warmupSeconds);
        const row: Row = { resolution: res.name, codec, ours, bare, ratio: (ours.ffmpegCores + ours.nodeCores) / bare.cores };
        rows.push(row);
        process.stderr.write(
          `${res.name} ${codec}: ours ${fmt(ours.ffmpegCores)}+${fmt(ours.nodeCores)} cores, bare ${fmt(bare.cores)}, ` +
            `latency p50 ${fmt(ours.pathLatencyMs.p50, 1)} ms p99 ${fmt(ours.pathLatencyMs.p99, 1)} ms\n`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const header = "| res | input | ffmpeg cores (ours) | Node cores (ours) | bare ffmpeg cores | ratio | path latency p50 / p99 ms | transcoder p50 / p99 ms | frames in/out | other load |";
  const lines = [header, "|---|---|---|---|---|---|---|---|---|---|"];
  for (const r of rows) {
    lines.push(
      `| ${r.resolution} | ${r.codec} | ${fmt(r.ours.ffmpegCores)} | ${fmt(r.ours.nodeCores)} | ${fmt(r.bare.cores)} | ${fmt(r.ratio, 2)} | ` +
        `${fmt(r.ours.pathLatencyMs.p50, 1)} / ${fmt(r.ours.pathLatencyMs.p99, 1)} | ${fmt(r.ours.transcoderLatencyMs.p50, 1)} / ${fmt(r.ours.transcoderLatencyMs.p99, 1)} | ` +
        `${r.ours.framesIn}/${r.ours.framesOut} | ${fmt(Math.max(r.ours.otherLoadCores, r.bare.otherLoadCores), 2)} |`,
    );
  }
  console.log(lines.join("\n"));

  const result = {
    when: new Date().toISOString(),
    ffmpeg: ffmpeg.version,
    node: process.version,
    quick: args.quick,
    secondsPerRun: args.seconds,
    warmupSeconds: args.warmupSeconds,
    runtimeSeconds: Math.round((performance.now() - started) / 100) / 10,
    notes:
      "one stream at a time; testsrc2 content; cores measured over secondsPerRun after warmupSeconds (start-up excluded) for both; bare ffmpeg reads the encoded file with -re and the same decoder/libx264 settings; nodeCores covers depacketizing, the transcoder's pipes and parsing, and H.264 packetizing (input RTP is prepared beforehand); otherLoadCores = system busy minus the measured processes",
    rows,
  };
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\nwritten to ${args.out} in ${result.runtimeSeconds} s`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
