import { dePacketizeRtpPackets, RtpPacket } from "werift";
import { beforeAll, describe, expect, it } from "vitest";
import { h264NalType, H264_NAL, joinAnnexB, splitAnnexB } from "../../transcode/video/annexb.js";
import { H264Packetizer, packetizeH264Nalus } from "../../transcode/video/h264-packetizer.js";
import { encodeSample, requireFfmpeg, type EncodedSample } from "./video-samples.js";

function nal(type: number, size: number, nri = 3): Buffer {
  const out = Buffer.alloc(size, 0xab);
  out[0] = (nri << 5) | type;
  return out;
}

const sps = nal(H264_NAL.sps, 12);
const pps = nal(H264_NAL.pps, 5);

/** Reassembles with werift's depacketizer (an independent implementation), via its "MPEG4/ISO/AVC" name. */
function werifDepacketize(packets: RtpPacket[]): Buffer {
  return dePacketizeRtpPackets("MPEG4/ISO/AVC", packets.map((p) => RtpPacket.deSerialize(p.serialize()))).data;
}

describe("packetizeH264Nalus (RFC 6184 mode 1)", () => {
  it("aggregates SPS + PPS + a small IDR into one STAP-A with the marker", () => {
    const idr = nal(H264_NAL.idr, 400);
    const chunks = packetizeH264Nalus([sps, pps, idr]);
    expect(chunks.length).toBe(1);
    const [stap] = chunks;
    expect(stap!.payload[0]! & 0x1f).toBe(H264_NAL.stapA);
    expect((stap!.payload[0]! >> 5) & 3).toBe(3); // NRI = max of the aggregated units
    expect(stap!.payload.readUInt16BE(1)).toBe(sps.length);
    expect(stap!.marker).toBe(true);
    expect(stap!.payload.length).toBe(1 + 2 + 12 + 2 + 5 + 2 + 400);
  });

  it("sends SPS + PPS as a STAP-A and a large IDR as FU-A fragments within the MTU", () => {
    const idr = nal(H264_NAL.idr, 5000);
    const chunks = packetizeH264Nalus([sps, pps, idr]);
    expect(chunks[0]!.payload[0]! & 0x1f).toBe(H264_NAL.stapA);
    const fus = chunks.slice(1);
    expect(fus.length).toBe(Math.ceil(4999 / 1198));
    for (const [i, fu] of fus.entries()) {
      expect(fu.payload.length).toBeLessThanOrEqual(1200);
      expect(fu.payload[0]! & 0x1f).toBe(H264_NAL.fuA);
      expect(fu.payload[0]! & 0x60).toBe(0x60); // NRI carried over from the IDR
      const header = fu.payload[1]!;
      expect((header & 0x80) !== 0).toBe(i === 0); // S
      expect((header & 0x40) !== 0).toBe(i === fus.length - 1); // E
      expect(header & 0x1f).toBe(H264_NAL.idr);
    }
    // Near-equal fragments rather than full ones plus a small tail.
    const sizes = fus.map((f) => f.payload.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    expect(chunks.map((c) => c.marker)).toEqual(chunks.map((_, i) => i === chunks.length - 1));
  });

  it("sends a NAL of exactly the payload budget as a single NAL unit, one byte more as FU-A", () => {
    expect(packetizeH264Nalus([nal(1, 1200)]).map((c) => c.payload[0]! & 0x1f)).toEqual([1]);
    const fu = packetizeH264Nalus([nal(1, 1201)]);
    expect(fu.map((c) => c.payload[0]! & 0x1f)).toEqual([H264_NAL.fuA, H264_NAL.fuA]);
    expect(fu.every((c) => c.payload.length <= 1200)).toBe(true);
  });

  it("honours a smaller MTU and mode 0 (single NAL units only)", () => {
    const chunks = packetizeH264Nalus([sps, pps, nal(1, 3000)], { maxPayloadSize: 500 });
    expect(chunks.every((c) => c.payload.length <= 500)).toBe(true);
    const mode0 = packetizeH264Nalus([sps, pps, nal(1, 800)], { packetizationMode: 0 });
    expect(mode0.map((c) => c.payload[0]! & 0x1f)).toEqual([H264_NAL.sps, H264_NAL.pps, 1]);
  });
});

describe("H264Packetizer", () => {
  let sample: EncodedSample;

  beforeAll(async () => {
    requireFfmpeg();
    sample = await encodeSample("H264", { width: 640, height: 360, frames: 20, gop: 10, bitrateKbps: 2000 });
  }, 60_000);

  it("keeps sequence numbers running across a wrap and one timestamp per access unit", () => {
    const p = new H264Packetizer({ payloadType: 102, ssrc: 0xdeadbeef, initialSequenceNumber: 65534 });
    const a = p.packetize(joinAnnexB([sps, pps, nal(H264_NAL.idr, 3000)]), 90_000);
    const b = p.packetize(joinAnnexB([nal(1, 700)]), 93_000);
    expect([...a, ...b].map((x) => x.header.sequenceNumber)).toEqual([65534, 65535, 0, 1, 2, 3].slice(0, a.length + b.length));
    expect(a.every((x) => x.header.timestamp === 90_000 && x.header.payloadType === 102 && x.header.ssrc === 0xdeadbeef)).toBe(true);
    expect(a.map((x) => x.header.marker)).toEqual(a.map((_, i) => i === a.length - 1));
    expect(b.map((x) => x.header.marker)).toEqual([true]);
    expect(p.nextSequenceNumber).toBe((65534 + a.length + b.length) & 0xffff);
  });

  it("round-trips real x264 access units through werift's depacketizer, without AUDs", () => {
    const p = new H264Packetizer({ payloadType: 96, ssrc: 1 });
    sample.frames.forEach((au, i) => {
      const packets = p.packetize(au, i * 3000);
      expect(packets.every((x) => x.payload.length <= 1200)).toBe(true);
      expect(packets.at(-1)!.header.marker).toBe(true);
      const expected = splitAnnexB(au).filter((n) => h264NalType(n) !== H264_NAL.aud);
      const got = splitAnnexB(werifDepacketize(packets));
      expect(got.map((n) => Buffer.from(n).toString("hex"))).toEqual(expected.map((n) => Buffer.from(n).toString("hex")));
    });
  });
});
