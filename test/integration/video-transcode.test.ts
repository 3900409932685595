/**
 * The whole video path with real ffmpeg: encoded testsrc2 → werift packetizers (MTU 1200) → VideoDepacketizer
 * → VideoTranscoder → H264Packetizer → (wire) → VideoDepacketizer("H264") → Annex-B file → ffprobe decodes it.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { RtpPacket } from "werift";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VideoDepacketizer, type EncodedVideoFrame } from "../../transcode/video/depacketizer.js";
import { FfmpegNotFoundError } from "../../transcode/video/errors.js";
import { H264Packetizer } from "../../transcode/video/h264-packetizer.js";
import type { InputFraming } from "../../transcode/video/input-framing.js";
import { VideoTranscoder, type EncodedAccessUnit, type VideoTranscoderOptions } from "../../transcode/video/transcoder.js";
import type { VideoCodec } from "../../transcode/video/video-codec.js";
import { encodeSample, packetizeSample, probeVideo, requireFfmpeg, type EncodedSample } from "../unit/video-samples.js";

const FRAME_MS = 1000 / 30;
let dir: string;

interface PipelineResult {
  aus: EncodedAccessUnit[];
  /** H.264 frames rebuilt from the RTP the PBX would receive. */
  received: EncodedVideoFrame[];
  maxPayload: number;
  probe: Awaited<ReturnType<typeof probeVideo>>;
  transcoder: VideoTranscoder;
  inputFrames: number;
  /** performance.now() when each input frame's packets were pushed. */
  pushedAt: number[];
}

interface PipelineOptions {
  framing?: InputFraming;
  transcoder?: Partial<VideoTranscoderOptions>;
  /** Called before frame `index` is pushed. */
  onFrame?: (index: number, transcoder: VideoTranscoder) => void | Promise<void>;
  /** Packets lost on the way in. */
  drop?: (frame: number, packet: number) => boolean;
  /** Input RTP timestamps, per frame (default: the sample's own). */
  timestamps?: (frame: number, original: number) => number;
  /** Keyframe requests the inbound depacketizer raised (what would become PLIs toward Meta). */
  onKeyframeRequest?: () => void;
}

async function runPipeline(sample: EncodedSample, name: string, options: PipelineOptions = {}): Promise<PipelineResult> {
  const codec: VideoCodec = sample.codec;
  const rtp = packetizeSample(sample);
  const transcoder = new VideoTranscoder({ codec, framing: options.framing, bitrateKbps: 800, ...options.transcoder });
  const inbound = new VideoDepacketizer({ codec });
  const outbound = new VideoDepacketizer({ codec: "H264" });
  const packetizer = new H264Packetizer({ payloadType: 102, ssrc: 0x5150 });
  const aus: EncodedAccessUnit[] = [];
  const received: EncodedVideoFrame[] = [];
  let maxPayload = 0;

  inbound.on("frame", (frame) => transcoder.write(frame));
  inbound.on("keyframe-request", () => options.onKeyframeRequest?.());
  transcoder.on("access-unit", (au) => {
    aus.push(au);
    for (const packet of packetizer.packetize(au.data, au.timestamp)) {
      maxPayload = Math.max(maxPayload, packet.payload.length);
      outbound.push(RtpPacket.deSerialize(packet.serialize()));
    }
  });
  outbound.on("frame", (frame) => received.push(frame));

  await transcoder.start();
  const pushedAt: number[] = [];
  const t0 = performance.now();
  for (const [i, frame] of rtp.entries()) {
    await options.onFrame?.(i, transcoder);
    const due = t0 + i * FRAME_MS;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    pushedAt.push(performance.now());
    for (const [j, packet] of frame.packets.entries()) {
      if (options.drop?.(i, j)) continue;
      if (options.timestamps) packet.header.timestamp = options.timestamps(i, frame.timestamp) >>> 0;
      inbound.push(packet);
    }
  }
  // Let the last frames come out.
  const lastTs = options.timestamps ? options.timestamps(rtp.length - 1, rtp.at(-1)!.timestamp) >>> 0 : rtp.at(-1)!.timestamp;
  for (let waited = 0; waited < 3000 && aus.at(-1)?.timestamp !== lastTs; waited += 20) await sleep(20);

  const file = join(dir, `${name}.h264`);
  writeFileSync(file, Buffer.concat(received.map((f) => f.data)));
  const probe = await probeVideo(file, "h264");
  return { aus, received, maxPayload, probe, transcoder, inputFrames: rtp.length, pushedAt };
}

describe("video transcoding through ffmpeg", () => {
  const samples = new Map<VideoCodec, EncodedSample>();
  const transcoders: VideoTranscoder[] = [];

  beforeAll(async () => {
    requireFfmpeg();
    dir = mkdtempSync(join(tmpdir(), "video-it-"));
    for (const codec of ["VP8", "VP9", "H264", "H265", "AV1"] as const) {
      // ~2 s of 360p; a keyframe every second (restarts resume from one).
      samples.set(codec, await encodeSample(codec, { width: 640, height: 360, frames: 60, gop: 30, bitrateKbps: 1000 }));
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all(transcoders.map((t) => t.close()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const track = (result: PipelineResult): PipelineResult => {
    transcoders.push(result.transcoder);
    return result;
  };

  it.each(["VP8", "VP9", "H264", "H265", "AV1"] as const)(
    "%s → H.264 constrained baseline, decodable, at least nine frames in ten, every RTP payload ≤ 1200 bytes",
    async (codec) => {
      const result = track(await runPipeline(samples.get(codec)!, `plain-${codec}`));
      expect(result.probe.codec).toBe("h264");
      expect(result.probe.profile).toBe("Constrained Baseline");
      expect([result.probe.width, result.probe.height]).toEqual([640, 360]);
      expect(result.probe.frames).toBeGreaterThanOrEqual(Math.ceil(result.inputFrames * 0.9));
      expect(result.maxPayload).toBeLessThanOrEqual(1200);
      // Every output picture names its input frame; order and uniqueness hold.
      const inputTs = new Set(packetizeSample(samples.get(codec)!).map((f) => f.timestamp));
      expect(result.aus.every((au) => inputTs.has(au.timestamp))).toBe(true);
      expect(new Set(result.aus.map((a) => a.timestamp)).size).toBe(result.aus.length);
      expect(result.aus[0]!.keyframe).toBe(true);
      const stats = result.transcoder.stats();
      expect(stats.framesIn).toBe(result.inputFrames);
      expect(stats.framesOut).toBe(result.aus.length);
      expect(stats.latencyMs.p50).toBeLessThan(100);
      expect(stats.cpuSeconds).toBeGreaterThan(0);
      expect(stats.restarts).toBe(0);
      await result.transcoder.close();
      expect(result.transcoder.currentState).toBe("closed");
    },
    30_000,
  );

  it("H.264 and H.265 also work as raw Annex-B with access unit delimiters", async () => {
    for (const codec of ["H264", "H265"] as const) {
      const result = track(await runPipeline(samples.get(codec)!, `annexb-${codec}`, { framing: "annexb" }));
      expect(result.probe.profile).toBe("Constrained Baseline");
      expect(result.probe.frames).toBeGreaterThanOrEqual(Math.ceil(result.inputFrames * 0.9));
      expect(result.transcoder.stats().latencyMs.p50).toBeLessThan(100);
      await result.transcoder.close();
    }
  }, 30_000);

  it("answers a keyframe request with an IDR within 500 ms, and spaces a burst of requests 500 ms apart", async () => {
    const requests: number[] = [];
    const result = track(
      await runPipeline(samples.get("VP8")!, "keyframe-VP8", {
        onFrame: (i, transcoder) => {
          // Input keyframes are frames 0 and 30; ask at 10 (and again at 12, inside the spacing).
          if (i === 10 || i === 12) {
            requests.push(performance.now());
            transcoder.requestKeyframe();
          }
        },
      }),
    );
    const idrs = result.aus.filter((au) => au.keyframe);
    const first = idrs.find((au) => au.emittedAtMs >= requests[0]!);
    expect(first).toBeDefined();
    expect(first!.emittedAtMs - requests[0]!).toBeLessThanOrEqual(500);
    const second = idrs.find((au) => au.emittedAtMs > first!.emittedAtMs);
    expect(second).toBeDefined();
    expect(second!.writtenAtMs - first!.writtenAtMs).toBeGreaterThanOrEqual(500);
    expect(second!.emittedAtMs - requests[1]!).toBeLessThanOrEqual(1000);
    expect(result.transcoder.stats().keyframesForced).toBe(2);
    // The forced IDRs are not input keyframes: they came from the side channel.
    const inputKeyTs = new Set(packetizeSample(samples.get("VP8")!).filter((_, i) => samples.get("VP8")!.encoderKeyframes[i]).map((f) => f.timestamp));
    expect(inputKeyTs.has(first!.timestamp)).toBe(false);
    expect(result.probe.frames).toBeGreaterThanOrEqual(Math.ceil(result.inputFrames * 0.9));
    await result.transcoder.close();
  }, 30_000);

  it("restarts a killed ffmpeg and the decoded stream goes on", async () => {
    const sample = samples.get("VP9")!;
    let killedPid: number | undefined;
    let killedAt = 0;
    const restarts: number[] = [];
    let restartedAt = 0;
    const result = track(
      await runPipeline(sample, "restart-VP9", {
        onFrame: (i, transcoder) => {
          if (i === 0) {
            transcoder.on("restart", ({ attempt }) => {
              restarts.push(attempt);
              restartedAt = performance.now();
            });
          }
          if (i === 40) {
            killedPid = transcoder.stats().pid;
            killedAt = performance.now();
            process.kill(killedPid!, "SIGKILL");
          }
        },
      }),
    );
    expect(killedPid).toBeDefined();
    const stats = result.transcoder.stats();
    expect(restarts).toEqual([1]);
    expect(stats.restarts).toBe(1);
    expect(stats.pid).not.toBe(killedPid);
    expect(stats.state).toBe("running");
    const after = result.aus.filter((au) => au.emittedAtMs > killedAt);
    // Frames 40..59 were due after the kill; a restart costs at most a few of them.
    expect(after.length).toBeGreaterThanOrEqual(15);
    // The dead process's last pictures may still come out of its pipe; the new one starts with an IDR.
    expect(result.aus.find((au) => au.emittedAtMs > restartedAt)?.keyframe).toBe(true);
    expect(result.probe.frames).toBeGreaterThanOrEqual(Math.ceil(result.inputFrames * 0.85));
    expect(new Set(result.aus.map((a) => a.timestamp)).size).toBe(result.aus.length);
    await result.transcoder.close();
  }, 30_000);

  it("changes bitrate by handing over to a new process at a keyframe, losing no frame", async () => {
    // Keyframes every 15 frames: the change at frame 5 is taken up at 15, leaving time to switch under load.
    const sample = await encodeSample("H264", { width: 640, height: 360, frames: 60, gop: 15, bitrateKbps: 1000 });
    const result = track(
      await runPipeline(sample, "bitrate-H264", {
        transcoder: { bitrateKbps: 1200 },
        onFrame: (i, transcoder) => {
          if (i === 5) transcoder.setTargetBitrate(300);
        },
      }),
    );
    const stats = result.transcoder.stats();
    expect(stats.handovers).toBe(1);
    expect(stats.bitrateKbps).toBe(300);
    expect(stats.keyframeNeededEvents).toBeGreaterThanOrEqual(2); // startup + reconfigure
    expect(result.aus.length).toBe(result.inputFrames);
    const ts = result.aus.map((a) => a.timestamp);
    expect(ts).toEqual([...ts].sort((a, b) => a - b));
    expect(result.probe.frames).toBe(result.inputFrames);
    // The new rate shows in the output: P-frames shrink to about a quarter.
    const meanSize = (aus: EncodedAccessUnit[]): number => aus.reduce((n, au) => n + au.data.length, 0) / aus.length;
    const before = meanSize(result.aus.slice(1, 15).filter((au) => !au.keyframe));
    const after = meanSize(result.aus.slice(40).filter((au) => !au.keyframe));
    expect(after).toBeLessThan(before * 0.5);
    await result.transcoder.close();
  }, 30_000);

  it("loss on the way in: the broken stretch is skipped up to the next keyframe, the output stays decodable", async () => {
    let requests = 0;
    const result = track(
      await runPipeline(samples.get("AV1")!, "loss-AV1", {
        drop: (frame, packet) => frame === 10 && packet === 0,
        onKeyframeRequest: () => requests++,
      }),
    );
    expect(requests).toBeGreaterThanOrEqual(1);
    // Frames 10..29 depend on the lost one; 30 is the next keyframe.
    expect(result.aus.length).toBe(40);
    expect(result.probe.frames).toBe(40);
    expect(result.probe.profile).toBe("Constrained Baseline");
    await result.transcoder.close();
  }, 30_000);

  it("a jump in input timestamps (a new source) does not stop the output", async () => {
    const result = track(
      await runPipeline(samples.get("VP8")!, "jump-VP8", {
        // From the keyframe at 30 on, timestamps restart far behind, as from a new sender.
        timestamps: (frame, original) => (frame < 30 ? original : original - 2_000_000_000 + 0x1_0000_0000),
      }),
    );
    expect(result.aus.length).toBe(60);
    expect(result.probe.frames).toBe(60);
    await result.transcoder.close();
  }, 30_000);

  it("close() kills ffmpeg and releases it", async () => {
    const pipesBefore = process.getActiveResourcesInfo().filter((r) => r === "PipeWrap" || r === "ProcessWrap").length;
    const transcoder = new VideoTranscoder({ codec: "VP8" });
    transcoders.push(transcoder);
    await transcoder.start();
    const pid = transcoder.stats().pid!;
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    expect(process.getActiveResourcesInfo().filter((r) => r === "PipeWrap" || r === "ProcessWrap").length).toBeGreaterThan(pipesBefore);
    await transcoder.close();
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    await sleep(50);
    expect(process.getActiveResourcesInfo().filter((r) => r === "PipeWrap" || r === "ProcessWrap").length).toBeLessThanOrEqual(pipesBefore);
    transcoder.write({ data: Buffer.alloc(10), timestamp: 0 });
    expect(transcoder.stats().framesDropped.notRunning).toBe(1);
  });

  it("fails with a typed error when ffmpeg is missing", async () => {
    const transcoder = new VideoTranscoder({ codec: "VP8", ffmpegPath: "/nonexistent/ffmpeg" });
    await expect(transcoder.start()).rejects.toBeInstanceOf(FfmpegNotFoundError);
    expect(transcoder.currentState).toBe("failed");
  });
});
