import { RtpHeader, RtpPacket } from "werift";
import { describe, expect, it } from "vitest";
import { H264_NAL } from "../../transcode/video/annexb.js";
import { H264Passthrough, type PassthroughKeyframe } from "../../transcode/video/h264-passthrough.js";

function packet(seq: number, ts: number, payload: number[], opts: { ssrc?: number; marker?: boolean; pt?: number } = {}): RtpPacket {
  const header = new RtpHeader({
    sequenceNumber: seq & 0xffff,
    timestamp: ts >>> 0,
    ssrc: opts.ssrc ?? 0xaaaa,
    marker: opts.marker ?? true,
    payloadType: opts.pt ?? 125,
    extension: true,
    extensions: [{ id: 3, payload: Buffer.from([1, 2, 3]) }],
  });
  return new RtpPacket(header, Buffer.from(payload));
}

const stapSpsPps = [24, 0, 3, 0x67, 0x42, 0xc0, 0, 2, 0x68, 0xce];
const idrSlice = [0x65, 0x88, 0x84, 0x21];
const pSlice = [0x41, 0x9a, 0x02];
const fuIdrStart = [0x7c, 0x85, 0xaa];
const fuIdrEnd = [0x7c, 0x45, 0xbb];

describe("H264Passthrough", () => {
  it("rewrites SSRC, PT, sequence and timestamp, keeps payload and spacing, drops extensions", () => {
    const pt = new H264Passthrough({ payloadType: 99, ssrc: 0x1111, initialSequenceNumber: 100, initialTimestamp: 5000 });
    const input = [packet(40_000, 1_000_000, stapSpsPps, { marker: false }), packet(40_001, 1_000_000, idrSlice), packet(40_003, 1_003_000, pSlice)];
    const out = input.flatMap((p) => pt.rewrite(p));
    expect(out.map((p) => p.header.sequenceNumber)).toEqual([100, 101, 103]); // the gap stays visible
    expect(out.map((p) => p.header.timestamp)).toEqual([5000, 5000, 8000]);
    expect(out.every((p) => p.header.ssrc === 0x1111 && p.header.payloadType === 99)).toBe(true);
    expect(out.map((p) => p.header.marker)).toEqual([false, true, true]);
    expect(out.every((p) => p.header.extensions.length === 0)).toBe(true);
    out.forEach((p, i) => expect(p.payload).toBe(input[i]!.payload));
  });

  it("reports each IDR once, with whether SPS/PPS came with it", () => {
    const pt = new H264Passthrough({ payloadType: 99, ssrc: 1 });
    const keyframes: PassthroughKeyframe[] = [];
    pt.on("keyframe", (k) => keyframes.push(k));
    pt.rewrite(packet(1, 3000, stapSpsPps, { marker: false }));
    pt.rewrite(packet(2, 3000, fuIdrStart, { marker: false }));
    pt.rewrite(packet(3, 3000, fuIdrEnd));
    pt.rewrite(packet(4, 6000, pSlice));
    pt.rewrite(packet(5, 9000, idrSlice));
    expect(keyframes.map((k) => k.withParameterSets)).toEqual([true, false]);
    expect(pt.stats().keyframes).toBe(2);
  });

  it("can hold everything until the first IDR, then releases that access unit's parameter sets too", () => {
    const pt = new H264Passthrough({ payloadType: 99, ssrc: 1, waitForKeyframe: true, initialSequenceNumber: 0 });
    expect(pt.rewrite(packet(10, 0, pSlice))).toEqual([]);
    expect(pt.rewrite(packet(11, 3000, stapSpsPps, { marker: false }))).toEqual([]);
    const released = pt.rewrite(packet(12, 3000, idrSlice));
    expect(released.map((p) => p.payload[0]! & 0x1f)).toEqual([24, H264_NAL.idr]);
    expect(released.map((p) => p.header.sequenceNumber)).toEqual([1, 2]);
    expect(pt.rewrite(packet(13, 6000, pSlice)).length).toBe(1);
    expect(pt.stats().packetsHeld).toBe(1);
  });

  it("continues its own numbering without a jump when Meta's SSRC changes", () => {
    const pt = new H264Passthrough({ payloadType: 99, ssrc: 1, initialSequenceNumber: 500, initialTimestamp: 0 });
    const changes: number[] = [];
    pt.on("source-change", ({ ssrc }) => changes.push(ssrc));
    pt.rewrite(packet(7, 90_000, idrSlice), 0);
    pt.rewrite(packet(8, 93_000, pSlice), 33);
    const after = pt.rewrite(packet(30_000, 12_345, idrSlice, { ssrc: 0xbbbb }), 100)[0]!;
    expect(changes).toEqual([0xbbbb]);
    expect(after.header.sequenceNumber).toBe(502);
    expect(after.header.timestamp).toBe(3000 + Math.round(67 * 90)); // wall-clock spacing since the last packet
    expect(pt.rewrite(packet(30_001, 15_345, pSlice, { ssrc: 0xbbbb }), 133)[0]!.header.timestamp).toBe(after.header.timestamp + 3000);
  });
});
