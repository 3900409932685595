import { RtpHeader, RtpPacket } from "werift";
import { beforeAll, describe, expect, it } from "vitest";
import { h264NalType, H264_NAL, h265NalType, H265_NAL, splitAnnexB } from "../../transcode/video/annexb.js";
import {
  VideoDepacketizer,
  type EncodedVideoFrame,
  type FrameDrop,
  type KeyframeRequest,
} from "../../transcode/video/depacketizer.js";
import { AV1_OBU, parseAv1Obus } from "../../transcode/video/keyframe.js";
import { VIDEO_CODECS, type VideoCodec } from "../../transcode/video/video-codec.js";
import { encodeSample, packetizeSample, requireFfmpeg, type EncodedSample, type PacketizedFrame } from "./video-samples.js";

const FRAME_MS = 33;

interface Run {
  depacketizer: VideoDepacketizer;
  frames: EncodedVideoFrame[];
  requests: KeyframeRequest[];
  drops: FrameDrop[];
}

function newRun(codec: VideoCodec, maxWaitMs = 40): Run {
  const depacketizer = new VideoDepacketizer({ codec, maxWaitMs });
  const run: Run = { depacketizer, frames: [], requests: [], drops: [] };
  depacketizer.on("frame", (f) => run.frames.push(f));
  depacketizer.on("keyframe-request", (r) => run.requests.push(r));
  depacketizer.on("frame-dropped", (d) => run.drops.push(d));
  return run;
}

/** Feeds each frame's packets at its 30 fps slot, all packets of a frame arriving at the same moment. */
function feed(run: Run, frames: readonly PacketizedFrame[], skip: (frame: number, packet: number) => boolean = () => false): void {
  frames.forEach((frame, i) => {
    frame.packets.forEach((packet, j) => {
      if (!skip(i, j)) run.depacketizer.push(packet, i * FRAME_MS);
    });
  });
  run.depacketizer.tick(frames.length * FRAME_MS + 1000);
}

/** Content equality that ignores what RTP legitimately drops or rewrites (start code length, AUDs, TDs). */
function essence(codec: VideoCodec, data: Buffer): string {
  if (codec === "H264") {
    return splitAnnexB(data).filter((n) => h264NalType(n) !== H264_NAL.aud).map((n) => Buffer.from(n).toString("hex")).join("|");
  }
  if (codec === "H265") {
    return splitAnnexB(data).filter((n) => h265NalType(n) !== H265_NAL.aud).map((n) => Buffer.from(n).toString("hex")).join("|");
  }
  if (codec === "AV1") {
    return parseAv1Obus(data)
      .filter((o) => o.type !== AV1_OBU.temporalDelimiter)
      .map((o) => `${o.type}:${data.subarray(o.payloadOffset, o.payloadOffset + o.payloadSize).toString("hex")}`)
      .join("|");
  }
  return data.toString("hex");
}

describe("VideoDepacketizer", () => {
  const samples = new Map<VideoCodec, EncodedSample>();

  beforeAll(async () => {
    requireFfmpeg();
    // 640x360 so that frames span several packets; keyframes at 0, 10, 20.
    for (const codec of VIDEO_CODECS) {
      samples.set(codec, await encodeSample(codec, { width: 640, height: 360, frames: 30, gop: 10, bitrateKbps: 1500 }));
    }
  }, 120_000);

  describe.each(VIDEO_CODECS)("%s", (codec) => {
    const sample = (): EncodedSample => samples.get(codec)!;

    it("rebuilds every frame in order, flags keyframes, across a sequence number wrap", () => {
      const rtp = packetizeSample(sample());
      expect(rtp.some((f) => f.packets.length > 1)).toBe(true);
      const seqs = rtp.flatMap((f) => f.packets.map((p) => p.header.sequenceNumber));
      expect(seqs).toContain(65535);
      expect(seqs).toContain(0);
      const run = newRun(codec);
      feed(run, rtp);
      expect(run.frames.map((f) => f.timestamp)).toEqual(rtp.map((f) => f.timestamp));
      expect(run.frames.map((f) => f.keyframe)).toEqual(sample().encoderKeyframes);
      run.frames.forEach((f, i) => expect(essence(codec, f.data)).toBe(essence(codec, sample().frames[i]!)));
      expect(run.requests).toEqual([]);
      expect(run.drops).toEqual([]);
    });

    it("puts reordered and duplicated packets back in order", () => {
      const rtp = packetizeSample(sample());
      const all = rtp.flatMap((f, i) => f.packets.map((p) => ({ p, at: i * FRAME_MS })));
      // Swap neighbours and deliver every fifth packet twice.
      for (let k = 0; k + 1 < all.length; k += 3) [all[k], all[k + 1]] = [all[k + 1]!, all[k]!];
      const run = newRun(codec);
      all.forEach(({ p, at }, k) => {
        run.depacketizer.push(p, at);
        if (k % 5 === 0) run.depacketizer.push(p, at);
      });
      expect(run.frames.length).toBe(rtp.length);
      run.frames.forEach((f, i) => expect(essence(codec, f.data)).toBe(essence(codec, sample().frames[i]!)));
      expect(run.depacketizer.stats().duplicates).toBeGreaterThan(0);
      expect(run.drops).toEqual([]);
    });

    it("drops a frame with a lost packet, asks for a keyframe and resumes at the next one", () => {
      const rtp = packetizeSample(sample());
      // Frame 4 (a delta frame) loses its first packet; frames 5..9 depend on it; 10 is a keyframe.
      const run = newRun(codec);
      feed(run, rtp, (frame, packet) => frame === 4 && packet === 0);
      const out = run.frames.map((f) => rtp.findIndex((r) => r.timestamp === f.timestamp));
      expect(out).toEqual([0, 1, 2, 3, ...Array.from({ length: 20 }, (_, k) => 10 + k)]);
      expect(run.requests.map((r) => r.reason)).toContain("loss");
      // Declared lost once a later packet has waited maxWaitMs (40 ms); frame 4 may be a single packet.
      expect(run.requests[0]!.atMs).toBeLessThanOrEqual(5 * FRAME_MS + 40 + FRAME_MS);
      expect(run.drops.filter((d) => d.reason === "loss").length).toBe(1);
      // Frames 5..9, plus frame 4's remainder when what is left of it still parses as a whole picture
      // (H.264/H.265: the lost first packet held only the access unit delimiter).
      const waiting = run.drops.filter((d) => d.reason === "awaiting-keyframe").length;
      expect(waiting === 5 || waiting === 6).toBe(true);
      expect(run.depacketizer.stats().packetsLost).toBe(1);
    });

    it("treats a lost last (marker) packet as a lost frame", () => {
      const rtp = packetizeSample(sample());
      const victim = rtp.findIndex((f, i) => i > 10 && i < 20 && f.packets.length > 1);
      expect(victim).toBeGreaterThan(0);
      const run = newRun(codec);
      feed(run, rtp, (frame, packet) => frame === victim && packet === rtp[victim]!.packets.length - 1);
      const out = run.frames.map((f) => rtp.findIndex((r) => r.timestamp === f.timestamp));
      expect(out).not.toContain(victim);
      expect(out).toContain(victim - 1);
      expect(out).toContain(20);
      expect(out.filter((i) => i > victim && i < 20)).toEqual([]);
    });

    it("loses a whole frame cleanly: later frames wait for the keyframe", () => {
      const rtp = packetizeSample(sample());
      const run = newRun(codec);
      feed(run, rtp, (frame) => frame === 12);
      const out = run.frames.map((f) => rtp.findIndex((r) => r.timestamp === f.timestamp));
      expect(out).toEqual([...Array.from({ length: 12 }, (_, k) => k), ...Array.from({ length: 10 }, (_, k) => 20 + k)]);
      expect(run.requests.length).toBeGreaterThanOrEqual(1);
    });

    it("joining mid-stream waits for a keyframe and asks for one", () => {
      const rtp = packetizeSample(sample()).slice(3);
      const run = newRun(codec);
      feed(run, rtp);
      expect(run.frames[0]!.keyframe).toBe(true);
      expect(run.frames[0]!.timestamp).toBe(rtp[7]!.timestamp); // original frame 10
      expect(run.requests[0]!.reason).toBe("startup");
    });
  });

  it("waits for a reordered packet up to maxWaitMs, then gives up", () => {
    const rtp = packetizeSample(samples.get("VP8")!);
    const run = newRun("VP8", 50);
    const [first, second] = [rtp[0]!, rtp[1]!];
    first.packets.forEach((p) => run.depacketizer.push(p, 0));
    const late = second.packets[0]!;
    second.packets.slice(1).forEach((p) => run.depacketizer.push(p, 33));
    rtp[2]!.packets.forEach((p) => run.depacketizer.push(p, 66));
    expect(run.frames.length).toBe(1);
    run.depacketizer.tick(70);
    expect(run.frames.length).toBe(1); // still waiting: 37 ms since the first packet after the gap
    run.depacketizer.push(late, 75);
    expect(run.frames.length).toBe(3);
    expect(run.drops).toEqual([]);

    const rtp2 = packetizeSample(samples.get("VP8")!, 500_000, 0x999);
    const run2 = newRun("VP8", 50);
    rtp2[0]!.packets.forEach((p) => run2.depacketizer.push(p, 0));
    rtp2[1]!.packets.slice(1).forEach((p) => run2.depacketizer.push(p, 33));
    run2.depacketizer.tick(60);
    expect(run2.drops).toEqual([]);
    run2.depacketizer.tick(84);
    expect(run2.drops.map((d) => d.reason)).toEqual(["loss"]);
    expect(run2.requests.map((r) => r.reason)).toEqual(["loss"]);
  });

  it("repeats keyframe requests no more often than the interval while waiting", () => {
    const rtp = packetizeSample(samples.get("H264")!).slice(1, 10); // no keyframe at all
    const run = newRun("H264");
    rtp.forEach((f, i) => f.packets.forEach((p) => run.depacketizer.push(p, i * 100)));
    // 9 frames over 800 ms with a 500 ms spacing: the startup request and one repeat.
    expect(run.requests.map((r) => r.reason)).toEqual(["startup", "still-waiting"]);
    expect(run.frames).toEqual([]);
  });

  it("a new SSRC restarts the stream", () => {
    const sample = samples.get("VP9")!;
    const a = packetizeSample(sample, 1000, 1).slice(0, 5);
    const b = packetizeSample(sample, 9_000_000, 2).slice(0, 5);
    const run = newRun("VP9");
    feed(run, [...a, ...b]);
    expect(run.frames.length).toBe(10);
    expect(run.depacketizer.stats().streamResets).toBe(1);
  });

  it("drops a frame whose payload is malformed and waits for a keyframe", () => {
    const rtp = packetizeSample(samples.get("H264")!);
    const run = newRun("H264");
    feed(run, rtp.slice(0, 3));
    // An FU-A continuation with no start, complete per sequence numbers and marker.
    const bogus = new RtpPacket(
      new RtpHeader({ sequenceNumber: (rtp[2]!.packets.at(-1)!.header.sequenceNumber + 1) & 0xffff, timestamp: 99_999, ssrc: 0x1234, marker: true, payloadType: 96 }),
      Buffer.from([0x7c, 0x41, 1, 2, 3]),
    );
    run.depacketizer.push(bogus, 200);
    expect(run.drops.at(-1)?.reason).toBe("corrupt");
    expect(run.depacketizer.currentState).toBe("awaiting-keyframe");
  });
});
