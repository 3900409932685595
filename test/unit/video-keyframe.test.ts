import { beforeAll, describe, expect, it } from "vitest";
import { isKeyframe, isVp8ShownFrame } from "../../transcode/video/keyframe.js";
import { VIDEO_CODECS, type VideoCodec } from "../../transcode/video/video-codec.js";
import { encodeSample, requireFfmpeg, type EncodedSample } from "./video-samples.js";

describe("keyframe detection from the bitstream", () => {
  const samples = new Map<VideoCodec, EncodedSample>();

  beforeAll(async () => {
    requireFfmpeg();
    for (const codec of VIDEO_CODECS) {
      samples.set(codec, await encodeSample(codec, { width: 320, height: 240, frames: 30, gop: 10 }));
    }
  }, 120_000);

  it.each(VIDEO_CODECS)("%s: agrees with ffprobe's keyframe flags on every frame", (codec) => {
    const sample = samples.get(codec)!;
    expect(sample.frames.length).toBe(30);
    const ours = sample.frames.map((frame) => isKeyframe(codec, frame));
    expect(ours).toEqual(sample.encoderKeyframes);
    // gop 10 over 30 frames: keyframes at 0, 10 and 20
    expect(ours.filter(Boolean).length).toBe(3);
  });

  it("VP8 frames from a realtime encoder are all shown", () => {
    expect(samples.get("VP8")!.frames.every((f) => isVp8ShownFrame(f))).toBe(true);
  });

  it("rejects truncated and foreign data", () => {
    for (const codec of VIDEO_CODECS) {
      expect(isKeyframe(codec, Buffer.alloc(0))).toBe(false);
      expect(isKeyframe(codec, Buffer.from([0xff, 0xff, 0xff]))).toBe(false);
    }
    // An H.264 IDR inside an H.265 check is not an IRAP picture and vice versa.
    const h264Idr = Buffer.from([0, 0, 0, 1, 0x65, 0x88, 0x84]);
    expect(isKeyframe("H264", h264Idr)).toBe(true);
    expect(isKeyframe("H265", Buffer.from([0, 0, 0, 1, 0x26, 0x01, 0xaf]))).toBe(true); // IDR_W_RADL (19)
    expect(isKeyframe("H265", Buffer.from([0, 0, 0, 1, 0x02, 0x01, 0xd0]))).toBe(false); // TRAIL_R (1)
  });
});
